//! The listener's TLS: a certificate chain and key from PEM files, read at
//! start and again on SIGHUP (certificates are renewed without a restart).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;
use crate::connector::crypto_provider;

/// Why the listener's certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenerTlsError {
    #[error("listen.tls_cert {}", .0.display())]
    Cert(PathBuf, #[source] pem::Error),
    #[error("listen.tls_cert {}: no certificate in the file", .0.display())]
    NoCert(PathBuf),
    #[error("listen.tls_key {}", .0.display())]
    Key(PathBuf, #[source] pem::Error),
    #[error("TLS set-up")]
    Setup(#[source] rustls::Error),
    #[error("listen.tls_cert/tls_key")]
    Pair(#[source] rustls::Error),
}

/// A server config for `files`, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, ListenerTlsError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ListenerTlsError::Cert(files.cert.clone(), e))?;
    if certs.is_empty() {
        return Err(ListenerTlsError::NoCert(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| ListenerTlsError::Key(files.key.clone(), e))?;
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(ListenerTlsError::Setup)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(ListenerTlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
