//! A throwaway TLS certificate, for listeners and upstreams that speak TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A throwaway certificate for 127.0.0.1 in `dir`: the rustls server
/// config that presents it, and the PEM files (`cert` is also what a client
/// must trust, as `cacert`).
pub struct ThrowawayTls {
    pub server: Arc<rustls::ServerConfig>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn throwaway_tls(dir: &Path) -> ThrowawayTls {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("a certificate");
    let key_pem = certified.signing_key.serialize_pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key, &key_pem).expect("write the key");
    let server =
        rustls::ServerConfig::builder_with_provider(keystone_proxy::connector::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certified.cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("a key"),
            )
            .expect("a server config");
    ThrowawayTls {
        server: Arc::new(server),
        cert,
        key,
    }
}
