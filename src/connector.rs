//! Outgoing connections (to Keystone and to catalog endpoints): TCP with a
//! connect timeout, then TLS with rustls when the URL is https.
//!
//! OpenStack clouds often sit behind a private CA, so the trust roots are
//! the system's plus an optional `cacert` file; `insecure` turns
//! verification off, as keystoneauth's `insecure`/`verify: false` do. A
//! cloud whose Keystone or endpoints want a client certificate gets its
//! `cert` (and `key`) presented, as keystoneauth presents them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::ClientCert;

pub(crate) type Connector = HttpsConnector<HttpConnector>;

/// The one crypto provider of the process (ring: smaller and quicker to
/// build than aws-lc-rs, and enough for a client and a listener).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Install [`crypto_provider`] as the process default, so that no library
/// can pick another one implicitly. Safe to call more than once.
pub fn install_crypto_provider() {
    let _already_installed = CryptoProvider::install_default((*crypto_provider()).clone());
}

/// Why a connector could not be made: the trust roots it was given.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS set-up")]
    Setup(#[source] rustls::Error),
    #[error("cacert {}", .0.display())]
    Unreadable(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("cacert {}: no certificate in the file", .0.display())]
    Empty(PathBuf),
    #[error("cacert {}", .0.display())]
    Refused(PathBuf, #[source] rustls::Error),
    #[error("cert {}", .0.display())]
    ClientCertUnreadable(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("cert {}: no certificate in the file", .0.display())]
    NoClientCert(PathBuf),
    #[error("no private key read from {} (give key, or put the key in cert's file)", .0.display())]
    ClientKeyUnreadable(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("cert {}: refused with its key", .0.display())]
    ClientCertRefused(PathBuf, #[source] rustls::Error),
}

/// One cloud's connector could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cloud {cloud}")]
pub struct CloudTlsError {
    pub cloud: String,
    #[source]
    pub source: TlsError,
}

/// How to verify a server, and what to show it.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions<'a> {
    pub cacert: Option<&'a Path>,
    pub insecure: bool,
    pub client_cert: Option<&'a ClientCert>,
}

/// The connector for one cloud's Keystone and endpoints: the cloud's own
/// `cacert`/`insecure`, else the `[upstream]` ones.
pub(crate) fn for_cloud(
    settings: &crate::config::Settings,
    cloud: &crate::config::CloudSettings,
) -> Result<Connector, CloudTlsError> {
    let tls = TlsOptions {
        cacert: cloud
            .cacert
            .as_deref()
            .or(settings.upstream.cacert.as_deref()),
        insecure: cloud.insecure || settings.upstream.insecure,
        client_cert: cloud.client_cert.as_ref(),
    };
    build(&tls, settings.upstream.connect_timeout).map_err(|source| CloudTlsError {
        cloud: cloud.name.clone(),
        source,
    })
}

/// Read every cloud's TLS files (`cacert`, `cert`, `key`) as `serve`
/// does at start, so that check-config fails where `serve` would.
pub fn check_clouds(settings: &crate::config::Settings) -> Result<(), CloudTlsError> {
    for cloud in settings.clouds.values() {
        for_cloud(settings, cloud)?;
    }
    Ok(())
}

/// A connector for plain http and https URLs.
pub fn build(tls: &TlsOptions<'_>, connect_timeout: Duration) -> Result<Connector, TlsError> {
    let config = client_config(tls)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

fn client_config(tls: &TlsOptions<'_>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?;
    let verified = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(crypto_provider())))
    } else {
        builder.with_root_certificates(roots(tls.cacert)?)
    };
    match tls.client_cert {
        None => Ok(verified.with_no_client_auth()),
        Some(client) => {
            let (chain, key) = read_client_cert(client)?;
            verified
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::ClientCertRefused(client.cert.clone(), e))
        }
    }
}

/// The system's roots and the certificates of `cacert`.
fn roots(cacert: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = system_roots().clone();
    if let Some(path) = cacert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError::Unreadable(path.to_path_buf(), e))?;
        if certs.is_empty() {
            return Err(TlsError::Empty(path.to_path_buf()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| TlsError::Refused(path.to_path_buf(), e))?;
        }
    }
    Ok(roots)
}

/// The chain of `cert` and the private key of `key`, or of `cert` when
/// no key file is given (one PEM file holding both, as requests allows).
fn read_client_cert(
    client: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = CertificateDer::pem_file_iter(&client.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::ClientCertUnreadable(client.cert.clone(), e))?;
    if chain.is_empty() {
        return Err(TlsError::NoClientCert(client.cert.clone()));
    }
    let key_file = client.key.as_ref().unwrap_or(&client.cert);
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError::ClientKeyUnreadable(key_file.clone(), e))?;
    Ok((chain, key))
}

/// The system's trust roots, read once (it walks the filesystem).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "could not load some system CA certificates");
        }
        roots.add_parsable_certificates(found.certs);
        roots
    })
}

/// `insecure = true`: any certificate is accepted, but handshake signatures
/// are still checked so the connection is at least encrypted end to end.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
