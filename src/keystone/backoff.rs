//! Remembering rejections, so a wrong password cannot lock the account.
//!
//! Keystone can lock a user out after a few failed logins
//! (`[security_compliance] lockout_failure_attempts`), and every request that
//! reaches a proxy with a wrong password would otherwise be one more failed
//! login. After Keystone rejects a credential (or a scope), the rejection is
//! answered from memory for 5 s, then 10 s, 20 s, … up to 5 min, and Keystone
//! is asked again only when that time is up. A success forgets it. A
//! Keystone that answers 429 or 503 with `Retry-After` is left alone for that
//! long (at most [`MAX_RETRY_AFTER`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::KeystoneError;
use crate::config::ProjectRef;

/// The first pause after a rejection.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_secs(5);
/// The longest pause: a fixed password is picked up within 5 minutes.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(300);
/// The longest `Retry-After` honoured: a Keystone that asks for more is
/// asked again after this anyway, so one odd header cannot stall a cloud.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Entries kept at most; past it, entries whose pause is over are dropped
/// (a client allowed any project could otherwise name endless projects).
const MAX_ENTRIES: usize = 10_000;

/// What was rejected: the secret itself, or access to one project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Credential,
    Project(ProjectRef),
    /// Access to the system scope.
    System,
}

#[derive(Debug, Default)]
pub(crate) struct Backoff {
    entries: Mutex<HashMap<Subject, Entry>>,
}

#[derive(Debug)]
struct Entry {
    rejections: u32,
    until: Instant,
    error: KeystoneError,
}

impl Backoff {
    /// `Err` with the remembered rejection while its pause lasts.
    pub fn check(&self, subject: &Subject) -> Result<(), KeystoneError> {
        let entries = self.entries.lock();
        match entries.get(subject) {
            Some(entry) if Instant::now() < entry.until => {
                let left = entry.until.saturating_duration_since(Instant::now());
                Err(entry.error.clone().with_note(&format!(
                    "remembered; Keystone is asked again in {}s",
                    left.as_secs() + 1
                )))
            }
            _ => Ok(()),
        }
    }

    /// Note how a call for `subject` ended.
    pub fn record<T>(&self, subject: &Subject, result: &Result<T, KeystoneError>) {
        let mut entries = self.entries.lock();
        match result {
            Ok(_) => {
                entries.remove(subject);
            }
            Err(
                error @ (KeystoneError::Rejected(_)
                | KeystoneError::ProjectRefused { .. }
                | KeystoneError::SystemRefused(_)
                | KeystoneError::MfaRequired),
            ) => {
                let rejections = entries.get(subject).map_or(0, |e| e.rejections) + 1;
                remember(
                    &mut entries,
                    subject,
                    rejections,
                    pause_after(rejections),
                    error,
                );
            }
            Err(error @ KeystoneError::Busy { retry_after, .. }) => {
                let rejections = entries.get(subject).map_or(0, |e| e.rejections);
                let pause = (*retry_after).min(MAX_RETRY_AFTER);
                remember(&mut entries, subject, rejections, pause, error);
            }
            Err(KeystoneError::Unavailable(_)) => {}
        }
    }
}

/// Remember `error` for `subject` for `pause`.
fn remember(
    entries: &mut HashMap<Subject, Entry>,
    subject: &Subject,
    rejections: u32,
    pause: Duration,
    error: &KeystoneError,
) {
    if entries.len() >= MAX_ENTRIES {
        let now = Instant::now();
        entries.retain(|_, e| e.until > now);
    }
    let entry = Entry {
        rejections,
        until: Instant::now() + pause,
        error: error.clone(),
    };
    entries.insert(subject.clone(), entry);
}

/// 5 s after the first rejection, doubling, at most 5 min.
fn pause_after(rejections: u32) -> Duration {
    let doublings = rejections.saturating_sub(1).min(16);
    FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_five_minutes() {
        let pauses: Vec<u64> = (1..=9).map(|n| pause_after(n).as_secs()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(pause_after(1000), MAX_PAUSE);
    }

    #[test]
    fn rejections_are_remembered_and_successes_forget() {
        let backoff = Backoff::default();
        let subject = Subject::Credential;
        assert!(backoff.check(&subject).is_ok());
        backoff.record::<()>(&subject, &Err(KeystoneError::Rejected("401 no".into())));
        match backoff.check(&subject) {
            Err(KeystoneError::Rejected(reason)) => {
                assert!(
                    reason.contains("401 no") && reason.contains("remembered"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Another project is not affected.
        assert!(
            backoff
                .check(&Subject::Project(ProjectRef::Id("p".into())))
                .is_ok()
        );
        backoff.record(&subject, &Ok(()));
        assert!(backoff.check(&subject).is_ok());
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let backoff = Backoff::default();
        let busy = KeystoneError::Busy {
            reason: "429".into(),
            retry_after: Duration::from_secs(3600),
        };
        backoff.record::<()>(&Subject::Credential, &Err(busy));
        let until = backoff.entries.lock()[&Subject::Credential].until;
        let left = until.saturating_duration_since(Instant::now());
        assert!(left <= MAX_RETRY_AFTER && left > MAX_RETRY_AFTER - Duration::from_secs(5));
        assert!(backoff.check(&Subject::Credential).is_err());
    }

    #[test]
    fn outages_are_not_remembered() {
        let backoff = Backoff::default();
        backoff.record::<()>(
            &Subject::Credential,
            &Err(KeystoneError::Unavailable("down".into())),
        );
        assert!(backoff.check(&Subject::Credential).is_ok());
    }
}
