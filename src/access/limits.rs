//! A client's fair share of the cloud: a request rate and a number of
//! requests in flight.
//!
//! Every script behind the proxy shares one cloud identity, and with it the
//! cloud's per-user API rate limits; one runaway script could starve every
//! other tool. Each client therefore has its own token bucket
//! (`requests_per_second`, `burst`) and its own count of requests being
//! answered (`max_in_flight`). Both are per client and lock-free (governor's
//! bucket is one atomic; the count is another), so a client at its limit
//! slows no one else. A refused request is answered 429 at once, with
//! nothing sent upstream.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The configured limits of one client (`None`: no limit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitSettings {
    pub requests_per_second: Option<f64>,
    /// Requests that may come at once before the rate applies (default:
    /// one second's worth, at least 1).
    pub burst: Option<u32>,
    pub max_in_flight: Option<u32>,
}

/// One client's limits, as the pipeline checks them.
pub struct Limits {
    rate: Option<DefaultDirectRateLimiter>,
    max_in_flight: Option<usize>,
    in_flight: Arc<AtomicUsize>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Over `requests_per_second`: there is room again after this long.
    Rate(Duration),
    /// `max_in_flight` requests are being answered.
    InFlight,
}

/// A request counted in flight until this is dropped (with the answer's
/// body, so a long download holds its place).
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Limits {
        let rate = settings.requests_per_second.and_then(|per_second| {
            let burst = settings
                .burst
                .unwrap_or_else(|| per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32);
            let period = Duration::try_from_secs_f64(1.0 / per_second).ok()?;
            let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
            Some(RateLimiter::direct(quota))
        });
        Limits {
            rate,
            max_in_flight: settings.max_in_flight.map(|n| n as usize),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether a request may start now. With `max_in_flight`, the slot it
    /// holds until its answer is done.
    pub fn admit(&self) -> Result<Option<Slot>, Limited> {
        let slot = match self.max_in_flight {
            None => None,
            Some(max) => {
                let slot = Slot(self.in_flight.clone());
                if self.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
                    return Err(Limited::InFlight);
                }
                Some(slot)
            }
        };
        if let Some(rate) = &self.rate {
            if let Err(not_until) = rate.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(Limited::Rate(wait));
            }
        }
        Ok(slot)
    }

    /// Whether any limit is set (a request then holds a slot or a token).
    pub fn is_limited(&self) -> bool {
        self.rate.is_some() || self.max_in_flight.is_some()
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("rate", &self.rate.is_some())
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: Option<f64>, burst: Option<u32>, in_flight: Option<u32>) -> Limits {
        Limits::new(&LimitSettings {
            requests_per_second: per_second,
            burst,
            max_in_flight: in_flight,
        })
    }

    #[test]
    fn no_limits_admit_everything_and_hold_nothing() {
        let open = limits(None, None, None);
        assert!(!open.is_limited());
        for _ in 0..10_000 {
            assert!(matches!(open.admit(), Ok(None)));
        }
    }

    #[test]
    fn the_burst_then_the_rate() {
        // One request per hour after a burst of 3: the 4th must wait.
        let rate = limits(Some(1.0 / 3600.0), Some(3), None);
        for _ in 0..3 {
            assert!(rate.admit().is_ok());
        }
        match rate.admit() {
            Err(Limited::Rate(wait)) => assert!(
                wait > Duration::from_secs(3000) && wait <= Duration::from_secs(3600),
                "{wait:?}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_default_burst_is_one_second_of_rate() {
        let rate = limits(Some(10.0), None, None);
        let admitted = (0..100).filter(|_| rate.admit().is_ok()).count();
        // 10 at once, plus whatever the clock let in meanwhile.
        assert!((10..=12).contains(&admitted), "{admitted}");
    }

    #[test]
    fn in_flight_slots_come_back_when_dropped() {
        let two = limits(None, None, Some(2));
        let first = two.admit().unwrap();
        let second = two.admit().unwrap();
        assert!(first.is_some() && second.is_some());
        assert_eq!(two.admit().unwrap_err(), Limited::InFlight);
        // A refused request did not keep a place.
        assert_eq!(two.admit().unwrap_err(), Limited::InFlight);
        drop(first);
        let third = two.admit().unwrap();
        assert!(third.is_some());
        assert_eq!(two.admit().unwrap_err(), Limited::InFlight);
        drop((second, third));
        assert_eq!(two.in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_refused_rate_gives_back_the_in_flight_place() {
        let both = limits(Some(1.0 / 3600.0), Some(1), Some(5));
        let held = both.admit().unwrap();
        assert!(matches!(both.admit(), Err(Limited::Rate(_))));
        assert_eq!(both.in_flight.load(Ordering::Acquire), 1);
        drop(held);
        assert_eq!(both.in_flight.load(Ordering::Acquire), 0);
    }
}
