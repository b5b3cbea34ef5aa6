//! Link rewriting in JSON answers (`LinkMap::rewrite_json`), whose scan
//! checks the JSON itself in one pass (no serde_json before it), and the
//! quick search that lets most answers skip it (`may_hold_a_link`).
//!
//! Input: an upstream's answer body, as bytes. Checks: no panic; a body
//! serde_json refuses is never rewritten; a rewritten body is JSON; a body
//! that is rewritten is never one the quick search would have let pass
//! unscanned.
#![no_main]

use keystone_proxy::catalog::Endpoint;
use keystone_proxy::rewrite::{LinkMap, may_hold_a_link};
use libfuzzer_sys::fuzz_target;

/// Two endpoints, one with a path and one at a host's root, which also
/// answered (so root-relative links under link keys are rewritten).
fn map(answered: &str) -> LinkMap {
    let mut map = LinkMap::default();
    map.add("https://nova.example:8774/v2.1", "http://p/compute".into());
    map.add("http://glance:9292", "http://p/image".into());
    map.answered_by(answered, "http://p/image");
    map
}

/// The endpoint as the catalog has it.
fn endpoint(url: &str) -> Endpoint {
    Endpoint::new("public", None, url).expect("a valid endpoint URL")
}

fuzz_target!(|data: &[u8]| {
    let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok();
    for answered in ["http://glance:9292", "https://nova.example:8774/v2.1"] {
        let map = map(answered);
        let Some(rewritten) = map.rewrite_json(data) else {
            continue;
        };
        assert!(is_json, "a body serde_json refuses was rewritten");
        assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(&rewritten).is_ok(),
            "the rewritten body is not JSON"
        );
        assert!(
            may_hold_a_link(data, Some(&endpoint(answered).path_search)),
            "the quick search would have passed a body with a link on unscanned"
        );
    }
});
