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

/// A private CA, a server certificate it signed for 127.0.0.1, and a
/// client certificate it signed: for a Keystone and endpoints that demand a
/// client certificate, as some private clouds do.
pub struct MutualTls {
    /// Presents the server certificate and refuses a client without a
    /// certificate the CA signed.
    pub server: Arc<rustls::ServerConfig>,
    /// The CA's certificate (what the proxy must trust, as `cacert`).
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The client certificate and its key in one file.
    pub client_both: PathBuf,
}

pub fn mutual_tls(dir: &Path) -> MutualTls {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "keystone-proxy test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("a key")).expect("a CA");
    let server_key = KeyPair::generate().expect("a key");
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("server parameters")
        .signed_by(&server_key, &ca)
        .expect("a server certificate");
    let client_key = KeyPair::generate().expect("a key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
    client
        .distinguished_name
        .push(DnType::CommonName, "keystone-proxy");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client
        .signed_by(&client_key, &ca)
        .expect("a client certificate");

    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a PEM file");
        path
    };
    let client_key_pem = client_key.serialize_pem();
    let paths = (
        write("ca.pem", &ca.pem()),
        write("client.pem", &client_cert.pem()),
        write("client.key", &client_key_pem),
        write(
            "client-both.pem",
            &format!("{}{client_key_pem}", client_cert.pem()),
        ),
    );

    let provider = keystone_proxy::connector::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("the CA as a root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("a client verifier");
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).expect("a key"),
        )
        .expect("a server config");
    MutualTls {
        server: Arc::new(server),
        ca: paths.0,
        client_cert: paths.1,
        client_key: paths.2,
        client_both: paths.3,
    }
}
