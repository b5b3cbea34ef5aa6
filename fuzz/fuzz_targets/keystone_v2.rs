//! Keystone v2.0 token answers (`POST /v2.0/tokens`): any bytes as the
//! body. Checks that a parsed token is consistent with the body, the same
//! catalog properties as keystone_v3, and that the token (here inside the
//! body, `access.token.id`) never shows up in an error or a `Debug` line.
#![no_main]

#[path = "common/catalog.rs"]
mod catalog;

use keystone_proxy::keystone::v2::parse_token_response;
use keystone_proxy::keystone::v3::parse_time;
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use serde_json::Value;

/// Put in place of `access.token.id` to look for it in errors.
const TOKEN: &str = "gAAAAABfuzzV2Token0123456789";

fuzz_target!(|body: &[u8]| {
    match parse_token_response(body) {
        Ok(issued) => {
            catalog::check(&issued.catalog);
            // serde skips ignored fields without checking their UTF-8, so a
            // body that parses may still not be a `Value`.
            let Ok(value) = serde_json::from_slice::<Value>(body) else {
                return;
            };
            let token = &value["access"]["token"];
            let id = token["id"].as_str().expect("access.token.id is a string");
            assert_eq!(issued.token.expose_secret(), id.trim());
            assert!(!issued.token.expose_secret().is_empty());
            let expires = token["expires"].as_str().expect("expires is a string");
            assert_eq!(parse_time(expires).ok(), Some(issued.expires_at));
            assert_eq!(
                token["issued_at"].as_str().map(|t| parse_time(t).unwrap()),
                issued.issued_at
            );
            assert!(issued.project_domain.is_none(), "v2.0 has no domains");
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }

    // The same body with a recognisable token: it must not leak.
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Some(id) = value
        .pointer_mut("/access/token/id")
        .filter(|id| id.is_string())
    else {
        return;
    };
    *id = Value::String(TOKEN.into());
    let body = serde_json::to_vec(&value).unwrap();
    if body
        .windows(TOKEN.len())
        .filter(|w| *w == TOKEN.as_bytes())
        .count()
        != 1
    {
        return; // the body says it elsewhere too
    }
    match parse_token_response(&body) {
        Ok(issued) => {
            assert_eq!(issued.token.expose_secret(), TOKEN);
            assert!(
                !format!("{issued:?}").contains(TOKEN),
                "Debug shows the token"
            );
        }
        Err(error) => {
            let error = keystone_proxy::error::with_causes(&error);
            assert!(!error.contains(TOKEN), "an error shows the token: {error}");
        }
    }
});
