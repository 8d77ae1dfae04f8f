//! Open WebSocket tunnels per client address, bounded: sockets before authentication count too,
//! since the tunnel opens before the service reads the first frame. (The service bounds sockets
//! per user and the size of frames.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct Tunnels {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open tunnel's place in its address's count, given back when dropped.
pub struct Tunnel {
    tunnels: Arc<Tunnels>,
    address: IpAddr,
}

impl Tunnels {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::default(),
        })
    }

    /// A tunnel for `address`; `None` when it holds its share already.
    pub fn open(self: &Arc<Self>, address: IpAddr) -> Option<Tunnel> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Tunnel {
            tunnels: self.clone(),
            address,
        })
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let mut open = self.tunnels.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_until_it_closes_one() {
        let tunnels = Tunnels::new(2);
        let address = IpAddr::from([198, 51, 100, 7]);
        let first = tunnels.open(address).unwrap();
        let _second = tunnels.open(address).unwrap();
        assert!(tunnels.open(address).is_none());
        assert!(tunnels.open(IpAddr::from([198, 51, 100, 8])).is_some());
        drop(first);
        assert!(tunnels.open(address).is_some());
    }
}
