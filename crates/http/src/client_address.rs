//! The client's address, for limits keyed on it (the login throttle). It is the socket's peer,
//! unless the peer is a trusted proxy (the gateway, a load balancer: `--trusted-proxies`), whose
//! `X-Forwarded-For` then names the client: read from the right, skipping trusted proxies, the
//! first other address is the client. A client that sends its own `X-Forwarded-For` gains
//! nothing: from an untrusted peer the header is ignored, and the gateway replaces the header
//! with the peer it saw.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;

/// One trusted network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("not an IP address or network (a.b.c.d/n): {text}");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let most = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| bad())?,
            None => most,
        };
        if prefix > most {
            return Err(bad());
        }
        Ok(Self { address, prefix })
    }

    fn contains(&self, address: IpAddr) -> bool {
        let bits = |address: IpAddr| match address {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (u128::from(u32::from(v4)) << 96, true),
                None => (u128::from(v6), false),
            },
        };
        let ((mine, mine_v4), (theirs, theirs_v4)) = (bits(self.address), bits(address));
        if mine_v4 != theirs_v4 {
            return false;
        }
        let prefix = u32::from(self.prefix);
        if prefix == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - prefix);
        mine & mask == theirs & mask
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// Loopback only: a proxy on the same machine (and the tests' gateway).
    pub const LOOPBACK: &'static str = "127.0.0.1/8,::1";

    /// Comma-separated addresses and networks (`10.0.0.0/8,192.168.1.5`); empty trusts none.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(Network::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }

    /// The client's address, given the socket's peer and the request's headers.
    pub fn client(&self, peer: Option<IpAddr>, headers: &axum::http::HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|item| item.trim().parse::<IpAddr>().ok())
            .collect();
        // From the right: the nearest untrusted hop is the client.
        Some(
            forwarded
                .iter()
                .rev()
                .copied()
                .find(|hop| !self.trusts(*hop))
                .or(forwarded.first().copied())
                .unwrap_or(peer),
        )
    }
}

/// The client's address (see the module), `None` when the server records no peers.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S> FromRequestParts<S> for ClientAddress
where
    Arc<TrustedProxies>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientAddress(
            Arc::<TrustedProxies>::from_ref(state).client(peer, &parts.headers),
        ))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let gateway: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        // Through the gateway: the address it forwards.
        assert_eq!(
            trusted.client(Some(gateway), &headers("203.0.113.7")),
            Some(client)
        );
        // A client's own header passed along is skipped: the nearest untrusted hop counts.
        assert_eq!(
            trusted.client(Some(gateway), &headers("1.2.3.4, 203.0.113.7, 10.9.9.9")),
            Some(client)
        );
        // Straight from a client: its header is ignored.
        assert_eq!(
            trusted.client(Some(stranger), &headers("203.0.113.7")),
            Some(stranger)
        );
        assert_eq!(
            trusted.client(Some(gateway), &HeaderMap::new()),
            Some(gateway)
        );
        assert_eq!(
            TrustedProxies::default().client(Some(gateway), &headers("203.0.113.7")),
            Some(gateway)
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nonsense").is_err());
        let loopback = TrustedProxies::parse(TrustedProxies::LOOPBACK).unwrap();
        assert!(loopback.trusts("127.0.0.1".parse().unwrap()));
        assert!(loopback.trusts("::1".parse().unwrap()));
        assert!(!loopback.trusts("10.0.0.1".parse().unwrap()));
    }
}
