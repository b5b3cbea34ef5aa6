//! Why serving could not start, or why a reload was refused (the running
//! configuration then stays). Each case keeps its cause, so that `main`
//! prints the whole chain and the reload's log line says it all.

use crate::config::ConfigError;
use crate::connector::CloudTlsError;
use crate::session_keys::SessionKeyError;

use super::tls::ListenerTlsError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration could not be read again (reload only: at start
    /// `main` reads it before serving).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("listening on {what}")]
    Listen {
        /// The address, `unix:PATH`, or the admin address.
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    ListenerTls(#[from] ListenerTlsError),
    #[error(transparent)]
    CloudTls(#[from] CloudTlsError),
    #[error(transparent)]
    SessionKeys(#[from] SessionKeyError),
    #[error("turning TLS on or off needs a restart")]
    TlsToggle,
}
