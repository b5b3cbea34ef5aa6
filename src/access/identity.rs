//! What no client may do on the identity service by default.
//!
//! The proxy puts its own real token on every request. Sent to Keystone,
//! that token can mint credentials that work without the proxy (an
//! application credential, an EC2 key pair, a trust, an OAuth token), read
//! secrets (`/v3/credentials` returns EC2 secrets in `blob`), issue or
//! inspect tokens, or change passwords and grants. Any of these would turn
//! one local key into a cloud credential, so on the identity service the
//! proxy allows only reads, minus the reads that return secrets. A client's
//! rule can lift a refusal for that client alone, but only a rule that
//! names the path without `**` (see [`super::Access`]).
//!
//! The request is judged on the path as Keystone will see it: the
//! endpoint's path joined with the rest (so `/identity/credentials` on an
//! endpoint `…/v3` and `/identity/v3/credentials` on an unversioned one
//! are the same), split where any upstream might split it and
//! percent-decoded for the comparison only. A protected name anywhere in
//! the path counts: that also covers Keystone mounted under a prefix
//! (`/identity/v3/…`) and the v2.0 API (`/v2.0/tokens`,
//! `/v2.0/users/{id}/credentials/OS-EC2`).

use http::Method;

use crate::segments::{decodes_to, segments};

/// Why the identity service refuses a request: a label for logs and
/// metrics, and a reason for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub label: &'static str,
    pub reason: &'static str,
}

/// A protected path segment, and whether reads of it are refused too.
struct Protected {
    segment: &'static str,
    reads_too: bool,
    refusal: Refusal,
}

const PROTECTED: &[Protected] = &[
    Protected {
        segment: "application_credentials",
        reads_too: false,
        refusal: Refusal {
            label: "identity:application-credentials",
            reason: "it would create or change an application credential, a cloud credential \
                     that works without the proxy",
        },
    },
    Protected {
        segment: "credentials",
        reads_too: true,
        refusal: Refusal {
            label: "identity:credentials",
            reason: "credentials are secrets (EC2 key pairs, TOTP seeds) that work without the \
                     proxy",
        },
    },
    Protected {
        segment: "OS-EC2",
        reads_too: true,
        refusal: Refusal {
            label: "identity:ec2-credentials",
            reason: "EC2 credentials are key pairs that work without the proxy",
        },
    },
    Protected {
        segment: "OS-TRUST",
        reads_too: true,
        refusal: Refusal {
            label: "identity:trusts",
            reason: "a trust delegates the proxy's roles to another user",
        },
    },
    Protected {
        segment: "OS-OAUTH1",
        reads_too: true,
        refusal: OAUTH,
    },
    Protected {
        segment: "OS-OAUTH2",
        reads_too: true,
        refusal: OAUTH,
    },
    Protected {
        segment: "tokens",
        reads_too: true,
        refusal: Refusal {
            label: "identity:tokens",
            reason: "it would issue or inspect tokens with the proxy's own token",
        },
    },
    Protected {
        segment: "password",
        reads_too: true,
        refusal: Refusal {
            label: "identity:password",
            reason: "it would change a password",
        },
    },
    Protected {
        segment: "roles",
        reads_too: false,
        refusal: Refusal {
            label: "identity:grants",
            reason: "it would grant or revoke a role",
        },
    },
];

/// Both OAuth APIs.
const OAUTH: Refusal = Refusal {
    label: "identity:oauth",
    reason: "OAuth consumers and access tokens are credentials that work without the proxy",
};

/// Every other change on the identity service.
const READ_ONLY: Refusal = Refusal {
    label: "identity:read-only",
    reason: "the identity service is read-only through the proxy (users, projects, roles and \
             grants are managed at Keystone directly)",
};

/// Whether the identity service refuses `method` on the path Keystone
/// sees (`endpoint_path` joined with the raw `rest`), and why.
pub fn refusal(method: &Method, endpoint_path: &str, rest: &str) -> Option<Refusal> {
    let read = *method == Method::GET || *method == Method::HEAD;
    let found = segments(endpoint_path)
        .chain(segments(rest))
        .find_map(|segment| {
            PROTECTED
                .iter()
                .find(|p| (p.reads_too || !read) && decodes_to(segment, p.segment))
        });
    match found {
        Some(protected) => Some(protected.refusal),
        None if read => None,
        None => Some(READ_ONLY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(method: Method, endpoint: &str, rest: &str) -> Option<&'static str> {
        refusal(&method, endpoint, rest).map(|r| r.label)
    }

    #[test]
    fn what_the_issue_lists_is_refused() {
        let post = Method::POST;
        for (method, rest, expected) in [
            (
                post.clone(),
                "/users/u1/application_credentials",
                "identity:application-credentials",
            ),
            (
                Method::DELETE,
                "/users/u1/application_credentials/a1",
                "identity:application-credentials",
            ),
            (Method::GET, "/credentials", "identity:credentials"),
            (Method::GET, "/credentials/c1", "identity:credentials"),
            (post.clone(), "/credentials", "identity:credentials"),
            (
                Method::GET,
                "/users/u1/credentials/OS-EC2",
                "identity:credentials",
            ),
            (Method::GET, "/OS-TRUST/trusts", "identity:trusts"),
            (post.clone(), "/OS-OAUTH1/consumers", "identity:oauth"),
            (Method::GET, "/OS-OAUTH2/token", "identity:oauth"),
            (post.clone(), "/users/u1/password", "identity:password"),
            (Method::GET, "/auth/tokens", "identity:tokens"),
            (Method::HEAD, "/auth/tokens", "identity:tokens"),
            (Method::DELETE, "/auth/tokens", "identity:tokens"),
            (post.clone(), "/auth/tokens", "identity:tokens"),
            (
                Method::PUT,
                "/projects/p1/users/u1/roles/r1",
                "identity:grants",
            ),
            (post.clone(), "/users", "identity:read-only"),
            (Method::PATCH, "/projects/p1", "identity:read-only"),
            (Method::OPTIONS, "/projects", "identity:read-only"),
            (post, "/ec2tokens", "identity:read-only"),
        ] {
            assert_eq!(
                label(method.clone(), "/v3", rest),
                Some(expected),
                "{method} {rest}"
            );
        }
    }

    #[test]
    fn reads_without_secrets_pass() {
        for rest in [
            "",
            "/",
            "/projects",
            "/users/u1/projects",
            "/users/u1/application_credentials",
            "/users/u1/application_credentials/a1",
            "/auth/projects",
            "/auth/catalog",
            "/roles",
            "/role_assignments",
        ] {
            assert_eq!(label(Method::GET, "/v3", rest), None, "{rest}");
            assert_eq!(label(Method::HEAD, "/v3", rest), None, "{rest}");
        }
    }

    #[test]
    fn judged_on_the_path_keystone_sees() {
        // The version may be in the endpoint or in the request.
        assert!(label(Method::GET, "/v3", "/credentials").is_some());
        assert!(label(Method::GET, "/", "/v3/credentials").is_some());
        assert!(label(Method::GET, "/identity", "/v3/credentials").is_some());
        // Spellings an upstream decodes or splits.
        for rest in [
            "/%63redentials",
            "/CREDENTIALS",
            "/users/u1/credentials/os-ec2",
            "/x%2Fcredentials",
            "/x\\credentials",
            "/credentials/",
            "//credentials",
        ] {
            assert!(label(Method::GET, "/v3", rest).is_some(), "{rest}");
        }
        // v2.0.
        assert!(label(Method::GET, "/v2.0", "/tokens/t1").is_some());
        assert!(label(Method::GET, "/v2.0", "/users/u1/credentials/OS-EC2").is_some());
        assert!(label(Method::POST, "/v2.0", "/tokens").is_some());
    }
}
