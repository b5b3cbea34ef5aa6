//! Prometheus metrics, kept by prometheus-client and encoded in
//! the OpenMetrics text format, which Prometheus scrapes natively.
//!
//! Label values come from a closed set wherever a client could otherwise
//! invent them: `service` is the catalog type the request resolved to, or
//! `-` when it never got that far, so random paths cannot grow the number
//! of series; `client` is a configured client name, or `-` when the caller
//! was not authenticated; a refusal's `reason` is one of the proxy's own
//! labels.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`].
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: Arc<str>,
    code: u16,
    client: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    client: Arc<str>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    cloud: String,
    result: String,
}

/// Every metric of the process. It outlives reloads, so counters never
/// jump back to zero while the process runs.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
    durations: Family<ServiceLabels, Histogram>,
    retries: Family<ReasonLabels, Counter>,
    logins: Family<LoginLabels, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
    tokens_cached: Gauge<i64, AtomicI64>,
    in_flight: Gauge<i64, AtomicI64>,
    /// The label of requests answered before a service (or a client) was
    /// found.
    no_service: Arc<str>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keystone_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        let refused = Family::<RefusedLabels, Counter>::default();
        // 1 ms to ~65 s: proxied OpenStack calls range from cached GETs to
        // image uploads.
        let durations = Family::<ServiceLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 17))
        });
        let retries = Family::<ReasonLabels, Counter>::default();
        let logins = Family::<LoginLabels, Counter>::default();
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let tokens_cached = Gauge::<i64, AtomicI64>::default();
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "requests",
            "Requests answered, by service and status",
            requests.clone(),
        );
        registry.register(
            "refused",
            "Requests the proxy refused on purpose (a method, a rule, a built-in protection, a limit), by client and reason",
            refused.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers, by service",
            durations.clone(),
        );
        registry.register(
            "upstream_retries",
            "Requests sent upstream a second time",
            retries.clone(),
        );
        registry.register(
            "keystone_logins",
            "Calls to Keystone's auth API",
            logins.clone(),
        );
        registry.register(
            "token_cache_hits",
            "Requests served with a cached token",
            cache_hits.clone(),
        );
        registry.register(
            "token_cache_misses",
            "Requests that needed a login",
            cache_misses.clone(),
        );
        registry.register(
            "tokens_cached",
            "Tokens held in the cache",
            tokens_cached.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being served",
            in_flight.clone(),
        );
        Metrics {
            registry,
            requests,
            refused,
            durations,
            retries,
            logins,
            cache_hits,
            cache_misses,
            tokens_cached,
            in_flight,
            no_service: Arc::from("-"),
        }
    }

    /// A request was answered; `service` is the catalog type it went to,
    /// if it got that far, `client` who asked, if known. Labels are shared
    /// strings: no copy per request.
    pub fn request(
        &self,
        service: Option<&Arc<str>>,
        client: Option<&Arc<str>>,
        code: u16,
        seconds: f64,
    ) {
        let service = service.unwrap_or(&self.no_service).clone();
        let client = client.unwrap_or(&self.no_service).clone();
        self.durations
            .get_or_create(&ServiceLabels {
                service: service.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                service,
                code,
                client,
            })
            .inc();
    }

    /// The proxy refused a request of `client` on purpose, for `reason`.
    pub fn refused(&self, client: Option<&Arc<str>>, reason: &'static str) {
        let client = client.unwrap_or(&self.no_service).clone();
        self.refused
            .get_or_create(&RefusedLabels { client, reason })
            .inc();
    }

    pub fn retry(&self, reason: &str) {
        self.retries
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn login(&self, cloud: &str, result: &str) {
        let labels = LoginLabels {
            cloud: cloud.to_string(),
            result: result.to_string(),
        };
        self.logins.get_or_create(&labels).inc();
    }

    pub fn cache_lookup(&self, hit: bool) {
        if hit {
            self.cache_hits.inc()
        } else {
            self.cache_misses.inc()
        };
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// The text Prometheus scrapes; `tokens_cached` is sampled now.
    pub fn render(&self, tokens_cached: u64) -> String {
        self.tokens_cached
            .set(i64::try_from(tokens_cached).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// See [`Metrics::in_flight`].
pub struct InFlight<'a>(&'a Gauge<i64, AtomicI64>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let metrics = Metrics::new();
        metrics.request(
            Some(&Arc::from("compute")),
            Some(&Arc::from("ci")),
            200,
            0.01,
        );
        metrics.request(None, None, 401, 0.01);
        metrics.refused(Some(&Arc::from("ci")), "rules");
        metrics.retry("401");
        metrics.login("mycloud", "ok");
        metrics.cache_lookup(true);
        metrics.cache_lookup(false);
        let guard = metrics.in_flight();
        let text = metrics.render(3);
        for line in [
            "keystone_proxy_requests_total{service=\"compute\",code=\"200\",client=\"ci\"} 1",
            "keystone_proxy_requests_total{service=\"-\",code=\"401\",client=\"-\"} 1",
            "keystone_proxy_refused_total{client=\"ci\",reason=\"rules\"} 1",
            "keystone_proxy_request_duration_seconds_count{service=\"compute\"} 1",
            "keystone_proxy_upstream_retries_total{reason=\"401\"} 1",
            "keystone_proxy_keystone_logins_total{cloud=\"mycloud\",result=\"ok\"} 1",
            "keystone_proxy_token_cache_hits_total 1",
            "keystone_proxy_token_cache_misses_total 1",
            "keystone_proxy_tokens_cached 3",
            "keystone_proxy_in_flight_requests 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        drop(guard);
        assert!(
            metrics
                .render(0)
                .contains("keystone_proxy_in_flight_requests 0")
        );
    }
}
