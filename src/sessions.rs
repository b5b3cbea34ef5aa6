//! Session tokens: what the Keystone facade hands to unmodified OpenStack
//! clients instead of the real token.
//!
//! A session token is sealed, not stored, as Keystone's fernet tokens are:
//! it carries what any replica needs to accept it (its client, project and
//! expiry) under AES-256-GCM with a shared session key (`session_keys`), so
//! every replica with the same keys accepts it, and it survives restarts.
//! It is bound to the client's current key: the sealed `binding` is a hash
//! of the client's name and `key_sha256`, so changing the key or removing
//! the client ends its sessions on every replica at the next reload.
//! `DELETE /v3/auth/tokens` puts a token on this replica's revocation list
//! (bounded, each entry kept until the token would expire); other replicas
//! accept it until then, so `session_ttl` bounds how long a revoked token
//! lives. A session stays valid for `session_ttl` whatever happens to the
//! real token behind it: every request with it is served with the cache's
//! current real token.
//!
//! The token is `kps_` and URL-safe base64 of: a version byte, the key id
//! (4 bytes), a random 96-bit nonce, and the sealed claims with their
//! 16-byte tag. The version and the key id are authenticated too. With a
//! project id and name of at most 64 bytes each (Keystone's limits, in
//! ASCII) a token is at most 250 characters, as fernet tokens are.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::Expiry;
use moka::sync::Cache;
use ring::aead::{Aad, NONCE_LEN, Nonce};

use crate::clients::BINDING_LEN;
use crate::error::ProxyError;
use crate::secrets::sha256;
use crate::session_keys::{KEY_ID_LEN, SessionKeys};
use crate::tokens::Scope;

/// Session tokens start with this, so they are told apart from local keys
/// without a lookup (and secret scanners recognise them).
pub(crate) const PREFIX: &str = "kps_";

/// The format of the sealed bytes; a change of layout gets a new one.
const VERSION: u8 = 1;

/// What is authenticated in clear before the sealed claims.
const HEADER_LEN: usize = 1 + KEY_ID_LEN;

/// Revoked tokens remembered at most (each until it would have expired).
const MAX_REVOKED: u64 = 100_000;

/// Project ids and selectors are sealed with a one-byte tag: a length, or
/// one of these.
const TAG_HEX_ID: u8 = 0xff;
const TAG_NONE: u8 = 0xff;
const TAG_SAME_AS_ID: u8 = 0xfe;
const MAX_TEXT: usize = 0xfd;

/// What a session token says, once opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Which client, and under which of its keys (see `Client::binding`).
    pub binding: [u8; BINDING_LEN],
    /// The project as Keystone named it at login.
    pub project_id: String,
    /// The project as the client named it at login (`None`: its default),
    /// which makes the same scope as a local-key request naming it.
    pub selector: Option<String>,
    /// Unix seconds.
    pub expires: u32,
}

impl Claims {
    /// When the session ends.
    pub fn expires_at(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_second(self.expires.into()).unwrap_or(jiff::Timestamp::MAX)
    }
}

/// A session accepted on a request: what its token says, and the scope
/// that means under the configuration in force.
#[derive(Debug)]
pub struct Session {
    pub claims: Claims,
    pub scope: Scope,
}

impl Session {
    /// The scope of a request with this session that names `selector`: a
    /// session is bound to its project, which a URL may name (by id or
    /// name), but no other.
    pub fn scope_for(&self, selector: Option<&str>) -> Result<Scope, ProxyError> {
        match selector {
            Some(selector) if !self.is_project(selector) => Err(ProxyError::ForbiddenProject {
                project: selector.to_string(),
                reason: format!("this token is for project {}", self.claims.project_id),
            }),
            _ => Ok(self.scope.clone()),
        }
    }

    /// Whether `selector` (from a URL or header) names this session's project.
    fn is_project(&self, selector: &str) -> bool {
        selector == self.claims.project_id
            || self.claims.selector.as_deref() == Some(selector)
            || self.scope.project.as_ref().map(|p| p.label()) == Some(selector)
    }
}

/// What outlives reloads: this replica's revocation list, and the key made
/// at start for a configuration without keys.
pub struct SessionState {
    made_at_start: Arc<SessionKeys>,
    revoked: Cache<[u8; 32], u32>,
}

struct UntilExpiry;

impl Expiry<[u8; 32], u32> for UntilExpiry {
    fn expire_after_create(&self, _: &[u8; 32], expires: &u32, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(
            u64::from(*expires).saturating_sub(now_unix()),
        ))
    }
}

impl Default for SessionState {
    fn default() -> Self {
        SessionState {
            made_at_start: Arc::new(SessionKeys::made_at_start()),
            revoked: Cache::builder()
                .max_capacity(MAX_REVOKED)
                .expire_after(UntilExpiry)
                .build(),
        }
    }
}

/// Sealing and opening under the keys configured now.
pub struct Sessions {
    keys: Arc<SessionKeys>,
    ttl: Duration,
    state: Arc<SessionState>,
}

/// Why a session could not be sealed.
#[derive(Debug, thiserror::Error)]
#[error("the project's name or id is longer than a session token can carry ({MAX_TEXT} bytes)")]
pub struct TooLong;

impl Sessions {
    /// `keys`: the configured ones, else the key made at start.
    pub fn new(keys: Option<SessionKeys>, ttl: Duration, state: Arc<SessionState>) -> Sessions {
        let keys = match keys {
            Some(keys) => Arc::new(keys),
            None => state.made_at_start.clone(),
        };
        Sessions { keys, ttl, state }
    }

    /// A new session token; it is returned to the client and kept nowhere.
    pub fn seal(
        &self,
        binding: [u8; BINDING_LEN],
        project_id: &str,
        selector: Option<&str>,
    ) -> Result<(String, Claims), TooLong> {
        let expires = now_unix().saturating_add(self.ttl.as_secs().max(1));
        let claims = Claims {
            binding,
            project_id: project_id.to_string(),
            selector: selector.map(str::to_string),
            expires: u32::try_from(expires).unwrap_or(u32::MAX),
        };
        Ok((self.seal_claims(&claims)?, claims))
    }

    /// `claims` sealed with the sealing key, as a token.
    fn seal_claims(&self, claims: &Claims) -> Result<String, TooLong> {
        let mut plain = encode_claims(claims)?;
        let key = self.keys.sealing();
        let mut bytes = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain.len() + 16);
        bytes.push(VERSION);
        bytes.extend_from_slice(&key.id);
        let nonce: [u8; NONCE_LEN] = rand::random();
        bytes.extend_from_slice(&nonce);
        let aad = Aad::from(bytes[..HEADER_LEN].to_vec());
        // Sealing fails only for inputs of more than 64 GiB.
        let sealed =
            key.aead
                .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad, &mut plain);
        sealed.map_err(|_| TooLong)?;
        bytes.extend_from_slice(&plain);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// What `token` says, if it was sealed under a key in force, has not
    /// expired and was not revoked here. A tampered, truncated, foreign,
    /// expired or revoked token is `None` alike.
    pub fn open(&self, token: &[u8]) -> Option<Claims> {
        let claims = self.unseal(token)?;
        self.is_live(claims.expires, &sha256(token))
            .then_some(claims)
    }

    /// Whether a session until `expires`, of the token with `digest`, is
    /// still live here: not expired, not revoked.
    fn is_live(&self, expires: u32, digest: &[u8; 32]) -> bool {
        u64::from(expires) > now_unix() && !self.state.revoked.contains_key(digest)
    }

    /// `token` opened, and what `accept` makes of its claims, remembered in
    /// the connection's `memo`: the same token sent again on the same
    /// connection (a client's every request) is compared in constant time
    /// instead of being decoded, unsealed and hashed, and its expiry and
    /// revocation are checked every time. What `accept` made is kept only
    /// under these sessions: a reload makes new ones, and the memo starts
    /// again, so `accept` may depend on the configuration.
    pub fn open_with<T: Clone>(
        self: &Arc<Self>,
        token: &[u8],
        memo: &SessionMemo<T>,
        accept: impl FnOnce(Claims) -> Option<T>,
    ) -> Option<T> {
        if let Some((expires, digest, value)) = memo.recall(self, token) {
            return self.is_live(expires, &digest).then_some(value);
        }
        let claims = self.unseal(token)?;
        let (expires, digest) = (claims.expires, sha256(token));
        if !self.is_live(expires, &digest) {
            return None;
        }
        let value = accept(claims)?;
        memo.keep(self, token, (expires, digest), &value);
        Some(value)
    }

    fn unseal(&self, token: &[u8]) -> Option<Claims> {
        let text = token.strip_prefix(PREFIX.as_bytes())?;
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < HEADER_LEN + NONCE_LEN || bytes[0] != VERSION {
            return None;
        }
        let (header, rest) = bytes.split_at(HEADER_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        for key in self.keys.opening(&header[1..]) {
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut buffer = sealed.to_vec();
            if let Ok(plain) = key
                .aead
                .open_in_place(nonce, Aad::from(header), &mut buffer)
            {
                return decode_claims(plain);
            }
        }
        None
    }

    /// End `token` on this replica; whether it was a live session.
    pub fn revoke(&self, token: &[u8]) -> bool {
        let Some(claims) = self.open(token) else {
            return false;
        };
        self.state.revoked.insert(sha256(token), claims.expires);
        true
    }
}

/// The last session token one connection presented and what it was
/// accepted as (see [`Sessions::open_with`]). It lives with the connection
/// and goes with it: never shared, so it holds no token longer than the
/// connection that sent it, and the token is wiped when replaced or dropped.
pub struct SessionMemo<T>(parking_lot::Mutex<Option<Opened<T>>>);

struct Opened<T> {
    token: secrecy::SecretSlice<u8>,
    digest: [u8; 32],
    expires: u32,
    /// The sessions that opened it.
    of: std::sync::Weak<Sessions>,
    value: T,
}

impl<T> Default for SessionMemo<T> {
    fn default() -> Self {
        SessionMemo(parking_lot::Mutex::new(None))
    }
}

impl<T> std::fmt::Debug for SessionMemo<T> {
    /// Never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionMemo")
    }
}

impl<T: Clone> SessionMemo<T> {
    /// The expiry, digest and value of `token`, if it is the one kept
    /// under `sessions`.
    fn recall(&self, sessions: &Arc<Sessions>, token: &[u8]) -> Option<(u32, [u8; 32], T)> {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        let opened = self.0.lock();
        let opened = opened.as_ref()?;
        let same_sessions = std::ptr::eq(opened.of.as_ptr(), Arc::as_ptr(sessions));
        let same_token = bool::from(opened.token.expose_secret().ct_eq(token));
        (same_sessions && same_token).then(|| (opened.expires, opened.digest, opened.value.clone()))
    }

    fn keep(&self, sessions: &Arc<Sessions>, token: &[u8], live: (u32, [u8; 32]), value: &T) {
        let (expires, digest) = live;
        *self.0.lock() = Some(Opened {
            token: secrecy::SecretSlice::from(token.to_vec()),
            digest,
            expires,
            of: Arc::downgrade(sessions),
            value: value.clone(),
        });
    }
}

fn now_unix() -> u64 {
    jiff::Timestamp::now().as_second().max(0).unsigned_abs()
}

/// The claims as sealed (public for the fuzz target): expiry (u32, big-endian), binding, project id
/// (32 lowercase hex digits as their 16 bytes), selector (absent, or the
/// same as the id, or its bytes).
pub fn encode_claims(claims: &Claims) -> Result<Vec<u8>, TooLong> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&claims.expires.to_be_bytes());
    out.extend_from_slice(&claims.binding);
    let id = &claims.project_id;
    match hex_id(id) {
        Some(raw) => {
            out.push(TAG_HEX_ID);
            out.extend_from_slice(&raw);
        }
        None => push_text(&mut out, id)?,
    }
    match claims.selector.as_deref() {
        None => out.push(TAG_NONE),
        Some(selector) if selector == id => out.push(TAG_SAME_AS_ID),
        Some(selector) => push_text(&mut out, selector)?,
    }
    Ok(out)
}

fn push_text(out: &mut Vec<u8>, text: &str) -> Result<(), TooLong> {
    if text.len() > MAX_TEXT {
        return Err(TooLong);
    }
    // At most MAX_TEXT (< 256), checked just above.
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// A Keystone-style id (32 lowercase hex digits) as its 16 bytes.
fn hex_id(id: &str) -> Option<[u8; 16]> {
    let lower = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let mut raw = [0; 16];
    (id.len() == 32 && lower && hex::decode_to_slice(id, &mut raw).is_ok()).then_some(raw)
}

/// The inverse of [`encode_claims`]; `None` for anything it would not
/// write, so that one meaning has one encoding.
pub fn decode_claims(plain: &[u8]) -> Option<Claims> {
    let (expires, rest) = plain.split_first_chunk::<4>()?;
    let (binding, rest) = rest.split_first_chunk::<BINDING_LEN>()?;
    let (&tag, rest) = rest.split_first()?;
    let (project_id, rest) = if tag == TAG_HEX_ID {
        let (raw, rest) = rest.split_first_chunk::<16>()?;
        (hex::encode(raw), rest)
    } else {
        let (text, rest) = take_text(tag, rest)?;
        // `encode_claims` writes a hex id as its bytes, never as text.
        (hex_id(&text).is_none().then_some(text)?, rest)
    };
    let (&tag, rest) = rest.split_first()?;
    let (selector, rest) = match tag {
        TAG_NONE => (None, rest),
        TAG_SAME_AS_ID => (Some(project_id.clone()), rest),
        _ => {
            let (text, rest) = take_text(tag, rest)?;
            // Nor a selector equal to the id as text.
            (Some((text != project_id).then_some(text)?), rest)
        }
    };
    rest.is_empty().then(|| Claims {
        binding: *binding,
        project_id,
        selector,
        expires: u32::from_be_bytes(*expires),
    })
}

fn take_text(len: u8, rest: &[u8]) -> Option<(String, &[u8])> {
    let len = usize::from(len);
    if len > MAX_TEXT || rest.len() < len {
        return None;
    }
    let (text, rest) = rest.split_at(len);
    Some((String::from_utf8(text.to_vec()).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn sessions(ttl: u64) -> Sessions {
        Sessions::new(None, Duration::from_secs(ttl), Arc::default())
    }

    /// A connection's memo serves the token it opened without unsealing
    /// it again, and never another token, a revoked or expired one, or one
    /// kept under other sessions (a reload's).
    #[test]
    fn a_memo_serves_only_its_live_token_under_its_sessions() {
        use std::cell::Cell;
        let sessions = Arc::new(sessions(60));
        let (first, _) = sessions.seal([1; 16], ID, None).unwrap();
        let (second, _) = sessions.seal([2; 16], ID, Some("demo")).unwrap();
        let memo = SessionMemo::default();
        let accepted = Cell::new(0);
        let open = |sessions: &Arc<Sessions>, token: &str| {
            sessions.open_with(token.as_bytes(), &memo, |claims| {
                accepted.set(accepted.get() + 1);
                Some(claims.binding[0])
            })
        };
        assert_eq!(open(&sessions, &first), Some(1));
        assert_eq!(open(&sessions, &first), Some(1));
        assert_eq!(accepted.get(), 1, "the second time from the memo");
        assert_eq!(open(&sessions, &second), Some(2));
        assert_eq!(accepted.get(), 2, "another token is opened");
        assert_eq!(open(&sessions, "kps_AAAA"), None);
        let reloaded = Arc::new(Sessions::new(
            None,
            Duration::from_secs(60),
            sessions.state.clone(),
        ));
        assert_eq!(open(&reloaded, &second), Some(2));
        assert_eq!(accepted.get(), 3, "the memo of other sessions is not used");
        assert_eq!(open(&reloaded, &second), Some(2));
        assert!(reloaded.revoke(second.as_bytes()));
        assert_eq!(open(&reloaded, &second), None, "revoked, though remembered");
        let expired = (
            u32::try_from(now_unix() - 1).unwrap(),
            sha256(first.as_bytes()),
        );
        memo.keep(&sessions, first.as_bytes(), expired, &1);
        assert_eq!(open(&sessions, &first), None, "expired, though remembered");
        assert_eq!(format!("{memo:?}"), "SessionMemo");
    }

    #[test]
    fn seal_open_revoke() {
        let sessions = sessions(60);
        let (token, claims) = sessions.seal([1; 16], ID, Some("demo")).unwrap();
        assert!(token.starts_with(PREFIX), "{token}");
        assert_eq!(sessions.open(token.as_bytes()), Some(claims.clone()));
        assert_eq!(claims.selector.as_deref(), Some("demo"));
        assert!(sessions.open(b"kps_unknown").is_none());
        assert!(sessions.open(b"not-a-session").is_none());
        assert!(sessions.revoke(token.as_bytes()));
        assert!(sessions.open(token.as_bytes()).is_none());
        assert!(!sessions.revoke(token.as_bytes()));
    }

    #[test]
    fn every_shape_of_claims_comes_back_as_sealed() {
        let sessions = sessions(60);
        for (id, selector) in [
            (ID, None),
            (ID, Some(ID)),
            ("not-hex-but-allowed", Some("proj")),
            ("ABCDEF0123456789ABCDEF0123456789", Some("ünïcode")),
        ] {
            let (token, claims) = sessions.seal([9; 16], id, selector).unwrap();
            let opened = sessions.open(token.as_bytes()).expect("opens");
            assert_eq!(opened, claims);
            assert_eq!(
                (opened.project_id.as_str(), opened.selector.as_deref()),
                (id, selector)
            );
        }
    }

    #[test]
    fn the_longest_token_stays_under_250_characters() {
        let sessions = sessions(60);
        let long = "p".repeat(64);
        let (token, _) = sessions
            .seal([0; 16], &long, Some(&"n".repeat(64)))
            .unwrap();
        assert!(token.len() <= 250, "{}", token.len());
        let (usual, _) = sessions.seal([0; 16], ID, Some("demo")).unwrap();
        assert!(usual.len() < 120, "{}", usual.len());
        assert!(sessions.seal([0; 16], ID, Some(&"x".repeat(300))).is_err());
    }

    #[test]
    fn any_changed_byte_or_another_key_is_refused() {
        let sessions = sessions(60);
        let (token, _) = sessions.seal([1; 16], ID, None).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&token[PREFIX.len()..]).unwrap();
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            let forged = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&flipped));
            assert!(sessions.open(forged.as_bytes()).is_none(), "byte {i}");
        }
        for cut in [1, 10, token.len() - PREFIX.len() - 1] {
            assert!(
                sessions
                    .open(&token.as_bytes()[..token.len() - cut])
                    .is_none()
            );
        }
        let elsewhere = Sessions::new(None, Duration::from_secs(60), Arc::default());
        assert!(elsewhere.open(token.as_bytes()).is_none(), "another key");
    }

    #[test]
    fn sessions_expire() {
        let sessions = sessions(60);
        let claims = Claims {
            binding: [1; 16],
            project_id: ID.into(),
            selector: None,
            expires: u32::try_from(now_unix()).unwrap(),
        };
        let token = sessions.seal_claims(&claims).unwrap();
        assert_eq!(
            sessions.unseal(token.as_bytes()),
            Some(claims),
            "well sealed"
        );
        assert!(sessions.open(token.as_bytes()).is_none(), "but expired");
    }

    #[test]
    fn decode_refuses_what_encode_never_writes() {
        let claims = Claims {
            binding: [1; 16],
            project_id: "p".into(),
            selector: Some("s".into()),
            expires: 7,
        };
        let plain = encode_claims(&claims).unwrap();
        assert_eq!(decode_claims(&plain), Some(claims));
        for cut in 0..plain.len() {
            assert_eq!(decode_claims(&plain[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode_claims(&[plain.as_slice(), b"x"].concat()), None);
        // The same claims written another way (found by the fuzz target).
        let mut id_as_text = vec![0; 20];
        id_as_text.push(32);
        id_as_text.extend_from_slice(ID.as_bytes());
        id_as_text.push(TAG_NONE);
        assert_eq!(decode_claims(&id_as_text), None, "a hex id as text");
        let mut selector_as_id = vec![0; 20];
        selector_as_id.extend_from_slice(&[1, b'p', 1, b'p']);
        assert_eq!(
            decode_claims(&selector_as_id),
            None,
            "selector = id as text"
        );
    }
}
