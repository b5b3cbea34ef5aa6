//! Secrets the proxy makes and compares. Local keys and session tokens
//! are kept only as sha256 digests (they are 256 random bits: a fast hash
//! loses nothing against guessing, see `clients`), and every secret the
//! proxy makes is 32 random bytes, URL-safe base64, behind a prefix that
//! lets secret scanners and people recognise a leaked one.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The sha256 digest of `bytes` in lowercase hex, as configs write it
/// (`key_sha256`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// A new random secret: `prefix` and 32 random bytes (256 bits).
pub(crate) fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{prefix}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_fresh_and_url_safe() {
        let (a, b) = (random_token("kp_"), random_token("kp_"));
        assert_ne!(a, b);
        assert!(a.starts_with("kp_") && a.len() == 3 + 43, "{a}");
        assert!(
            a[3..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn sha256_is_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
