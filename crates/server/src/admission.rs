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
        let ip = host_of(peer.ip());
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

/// The host a connection counts against: an IPv6 client by its /64 (one host usually owns a
/// whole /64 and could otherwise rotate through it), an IPv4-mapped one as IPv4.
fn host_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
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
