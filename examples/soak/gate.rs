//! `Gate`: a TCP port in front of a fake server that can be closed and
//! opened again, so that the chaos task restarts Keystone or the upstream
//! the way the proxy would see a real restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP forwarder in front of a fake server. Restarting the fake itself
/// would not do: dropping a fake stops its accept loop but leaves its
/// keep-alive connections serving (the proxy would never notice), and a
/// new fake Keystone would not share its tokens with the upstream's
/// validator. So a restart happens here, at the TCP level, as the proxy
/// sees a real one: the listening socket is closed (new connections are
/// refused), every open connection is closed (as the kernel does when a
/// process dies), and a few seconds later the same port listens again.
/// The fake behind keeps its state, like a Keystone whose fernet tokens
/// survive a restart; the "losing every token" event revokes them while
/// it is down.
pub(crate) struct Gate {
    pub(crate) public: SocketAddr,
    target: SocketAddr,
    accept: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Bumped to close every connection through the gate.
    generation: watch::Sender<u64>,
}

impl Gate {
    pub(crate) async fn open(target: SocketAddr) -> std::io::Result<Arc<Gate>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let gate = Arc::new(Gate {
            public: listener.local_addr()?,
            target,
            accept: tokio::sync::Mutex::new(None),
            generation: watch::channel(0).0,
        });
        *gate.accept.lock().await = Some(gate.serve(listener));
        Ok(gate)
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) -> JoinHandle<()> {
        let gate = self.clone();
        tokio::spawn(async move {
            loop {
                let inbound = match listener.accept().await {
                    Ok((inbound, _)) => inbound,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let mut closed = gate.generation.subscribe();
                let target = gate.target;
                tokio::spawn(async move {
                    let mut inbound = inbound;
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.changed() => {}
                    }
                });
            }
        })
    }

    /// Close the port and every connection through it.
    pub(crate) async fn down(&self) {
        if let Some(task) = self.accept.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
        self.close_connections();
    }

    /// Listen on the same port again.
    pub(crate) async fn up(self: &Arc<Self>) -> Result<(), String> {
        let mut accept = self.accept.lock().await;
        if accept.is_some() {
            return Ok(());
        }
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.public).await {
                Ok(listener) => break listener,
                Err(error) => {
                    tries += 1;
                    if tries >= 100 {
                        return Err(format!("cannot listen on {} again: {error}", self.public));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        *accept = Some(self.serve(listener));
        Ok(())
    }

    pub(crate) fn close_connections(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}
