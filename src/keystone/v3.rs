//! Keystone v3 wire shapes: the `POST /v3/auth/tokens` request body and
//! the token response.
//!
//! Parsing is lenient where Keystone deployments differ (fractional seconds
//! or not, fields present or absent) and strict only about what the proxy
//! cannot work without: the token and its expiry.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::BadAnswer;
use super::{LoginScope, Method};
use crate::catalog::Catalog;
use crate::config::{AppCredRef, DomainRef, ProjectRef, UserRef};

/// What a successful login gives.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: SecretString,
    pub expires_at: jiff::Timestamp,
    /// Keystone's clock at issue; with `expires_at` it gives the lifetime
    /// independently of how far our clock is from Keystone's.
    pub issued_at: Option<jiff::Timestamp>,
    pub project: Option<ProjectInfo>,
    /// The domain of `project`.
    pub project_domain: Option<Named>,
    pub user: Option<UserInfo>,
    pub roles: Vec<Named>,
    pub catalog: Catalog,
}

/// An id and a name (a domain, a role).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Named {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The user a token belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub domain: Option<Named>,
}

/// The project a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    pub id: String,
    pub name: String,
}

impl ProjectInfo {
    /// Whether this is the project `wanted` refers to.
    pub fn is(&self, wanted: &ProjectRef) -> bool {
        match wanted {
            ProjectRef::Id(id) => &self.id == id,
            ProjectRef::Name { name, .. } => &self.name == name,
        }
    }
}

/// The JSON body of `POST /v3/auth/tokens`.
pub(crate) fn auth_request(method: &Method<'_>, scoping: &LoginScope<'_>) -> Value {
    let identity = match method {
        Method::Password { user, password } => json!({
            "methods": ["password"],
            "password": { "user": user_json(user, Some(password)) },
        }),
        Method::ApplicationCredential { id, secret } => {
            let mut body = match id {
                AppCredRef::Id(id) => json!({ "id": id }),
                AppCredRef::Name { name, user } => {
                    json!({ "name": name, "user": user_json(user, None) })
                }
            };
            body["secret"] = Value::String(secret.expose_secret().to_string());
            json!({ "methods": ["application_credential"], "application_credential": body })
        }
        Method::Token(token) => json!({
            "methods": ["token"],
            "token": { "id": token.expose_secret() },
        }),
    };
    let mut auth = json!({ "identity": identity });
    match scoping {
        LoginScope::Project(project) => auth["scope"] = json!({ "project": project_json(project) }),
        LoginScope::System => auth["scope"] = json!({ "system": { "all": true } }),
        // Explicitly unscoped: without it Keystone scopes to the user's
        // default project, and such a token may not be rescoped on clouds
        // with `allow_rescope_scoped_token = false`.
        LoginScope::Unscoped => auth["scope"] = json!("unscoped"),
        LoginScope::KeystoneDefault => {}
    }
    json!({ "auth": auth })
}

fn user_json(user: &UserRef, password: Option<&SecretString>) -> Value {
    let mut value = match user {
        UserRef::Id(id) => json!({ "id": id }),
        UserRef::Name { name, domain } => json!({ "name": name, "domain": domain_json(domain) }),
    };
    if let Some(password) = password {
        value["password"] = Value::String(password.expose_secret().to_string());
    }
    value
}

fn project_json(project: &ProjectRef) -> Value {
    match project {
        ProjectRef::Id(id) => json!({ "id": id }),
        ProjectRef::Name { name, domain } => json!({ "name": name, "domain": domain_json(domain) }),
    }
}

fn domain_json(domain: &DomainRef) -> Value {
    match domain {
        DomainRef::Id(id) => json!({ "id": id }),
        DomainRef::Name(name) => json!({ "name": name }),
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenFields,
}

#[derive(Deserialize)]
struct TokenFields {
    expires_at: String,
    issued_at: Option<String>,
    project: Option<RawProject>,
    user: Option<UserInfo>,
    #[serde(default)]
    roles: Vec<Named>,
    #[serde(default)]
    catalog: Value,
}

#[derive(Deserialize)]
struct RawProject {
    id: String,
    #[serde(default)]
    name: String,
    domain: Option<Named>,
}

/// Parse a 201 answer: `subject_token` is the `X-Subject-Token` header.
/// Errors say what was wrong, never what the token was.
pub fn parse_token_response(
    subject_token: Option<&[u8]>,
    body: &[u8],
) -> Result<IssuedToken, BadAnswer> {
    let token = subject_token
        .and_then(|t| std::str::from_utf8(t).ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(BadAnswer::NoSubjectToken)?;
    let parsed: TokenBody = serde_json::from_slice(body).map_err(BadAnswer::TokenBody)?;
    let fields = parsed.token;
    Ok(IssuedToken {
        token: SecretString::from(token.to_string()),
        expires_at: parse_time(&fields.expires_at)?,
        issued_at: fields.issued_at.as_deref().map(parse_time).transpose()?,
        project_domain: fields.project.as_ref().and_then(|p| p.domain.clone()),
        project: fields.project.map(|p| ProjectInfo {
            id: p.id,
            name: p.name,
        }),
        user: fields.user,
        roles: fields.roles,
        catalog: Catalog::parse(&fields.catalog),
    })
}

/// Keystone writes `2026-11-23T10:00:00.000000Z`; older releases and v2.0
/// write `2015-11-05T23:23:27Z`; some proxies rewrite to an offset. A time
/// without any zone is taken as UTC, as Keystone means it.
pub fn parse_time(text: &str) -> Result<jiff::Timestamp, BadAnswer> {
    let text = text.trim();
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(timestamp);
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|zoned| zoned.timestamp())
        .ok_or_else(|| BadAnswer::Time(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> DomainRef {
        DomainRef::Name("Default".into())
    }

    #[test]
    fn password_by_name_with_project_scope() {
        let user = UserRef::Name {
            name: "svc".into(),
            domain: domain(),
        };
        let password = SecretString::from("pw");
        let scope = ProjectRef::Name {
            name: "demo".into(),
            domain: domain(),
        };
        let body = auth_request(
            &Method::Password {
                user: &user,
                password: &password,
            },
            &LoginScope::Project(&scope),
        );
        assert_eq!(
            body,
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "svc", "domain": {"name": "Default"}, "password": "pw"}}},
                "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}
            }})
        );
    }

    #[test]
    fn password_by_id_scoped_unscoped_and_default() {
        let user = UserRef::Id("u1".into());
        let password = SecretString::from("pw");
        let method = Method::Password {
            user: &user,
            password: &password,
        };
        let project = ProjectRef::Id("p1".into());
        let body = auth_request(&method, &LoginScope::Project(&project));
        assert_eq!(
            body["auth"]["identity"]["password"]["user"],
            json!({"id": "u1", "password": "pw"})
        );
        assert_eq!(body["auth"]["scope"], json!({"project": {"id": "p1"}}));
        assert_eq!(
            auth_request(&method, &LoginScope::Unscoped)["auth"]["scope"],
            json!("unscoped")
        );
        assert_eq!(
            auth_request(&method, &LoginScope::System)["auth"]["scope"],
            json!({"system": {"all": true}})
        );
        assert!(
            auth_request(&method, &LoginScope::KeystoneDefault)["auth"]
                .get("scope")
                .is_none()
        );
    }

    #[test]
    fn rescoping_with_a_token() {
        let token = SecretString::from("base-token");
        let project = ProjectRef::Id("p1".into());
        assert_eq!(
            auth_request(&Method::Token(&token), &LoginScope::Project(&project)),
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "base-token"}},
                   "scope": {"project": {"id": "p1"}}}})
        );
    }

    #[test]
    fn application_credentials_by_id_and_name() {
        let secret = SecretString::from("s");
        let id = AppCredRef::Id("ac1".into());
        let body = auth_request(
            &Method::ApplicationCredential {
                id: &id,
                secret: &secret,
            },
            &LoginScope::KeystoneDefault,
        );
        assert_eq!(
            body,
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "ac1", "secret": "s"}}}})
        );
        let by_name = AppCredRef::Name {
            name: "ci".into(),
            user: UserRef::Name {
                name: "svc".into(),
                domain: DomainRef::Id("default".into()),
            },
        };
        let body = auth_request(
            &Method::ApplicationCredential {
                id: &by_name,
                secret: &secret,
            },
            &LoginScope::KeystoneDefault,
        );
        assert_eq!(
            body["auth"]["identity"]["application_credential"],
            json!({"name": "ci", "user": {"name": "svc", "domain": {"id": "default"}}, "secret": "s"})
        );
    }

    #[test]
    fn times_with_and_without_fraction_or_zone() {
        let expected: jiff::Timestamp = "2015-11-05T23:23:27Z".parse().unwrap();
        for text in [
            "2015-11-05T23:23:27Z",
            "2015-11-05T23:23:27.000000Z",
            "2015-11-05T23:23:27.000000",
            "2015-11-05T23:23:27+00:00",
            "2015-11-06T00:23:27+01:00",
        ] {
            assert_eq!(parse_time(text).unwrap(), expected, "{text}");
        }
        assert!(parse_time("tomorrow").is_err());
    }

    #[test]
    fn token_response() {
        let body = json!({"token": {
            "expires_at": "2030-01-01T00:00:00.000000Z",
            "issued_at": "2029-12-31T23:00:00.000000Z",
            "project": {"id": "p1", "name": "demo", "domain": {"id": "default"}},
            "catalog": [{"type": "compute", "name": "nova", "endpoints": [
                {"interface": "public", "region": "R", "url": "http://n/v2.1"}]}],
            "roles": [{"name": "member"}]
        }});
        let body = serde_json::to_vec(&body).unwrap();
        let issued = parse_token_response(Some(b"tok"), &body).unwrap();
        assert_eq!(issued.token.expose_secret(), "tok");
        assert_eq!(
            issued.project,
            Some(ProjectInfo {
                id: "p1".into(),
                name: "demo".into()
            })
        );
        assert_eq!(issued.catalog.services().len(), 1);
        let lifetime = issued.expires_at.duration_since(issued.issued_at.unwrap());
        assert_eq!(lifetime.as_secs(), 3600);
    }

    #[test]
    fn bad_token_responses_say_why() {
        let body = br#"{"token": {"expires_at": "2030-01-01T00:00:00Z"}}"#;
        assert!(
            parse_token_response(None, body)
                .unwrap_err()
                .to_string()
                .contains("X-Subject-Token")
        );
        assert!(
            parse_token_response(Some(b"t"), b"<html>")
                .unwrap_err()
                .to_string()
                .contains("not valid")
        );
        assert!(parse_token_response(Some(b"t"), br#"{"token": {}}"#).is_err());
        // An unscoped token has no catalog and no project; that is still a token.
        let issued = parse_token_response(Some(b"t"), body).unwrap();
        assert!(issued.project.is_none());
    }
}
