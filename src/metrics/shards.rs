//! The figures every request updates, kept per worker and summed when
//! scraped: requests by service, status and client, their durations by
//! service, requests in flight and token cache hits. One worker's shard is
//! touched by that worker alone (and by a scrape), so a request takes no
//! lock and writes no counter that another core uses at the same time.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use hashbrown::{Equivalent, HashMap};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::{RequestLabels, ServiceLabels};
use crate::worker::PerWorker;

/// Upper bounds of the duration buckets: 1 ms doubling to ~65 s (proxied
/// OpenStack calls range from cached GETs to image uploads), then +Inf.
const BOUNDS: [f64; 17] = {
    let mut bounds = [0.001; 17];
    let mut at = 1;
    while at < bounds.len() {
        bounds[at] = bounds[at - 1] * 2.0;
        at += 1;
    }
    bounds
};

/// Every worker's shard.
#[derive(Debug)]
pub(super) struct Shards(PerWorker<Shard>);

#[derive(Debug, Default)]
pub(super) struct Shard {
    requests: Mutex<HashMap<Key, Timings, foldhash::fast::RandomState>>,
    pub(super) in_flight: AtomicI64,
    pub(super) cache_hits: AtomicU64,
}

/// A series of `requests_total`: its labels, owned.
#[derive(Debug, PartialEq, Eq)]
struct Key {
    service: Arc<str>,
    client: Arc<str>,
    code: u16,
}

/// The same labels borrowed, to look a series up without a copy.
struct Asked<'a> {
    service: &'a Arc<str>,
    client: &'a Arc<str>,
    code: u16,
}

/// Both spellings hash alike (the strings' bytes, then the code).
fn hash_labels(service: &str, client: &str, code: u16, state: &mut impl Hasher) {
    service.hash(state);
    client.hash(state);
    code.hash(state);
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_labels(&self.service, &self.client, self.code, state);
    }
}

impl Hash for Asked<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_labels(self.service, self.client, self.code, state);
    }
}

impl Equivalent<Key> for Asked<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.code == key.code && **self.service == *key.service && **self.client == *key.client
    }
}

/// How long one series' requests took: a count per bucket, and the sum.
#[derive(Debug, Clone, Copy, Default)]
struct Timings {
    /// One per bound, then +Inf.
    buckets: [u64; BOUNDS.len() + 1],
    sum: f64,
}

impl Timings {
    fn observe(&mut self, seconds: f64) {
        let at = BOUNDS.iter().position(|&bound| seconds <= bound);
        self.buckets[at.unwrap_or(BOUNDS.len())] += 1;
        self.sum += seconds;
    }

    fn add(&mut self, other: &Timings) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum += other.sum;
    }

    fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl Shards {
    pub(super) fn new(workers: usize) -> Shards {
        Shards(PerWorker::new(workers, |_| Shard::default()))
    }

    /// This worker's shard.
    pub(super) fn mine(&self) -> &Shard {
        self.0.get()
    }

    pub(super) fn request(&self, service: &Arc<str>, client: &Arc<str>, code: u16, seconds: f64) {
        let asked = Asked {
            service,
            client,
            code,
        };
        let mut requests = self.mine().requests.lock();
        match requests.get_mut(&asked) {
            Some(timings) => timings.observe(seconds),
            None => {
                let key = Key {
                    service: service.clone(),
                    client: client.clone(),
                    code,
                };
                requests.entry(key).or_default().observe(seconds);
            }
        }
    }

    /// Every series, summed over the workers.
    fn summed(&self) -> (Vec<(Key, Timings)>, i64, u64) {
        let mut series: HashMap<Key, Timings, foldhash::fast::RandomState> = HashMap::default();
        let (mut in_flight, mut hits) = (0, 0);
        for shard in self.0.all() {
            for (key, timings) in shard.requests.lock().iter() {
                let asked = Asked {
                    service: &key.service,
                    client: &key.client,
                    code: key.code,
                };
                match series.get_mut(&asked) {
                    Some(sum) => sum.add(timings),
                    None => {
                        let key = Key {
                            service: key.service.clone(),
                            client: key.client.clone(),
                            code: key.code,
                        };
                        series.insert(key, *timings);
                    }
                }
            }
            in_flight += shard.in_flight.load(Ordering::Relaxed);
            hits += shard.cache_hits.load(Ordering::Relaxed);
        }
        let mut series: Vec<(Key, Timings)> = series.into_iter().collect();
        // A stable order from scrape to scrape.
        series.sort_by(|(a, _), (b, _)| {
            (&a.service, &a.client, a.code).cmp(&(&b.service, &b.client, b.code))
        });
        (series, in_flight, hits)
    }
}

impl Collector for Shards {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (series, in_flight, hits) = self.summed();
        let mut requests = encoder.encode_descriptor(
            "requests",
            "Requests answered, by service and status.",
            None,
            MetricType::Counter,
        )?;
        for (key, timings) in &series {
            let labels = RequestLabels {
                service: key.service.clone(),
                code: key.code,
                client: key.client.clone(),
            };
            let count = ConstCounter::new(timings.count());
            count.encode(requests.encode_family(&labels)?)?;
        }
        let mut by_service: Vec<(Arc<str>, Timings)> = Vec::new();
        for (key, timings) in &series {
            match by_service
                .iter_mut()
                .find(|(service, _)| *service == key.service)
            {
                Some((_, sum)) => sum.add(timings),
                None => by_service.push((key.service.clone(), *timings)),
            }
        }
        let mut durations = encoder.encode_descriptor(
            "request_duration_seconds",
            "Time from request to response headers, by service.",
            None,
            MetricType::Histogram,
        )?;
        for (service, timings) in &by_service {
            let labels = ServiceLabels {
                service: service.clone(),
            };
            let buckets: Vec<(f64, u64)> = (BOUNDS.iter().copied().chain([f64::INFINITY]))
                .zip(timings.buckets)
                .collect();
            durations
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(timings.sum, timings.count(), &buckets, None)?;
        }
        let hits_metric = ConstCounter::new(hits);
        hits_metric.encode(encoder.encode_descriptor(
            "token_cache_hits",
            "Requests served with a cached token.",
            None,
            MetricType::Counter,
        )?)?;
        let in_flight_metric = ConstGauge::new(in_flight);
        in_flight_metric.encode(encoder.encode_descriptor(
            "in_flight_requests",
            "Requests being served.",
            None,
            MetricType::Gauge,
        )?)
    }
}
