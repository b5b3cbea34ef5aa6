//! Judging what a request got against what it expected: ok, failed with a
//! clear error (explained by a disruption or not), or lost; at the end, the
//! requests that got no answer at all, judged with the proxy's log.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use keystone_proxy::secrets::sha256_hex;

use crate::plan::{Expect, Kind};
use crate::send::{Answer, Received};
use crate::shared::Shared;

pub(crate) enum Outcome {
    Ok,
    /// A clear failure: its label, and whether a disruption during the
    /// request explains it.
    Failed(String, bool),
    /// Lost: a category and the details.
    Lost(&'static str, String),
    /// No answer at all (a transport error): judged at the end, with what
    /// the proxy logged for the request.
    Unanswered(String),
}

/// The parts of the cloud the chaos task disrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Keystone,
    Upstream,
    Tokens,
}

/// The proxy errors that report an outage, and what part of the cloud
/// must have been disrupted to explain each.
fn outage_parts(status: u16, code: &str) -> Option<&'static [Part]> {
    match (status, code) {
        (502, "upstream-unavailable") | (504, "upstream-timeout") => Some(&[Part::Upstream]),
        (503, "keystone-unavailable") => Some(&[Part::Keystone]),
        (502, "keystone-rejected") => Some(&[Part::Keystone, Part::Tokens]),
        // The client's budget of Keystone logins is spent: new tokens
        // after a revocation or an outage count against it.
        (429, "too-many-logins") => Some(&[Part::Keystone, Part::Tokens]),
        _ => None,
    }
}

pub(crate) fn judge(
    expect: &Expect,
    answer: Answer,
    local_key: &str,
    during: &dyn Fn(&[Part]) -> bool,
) -> Outcome {
    let cut = |what: &str, error: &str, received: usize| {
        if during(&[Part::Upstream]) {
            Outcome::Failed(format!("{what} cut while the upstream restarted"), true)
        } else {
            Outcome::Lost(
                "body cut with nothing restarted",
                format!("{what} ended with an error after {received} bytes: {error}"),
            )
        }
    };
    match answer {
        // Judged at the end, with what the proxy logged for it.
        Answer::NoResponse(error) => Outcome::Unanswered(error),
        Answer::Response {
            status,
            proxy_error: Some(code),
            body,
        } => {
            let bytes = match body {
                Received::Whole(bytes) => bytes,
                Received::Broken { error, received } => {
                    return Outcome::Lost(
                        "proxy error with a broken body",
                        format!("{status} {code}: body ended after {received} bytes: {error}"),
                    );
                }
                Received::Checked { .. } => Bytes::new(),
            };
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let error = &json["error"];
            if error["code"] != status.as_u16() || !error["message"].is_string() {
                return Outcome::Lost(
                    "proxy error without its JSON body",
                    format!("{status} {code}: {}", String::from_utf8_lossy(&bytes)),
                );
            }
            if let Expect::Refusal {
                status: want,
                code: want_code,
            } = expect
            {
                return if status == *want && code == *want_code {
                    Outcome::Ok
                } else {
                    Outcome::Lost(
                        "wrong refusal",
                        format!("expected {want} {want_code}, got {status} {code}: {error}"),
                    )
                };
            }
            let Some(parts) = outage_parts(status.as_u16(), &code) else {
                return Outcome::Lost(
                    "unexpected proxy error",
                    format!("{status} {code}: {}", error["message"]),
                );
            };
            Outcome::Failed(format!("{} {code}", status.as_u16()), during(parts))
        }
        Answer::Response {
            status,
            proxy_error: None,
            body,
        } => match (expect, body) {
            (Expect::Refusal { status: want, code }, _) => Outcome::Lost(
                "expected a refusal, got an upstream answer",
                format!("expected {want} {code}, got {status}"),
            ),
            (_, Received::Broken { error, received }) if status == StatusCode::OK => {
                cut("answer", &error, received)
            }
            (_, body) if status != StatusCode::OK => {
                let text = match body {
                    Received::Whole(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    _ => String::new(),
                };
                Outcome::Lost(
                    "non-200 without X-Proxy-Error",
                    format!("{status}: {}", text.chars().take(300).collect::<String>()),
                )
            }
            (Expect::Bytes(want), Received::Checked { len, first_bad }) => {
                if len == *want && first_bad.is_none() {
                    Outcome::Ok
                } else {
                    Outcome::Lost(
                        "200 download truncated or corrupted",
                        format!("{len} of {want} bytes, first wrong byte at {first_bad:?}"),
                    )
                }
            }
            (
                Expect::Echo {
                    method,
                    path,
                    query,
                    project_id,
                    body_len,
                    body_sha256,
                },
                Received::Whole(bytes),
            ) => {
                let Ok(echo) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    return Outcome::Lost(
                        "200 with a body that is not the echo",
                        format!(
                            "{} bytes: {}",
                            bytes.len(),
                            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                        ),
                    );
                };
                let mut wrong = Vec::new();
                let mut check = |field: &str, want: serde_json::Value| {
                    if echo[field] != want {
                        wrong.push(format!("{field}: {} (expected {want})", echo[field]));
                    }
                };
                check("method", (*method).into());
                check("path", path.as_str().into());
                check("query", query.clone().into());
                check("project_id", project_id.as_str().into());
                check("token_accepted", true.into());
                check("body_len", (*body_len).into());
                check("body_sha256", body_sha256.as_str().into());
                let key_sha = format!("{{SHA256}}{}", sha256_hex(local_key.as_bytes()));
                let headers = echo["headers"].as_array().cloned().unwrap_or_default();
                for pair in &headers {
                    let name = pair[0].as_str().unwrap_or_default();
                    if name == "authorization" || pair[1].as_str() == Some(key_sha.as_str()) {
                        wrong.push(format!("the local credential was forwarded as {name}"));
                    }
                }
                if wrong.is_empty() {
                    Outcome::Ok
                } else {
                    let category = if wrong.iter().any(|w| w.starts_with("project_id")) {
                        "200 with a token of the wrong project"
                    } else {
                        "200 with a wrong echo"
                    };
                    Outcome::Lost(category, wrong.join("; "))
                }
            }
            (_, _) => Outcome::Lost("unexpected answer shape", format!("{status}")),
        },
    }
}

/// A request that got no answer at all.
pub(crate) struct Unanswered {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) error: String,
    pub(crate) started: Instant,
    pub(crate) ended: Instant,
}

/// Judge the requests that got no answer, with the proxy's log (its
/// `request` lines carry our `x-openstack-request-id`): an upload the
/// proxy answered with an outage error before reading the body, and whose
/// connection it then closed under the client (so the client saw a broken
/// pipe or a reset instead of the answer) is a failure the client saw;
/// anything else is lost.
pub(crate) fn judge_unanswered(shared: &Shared, log: &str) {
    let pending = std::mem::take(&mut *shared.unanswered.lock());
    if pending.is_empty() {
        return;
    }
    let wanted: std::collections::HashSet<&str> = pending.iter().map(|u| u.id.as_str()).collect();
    let mut answers: std::collections::HashMap<String, (u64, Option<String>)> = Default::default();
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = &entry["fields"];
        let Some(id) = fields["request_id"].as_str() else {
            continue;
        };
        if fields["message"] == "request" && wanted.contains(id) {
            let status = fields["status"].as_u64().unwrap_or_default();
            let code = fields["error"].as_str().map(str::to_string);
            answers.insert(id.to_string(), (status, code));
        }
    }
    for u in pending {
        // The innermost cause names what the client saw (reset, pipe).
        let cause = u.error.rsplit(": ").next().unwrap_or_default();
        let outcome = match answers.get(&u.id) {
            Some((status, Some(code))) if u.kind == Kind::Upload => {
                match outage_parts(*status as u16, code) {
                    Some(parts) => Outcome::Failed(
                        format!(
                            "{status} {code} sent before the upload was read, then the \
                             connection closed: the client saw \"{cause}\""
                        ),
                        shared.disrupted(parts, u.started, u.ended),
                    ),
                    None => Outcome::Lost(
                        "transport error before any answer",
                        format!("{}; the proxy logged {status} {code}", u.error),
                    ),
                }
            }
            Some((status, code)) => Outcome::Lost(
                "transport error before any answer",
                format!("{}; the proxy logged {status} {code:?}", u.error),
            ),
            None => Outcome::Lost(
                "transport error before any answer",
                format!("{}; the proxy logged no answer", u.error),
            ),
        };
        shared.record(u.kind, &outcome, u.started, u.ended - u.started, 0, &u.id);
    }
}
