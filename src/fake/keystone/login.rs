//! A login (`POST /v3/auth/tokens`, `POST /v2.0/tokens`): who proves
//! what, the scope asked for, and the token issued, as Keystone answers.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{Value, json};

use super::token_body::{v2_body, v3_body};
use super::{
    DENIED, DOMAIN_ID, DOMAIN_NAME, FakeCloud, FakeProject, FakeUser, Issued, State, unauthorized,
};
use crate::fake::{json_response, openstack_error};

/// The API version of an auth request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    V2,
    V3,
}
/// Who is logging in, and with what.
enum Proof {
    /// Password or application credential; the latter's bound project.
    Secret {
        user: FakeUser,
        bound_project: Option<String>,
    },
    /// The token method: the parent's user and expiry.
    Token {
        user: FakeUser,
        expires_at: jiff::Timestamp,
        expires: Instant,
    },
}

/// What the request asked to be scoped to.
enum Wanted {
    Default,
    Unscoped,
    System,
    Project(Value),
}

/// Check the credential and scope, then answer like Keystone.
pub(super) fn issue(state: &State, api: Api, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return openstack_error(
            400,
            "Bad Request",
            "Expecting to find auth in request body.",
        );
    };
    let auth = &request["auth"];
    let rescope = match api {
        Api::V3 => auth["identity"]["methods"][0] == "token",
        Api::V2 => !auth["token"].is_null(),
    };
    let counter = if rescope {
        &state.rescopes
    } else {
        &state.secret_logins
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let cloud = state.cloud.lock().clone();
    let parsed = match api {
        Api::V3 => parse_v3(state, &cloud, auth),
        Api::V2 => parse_v2(state, &cloud, auth),
    };
    let (proof, wanted) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return unauthorized(message),
    };
    let (user, bound_project, parent_expiry) = match proof {
        Proof::Secret {
            user,
            bound_project,
        } => (user, bound_project, None),
        Proof::Token {
            user,
            expires_at,
            expires,
        } => (user, None, Some((expires_at, expires))),
    };
    if bound_project.is_some() && !matches!(wanted, Wanted::Default) {
        return unauthorized("Application credentials cannot request a scope.");
    }
    let system = matches!(wanted, Wanted::System);
    if system && !user.system_role {
        return unauthorized(DENIED);
    }
    let project = match wanted {
        Wanted::Default => bound_project.or(user.default_project.clone()),
        Wanted::Unscoped | Wanted::System => None,
        Wanted::Project(scope) => match find_project(&cloud, &scope) {
            Some(project) => Some(project.id.clone()),
            None => return unauthorized(DENIED),
        },
    };
    if project.as_ref().is_some_and(|p| !user.projects.contains(p)) {
        return unauthorized(DENIED);
    }
    let offset = *state.clock_offset.lock();
    let now = jiff::Timestamp::now() + offset;
    // A rescoped token keeps its parent's expiry, as Keystone does.
    let (expires_at, expires) = parent_expiry.unwrap_or_else(|| {
        let lifetime = *state.lifetime.lock();
        let signed = jiff::SignedDuration::try_from(lifetime).unwrap_or(jiff::SignedDuration::ZERO);
        (now + signed, Instant::now() + lifetime)
    });
    let token = format!("gAAAAA{}", hex::encode(rand::random::<[u8; 24]>()));
    let issued = Issued {
        user_id: user.id.clone(),
        project_id: project.clone(),
        system,
        expires,
        expires_at,
    };
    // Keystone's revocation events have one-second resolution: a token
    // issued in the second of a revocation is dead on arrival.
    let revoked = state
        .revoked_within
        .lock()
        .is_some_and(|end| Instant::now() < end);
    if !revoked {
        state.tokens.lock().insert(token.clone(), issued);
    }
    state.issued_log.lock().push(token.clone());
    let times = (now, expires_at);
    match api {
        Api::V3 => {
            let mut response = json_response(
                201,
                &v3_body(&cloud, &user, project.as_deref(), system, times),
            );
            response.headers_mut().insert(
                "x-subject-token",
                http::HeaderValue::from_str(&token).expect("hex is a valid header value"),
            );
            response
        }
        Api::V2 => json_response(
            200,
            &v2_body(&cloud, &user, project.as_deref(), times, &token),
        ),
    }
}

fn parse_v3(
    state: &State,
    cloud: &FakeCloud,
    auth: &Value,
) -> Result<(Proof, Wanted), &'static str> {
    let identity = &auth["identity"];
    let methods = identity["methods"].as_array().ok_or(DENIED)?;
    let proof = match methods.first().and_then(Value::as_str) {
        Some("password") => {
            let user = &identity["password"]["user"];
            let found = find_user(cloud, user).ok_or(DENIED)?;
            if user["password"].as_str() != Some(found.password.as_str()) {
                return Err(DENIED);
            }
            Proof::Secret {
                user: found.clone(),
                bound_project: None,
            }
        }
        Some("application_credential") => {
            let given = &identity["application_credential"];
            let cred = cloud
                .app_creds
                .iter()
                .find(|c| match given["id"].as_str() {
                    Some(id) => c.id == id,
                    None => {
                        given["name"].as_str() == Some(c.name.as_str())
                            && find_user(cloud, &given["user"]).is_some_and(|u| u.id == c.user_id)
                    }
                })
                .ok_or(DENIED)?;
            if given["secret"].as_str() != Some(cred.secret.as_str()) {
                return Err(DENIED);
            }
            let user = cloud
                .users
                .iter()
                .find(|u| u.id == cred.user_id)
                .ok_or(DENIED)?;
            Proof::Secret {
                user: user.clone(),
                bound_project: Some(cred.project_id.clone()),
            }
        }
        Some("token") => token_proof(state, cloud, identity["token"]["id"].as_str())?,
        _ => return Err(DENIED),
    };
    let wanted = match &auth["scope"] {
        Value::Null => Wanted::Default,
        Value::String(s) if s == "unscoped" => Wanted::Unscoped,
        scope if scope["system"]["all"] == true => Wanted::System,
        scope => Wanted::Project(scope["project"].clone()),
    };
    Ok((proof, wanted))
}

fn parse_v2(
    state: &State,
    cloud: &FakeCloud,
    auth: &Value,
) -> Result<(Proof, Wanted), &'static str> {
    let proof = if let Some(token) = auth["token"]["id"].as_str() {
        token_proof(state, cloud, Some(token))?
    } else {
        let credentials = &auth["passwordCredentials"];
        let found = match (
            credentials["userId"].as_str(),
            credentials["username"].as_str(),
        ) {
            (Some(id), _) => cloud.users.iter().find(|u| u.id == id),
            (None, Some(name)) => cloud.users.iter().find(|u| u.name == name),
            (None, None) => None,
        }
        .ok_or(DENIED)?;
        if credentials["password"].as_str() != Some(found.password.as_str()) {
            return Err(DENIED);
        }
        Proof::Secret {
            user: found.clone(),
            bound_project: None,
        }
    };
    let wanted = match (auth["tenantId"].as_str(), auth["tenantName"].as_str()) {
        (Some(id), _) => Wanted::Project(json!({"id": id})),
        (None, Some(name)) => Wanted::Project(json!({"name": name, "domain": {"id": DOMAIN_ID}})),
        // v2.0 without a tenant gives an unscoped token.
        (None, None) => Wanted::Unscoped,
    };
    Ok((proof, wanted))
}

fn token_proof(
    state: &State,
    cloud: &FakeCloud,
    token: Option<&str>,
) -> Result<Proof, &'static str> {
    let tokens = state.tokens.lock();
    let parent = tokens.get(token.ok_or(DENIED)?).ok_or(DENIED)?;
    if parent.expires <= Instant::now() {
        return Err(DENIED);
    }
    let user = cloud
        .users
        .iter()
        .find(|u| u.id == parent.user_id)
        .ok_or(DENIED)?;
    Ok(Proof::Token {
        user: user.clone(),
        expires_at: parent.expires_at,
        expires: parent.expires,
    })
}

fn in_domain(domain: &Value) -> bool {
    domain["id"].as_str() == Some(DOMAIN_ID) || domain["name"].as_str() == Some(DOMAIN_NAME)
}

fn find_user<'a>(cloud: &'a FakeCloud, user: &Value) -> Option<&'a FakeUser> {
    match user["id"].as_str() {
        Some(id) => cloud.users.iter().find(|u| u.id == id),
        None => {
            let name = user["name"].as_str()?;
            in_domain(&user["domain"]).then_some(())?;
            cloud.users.iter().find(|u| u.name == name)
        }
    }
}

fn find_project<'a>(cloud: &'a FakeCloud, project: &Value) -> Option<&'a FakeProject> {
    match project["id"].as_str() {
        Some(id) => cloud.projects.iter().find(|p| p.id == id),
        None => {
            let name = project["name"].as_str()?;
            in_domain(&project["domain"]).then_some(())?;
            cloud.projects.iter().find(|p| p.name == name)
        }
    }
}
