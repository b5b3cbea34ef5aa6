//! Prometheus metrics, encoded by prometheus-client in the OpenMetrics
//! text format, which Prometheus scrapes natively. What every request
//! updates is kept per worker (`shards`); the rare events (refusals,
//! retries, logins) in prometheus-client's own families.
//!
//! Label values come from a closed set wherever a client could otherwise
//! invent them: `service` is the catalog type the request resolved to, or
//! `-` when it never got that far, so random paths cannot grow the number
//! of series; `client` is a configured client name, or `-` when the caller
//! was not authenticated; a refusal's `reason` is one of the proxy's own
//! labels.

mod shards;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
    /// Requests, their durations, requests in flight and cache hits: a
    /// shard per worker, summed when scraped.
    shards: Arc<shards::Shards>,
    refused: Family<RefusedLabels, Counter>,
    retries: Family<ReasonLabels, Counter>,
    logins: Family<LoginLabels, Counter>,
    cache_misses: Counter,
    tokens_cached: Gauge<i64, AtomicI64>,
    /// The label of requests answered before a service (or a client) was
    /// found.
    no_service: Arc<str>,
}

impl Metrics {
    /// The metrics of a process whose proxy listener has `workers` workers.
    pub fn new(workers: usize) -> Metrics {
        let mut registry = Registry::with_prefix("keystone_proxy");
        let shards = Arc::new(shards::Shards::new(workers));
        let refused = Family::<RefusedLabels, Counter>::default();
        let retries = Family::<ReasonLabels, Counter>::default();
        let logins = Family::<LoginLabels, Counter>::default();
        let cache_misses = Counter::default();
        let tokens_cached = Gauge::<i64, AtomicI64>::default();
        registry.register_collector(Box::new(shards.clone()));
        registry.register(
            "refused",
            "Requests the proxy refused on purpose (a method, a rule, a built-in protection, a limit), by client and reason",
            refused.clone(),
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
            "token_cache_misses",
            "Requests that needed a login",
            cache_misses.clone(),
        );
        registry.register(
            "tokens_cached",
            "Tokens held in the cache",
            tokens_cached.clone(),
        );
        Metrics {
            registry,
            shards,
            refused,
            retries,
            logins,
            cache_misses,
            tokens_cached,
            no_service: Arc::from("-"),
        }
    }

    /// A request was answered; `service` is the catalog type it went to,
    /// if it got that far, `client` who asked, if known. Labels are shared
    /// strings, copied only for a new series.
    pub fn request(
        &self,
        service: Option<&Arc<str>>,
        client: Option<&Arc<str>>,
        code: u16,
        seconds: f64,
    ) {
        let service = service.unwrap_or(&self.no_service);
        let client = client.unwrap_or(&self.no_service);
        self.shards.request(service, client, code, seconds);
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
        match hit {
            true => self
                .shards
                .mine()
                .cache_hits
                .fetch_add(1, Ordering::Relaxed),
            false => self.cache_misses.inc(),
        };
    }

    /// Counts a request in flight until the guard is dropped (on the
    /// worker that made it: a request stays on its worker).
    pub fn in_flight(&self) -> InFlight<'_> {
        let gauge = &self.shards.mine().in_flight;
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
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
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each worker counts in its own shard; a scrape sums them, bucket by
    /// bucket, and the gauge of requests in flight too.
    #[test]
    fn workers_count_apart_and_scrapes_sum() {
        let metrics = Arc::new(Metrics::new(2));
        let (compute, ci) = (Arc::<str>::from("compute"), Arc::<str>::from("ci"));
        let on_worker = |index: usize, seconds: &'static [f64]| {
            let (metrics, compute, ci) = (metrics.clone(), compute.clone(), ci.clone());
            std::thread::spawn(move || {
                crate::worker::set_index(index);
                for &s in seconds {
                    metrics.request(Some(&compute), Some(&ci), 200, s);
                    metrics.cache_lookup(true);
                }
                std::mem::forget(metrics.in_flight());
            })
            .join()
            .expect("the worker ran");
        };
        on_worker(0, &[0.0005, 0.0015]);
        on_worker(1, &[0.0015, 0.003, 100.0]);
        let text = metrics.render(0);
        for line in [
            "keystone_proxy_requests_total{service=\"compute\",code=\"200\",client=\"ci\"} 5",
            "keystone_proxy_request_duration_seconds_count{service=\"compute\"} 5",
            "keystone_proxy_request_duration_seconds_bucket{le=\"0.001\",service=\"compute\"} 1",
            "keystone_proxy_request_duration_seconds_bucket{le=\"0.002\",service=\"compute\"} 3",
            "keystone_proxy_request_duration_seconds_bucket{le=\"0.004\",service=\"compute\"} 4",
            "keystone_proxy_request_duration_seconds_bucket{le=\"65.536\",service=\"compute\"} 4",
            "keystone_proxy_request_duration_seconds_bucket{le=\"+Inf\",service=\"compute\"} 5",
            "keystone_proxy_token_cache_hits_total 5",
            "keystone_proxy_in_flight_requests 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        let sum = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("keystone_proxy_request_duration_seconds_sum{service=\"compute\"} ")
            })
            .and_then(|v| v.parse::<f64>().ok());
        assert!(sum.is_some_and(|s| (s - 100.0065).abs() < 1e-9), "{text}");
    }

    #[test]
    fn names_follow_the_design() {
        let metrics = Metrics::new(2);
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
