//! Keystone v3 token answers (`POST /v3/auth/tokens` → 201): any bytes as
//! the body. Checks that a parsed token is consistent with the body, that
//! the catalog only holds usable endpoints and that lookups honour the
//! interface and region asked for, and that the token never shows up in an
//! error or a `Debug` line.
#![no_main]

#[path = "common/catalog.rs"]
mod catalog;

use keystone_proxy::keystone::v3::{IssuedToken, parse_time, parse_token_response};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;

const TOKEN: &str = "gAAAAABfuzzSubjectToken0123456789";

fuzz_target!(|body: &[u8]| {
    // Without a usable X-Subject-Token header there is no token at all.
    assert!(parse_token_response(None, body).is_err());
    assert!(parse_token_response(Some(b" \t"), body).is_err());

    let header = format!("  {TOKEN}\r\n");
    match parse_token_response(Some(header.as_bytes()), body) {
        Ok(issued) => {
            assert_eq!(issued.token.expose_secret(), TOKEN, "the header is trimmed");
            assert!(
                !format!("{issued:?}").contains(TOKEN),
                "Debug shows the token"
            );
            check_against_body(&issued, body);
            catalog::check(&issued.catalog);
            if let Some(issued_at) = issued.issued_at {
                let left = issued.expires_at.duration_since(issued_at);
                match keystone_proxy::keystone::lifetime(&issued) {
                    Some(lifetime) => assert_eq!(lifetime.as_nanos(), left.as_nanos() as u128),
                    None => assert!(left.as_nanos() <= 0),
                }
            }
        }
        Err(error) => {
            let error = keystone_proxy::error::with_causes(&error);
            assert!(!error.is_empty());
            assert!(!error.contains(TOKEN), "an error shows the token: {error}");
        }
    }
});

/// What was parsed is what the body says.
fn check_against_body(issued: &IssuedToken, body: &[u8]) {
    // serde skips ignored fields without checking their UTF-8, so a body
    // that parses may still not be a `Value`: nothing to compare then.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let token = &value["token"];
    let expires = token["expires_at"]
        .as_str()
        .expect("expires_at is a string");
    assert_eq!(parse_time(expires).ok(), Some(issued.expires_at));
    match token["issued_at"].as_str() {
        Some(text) => assert_eq!(parse_time(text).ok(), issued.issued_at),
        None => assert!(issued.issued_at.is_none()),
    }
    match &issued.project {
        Some(project) => assert_eq!(token["project"]["id"].as_str(), Some(project.id.as_str())),
        None => assert!(token["project"].is_null()),
    }
}
