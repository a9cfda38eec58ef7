//! Connection admission for the HTTP and LDAP listeners: at most `max` connections at once,
//! and at most `per_client` from one client (an IPv4 address, an IPv6 /64), so one host cannot
//! take every slot. A connection over either cap is refused on arrival (closed before anything
//! is read or allocated for it), and refusals are logged at most every ten seconds so a flood
//! cannot flood the log too.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use countersign_core::attempt::client_host;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Admission {
    front: &'static str,
    total: Arc<Semaphore>,
    max: usize,
    per_client: usize,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Refused connections since the last warning, and when that was (ms since start).
    refused: AtomicU64,
    last_warning: AtomicU64,
    started: Instant,
}

/// A connection's place; dropping it gives the place back.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut m) = self.clients.lock()
            && let Some(n) = m.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    pub fn new(front: &'static str, max: usize, per_client: usize) -> Self {
        Self {
            front,
            total: Arc::new(Semaphore::new(max)),
            max,
            per_client,
            clients: Arc::default(),
            refused: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// A place for a connection from `peer`, or `None` (and a rate-limited warning).
    pub fn admit(&self, peer: SocketAddr) -> Option<Admitted> {
        let Ok(permit) = self.total.clone().try_acquire_owned() else {
            self.refused(peer, "max_connections reached");
            return None;
        };
        let ip = client_host(peer.ip());
        let admitted = self.clients.lock().ok().and_then(|mut m| {
            let n = m.entry(ip).or_insert(0);
            (*n < self.per_client).then(|| {
                *n += 1;
                Admitted {
                    _permit: permit,
                    clients: self.clients.clone(),
                    ip,
                }
            })
        });
        if admitted.is_none() {
            self.refused(peer, "max_connections_per_client reached");
        }
        admitted
    }

    /// Connections holding a place now.
    pub fn open(&self) -> usize {
        self.max - self.total.available_permits()
    }

    fn refused(&self, peer: SocketAddr, why: &str) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused.store(0, Ordering::Relaxed);
            tracing::warn!(client = %peer, refused, "{} connections refused: {why}", self.front);
        }
    }
}

/// An address or a network (`10.0.0.0/8`, `::1`), as `[http] trusted_proxies` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `ADDR` or `ADDR/PREFIX`; `None` when it is neither.
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[test]
    fn networks_parse_and_match() {
        let n = Network::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(
            Network::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "::/129", "proxy", "10.0.0.0/x", ""] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_ipv6_slash_64_is_one_client() {
        let a = Admission::new("test", 10, 2);
        let at = |last: u16| {
            SocketAddr::from((
                std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last),
                1,
            ))
        };
        let _one = a.admit(at(1)).unwrap();
        let _two = a.admit(at(2)).unwrap();
        assert!(a.admit(at(3)).is_none(), "a third address of the same /64");
        let other = SocketAddr::from((std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1), 1));
        assert!(a.admit(other).is_some(), "another /64");
    }

    #[test]
    fn caps_hold_overall_and_per_client_and_places_come_back() {
        let a = Admission::new("test", 3, 2);
        let one = a.admit(peer([10, 0, 0, 1], 1));
        let two = a.admit(peer([10, 0, 0, 1], 2));
        assert!(one.is_some() && two.is_some());
        assert!(a.admit(peer([10, 0, 0, 1], 3)).is_none(), "per client");
        let other = a.admit(peer([10, 0, 0, 2], 1));
        assert!(other.is_some());
        assert!(a.admit(peer([10, 0, 0, 3], 1)).is_none(), "overall");
        assert_eq!(a.open(), 3);
        drop(one);
        assert_eq!(a.open(), 2);
        assert!(
            a.admit(peer([10, 0, 0, 1], 4)).is_some(),
            "a place came back"
        );
    }
}
