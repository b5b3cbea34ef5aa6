//! A load worker: plans, sends and judges requests in a loop, recording
//! each outcome, and drops its client while the load is paused.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::client::new_client;
use crate::judge::{Outcome, Part, Unanswered, judge};
use crate::plan::{Expect, Kind, Role, WorkerSpec, plan};
use crate::send::send;
use crate::settings::DEADLINE;
use crate::shared::Shared;

pub(crate) async fn worker(shared: Arc<Shared>, index: usize, spec: WorkerSpec) {
    let mut rng = SmallRng::seed_from_u64(shared.seed.wrapping_add(1 + index as u64));
    let mut client = Some(new_client(spec.transport));
    let local_key = spec.who.key();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.paused.load(Ordering::SeqCst) {
            // Drop the client: its connections to the proxy close.
            client = None;
            shared.parked.fetch_add(1, Ordering::SeqCst);
            while shared.paused.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            shared.parked.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        match spec.role {
            Role::Small | Role::Slow => {
                shared.rate.lock().await.tick().await;
            }
            Role::Upload | Role::Download => {
                let pause = rng.random_range(50..250);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        let http = client.get_or_insert_with(|| new_client(spec.transport));
        n += 1;
        let planned = plan(spec, index, n, &mut rng, &shared.data);
        let id = format!("req-soak-w{index}-{n}");
        let upload_bytes = planned.body.data.len() as u64;
        let started = Instant::now();
        let result = tokio::time::timeout(DEADLINE, send(http, &shared.base, planned)).await;
        let elapsed = started.elapsed();
        let ended = Instant::now();
        let during = |parts: &[Part]| shared.disrupted(parts, started, ended);
        let (kind, outcome, bytes) = match result {
            Err(_) => {
                // The planned request is gone with the timed-out future;
                // its kind is the worker's.
                let kind = match spec.role {
                    Role::Small => Kind::Get,
                    Role::Slow => Kind::Slow,
                    Role::Upload => Kind::Upload,
                    Role::Download => Kind::Download,
                };
                let outcome = Outcome::Lost(
                    "hang: no complete answer within the deadline",
                    format!("{} s", DEADLINE.as_secs()),
                );
                (kind, outcome, 0)
            }
            Ok((answer, expect, kind)) => {
                let bytes = match (&expect, kind) {
                    (Expect::Bytes(n), _) => *n as u64,
                    (_, Kind::Upload) => upload_bytes,
                    _ => 0,
                };
                (kind, judge(&expect, answer, &local_key, &during), bytes)
            }
        };
        if let Outcome::Unanswered(error) = outcome {
            shared.unanswered.lock().push(Unanswered {
                id,
                kind,
                error,
                started,
                ended,
            });
        } else {
            shared.record(kind, &outcome, started, elapsed, bytes, &id);
        }
    }
}
