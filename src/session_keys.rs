//! Session keys: the secret every replica shares so that a session token
//! sealed by one is opened by all, and survives restarts.
//!
//! A key directory works like Keystone's fernet key repository, so that
//! operators who rotate fernet keys already know how to rotate these: each
//! key is a file named by a number, holding 32 random bytes in URL-safe
//! base64. The highest number seals; every key opens. `0` is the *staged*
//! key: it opens but seals only while it is the only key, so that after it
//! has reached every replica it can be promoted without a replica meeting a
//! token it cannot open. `keystone-proxy gen-session-key DIR` rotates as
//! `keystone-manage fernet_rotate` does: `0` becomes the next number (the
//! new sealing key) and a new `0` is written. Removing a key ends the
//! sessions sealed with it. Names starting with a dot are skipped
//! (Kubernetes mounts a Secret with `..data` entries beside the keys).
//!
//! A list of files instead of a directory: the first seals, as in
//! Python's `MultiFernet`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};

use crate::config::SessionKeySource;
use crate::secrets::sha256;

/// Key file contents: URL-safe base64, padded or not (fernet's are padded).
const KEY_TEXT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Bytes in a key id: enough to pick the key without trying each, too few
/// to say anything about the key.
pub const KEY_ID_LEN: usize = 4;

/// One AES-256-GCM key and its id.
pub struct SessionKey {
    pub id: [u8; KEY_ID_LEN],
    pub aead: LessSafeKey,
}

impl fmt::Debug for SessionKey {
    /// The id only: the key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", hex::encode(self.id))
    }
}

impl SessionKey {
    fn new(bytes: &[u8; 32]) -> SessionKey {
        let mut id = [0; KEY_ID_LEN];
        let digest = sha256(&[b"keystone-proxy session key id\0".as_slice(), bytes].concat());
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        // AES-256 takes exactly 32 bytes, which `bytes` is by its type.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key");
        SessionKey {
            id,
            aead: LessSafeKey::new(unbound),
        }
    }
}

/// The keys in use: the first seals, all open.
#[derive(Debug)]
pub struct SessionKeys {
    keys: Vec<SessionKey>,
}

/// Why the session keys could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SessionKeyError {
    #[error("session key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("session key {path}: not 32 bytes of URL-safe base64 (write one with gen-session-key)")]
    NotAKey { path: PathBuf },
    #[error(
        "session key directory {path}: {name:?} is not a key file name (keys are named 0, 1, 2, …)"
    )]
    BadName { path: PathBuf, name: String },
    #[error("session key directory {path}: no keys in it (write one with gen-session-key)")]
    Empty { path: PathBuf },
}

impl SessionKeys {
    /// A key made now, for a proxy configured with none: its sessions last
    /// as long as the process.
    pub fn made_at_start() -> SessionKeys {
        SessionKeys {
            keys: vec![SessionKey::new(&rand::random())],
        }
    }

    pub fn load(source: &SessionKeySource) -> Result<SessionKeys, SessionKeyError> {
        let paths = match source {
            SessionKeySource::Directory(dir) => {
                let mut numbered = numbered_keys(dir)?;
                if numbered.is_empty() {
                    return Err(SessionKeyError::Empty { path: dir.clone() });
                }
                // The highest number first: it seals (with `0` last, it
                // seals only when alone).
                numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
                numbered.into_iter().map(|(_, p)| p).collect()
            }
            SessionKeySource::Files(files) => files.clone(),
        };
        let mut keys = Vec::with_capacity(paths.len());
        for path in paths {
            keys.push(read_key(&path)?);
        }
        Ok(SessionKeys { keys })
    }

    /// The key new sessions are sealed with.
    pub fn sealing(&self) -> &SessionKey {
        // `load` and `made_at_start` never build an empty list (an empty
        // directory is an error, a file list is checked by the config).
        &self.keys[0]
    }

    /// The keys that may open a token sealed under `id`.
    pub fn opening(&self, id: &[u8]) -> impl Iterator<Item = &SessionKey> {
        self.keys.iter().filter(move |k| k.id == id)
    }

    /// How many keys open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The numbered key files in `dir`, with their numbers.
fn numbered_keys(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SessionKeyError> {
    let io = |source| SessionKeyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let number = name
            .parse::<u64>()
            .ok()
            .filter(|n| n.to_string() == name)
            .ok_or_else(|| SessionKeyError::BadName {
                path: dir.to_path_buf(),
                name: name.clone(),
            })?;
        found.push((number, entry.path()));
    }
    Ok(found)
}

fn read_key(path: &Path) -> Result<SessionKey, SessionKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| SessionKeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = KEY_TEXT.decode(text.trim()).ok();
    let bytes: [u8; 32] =
        bytes
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SessionKeyError::NotAKey {
                path: path.to_path_buf(),
            })?;
    warn_if_readable_by_others(path);
    Ok(SessionKey::new(&bytes))
}

/// Anyone who reads a key can make sessions for every client. Group read
/// is how Kubernetes gives a Secret to a non-root container (`fsGroup`,
/// mode 0440), so only a key every user can read is warned about.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "a session key is readable by every user; whoever reads it can make session \
                 tokens for every client (chmod 600)"
            );
        }
    }
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The staged key written (`DIR/0`).
    pub staged: PathBuf,
    /// The former staged key, now the sealing one.
    pub promoted: Option<PathBuf>,
}

/// Rotate the keys in `dir` as `keystone-manage fernet_rotate` does:
/// the staged key `0` becomes the highest number, and a new `0` is
/// written (mode 0600; the directory is made 0700 if missing).
pub fn rotate(dir: &Path) -> Result<Rotated, SessionKeyError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SessionKeyError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let numbered = numbered_keys(dir)?;
    let staged = dir.join("0");
    let promoted = match numbered.iter().map(|(n, _)| *n).max() {
        Some(_) if !numbered.iter().any(|(n, _)| *n == 0) => None,
        Some(highest) => {
            let next = dir.join((highest + 1).to_string());
            std::fs::rename(&staged, &next).map_err(io(&staged))?;
            Some(next)
        }
        None => None,
    };
    let text = general_purpose::URL_SAFE.encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .map_err(io(&staged))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&staged))?;
    Ok(Rotated { staged, promoted })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_keys(dir: &Path) -> SessionKeys {
        SessionKeys::load(&SessionKeySource::Directory(dir.to_path_buf())).unwrap()
    }

    #[test]
    fn rotation_stages_then_promotes_as_fernet_does() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = rotate(&keys).unwrap();
        assert!(first.promoted.is_none());
        let alone = dir_keys(&keys);
        assert_eq!(alone.len(), 1, "the staged key seals while alone");
        let staged_id = alone.sealing().id;

        let second = rotate(&keys).unwrap();
        assert_eq!(second.promoted, Some(keys.join("1")));
        let after = dir_keys(&keys);
        assert_eq!(after.len(), 2);
        assert_eq!(
            after.sealing().id,
            staged_id,
            "the old staged key seals now"
        );
        rotate(&keys).unwrap();
        let third = dir_keys(&keys);
        assert_eq!(third.len(), 3);
        assert_ne!(third.sealing().id, staged_id, "2 seals");

        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("0"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn bad_directories_and_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = SessionKeys::load(&SessionKeySource::Directory(dir.path().into()));
        assert!(matches!(empty, Err(SessionKeyError::Empty { .. })));
        std::fs::write(dir.path().join("..data"), "ignored").unwrap();
        std::fs::write(dir.path().join("01"), "x").unwrap();
        let bad = SessionKeys::load(&SessionKeySource::Directory(dir.path().into()));
        assert!(
            matches!(&bad, Err(SessionKeyError::BadName { name, .. }) if name == "01"),
            "{bad:?}"
        );
        std::fs::remove_file(dir.path().join("01")).unwrap();
        std::fs::write(dir.path().join("3"), "c2hvcnQ=\n").unwrap();
        let short = SessionKeys::load(&SessionKeySource::Directory(dir.path().into()));
        let message = short.unwrap_err().to_string();
        assert!(message.contains("not 32 bytes") && !message.contains("c2hvcnQ"));
    }

    #[test]
    fn a_file_list_seals_with_its_first_and_a_fernet_key_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        // A fernet key as keystone-manage writes it: padded URL-safe base64.
        std::fs::write(&a, "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
        std::fs::write(&b, general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap();
        let keys = SessionKeys::load(&SessionKeySource::Files(vec![a.clone(), b])).unwrap();
        let only_a = SessionKeys::load(&SessionKeySource::Files(vec![a])).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.sealing().id, only_a.sealing().id);
        assert_eq!(keys.opening(&only_a.sealing().id).count(), 1);
        assert!(!format!("{keys:?}").contains("cw_0x"));
    }
}
