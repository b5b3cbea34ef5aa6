//! The state the tasks share (`Shared`): the stop and pause switches, the
//! request rate, the statistics of outcomes (`Stats`, `Counts`) and the
//! chaos log of disruptions (`ChaosLog`) that explains clear failures.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::judge::{Outcome, Part, Unanswered};
use crate::plan::Kind;
use crate::settings::SLACK;

#[derive(Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) lost: u64,
    pub(crate) bytes: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) by_kind: BTreeMap<Kind, Counts>,
    pub(crate) failed: BTreeMap<String, u64>,
    pub(crate) unexplained: u64,
    /// For each unexplained failure label: the longest time from the end
    /// of a disruption to the start of such a request.
    pub(crate) unexplained_after: BTreeMap<String, f64>,
    pub(crate) lost: BTreeMap<&'static str, u64>,
    pub(crate) lost_examples: Vec<String>,
    /// Microseconds of every ok small GET.
    pub(crate) get_latency_us: Vec<u32>,
}

struct Disruption {
    part: Part,
    from: Instant,
    to: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct ChaosLog {
    disruptions: Vec<Disruption>,
    pub(crate) events: BTreeMap<&'static str, u64>,
    pub(crate) down_total: Duration,
}

pub(crate) struct Shared {
    pub(crate) started: Instant,
    pub(crate) base: String,
    pub(crate) data: Bytes,
    pub(crate) seed: u64,
    pub(crate) rate: tokio::sync::Mutex<tokio::time::Interval>,
    pub(crate) stop: AtomicBool,
    pub(crate) chaos_stop: AtomicBool,
    pub(crate) paused: AtomicBool,
    pub(crate) parked: AtomicUsize,
    /// Held by a chaos event while it runs, and by a quiet sample.
    pub(crate) chaos_turn: tokio::sync::Mutex<()>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) chaos: Mutex<ChaosLog>,
    pub(crate) unanswered: Mutex<Vec<Unanswered>>,
}

impl Shared {
    pub(crate) fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Whether one of `parts` was disrupted between `from` and now.
    pub(crate) fn disrupted(&self, parts: &[Part], from: Instant, until: Instant) -> bool {
        self.chaos.lock().disruptions.iter().any(|d| {
            parts.contains(&d.part) && d.from <= until && d.to.is_none_or(|to| to + SLACK >= from)
        })
    }

    pub(crate) fn begin(&self, part: Part) -> usize {
        let mut chaos = self.chaos.lock();
        chaos.disruptions.push(Disruption {
            part,
            from: Instant::now(),
            to: None,
        });
        chaos.disruptions.len() - 1
    }

    pub(crate) fn end(&self, index: usize) {
        let mut chaos = self.chaos.lock();
        let now = Instant::now();
        let from = chaos.disruptions[index].from;
        chaos.disruptions[index].to = Some(now);
        if chaos.disruptions[index].part != Part::Tokens {
            chaos.down_total += now - from;
        }
    }

    pub(crate) fn event(&self, name: &'static str) {
        *self.chaos.lock().events.entry(name).or_default() += 1;
    }

    /// Seconds from the end of the latest disruption before `at` to `at`.
    fn since_disruption(&self, at: Instant) -> Option<f64> {
        self.chaos
            .lock()
            .disruptions
            .iter()
            .filter_map(|d| d.to)
            .filter(|&to| to <= at)
            .max()
            .map(|to| (at - to).as_secs_f64())
    }

    pub(crate) fn record(
        &self,
        kind: Kind,
        outcome: &Outcome,
        started: Instant,
        elapsed: Duration,
        bytes: u64,
        id: &str,
    ) {
        let since = match outcome {
            Outcome::Failed(_, false) => self.since_disruption(started),
            _ => None,
        };
        let mut stats = self.stats.lock();
        let counts = stats.by_kind.entry(kind).or_default();
        counts.requests += 1;
        match outcome {
            Outcome::Ok => {
                counts.ok += 1;
                counts.bytes += bytes;
                if kind == Kind::Get {
                    let us = elapsed.as_micros().min(u32::MAX as u128) as u32;
                    stats.get_latency_us.push(us);
                }
            }
            Outcome::Failed(label, explained) => {
                counts.failed += 1;
                let label = if *explained {
                    label.clone()
                } else {
                    stats.unexplained += 1;
                    let label = format!("{label} [no disruption during the request]");
                    let latest = stats.unexplained_after.entry(label.clone()).or_default();
                    *latest = latest.max(since.unwrap_or(f64::INFINITY));
                    label
                };
                *stats.failed.entry(label).or_default() += 1;
            }
            Outcome::Unanswered(error) => {
                counts.lost += 1;
                *stats
                    .lost
                    .entry("transport error before any answer")
                    .or_default() += 1;
                if stats.lost_examples.len() < 40 {
                    stats.lost_examples.push(format!("{id}: {error}"));
                }
            }
            Outcome::Lost(category, detail) => {
                counts.lost += 1;
                *stats.lost.entry(category).or_default() += 1;
                if stats.lost_examples.len() < 40 {
                    let line = format!(
                        "t={:.1}s {id} ({}): {category}: {detail}",
                        self.secs(),
                        kind.label()
                    );
                    eprintln!("LOST {line}");
                    stats.lost_examples.push(line);
                }
            }
        }
    }

    pub(crate) fn totals(&self) -> Counts {
        let stats = self.stats.lock();
        let mut total = Counts::default();
        for counts in stats.by_kind.values() {
            total.requests += counts.requests;
            total.ok += counts.ok;
            total.failed += counts.failed;
            total.lost += counts.lost;
            total.bytes += counts.bytes;
        }
        total
    }
}
