//! Measuring the proxy: a `Sample` of its fds and RSS, and `quiet_sample`,
//! which pauses the load and closes every connection first (the "Resources"
//! section of main.rs says why).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cloud::Cloud;
use crate::settings::DEADLINE;
use crate::shared::Shared;
use keystone_proxy::testkit::ProxyProcess;

/// One reading of the proxy's descriptors and memory.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: f64,
    pub(crate) fds: usize,
    pub(crate) rss_kib: u64,
}

/// Pause the load, close every connection, wait for the proxy's fd count
/// to settle, and read it (see the crate documentation, in main.rs).
pub(crate) async fn quiet_sample(
    shared: &Shared,
    cloud: &Cloud,
    proxy: &ProxyProcess,
    workers: usize,
    resume: bool,
) -> Result<Sample, String> {
    let _turn = shared.chaos_turn.lock().await;
    shared.paused.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + DEADLINE + Duration::from_secs(5);
    while shared.parked.load(Ordering::SeqCst) < workers {
        if Instant::now() > deadline {
            return Err("the workers did not pause".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cloud.keystone_gate.close_connections();
    cloud.upstream_gate.close_connections();
    let mut last = proxy.open_fds().ok_or("the proxy is gone")?;
    let mut steady = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = proxy.open_fds().ok_or("the proxy is gone")?;
        if now == last {
            steady += 1;
            if steady >= 4 {
                break;
            }
        } else {
            steady = 0;
            last = now;
        }
    }
    let sample = Sample {
        at: shared.secs(),
        fds: last,
        rss_kib: proxy.memory_kib("VmRSS").ok_or("the proxy is gone")?,
    };
    if resume {
        shared.paused.store(false, Ordering::SeqCst);
    }
    Ok(sample)
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
