//! The soak's knobs (the `SOAK_*` environment variables) and its fixed
//! bounds: how long an answer may take, how much a quiet proxy's fds and
//! memory may grow, the chaos log's slack, the largest body.

use std::path::PathBuf;
use std::time::Duration;

/// A request with no complete answer after this long is a hang (lost):
/// two upstream attempts (10 s each) and a Keystone call (5 s) fit well.
pub(crate) const DEADLINE: Duration = Duration::from_secs(45);

/// File descriptors a quiet proxy may hold at the end beyond what it held
/// after the warm-up. At a quiet point every connection is closed from the
/// other side, so a proxy without a leak holds exactly the same set; the
/// slack is for anything opened lazily once (a resolver, a certificate
/// store), while a leak of one descriptor per thousand requests (≈ 180 in a
/// full run) or per disruption (≈ 50) is well past it.
pub(crate) const FD_GROWTH_BOUND: usize = 16;

/// Resident memory a quiet proxy may have gained since the warm-up. The
/// allocator keeps freed memory for reuse, and its high-water mark can
/// still rise after the warm-up when more big bodies than before happen
/// to be in flight at once (4 upload workers × up to 4 MiB kept for a
/// replay, plus link-rewriting buffers): about 16–24 MiB in the worst
/// case. 32 MiB is above that, and below what a leak of ≈ 200 bytes per
/// request (≈ 36 MiB over a full run) or of one body per disruption
/// would add.
pub(crate) const RSS_GROWTH_BOUND_KIB: u64 = 32 * 1024;

/// How long the overlap test in the chaos log reaches past a disruption.
pub(crate) const SLACK: Duration = Duration::from_secs(1);

pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// Knobs, from the environment.
pub(crate) struct Settings {
    pub(crate) seconds: u64,
    pub(crate) seed: u64,
    pub(crate) rate: u64,
    pub(crate) token_lifetime: u64,
    pub(crate) binary: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) rust_log: String,
}

impl Settings {
    pub(crate) fn from_env() -> Result<Settings, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match std::env::var(name) {
                Ok(value) => value
                    .trim()
                    .parse()
                    .map_err(|e| format!("{name}={value:?}: {e}")),
                Err(_) => Ok(default),
            }
        };
        let text =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        let clock_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        let settings = Settings {
            seconds: number("SOAK_SECONDS", 600)?,
            seed: number("SOAK_SEED", clock_seed)?,
            rate: number("SOAK_RATE", 300)?.max(1),
            token_lifetime: number("SOAK_TOKEN_LIFETIME", 120)?,
            binary: PathBuf::from(text("SOAK_PROXY", "target/release/keystone-proxy")),
            dir: PathBuf::from(text("SOAK_DIR", "target/soak")),
            rust_log: text("SOAK_RUST_LOG", "info"),
        };
        if settings.seconds < 10 {
            return Err("SOAK_SECONDS must be at least 10".into());
        }
        if settings.token_lifetime < 20 {
            return Err("SOAK_TOKEN_LIFETIME must be at least 20".into());
        }
        Ok(settings)
    }
}
