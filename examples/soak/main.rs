//! Soak test: `SOAK_SECONDS` (default 600) of mixed load through the real
//! `keystone-proxy` binary while tokens are revoked and the fake Keystone
//! and the fake upstream are restarted, then a report of what every request
//! got and of the proxy's file descriptors and memory. `soak/run.sh`
//! builds and runs it; `soak/README.md` explains the numbers.
//!
//! # What runs
//!
//! In this process: the fake Keystone and the echo upstream of
//! `keystone_proxy::fake` (20 projects, one service user with a role on
//! each, tokens living `SOAK_TOKEN_LIFETIME` seconds so renewals happen
//! during the run), each behind a [`Gate`] on its own port; 32 load
//! workers; a chaos task; a sampler. As a child: the release proxy binary.
//!
//! Workers (each with its own hyper client: pooled HTTP/1.1, a new
//! HTTP/1.1 connection per request, or HTTP/2 prior knowledge; as one of
//! four local clients, `ops` (`"*"`, Bearer), `team-a` (p00–p09 by name,
//! Basic), `team-b` (p10–p19 by id, X-Auth-Token), `single` (p07 only,
//! default project, Bearer)):
//!
//! * 20 small-GET workers sharing `SOAK_RATE` requests/s: compute and
//!   block-storage (by type or alias) across the projects; 1 % with a
//!   wrong key (must be 401 `bad-credential`) and 2 % to a project outside
//!   the client's allow-list (must be 403 `forbidden-project`);
//! * 4 slow-GET workers (the upstream waits 0.1–3 s: requests in flight
//!   when something restarts), sharing the same rate;
//! * 4 upload workers: PUT of 0–4 MiB of random bytes (a slice of one
//!   random buffer), with Content-Length or chunked, the echo's
//!   `body_len`/`body_sha256` compared with the client's;
//! * 4 download workers: `x-reply-bytes` up to 4 MiB, length and every
//!   byte checked as they stream in.
//!
//! Every 200 echo is also checked for the path the upstream saw (so the
//! catalog and the join were right), the **project of the token** it
//! carried (a token of another project would be a mix-up), that the
//! token was accepted, and that the local key was not forwarded.
//!
//! Chaos, one event every few seconds, cycling through (in random order):
//! revoke every token; revoke one project's tokens; revoke every
//! project-scoped token; restart Keystone; restart Keystone losing every
//! token; restart the upstream; restart both. A restart keeps the port
//! closed for 2–5 s.
//!
//! # How a request is judged
//!
//! * **ok**: the expected answer, fully checked (or the expected refusal
//!   for the wrong-key and wrong-project requests).
//! * **failed (clear)**: the client was told plainly that it failed:
//!   - an answer the proxy made for an outage: 502 `upstream-unavailable`,
//!     504 `upstream-timeout`, 503 `keystone-unavailable`, 502
//!     `keystone-rejected`, or 429 `too-many-logins` (the client's budget
//!     of Keystone logins, spent on renewals after revocations and
//!     outages), with `X-Proxy-Error` and the proxy's JSON error body
//!     (`{"error": {"code": <status>, …}}`);
//!   - a body that ended with a transport error (connection closed or
//!     stream reset before the declared end) while the upstream was being
//!     restarted: HTTP has no other way to say "the answer broke after
//!     the status line", and the client library reports it as an error;
//!   - an upload that got no answer, only a broken pipe or a reset, when
//!     the proxy's log shows it answered that request (by its
//!     `x-openstack-request-id`) with one of the errors above before
//!     reading the body, and then closed the connection under the client
//!     (so the client could not read the answer; needs the default
//!     `SOAK_RUST_LOG=info`, else these count as lost).
//!
//!   Each of these is also checked against the chaos log: one with no
//!   matching disruption during the request's lifetime (+1 s) is listed
//!   as "unexplained" (reported, and counted in `failed`).
//! * **lost**: anything else: no complete answer within 45 s (the longest
//!   legitimate path is two upstream attempts of `upstream.timeout` = 10 s
//!   plus a Keystone call of `token.keystone_timeout` = 5 s); a transport
//!   error before any answer otherwise (the proxy never restarts); a wrong status without
//!   the proxy's error header and body (e.g. an upstream 401 passed
//!   through); a proxy error other than the outage ones, or without its
//!   JSON body; a 200 whose echo, length, content or hash differs; a body
//!   cut when nothing was restarted.
//!
//! # Resources
//!
//! `/proc/PID/fd` and `VmRSS` of the proxy are sampled every 2 s under
//! load (peak). The growth verdict uses *quiet* samples, taken after the
//! warm-up, every checkpoint, and at the end: the load is paused, every
//! worker drops its client (closing its connections to the proxy), every
//! connection through the gates is closed (as servers do with idle
//! connections), and the fd count is read once it has been steady for a
//! second. A proxy without a leak then holds exactly the same descriptors
//! (listeners, epoll, log, pipes) at every quiet point.
//!
//! Exit status: 0 if nothing was lost, fd and memory growth are within
//! the bounds in settings.rs, the proxy did not die, logged no panic and
//! exited 0 on SIGTERM; 1 otherwise; 2 if the soak itself could not run.

mod chaos;
mod client;
mod cloud;
mod gate;
mod judge;
mod plan;
mod proxy;
mod sample;
mod send;
mod settings;
mod shared;
mod who;
mod worker;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use keystone_proxy::fake::{EchoUpstream, FakeCloud, FakeKeystone};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use crate::chaos::chaos;
use crate::client::plain_get;
use crate::cloud::{Cloud, soak_cloud};
use crate::gate::Gate;
use crate::judge::judge_unanswered;
use crate::plan::worker_specs;
use crate::proxy::{proxy_config, terminate};
use crate::sample::{Sample, mib, quiet_sample};
use crate::settings::{FD_GROWTH_BOUND, MAX_BODY, RSS_GROWTH_BOUND_KIB, Settings};
use crate::shared::{ChaosLog, Shared, Stats};
use crate::worker::worker;

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("soak: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(settings)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("soak: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(settings: Settings) -> Result<bool, String> {
    let seconds = settings.seconds;
    std::fs::create_dir_all(&settings.dir)
        .map_err(|e| format!("{}: {e}", settings.dir.display()))?;
    if !settings.binary.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release --bin keystone-proxy)",
            settings.binary.display()
        ));
    }

    // The fake cloud, each server behind its gate.
    let keystone = FakeKeystone::start(FakeCloud::default())
        .await
        .map_err(|e| format!("fake Keystone: {e}"))?;
    keystone.set_token_lifetime(Duration::from_secs(settings.token_lifetime));
    let upstream = EchoUpstream::start(keystone.validator())
        .await
        .map_err(|e| format!("fake upstream: {e}"))?;
    let upstream_addr: SocketAddr = upstream
        .url()
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("upstream address: {e}"))?;
    let keystone_gate = Gate::open(keystone.addr())
        .await
        .map_err(|e| format!("gate: {e}"))?;
    let upstream_gate = Gate::open(upstream_addr)
        .await
        .map_err(|e| format!("gate: {e}"))?;
    keystone.update_cloud(|c| *c = soak_cloud(&format!("http://{}", upstream_gate.public)));
    let cloud = Arc::new(Cloud {
        keystone,
        upstream,
        keystone_gate,
        upstream_gate,
    });

    let config = settings.dir.join("soak.toml");
    let log = settings.dir.join("proxy.log");
    proxy_config(cloud.keystone_gate.public)
        .write(&config)
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let (proxy, admin) = proxy::start(&settings.binary, &config, &log, &settings.rust_log).await?;
    let ready_deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((StatusCode::OK, _)) = plain_get(&format!("{admin}/readyz")).await {
            break;
        }
        if Instant::now() > ready_deadline || !proxy.alive() {
            return Err(format!(
                "the proxy never became ready; see {}",
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut rng = SmallRng::seed_from_u64(settings.seed);
    let mut data = vec![0u8; MAX_BODY];
    rng.fill(&mut data[..]);
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / settings.rate as f64));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shared = Arc::new(Shared {
        started: Instant::now(),
        base: proxy.url.clone(),
        data: Bytes::from(data),
        seed: settings.seed,
        rate: tokio::sync::Mutex::new(interval),
        stop: AtomicBool::new(false),
        chaos_stop: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        parked: AtomicUsize::new(0),
        chaos_turn: tokio::sync::Mutex::new(()),
        stats: Mutex::new(Stats::default()),
        chaos: Mutex::new(ChaosLog::default()),
        unanswered: Mutex::new(Vec::new()),
    });

    let warm_up = (seconds / 10).clamp(5, 60);
    let checkpoint_every = (seconds / 5).clamp(10, 120);
    let progress_every = (seconds / 20).clamp(5, 30);
    println!(
        "soak: {seconds} s, seed {}, {} small/slow GETs/s, tokens live {} s; proxy pid {} on {} (admin {}); \
         Keystone gate {}, upstream gate {}; log {}",
        settings.seed,
        settings.rate,
        settings.token_lifetime,
        proxy.pid(),
        proxy.url,
        admin,
        cloud.keystone_gate.public,
        cloud.upstream_gate.public,
        log.display()
    );
    println!(
        "soak: warm-up {warm_up} s, quiet checkpoints every {checkpoint_every} s, progress every {progress_every} s"
    );

    let specs = worker_specs();
    let workers: Vec<JoinHandle<()>> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| tokio::spawn(worker(shared.clone(), i, *spec)))
        .collect();
    let chaos_task = tokio::spawn(chaos(shared.clone(), cloud.clone(), seconds));

    let mut under_load: Vec<Sample> = Vec::new();
    let mut quiet: Vec<(String, Sample)> = Vec::new();
    let mut next_checkpoint = warm_up as f64;
    let mut next_progress = progress_every as f64;
    let mut next_sample = 0.0;
    let mut died = false;
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut ctrl_c => { interrupted = true; break; }
        }
        let now = shared.secs();
        if !proxy.alive() {
            died = true;
            eprintln!("soak: the proxy died at t={now:.1}s; see {}", log.display());
            break;
        }
        if now >= seconds as f64 {
            break;
        }
        if now >= next_sample {
            next_sample = now + 2.0;
            cloud.upstream.clear_seen();
            if let (Some(fds), Some(rss_kib)) = (proxy.open_fds(), proxy.memory_kib("VmRSS")) {
                under_load.push(Sample {
                    at: now,
                    fds,
                    rss_kib,
                });
            }
        }
        if now >= next_checkpoint {
            let label = if quiet.is_empty() {
                "after warm-up".to_string()
            } else {
                format!("t={now:.0}s")
            };
            let sample = quiet_sample(&shared, &cloud, &proxy, specs.len(), true).await?;
            println!(
                "[{:5.0}s] quiet checkpoint ({label}): {} fds, RSS {}",
                sample.at,
                sample.fds,
                mib(sample.rss_kib)
            );
            quiet.push((label, sample));
            next_checkpoint += checkpoint_every as f64;
            // No checkpoint right before the final one.
            if next_checkpoint > (seconds as f64) - (checkpoint_every as f64) / 2.0 {
                next_checkpoint = f64::INFINITY;
            }
        }
        if now >= next_progress {
            next_progress += progress_every as f64;
            let t = shared.totals();
            let last = under_load.last().copied();
            println!(
                "[{now:5.0}s] requests {} ok {} failed {} lost {} | proxy {} fds, RSS {}",
                t.requests,
                t.ok,
                t.failed,
                t.lost,
                last.map_or(0, |s| s.fds),
                mib(last.map_or(0, |s| s.rss_kib)),
            );
        }
    }
    let load_seconds = shared.secs();

    // Stop the chaos (waiting for an event in progress to finish, so
    // everything is up), take the final quiet sample, stop the workers.
    shared.chaos_stop.store(true, Ordering::SeqCst);
    if let Ok(Err(error)) = chaos_task.await {
        return Err(format!("chaos: {error}"));
    }
    let end = if died || interrupted {
        None
    } else {
        Some(quiet_sample(&shared, &cloud, &proxy, specs.len(), false).await?)
    };
    shared.stop.store(true, Ordering::SeqCst);
    for task in workers {
        let _ = task.await;
    }
    if interrupted {
        return Err("interrupted".into());
    }

    // What the proxy and Keystone counted.
    let metrics = if died {
        String::new()
    } else {
        plain_get(&format!("{admin}/metrics"))
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let exit = if died {
        Err("died during the run".to_string())
    } else {
        terminate(&proxy).await
    };
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let panics = log_text.matches("panicked").count();
    let errors = log_text.matches("\"level\":\"ERROR\"").count();
    let warnings = log_text.matches("\"level\":\"WARN\"").count();
    judge_unanswered(&shared, &log_text);

    // The report.
    let total = shared.totals();
    let stats = shared.stats.lock();
    let chaos_log = shared.chaos.lock();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Soak summary: {:.0} s of load, seed {}, {} workers, {} small/slow GETs/s\n",
        load_seconds,
        settings.seed,
        specs.len(),
        settings.rate
    );
    let _ = writeln!(
        out,
        "| requests | made | ok | failed (clear) | lost | data ok |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (kind, c) in &stats.by_kind {
        let data = if c.bytes > 0 {
            format!("{:.0} MiB", c.bytes as f64 / 1048576.0)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {data} |",
            kind.label(),
            c.requests,
            c.ok,
            c.failed,
            c.lost
        );
    }
    let _ = writeln!(
        out,
        "| **total** | **{}** | **{}** | **{}** | **{}** | {:.0} MiB |",
        total.requests,
        total.ok,
        total.failed,
        total.lost,
        total.bytes as f64 / 1048576.0
    );
    let _ = writeln!(
        out,
        "\n{:.0} requests/s on average ({:.0} s including pauses for quiet samples).",
        total.requests as f64 / load_seconds.max(1.0),
        load_seconds
    );
    let mut latencies = stats.get_latency_us.clone();
    latencies.sort_unstable();
    if !latencies.is_empty() {
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        let _ = writeln!(
            out,
            "Small GETs answered ok: p50 {:.2} ms, p99 {:.2} ms, max {:.0} ms (including renewals and outages).",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    let _ = writeln!(out, "\nFailed with a clear error, by reason:");
    if stats.failed.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (label, n) in &stats.failed {
        match stats.unexplained_after.get(label) {
            Some(after) if after.is_finite() => {
                let _ = writeln!(
                    out,
                    "  {n:>7}  {label} (starting up to {after:.1} s after a disruption ended)"
                );
            }
            _ => {
                let _ = writeln!(out, "  {n:>7}  {label}");
            }
        }
    }
    let _ = writeln!(out, "\nLost, by reason:");
    if stats.lost.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (label, n) in &stats.lost {
        let _ = writeln!(out, "  {n:>7}  {label}");
    }
    for example in &stats.lost_examples {
        let _ = writeln!(out, "    {example}");
    }
    let _ = writeln!(
        out,
        "\nDisruptions ({:.0} s down in all):",
        chaos_log.down_total.as_secs_f64()
    );
    for (event, n) in &chaos_log.events {
        let _ = writeln!(out, "  {n:>4} × {event}");
    }
    let _ = writeln!(
        out,
        "Fake Keystone saw {} auth calls: {} with the password, {} rescopes.",
        cloud.keystone.logins(),
        cloud.keystone.secret_logins(),
        cloud.keystone.rescopes()
    );
    let metric_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("keystone_proxy_upstream_retries_total")
                || l.starts_with("keystone_proxy_keystone_logins_total")
        })
        .collect();
    if !metric_lines.is_empty() {
        let _ = writeln!(out, "Proxy metrics: {}", metric_lines.join(", "));
    }

    let _ = writeln!(
        out,
        "\nProxy resources (quiet = load paused, every connection closed):"
    );
    let _ = writeln!(out, "| sample | at | open fds | RSS |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (label, s) in &quiet {
        let _ = writeln!(
            out,
            "| quiet, {label} | {:.0} s | {} | {} |",
            s.at,
            s.fds,
            mib(s.rss_kib)
        );
    }
    if let Some(s) = &end {
        let _ = writeln!(
            out,
            "| quiet, end | {:.0} s | {} | {} |",
            s.at,
            s.fds,
            mib(s.rss_kib)
        );
    }
    let warm = warm_up as f64;
    let after: Vec<&Sample> = under_load.iter().filter(|s| s.at >= warm).collect();
    if let (Some(f), Some(r)) = (
        after.iter().max_by_key(|s| s.fds),
        after.iter().max_by_key(|s| s.rss_kib),
    ) {
        let _ = writeln!(
            out,
            "| peak under load (after warm-up) | {:.0} s / {:.0} s | {} | {} |",
            f.at,
            r.at,
            f.fds,
            mib(r.rss_kib)
        );
    }

    // The verdict.
    let mut problems = Vec::new();
    if total.lost > 0 {
        problems.push(format!("{} requests lost", total.lost));
    }
    if total.ok == 0 {
        problems.push("no request succeeded".into());
    }
    let start = quiet.first().map(|(_, s)| *s);
    match (start, end) {
        (Some(start), Some(end)) => {
            let fd_growth = end.fds as i64 - start.fds as i64;
            let rss_growth = end.rss_kib as i64 - start.rss_kib as i64;
            let _ = writeln!(
                out,
                "\nGrowth since the warm-up: {fd_growth:+} fds (bound {FD_GROWTH_BOUND}), {:+.1} MiB RSS (bound {} MiB).",
                rss_growth as f64 / 1024.0,
                RSS_GROWTH_BOUND_KIB / 1024
            );
            if end.fds > start.fds + FD_GROWTH_BOUND {
                problems.push(format!("fds grew by {fd_growth}"));
            }
            if end.rss_kib > start.rss_kib + RSS_GROWTH_BOUND_KIB {
                problems.push(format!("RSS grew by {:.1} MiB", rss_growth as f64 / 1024.0));
            }
        }
        _ => problems.push("no quiet samples to compare".into()),
    }
    match &exit {
        Ok(status) if status.success() => {
            let _ = writeln!(out, "Proxy exited 0 on SIGTERM.");
        }
        Ok(status) => problems.push(format!("the proxy exited with {status} on SIGTERM")),
        Err(error) => problems.push(format!("the proxy: {error}")),
    }
    let _ = writeln!(
        out,
        "Proxy log ({}): {} lines, {panics} panics, {errors} errors, {warnings} warnings.",
        log.display(),
        log_text.lines().count()
    );
    if panics > 0 {
        problems.push(format!("{panics} panics in the proxy log"));
    }
    if stats.unexplained > 0 {
        let _ = writeln!(
            out,
            "Note: {} clear failures had no disruption during their request (listed above).",
            stats.unexplained
        );
    }
    if problems.is_empty() {
        let _ = writeln!(out, "\nVerdict: PASS");
    } else {
        let _ = writeln!(out, "\nVerdict: FAIL: {}", problems.join("; "));
    }
    print!("{out}");
    let summary = settings.dir.join("summary.md");
    let _ = std::fs::write(&summary, &out);
    Ok(problems.is_empty())
}
