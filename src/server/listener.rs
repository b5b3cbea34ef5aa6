//! Binding the proxy's listener: TCP, or a unix socket for sidecars; one
//! socket for each worker where the system spreads connections over them
//! (`SO_REUSEPORT`), else one socket every worker accepts on.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::StartError;
use crate::config::ListenAddress;

/// The proxy listener's sockets, one for each worker, bound but not yet
/// in a runtime (each worker takes its own into its own).
pub(crate) struct Sockets {
    pub each: Vec<Socket>,
    /// Each worker has a socket of its own (`SO_REUSEPORT`: the kernel
    /// spreads new connections over them), else they share one.
    pub own: bool,
    /// A unix socket's path, removed at shutdown.
    path: Option<PathBuf>,
    /// `IP:PORT` or `unix:/path`.
    address: String,
}

/// One worker's listening socket.
pub(crate) enum Socket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// A bound listener, in a runtime.
pub(crate) enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sockets {
    /// `workers` sockets for `address` (a unix socket's file gets `mode`).
    pub async fn bind(
        address: &ListenAddress,
        mode: u32,
        workers: usize,
    ) -> Result<Sockets, StartError> {
        let listening = |what: String| move |source| StartError::Listen { what, source };
        match address {
            ListenAddress::Tcp(addr) => {
                tcp_sockets(*addr, workers).map_err(listening(addr.to_string()))
            }
            ListenAddress::Unix(path) => unix_sockets(path, mode, workers)
                .await
                .map_err(listening(format!("unix:{}", path.display()))),
        }
    }

    /// Where clients reach it: `http://IP:PORT` or `unix:/path`.
    pub fn describe(&self, scheme: &str) -> String {
        match self.path {
            Some(_) => self.address.clone(),
            None => format!("{scheme}://{}", self.address),
        }
    }

    /// The unix socket's path, if it is one (to remove at shutdown).
    pub fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }
}

/// Remove a unix socket's file (at shutdown), so the next start finds none.
pub(crate) fn clean_up(path: Option<&Path>) {
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}

impl Socket {
    /// The socket as a listener of the runtime this is called in.
    pub fn into_bound(self) -> io::Result<Bound> {
        Ok(match self {
            Socket::Tcp(listener) => Bound::Tcp(TcpListener::from_std(listener)?),
            Socket::Unix(listener) => Bound::Unix(UnixListener::from_std(listener)?),
        })
    }
}

impl Bound {
    /// The next connection, and the client's IP for TCP.
    pub async fn accept(&self) -> io::Result<(Stream, Option<IpAddr>)> {
        match self {
            Bound::Tcp(listener) => {
                let (stream, remote) = listener.accept().await?;
                // Small request/response exchanges must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                Ok((Stream::Tcp(stream), Some(remote.ip())))
            }
            Bound::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                Ok((Stream::Unix(stream), None))
            }
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

/// A socket for each worker with `SO_REUSEPORT` (port 0 is resolved by
/// the first, the others take the same port); where the system refuses
/// the option, one socket that all share.
fn tcp_sockets(addr: SocketAddr, workers: usize) -> io::Result<Sockets> {
    let own = match workers > 1 {
        true => reuseport_sockets(addr, workers)
            .inspect_err(|error| {
                tracing::warn!(%error, "SO_REUSEPORT is not available: the workers share one socket")
            })
            .ok(),
        false => None,
    };
    let (each, own) = match own {
        Some(each) => (each, true),
        None => (
            shared(tcp_listener(addr, false)?, workers, |l| l.try_clone())?,
            false,
        ),
    };
    let address = match each.first() {
        Some(first) => first.local_addr()?.to_string(),
        None => addr.to_string(),
    };
    Ok(Sockets {
        each: each.into_iter().map(Socket::Tcp).collect(),
        own,
        path: None,
        address,
    })
}

fn reuseport_sockets(addr: SocketAddr, workers: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = tcp_listener(addr, true)?;
    let bound = first.local_addr()?;
    let mut each = vec![first];
    for _ in 1..workers {
        each.push(tcp_listener(bound, true)?);
    }
    Ok(each)
}

/// `workers` handles of one listening socket.
fn shared<L>(one: L, workers: usize, clone: impl Fn(&L) -> io::Result<L>) -> io::Result<Vec<L>> {
    let mut each = Vec::with_capacity(workers);
    for _ in 1..workers {
        each.push(clone(&one)?);
    }
    each.push(one);
    Ok(each)
}

/// A listening TCP socket, out of any runtime.
fn tcp_listener(addr: SocketAddr, reuseport: bool) -> io::Result<std::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if reuseport {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

/// One unix socket that every worker accepts on.
async fn unix_sockets(path: &Path, mode: u32, workers: usize) -> io::Result<Sockets> {
    let listener = bind_unix(path, mode).await?.into_std()?;
    Ok(Sockets {
        each: shared(listener, workers, |l| l.try_clone())?
            .into_iter()
            .map(Socket::Unix)
            .collect(),
        own: false,
        path: Some(path.to_path_buf()),
        address: format!("unix:{}", path.display()),
    })
}

async fn bind_unix(path: &Path, mode: u32) -> io::Result<UnixListener> {
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
    Ok(listener)
}
