//! The chaos task: an event every few seconds, in random cycles (token
//! revocations, restarts of Keystone and of the upstream through their
//! gates), each recorded in the chaos log.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::cloud::{Cloud, PROJECTS, project_id};
use crate::judge::Part;
use crate::shared::Shared;

#[derive(Clone, Copy, Debug)]
enum Event {
    RevokeAll,
    RevokeOneProject,
    RevokeProjectTokens,
    RestartKeystone,
    RestartKeystoneLosingTokens,
    RestartUpstream,
    RestartBoth,
}

impl Event {
    const ALL: [Event; 7] = [
        Event::RevokeAll,
        Event::RevokeOneProject,
        Event::RevokeProjectTokens,
        Event::RestartKeystone,
        Event::RestartKeystoneLosingTokens,
        Event::RestartUpstream,
        Event::RestartBoth,
    ];

    fn label(self) -> &'static str {
        match self {
            Event::RevokeAll => "revoke every token",
            Event::RevokeOneProject => "revoke one project's tokens",
            Event::RevokeProjectTokens => "revoke every project-scoped token",
            Event::RestartKeystone => "restart Keystone",
            Event::RestartKeystoneLosingTokens => "restart Keystone, losing every token",
            Event::RestartUpstream => "restart the upstream",
            Event::RestartBoth => "restart Keystone and the upstream",
        }
    }
}

pub(crate) async fn chaos(
    shared: Arc<Shared>,
    cloud: Arc<Cloud>,
    seconds: u64,
) -> Result<(), String> {
    let mut rng = SmallRng::seed_from_u64(shared.seed);
    // Short runs still see every kind of event.
    let (gap_min, gap_max) = if seconds < 120 {
        (1500, 4000)
    } else {
        (4000, 10000)
    };
    let mut cycle = Vec::new();
    loop {
        let gap = Duration::from_millis(rng.random_range(gap_min..gap_max));
        let deadline = Instant::now() + gap;
        while Instant::now() < deadline {
            if shared.chaos_stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _turn = shared.chaos_turn.lock().await;
        if shared.chaos_stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if cycle.is_empty() {
            cycle = Event::ALL.to_vec();
            cycle.shuffle(&mut rng);
        }
        let event = cycle.pop().expect("a non-empty cycle");
        shared.event(event.label());
        let down = Duration::from_millis(rng.random_range(2000..5000));
        let restart = !matches!(
            event,
            Event::RevokeAll | Event::RevokeOneProject | Event::RevokeProjectTokens
        );
        if restart {
            println!(
                "[{:5.1}s] chaos: {} ({:.1} s down)",
                shared.secs(),
                event.label(),
                down.as_secs_f64()
            );
        } else {
            println!("[{:5.1}s] chaos: {}", shared.secs(), event.label());
        }
        match event {
            Event::RevokeAll => {
                let i = shared.begin(Part::Tokens);
                cloud.keystone.revoke_all();
                shared.end(i);
            }
            Event::RevokeOneProject => {
                let i = shared.begin(Part::Tokens);
                cloud
                    .keystone
                    .revoke_project(&project_id(rng.random_range(0..PROJECTS)));
                shared.end(i);
            }
            Event::RevokeProjectTokens => {
                let i = shared.begin(Part::Tokens);
                cloud.keystone.revoke_project_tokens();
                shared.end(i);
            }
            Event::RestartKeystone | Event::RestartKeystoneLosingTokens => {
                let i = shared.begin(Part::Keystone);
                cloud.keystone_gate.down().await;
                if matches!(event, Event::RestartKeystoneLosingTokens) {
                    let t = shared.begin(Part::Tokens);
                    cloud.keystone.revoke_all();
                    shared.end(t);
                }
                tokio::time::sleep(down).await;
                cloud.keystone_gate.up().await?;
                shared.end(i);
            }
            Event::RestartUpstream => {
                let i = shared.begin(Part::Upstream);
                cloud.upstream_gate.down().await;
                tokio::time::sleep(down).await;
                cloud.upstream_gate.up().await?;
                shared.end(i);
            }
            Event::RestartBoth => {
                let k = shared.begin(Part::Keystone);
                let u = shared.begin(Part::Upstream);
                cloud.keystone_gate.down().await;
                cloud.upstream_gate.down().await;
                tokio::time::sleep(down).await;
                cloud.keystone_gate.up().await?;
                shared.end(k);
                tokio::time::sleep(Duration::from_millis(500)).await;
                cloud.upstream_gate.up().await?;
                shared.end(u);
            }
        }
    }
}
