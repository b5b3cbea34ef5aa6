//! Keystone v2.0 wire shapes, for clouds old enough to still need them:
//! `POST {auth_url}/tokens` with `passwordCredentials` or `token` and a
//! tenant; the token in `access.token.id`, the catalog in
//! `access.serviceCatalog`. v2.0 has no domains and no application
//! credentials.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::v3::{IssuedToken, Named, ProjectInfo, UserInfo, parse_time};
use super::{BadAnswer, NeedsV3};
use super::{LoginScope, Method};
use crate::catalog::Catalog;
use crate::config::{ProjectRef, UserRef};

/// The JSON body of `POST /v2.0/tokens`.
pub(crate) fn auth_request(
    method: &Method<'_>,
    scoping: &LoginScope<'_>,
) -> Result<Value, NeedsV3> {
    let mut auth = match method {
        Method::Password { user, password } => {
            let mut credentials = json!({ "password": password.expose_secret() });
            match user {
                UserRef::Id(id) => credentials["userId"] = json!(id),
                UserRef::Name { name, .. } => credentials["username"] = json!(name),
            }
            json!({ "passwordCredentials": credentials })
        }
        Method::Token(token) => json!({ "token": { "id": token.expose_secret() } }),
        Method::ApplicationCredential { .. } => {
            return Err(NeedsV3);
        }
    };
    match scoping {
        LoginScope::Project(ProjectRef::Id(id)) => auth["tenantId"] = json!(id),
        LoginScope::Project(ProjectRef::Name { name, .. }) => auth["tenantName"] = json!(name),
        // v2.0 has no system scope: never a silently unscoped token instead.
        LoginScope::System => return Err(NeedsV3),
        LoginScope::Unscoped | LoginScope::KeystoneDefault => {}
    }
    Ok(json!({ "auth": auth }))
}

#[derive(Deserialize)]
struct Body {
    access: Access,
}

#[derive(Deserialize)]
struct Access {
    token: Token,
    #[serde(default, rename = "serviceCatalog")]
    service_catalog: Value,
    user: Option<User>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    roles: Vec<Named>,
}

#[derive(Deserialize)]
struct Token {
    id: String,
    expires: String,
    issued_at: Option<String>,
    tenant: Option<Tenant>,
}

#[derive(Deserialize)]
struct Tenant {
    id: String,
    #[serde(default)]
    name: String,
}

/// Parse a v2.0 token answer. Errors never contain the token.
pub fn parse_token_response(body: &[u8]) -> Result<IssuedToken, BadAnswer> {
    let parsed: Body = serde_json::from_slice(body).map_err(BadAnswer::V2TokenBody)?;
    let token = parsed.access.token;
    if token.id.trim().is_empty() {
        return Err(BadAnswer::EmptyV2Token);
    }
    Ok(IssuedToken {
        token: SecretString::from(token.id.trim().to_string()),
        expires_at: parse_time(&token.expires)?,
        issued_at: token.issued_at.as_deref().map(parse_time).transpose()?,
        project: token.tenant.map(|t| ProjectInfo {
            id: t.id,
            name: t.name,
        }),
        project_domain: None,
        roles: parsed
            .access
            .user
            .as_ref()
            .map(|u| u.roles.clone())
            .unwrap_or_default(),
        user: parsed.access.user.map(|u| UserInfo {
            id: u.id,
            name: u.name,
            domain: None,
        }),
        catalog: Catalog::parse(&parsed.access.service_catalog),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DomainRef;

    #[test]
    fn password_with_tenant_name_or_id() {
        let user = UserRef::Name {
            name: "joe".into(),
            domain: DomainRef::Id("default".into()),
        };
        let password = SecretString::from("pw");
        let method = Method::Password {
            user: &user,
            password: &password,
        };
        let by_name = ProjectRef::Name {
            name: "demo".into(),
            domain: DomainRef::Id("default".into()),
        };
        assert_eq!(
            auth_request(&method, &LoginScope::Project(&by_name)).unwrap(),
            json!({"auth": {"passwordCredentials": {"username": "joe", "password": "pw"},
                   "tenantName": "demo"}})
        );
        let by_id = ProjectRef::Id("t1".into());
        assert_eq!(
            auth_request(&method, &LoginScope::Project(&by_id)).unwrap()["auth"]["tenantId"],
            "t1"
        );
        assert!(
            auth_request(&method, &LoginScope::Unscoped).unwrap()["auth"]
                .get("tenantId")
                .is_none()
        );
    }

    #[test]
    fn token_rescope_and_no_application_credentials() {
        let token = SecretString::from("t");
        let project = ProjectRef::Id("t1".into());
        assert_eq!(
            auth_request(&Method::Token(&token), &LoginScope::Project(&project)).unwrap(),
            json!({"auth": {"token": {"id": "t"}, "tenantId": "t1"}})
        );
        let id = crate::config::AppCredRef::Id("a".into());
        let secret = SecretString::from("s");
        let method = Method::ApplicationCredential {
            id: &id,
            secret: &secret,
        };
        assert!(auth_request(&method, &LoginScope::KeystoneDefault).is_err());
        assert!(auth_request(&Method::Token(&token), &LoginScope::System).is_err());
    }

    #[test]
    fn token_answer_with_and_without_fraction() {
        for expires in ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000000Z"] {
            let body = json!({"access": {
                "token": {"id": "tok", "expires": expires, "issued_at": "2029-12-31T23:00:00.000000",
                          "tenant": {"id": "t1", "name": "demo", "enabled": true}},
                "serviceCatalog": [{"type": "compute", "name": "nova", "endpoints": [
                    {"region": "RegionOne", "publicURL": "http://n:8774/v2/t1",
                     "internalURL": "http://n:8774/v2/t1", "adminURL": "http://n:8774/v2/t1"}]}],
                "user": {"id": "u", "name": "joe", "roles": []},
                "metadata": {"is_admin": 0, "roles": []}
            }});
            let issued = parse_token_response(&serde_json::to_vec(&body).unwrap()).unwrap();
            assert_eq!(issued.token.expose_secret(), "tok");
            assert_eq!(
                issued.project,
                Some(ProjectInfo {
                    id: "t1".into(),
                    name: "demo".into()
                })
            );
            assert_eq!(
                issued
                    .expires_at
                    .duration_since(issued.issued_at.unwrap())
                    .as_secs(),
                3600
            );
            assert_eq!(issued.catalog.services().len(), 1);
        }
        assert!(parse_token_response(b"{}").is_err());
    }
}
