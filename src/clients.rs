//! Local credentials: who is calling, and which projects they may use.
//!
//! Clients prove themselves with a random key whose sha256 is in the
//! config. A sha256 is the right hash here (not argon2): the keys are 256
//! random bits, so there is nothing to brute-force, and the check must be
//! cheap because it runs on every request. Comparison is constant time.

use std::sync::Arc;

use base64::Engine;
use subtle::ConstantTimeEq;

use crate::access::{Access, LimitSettings};
use crate::config::{ANY_PROJECT, ClientSettings, ProjectRef, Settings};
use crate::error::ProxyError;
use crate::known_headers::KnownHeaders;
use crate::login_limit::LoginLimit;
use crate::secrets::{random_token, sha256, sha256_hex};

/// An authenticated caller.
#[derive(Debug)]
pub struct Client {
    pub name: String,
    /// The name as a shared string: every request's metrics carry it.
    pub label: Arc<str>,
    pub cloud: String,
    allowed: Allowed,
    /// The project used when the request names none.
    pub default_project: Option<String>,
    pub export_token: bool,
    key_sha256: [u8; 32],
    /// What its session tokens are bound to (see [`binding`]).
    pub binding: [u8; BINDING_LEN],
    /// Cold logins this client may still cause.
    pub logins: LoginLimit,
    /// Its rules and limits.
    pub access: Access,
}

#[derive(Debug)]
enum Allowed {
    Any,
    Only(Vec<String>),
}

impl Client {
    fn new(settings: &ClientSettings, logins_per_minute: u32) -> Client {
        let allowed = if settings.projects.iter().any(|p| p == ANY_PROJECT) {
            Allowed::Any
        } else {
            Allowed::Only(settings.projects.clone())
        };
        Client {
            name: settings.name.clone(),
            label: Arc::from(settings.name.as_str()),
            cloud: settings.cloud.clone(),
            allowed,
            default_project: settings.default_project.clone(),
            export_token: settings.export_token,
            key_sha256: settings.key_sha256,
            binding: binding(&settings.name, &settings.key_sha256),
            logins: LoginLimit::per_minute(logins_per_minute),
            access: Access::new(settings.rules.clone(), &settings.limits),
        }
    }

    /// Whether this client may use `project`, as named in the request (an id
    /// or a name: the allow-list is matched literally, before any Keystone
    /// call, so list the form your tools use).
    pub fn may_use(&self, project: &str) -> bool {
        match &self.allowed {
            Allowed::Any => true,
            Allowed::Only(list) => list.iter().any(|p| p == project),
        }
    }

    /// What to say when `project` is refused but may be another form of a
    /// listed one: the list is matched as written, so a project listed by
    /// name is not allowed by its id, nor the other way round. Empty when
    /// the list holds the request's form only.
    pub fn allow_list_hint(&self, project: &str) -> &'static str {
        let Allowed::Only(list) = &self.allowed else {
            return "";
        };
        let by_id = ProjectRef::is_id(project);
        if !list.iter().any(|p| ProjectRef::is_id(p) != by_id) {
            return "";
        }
        if by_id {
            " (the request names the project by id and the list matches as written: a project \
             listed by name needs its id listed too; a list may hold both)"
        } else {
            " (the request names the project by name and the list matches as written: a \
             project listed by id needs its name listed too; a list may hold both)"
        }
    }
}

/// Bytes in a session binding.
pub const BINDING_LEN: usize = 16;

/// What a client's session tokens are bound to: its name and its key's
/// hash, hashed. A session token carries it sealed, so a changed key or a
/// removed client ends the client's sessions on every replica (no replica
/// finds a client with that binding any more); a client that is renamed
/// keeps none either.
fn binding(name: &str, key_sha256: &[u8; 32]) -> [u8; BINDING_LEN] {
    let input = [
        b"keystone-proxy session binding\0".as_slice(),
        name.as_bytes(),
        b"\0",
        key_sha256,
    ]
    .concat();
    let mut out = [0; BINDING_LEN];
    out.copy_from_slice(&sha256(&input)[..BINDING_LEN]);
    out
}

/// All configured clients.
#[derive(Debug)]
pub struct Clients {
    clients: Vec<Arc<Client>>,
    /// Sidecar mode: no keys configured; every caller is this client.
    sidecar: Option<Arc<Client>>,
}

/// The name of the implicit client in sidecar mode.
pub(crate) const SIDECAR_CLIENT: &str = "local";

impl Clients {
    pub fn new(settings: &Settings) -> Clients {
        let clients: Vec<Arc<Client>> = settings
            .clients
            .iter()
            .map(|c| Arc::new(Client::new(c, settings.token.logins_per_minute)))
            .collect();
        let sidecar = match (clients.is_empty(), settings.clouds.keys().next()) {
            (true, Some(cloud)) => Some(Arc::new(Client {
                name: SIDECAR_CLIENT.to_string(),
                label: Arc::from(SIDECAR_CLIENT),
                cloud: cloud.clone(),
                allowed: Allowed::Any,
                default_project: None,
                export_token: false,
                key_sha256: [0; 32],
                binding: binding(SIDECAR_CLIENT, &[0; 32]),
                logins: LoginLimit::per_minute(settings.token.logins_per_minute),
                access: Access::new(Vec::new(), &LimitSettings::default()),
            })),
            _ => None,
        };
        Clients { clients, sidecar }
    }

    /// Every client (in sidecar mode, the implicit one).
    pub fn all(&self) -> impl Iterator<Item = &Client> {
        self.clients
            .iter()
            .chain(self.sidecar.iter())
            .map(|c| c.as_ref())
    }

    /// Find the caller from the request headers alone, so an unknown caller
    /// is turned away before its body is read (and before hyper sends
    /// `100 Continue`).
    pub fn authenticate(&self, headers: &KnownHeaders) -> Result<Arc<Client>, ProxyError> {
        if let Some(client) = &self.sidecar {
            return Ok(client.clone());
        }
        match presented(headers)? {
            Presented::Key(key) => self.by_key(&sha256(key)),
            Presented::NamedKey { name, key } => self.by_name_and_key(&name, &sha256(&key)),
        }
        .ok_or(ProxyError::BadCredential)
    }

    /// [`authenticate`](Self::authenticate) for a request on a connection
    /// whose last proven key `memo` holds: the same key again (the usual
    /// keep-alive case) is recognised by comparing its bytes in constant
    /// time, without hashing it. A memo made under another set of clients
    /// (before a reload) is not used.
    pub fn authenticate_with(
        self: &Arc<Self>,
        headers: &KnownHeaders,
        memo: &KeyMemo,
    ) -> Result<Arc<Client>, ProxyError> {
        if self.sidecar.is_some() {
            return self.authenticate(headers);
        }
        let Presented::Key(key) = presented(headers)? else {
            return self.authenticate(headers);
        };
        if let Some(client) = memo.recall(self, key) {
            return Ok(client);
        }
        let client = self.by_key(&sha256(key)).ok_or(ProxyError::BadCredential)?;
        memo.keep(self, key, &client);
        Ok(client)
    }

    fn by_key(&self, hash: &[u8; 32]) -> Option<Arc<Client>> {
        // Every entry is compared, so the time taken does not depend on
        // which client (if any) matched.
        let mut found = None;
        for client in &self.clients {
            if bool::from(client.key_sha256.ct_eq(hash)) {
                found = Some(client.clone());
            }
        }
        found
    }

    /// A Keystone-style login: user name = client name, password = key. In
    /// sidecar mode anything is accepted, as every request is.
    pub fn login(&self, name: &str, key: &[u8]) -> Option<Arc<Client>> {
        match &self.sidecar {
            Some(client) => Some(client.clone()),
            None => self.by_name_and_key(name, &sha256(key)),
        }
    }

    /// The client a session token is bound to, if it still has that key.
    pub fn by_binding(&self, binding: &[u8; BINDING_LEN]) -> Option<Arc<Client>> {
        // Every entry is compared, as in `by_key`.
        let mut found = None;
        for client in self.clients.iter().chain(self.sidecar.iter()) {
            if bool::from(client.binding.ct_eq(binding)) {
                found = Some(client.clone());
            }
        }
        found
    }

    fn by_name_and_key(&self, name: &str, hash: &[u8; 32]) -> Option<Arc<Client>> {
        let client = self.clients.iter().find(|c| c.name == name)?;
        bool::from(client.key_sha256.ct_eq(hash)).then(|| client.clone())
    }
}

/// The last key one connection proved, and whose it is (see
/// [`Clients::authenticate_with`]). It lives with the connection and goes
/// with it: never shared, so it holds no key longer than the connection
/// that sent it, and it is wiped when replaced or dropped.
#[derive(Default)]
pub struct KeyMemo(parking_lot::Mutex<Option<Remembered>>);

struct Remembered {
    key: secrecy::SecretSlice<u8>,
    client: Arc<Client>,
    /// The clients it was proven against.
    of: std::sync::Weak<Clients>,
}

impl std::fmt::Debug for KeyMemo {
    /// Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMemo")
    }
}

impl KeyMemo {
    fn recall(&self, clients: &Arc<Clients>, key: &[u8]) -> Option<Arc<Client>> {
        use secrecy::ExposeSecret;
        let remembered = self.0.lock();
        let remembered = remembered.as_ref()?;
        let same_clients = std::ptr::eq(remembered.of.as_ptr(), Arc::as_ptr(clients));
        let same_key = bool::from(remembered.key.expose_secret().ct_eq(key));
        (same_clients && same_key).then(|| remembered.client.clone())
    }

    fn keep(&self, clients: &Arc<Clients>, key: &[u8], client: &Arc<Client>) {
        *self.0.lock() = Some(Remembered {
            key: secrecy::SecretSlice::from(key.to_vec()),
            client: client.clone(),
            of: Arc::downgrade(clients),
        });
    }
}

/// A credential as found in the request.
enum Presented<'a> {
    Key(&'a [u8]),
    NamedKey { name: String, key: Vec<u8> },
}

/// `Authorization: Bearer` or `Basic` first, then `X-Auth-Token`. Other
/// `Authorization` schemes are not ours and are ignored.
fn presented<'h>(headers: &KnownHeaders<'h>) -> Result<Presented<'h>, ProxyError> {
    if let Some(value) = headers.authorization {
        let value = value.as_bytes();
        if let Some(key) = strip_scheme(value, b"bearer") {
            return Ok(Presented::Key(key));
        }
        if let Some(encoded) = strip_scheme(value, b"basic") {
            return basic(encoded);
        }
    }
    match headers.auth_token {
        Some(key) if !key.is_empty() => Ok(Presented::Key(key.as_bytes())),
        _ => Err(ProxyError::MissingCredential),
    }
}

/// `Scheme value` with the scheme matched case-insensitively (RFC 9110 §11.1).
fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = value.split_at_checked(scheme.len())?;
    if !head.eq_ignore_ascii_case(scheme) || rest.first() != Some(&b' ') {
        return None;
    }
    let key = rest.trim_ascii();
    (!key.is_empty()).then_some(key)
}

fn basic(encoded: &[u8]) -> Result<Presented<'static>, ProxyError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| ProxyError::BadCredential)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(ProxyError::BadCredential)?;
    let name = std::str::from_utf8(&decoded[..colon]).map_err(|_| ProxyError::BadCredential)?;
    Ok(Presented::NamedKey {
        name: name.to_string(),
        key: decoded[colon + 1..].to_vec(),
    })
}

/// A new random local key and its sha256 in hex, for `keystone-proxy gen-key`.
///
/// The `kp_` prefix lets secret scanners and humans recognise a leaked key.
pub fn generate_key() -> (String, String) {
    let key = random_token("kp_");
    let hash = sha256_hex(key.as_bytes());
    (key, hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;
    use http::HeaderMap;

    fn clients() -> Clients {
        let text = format!(
            r#"
            [clouds.c]
            auth_url = "http://k/v3"
            auth = {{ user_id = "u", password = "p" }}
            [clients.alice]
            key_sha256 = "{}"
            projects = ["demo"]
            [clients.bob]
            key_sha256 = "{}"
            "#,
            hex::encode(sha256(b"alice-key")),
            hex::encode(sha256(b"bob-key")),
        );
        let settings = crate::config::load_isolated(ConfigSource::Embedded {
            name: "t",
            text: &text,
        })
        .unwrap();
        Clients::new(&settings)
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    fn who(clients: &Clients, headers: &HeaderMap) -> Result<String, &'static str> {
        clients
            .authenticate(&KnownHeaders::of(headers))
            .map(|c| c.name.clone())
            .map_err(|e| e.code())
    }

    #[test]
    fn bearer_basic_and_x_auth_token() {
        let clients = clients();
        assert_eq!(
            who(&clients, &headers("authorization", "Bearer alice-key")),
            Ok("alice".into())
        );
        assert_eq!(
            who(&clients, &headers("authorization", "bearer  bob-key")),
            Ok("bob".into())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("alice:alice-key");
        assert_eq!(
            who(
                &clients,
                &headers("authorization", &format!("Basic {basic}"))
            ),
            Ok("alice".into())
        );
        assert_eq!(
            who(&clients, &headers("x-auth-token", "bob-key")),
            Ok("bob".into())
        );
    }

    /// A connection's memo answers only for the same key under the same
    /// clients: another key, a wrong one, or the same one after a reload
    /// that changed the clients, is checked in full.
    #[test]
    fn a_remembered_key_counts_only_for_itself_and_its_clients() {
        let clients = Arc::new(clients());
        let memo = KeyMemo::default();
        let who = |clients: &Arc<Clients>, value: &str| {
            let headers = headers("authorization", value);
            (clients.authenticate_with(&KnownHeaders::of(&headers), &memo))
                .map(|c| c.name.clone())
                .map_err(|e| e.code())
        };
        assert_eq!(who(&clients, "Bearer alice-key"), Ok("alice".into()));
        assert_eq!(who(&clients, "Bearer alice-key"), Ok("alice".into()));
        assert_eq!(who(&clients, "Bearer bob-key"), Ok("bob".into()));
        assert_eq!(who(&clients, "Bearer bob-keyx"), Err("bad-credential"));
        assert_eq!(who(&clients, "Bearer bob-key"), Ok("bob".into()));
        // Reloaded: the same keys, but bob's is no longer configured.
        let text = format!(
            "[clouds.c]\nauth_url = \"http://k/v3\"\nauth = {{ user_id = \"u\", password = \"p\" }}\n\
             [clients.alice]\nkey_sha256 = \"{}\"\n",
            hex::encode(sha256(b"alice-key")),
        );
        let source = ConfigSource::Embedded {
            name: "t",
            text: &text,
        };
        let reloaded = Arc::new(Clients::new(&crate::config::load_isolated(source).unwrap()));
        assert_eq!(who(&reloaded, "Bearer bob-key"), Err("bad-credential"));
        assert!(format!("{memo:?}").len() < 10, "{memo:?}");
    }

    #[test]
    fn wrong_or_missing_keys() {
        let clients = clients();
        assert_eq!(who(&clients, &HeaderMap::new()), Err("missing-credential"));
        assert_eq!(
            who(&clients, &headers("authorization", "Bearer nope")),
            Err("bad-credential")
        );
        assert_eq!(
            who(&clients, &headers("x-auth-token", "alice-keyx")),
            Err("bad-credential")
        );
        // The right key under someone else's name is not enough.
        let basic = base64::engine::general_purpose::STANDARD.encode("bob:alice-key");
        assert_eq!(
            who(
                &clients,
                &headers("authorization", &format!("Basic {basic}"))
            ),
            Err("bad-credential")
        );
        assert_eq!(
            who(&clients, &headers("authorization", "Basic !!!notbase64")),
            Err("bad-credential")
        );
        // A foreign scheme is ignored, and nothing else was sent.
        assert_eq!(
            who(&clients, &headers("authorization", "AWS4-HMAC-SHA256 x")),
            Err("missing-credential")
        );
    }

    #[test]
    fn allow_lists() {
        let clients = clients();
        let alice = clients
            .authenticate(&KnownHeaders::of(&headers("x-auth-token", "alice-key")))
            .unwrap();
        assert!(alice.may_use("demo"));
        assert!(!alice.may_use("ops"));
        let bob = clients
            .authenticate(&KnownHeaders::of(&headers("x-auth-token", "bob-key")))
            .unwrap();
        assert!(bob.may_use("anything"));
    }

    #[test]
    fn generated_keys_verify_against_their_hash() {
        let (key, hash) = generate_key();
        assert!(key.starts_with("kp_") && key.len() > 40);
        assert_eq!(hex::encode(sha256(key.as_bytes())), hash);
        assert_ne!(generate_key().0, key);
    }
}
