//! Session tokens (`sessions`): opening whatever a client sends, and the
//! layout of the sealed claims.
//!
//! Input: any bytes. Checks: opening them as a token never panics and
//! never succeeds (only the proxy's own seal opens); read as sealed claims,
//! what decodes encodes back to exactly the same bytes (one encoding per
//! meaning); and claims built from the input (a binding, a project id up
//! to the first NUL, the rest as the selector) come back from seal and
//! open as they went in, while the token with any one character changed
//! or cut short opens to nothing.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use keystone_proxy::sessions::{Sessions, decode_claims, encode_claims};
use libfuzzer_sys::fuzz_target;

fn sessions() -> &'static Sessions {
    static SESSIONS: OnceLock<Sessions> = OnceLock::new();
    SESSIONS.get_or_init(|| Sessions::new(None, Duration::from_secs(3600), Arc::default()))
}

fuzz_target!(|data: &[u8]| {
    let sessions = sessions();
    assert!(sessions.open(data).is_none(), "a forged token opened");
    if let Some(claims) = decode_claims(data) {
        assert_eq!(encode_claims(&claims).ok().as_deref(), Some(data));
    }

    let Some((binding, rest)) = data.split_first_chunk::<16>() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (project_id, selector) = match text.split_once('\0') {
        Some((id, selector)) => (id, Some(selector)),
        None => (text, None),
    };
    let Ok((token, claims)) = sessions.seal(*binding, project_id, selector) else {
        assert!(project_id.len() > 253 || selector.is_some_and(|s| s.len() > 253));
        return;
    };
    assert_eq!(sessions.open(token.as_bytes()), Some(claims.clone()));
    assert_eq!(claims.project_id, project_id);
    assert_eq!(claims.selector.as_deref(), selector);
    let at = 4 + usize::from(binding[0]) % (token.len() - 4);
    let mut changed = token.clone().into_bytes();
    changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
    assert!(sessions.open(&changed).is_none(), "changed at {at}");
    assert!(sessions.open(&token.as_bytes()[..at]).is_none(), "cut at {at}");
});
