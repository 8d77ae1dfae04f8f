//! A link: a TCP proxy in front of one process, so `msa chaos` can cut the network to it.
//!
//! Hand-written (about 100 lines on tokio) rather than a proxy crate: what it needs is the one
//! thing proxies do not offer, a switch between three ways a network to a process behaves.
//! - [`LinkState::Up`]: bytes flow both ways.
//! - [`LinkState::Partitioned`]: a partition, as a blocked port behaves: connections stay open
//!   but nothing crosses (each side waits, then times out by its own clock); new connections are
//!   accepted and held. When it heals, what was held flows on.
//! - [`LinkState::Down`]: the process is gone, as a stopped broker looks: every connection is
//!   dropped and new ones are closed at once.

use std::net::SocketAddr;

use anyhow::{Context, Result};
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
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accepting.abort();
        self.state.send_replace(LinkState::Down);
    }
}

impl Link {
    /// A link on a free loopback port to `target`.
    pub async fn open(target: SocketAddr) -> Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a link")?;
        let address = listener.local_addr()?;
        let (state, _) = watch::channel(LinkState::Up);
        let watching = state.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = watching.subscribe();
                tokio::spawn(carry(client, target, state));
            }
        });
        Ok(Link {
            address,
            state,
            accepting,
        })
    }

    pub fn set(&self, state: LinkState) {
        // `send` would keep the old state while no connection listens.
        self.state.send_replace(state);
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
