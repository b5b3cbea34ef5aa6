//! Binding the proxy's listener: TCP, or a unix socket for sidecars.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::StartError;
use crate::config::ListenAddress;

/// A bound listener.
pub(crate) enum Bound {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
}

/// An accepted connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Bound {
    pub async fn bind(address: &ListenAddress, socket_mode: u32) -> Result<Bound, StartError> {
        let listening = |what: String| move |source| StartError::Listen { what, source };
        match address {
            ListenAddress::Tcp(addr) => tcp_listener(*addr)
                .map(Bound::Tcp)
                .map_err(listening(addr.to_string())),
            ListenAddress::Unix(path) => bind_unix(path, socket_mode)
                .await
                .map_err(listening(format!("unix:{}", path.display()))),
        }
    }

    /// Where clients reach it: `http://IP:PORT` or `unix:/path`.
    pub fn describe(&self, scheme: &str) -> String {
        match self {
            Bound::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => format!("{scheme}://{addr}"),
                Err(_) => format!("{scheme}://?"),
            },
            Bound::Unix { path, .. } => format!("unix:{}", path.display()),
        }
    }

    /// The next connection, and the client's IP for TCP.
    pub async fn accept(&self) -> io::Result<(Stream, Option<IpAddr>)> {
        match self {
            Bound::Tcp(listener) => {
                let (stream, remote) = listener.accept().await?;
                // Small request/response exchanges must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                Ok((Stream::Tcp(stream), Some(remote.ip())))
            }
            Bound::Unix { listener, .. } => {
                let (stream, _) = listener.accept().await?;
                Ok((Stream::Unix(stream), None))
            }
        }
    }

    /// Remove the socket file (at shutdown), so the next start finds none.
    pub fn clean_up(&self) {
        if let Bound::Unix { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Bind a unix socket. A socket file left by a process that died is
/// replaced; one a live process listens on, or a file that is not a
/// socket, is an error (never delete what is not ours).
/// Connections that wait in the kernel for the proxy to accept them (past
/// `listen.max_connections`, say), as nginx's 511 and more: a short queue
/// would refuse clients that only had to wait.
const BACKLOG: u32 = 1024;

fn tcp_listener(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn bind_unix(path: &Path, mode: u32) -> io::Result<Bound> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::other("the path exists and is not a socket"));
        }
        match UnixStream::connect(path).await {
            Ok(_) => return Err(io::Error::other("another process is listening on it")),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "replacing a stale socket file");
                std::fs::remove_file(path)?;
            }
            Err(e) => return Err(e),
        }
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(Bound::Unix {
        listener,
        path: path.to_path_buf(),
    })
}
