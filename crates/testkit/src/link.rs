//! A link: a TCP proxy in front of one process, whose network the caller switches. The test
//! broker cuts its clients off with it, and `msa chaos` partitions services and stops the broker.
//!
//! Hand-written (about 100 lines on tokio) rather than a proxy crate: what it needs is the one
//! thing proxies do not offer, a switch between three ways a network to a process behaves.
//! - [`LinkState::Up`]: bytes flow both ways.
//! - [`LinkState::Partitioned`]: a partition, as a blocked port behaves: connections stay open
//!   but nothing crosses (each side waits, then times out by its own clock); new connections are
//!   accepted and held. When it heals, what was held flows on.
//! - [`LinkState::Down`]: the process is gone, as a stopped broker looks: every connection is
//!   dropped and new ones are refused (nothing listens) until the link is up again.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Up,
    Partitioned,
    Down,
}

pub struct Link {
    /// Where clients connect.
    pub address: SocketAddr,
    state: watch::Sender<LinkState>,
    listening: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.listening.abort();
        self.state.send_replace(LinkState::Down);
    }
}

impl Link {
    /// A link on a free loopback port to `target`.
    pub async fn open(target: SocketAddr) -> io::Result<Link> {
        Self::start(TcpListener::bind("127.0.0.1:0").await?, target)
    }

    /// A link on `address` (a port chosen before, e.g. one a broker advertises) to `target`.
    pub async fn at(address: SocketAddr, target: SocketAddr) -> io::Result<Link> {
        Self::start(TcpListener::bind(address).await?, target)
    }

    fn start(listener: TcpListener, target: SocketAddr) -> io::Result<Link> {
        let address = listener.local_addr()?;
        let (state, _) = watch::channel(LinkState::Up);
        let listening = tokio::spawn(listen(listener, target, state.subscribe()));
        Ok(Link {
            address,
            state,
            listening,
        })
    }

    pub fn set(&self, state: LinkState) {
        // `send` would keep the old state while no connection listens.
        self.state.send_replace(state);
    }
}

/// Accepts while the link is not down; down, stops listening (connections are refused) and
/// binds the same address again once it is up.
async fn listen(
    mut listener: TcpListener,
    target: SocketAddr,
    mut state: watch::Receiver<LinkState>,
) {
    let address = listener.local_addr().expect("a bound listener");
    loop {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(carry(client, target, state.clone()));
                    }
                }
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *state.borrow() == LinkState::Down {
                        break;
                    }
                }
            }
        }
        drop(listener);
        if state.wait_for(|s| *s != LinkState::Down).await.is_err() {
            return;
        }
        listener = loop {
            match TcpListener::bind(address).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
    }
}

/// Waits while the link is partitioned; false once it is down.
async fn passable(state: &mut watch::Receiver<LinkState>) -> bool {
    match state
        .wait_for(|state| *state != LinkState::Partitioned)
        .await
    {
        Ok(state) => *state == LinkState::Up,
        Err(_) => false,
    }
}

async fn carry(client: TcpStream, target: SocketAddr, mut state: watch::Receiver<LinkState>) {
    if !passable(&mut state).await {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut down = state.clone();
    tokio::select! {
        _ = one_way(client_read, server_write, state.clone()) => {}
        _ = one_way(server_read, client_write, state) => {}
        _ = down.wait_for(|state| *state == LinkState::Down) => {}
    }
}

/// Copies `from` to `to` while the link lets bytes through; returns when either side closes or
/// the link goes down (dropping both halves closes the connection).
async fn one_way(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<LinkState>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Read during a partition, the bytes wait here like packets in a queue.
        if !passable(&mut state).await || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
