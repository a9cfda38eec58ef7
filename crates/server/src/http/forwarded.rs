//! The client address behind a reverse proxy. Rate limits, the trust of a client for a user and
//! the audit all key on the client's address; behind a TLS proxy every connection comes from the
//! proxy, so without this every client would share one budget (and one trust). Only for
//! connections from a configured `[http] trusted_proxies` address is `X-Forwarded-For` read, and
//! then from the right: the first address that is not itself a trusted proxy is the client (a
//! client can write anything into the header, but not what the proxies append after it).

use std::net::{IpAddr, SocketAddr};

pub use crate::admission::Network;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;

/// The client of a request that arrived from `peer`: `peer` itself unless it is a trusted
/// proxy, else the rightmost `X-Forwarded-For` address that is not a trusted proxy (the
/// leftmost one if all are), or `peer` when the header is missing or unreadable.
pub fn client(peer: SocketAddr, headers: &HeaderMap, trusted: &[Network]) -> SocketAddr {
    let is_proxy = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_proxy(peer.ip()) {
        return peer;
    }
    // From the right: what the trusted proxies appended comes last; whatever a client wrote
    // itself is further left and is never reached once a non-proxy address is found. (Bytes a
    // client wrote that are not UTF-8 spoil only their own part of the line.)
    let lines: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let mut leftmost = None;
    let mut client = None;
    'hops: for line in lines.iter().rev() {
        for part in line.rsplit(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some(ip) = hop_address(part) else {
                // A hop the proxies wrote that we cannot read: no client can be told.
                return peer;
            };
            leftmost = Some(ip);
            if !is_proxy(ip) {
                client = Some(ip);
                break 'hops;
            }
        }
    }
    let client = client.or(leftmost);
    client.map_or(peer, |ip| SocketAddr::new(ip, 0))
}

/// One `X-Forwarded-For` hop as proxies write them: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]:4711`, `fe80::1%eth0`.
fn hop_address(part: &str) -> Option<IpAddr> {
    if let Ok(ip) = part.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = part.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let unbracketed = part
        .strip_prefix('[')
        .and_then(|p| p.split(']').next())
        .unwrap_or(part);
    let without_zone = unbracketed.split('%').next().unwrap_or(unbracketed);
    without_zone.parse::<IpAddr>().ok()
}

/// Rewrites the request's `ConnectInfo` (the connection's peer) to the forwarded client.
pub fn rewrite(request: &mut Request, trusted: &[Network]) {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return;
    };
    let client = client(peer, request.headers(), trusted);
    if client != peer {
        request.extensions_mut().insert(ConnectInfo(client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<Network> {
        list.iter().map(|n| Network::parse(n).unwrap()).collect()
    }

    #[test]
    fn only_a_trusted_proxy_is_believed_and_from_the_right() {
        let trusted = nets(&["10.0.0.0/8"]);
        let proxy: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let stranger: SocketAddr = "192.0.2.9:4000".parse().unwrap();
        let ip = |s: &SocketAddr| s.ip().to_string();
        // Not from a proxy: the header is the client's own say, ignored.
        assert_eq!(
            ip(&client(stranger, &headers(&["198.51.100.1"]), &trusted)),
            "192.0.2.9"
        );
        // From the proxy: the client it saw, not what the client wrote before it.
        assert_eq!(
            ip(&client(
                proxy,
                &headers(&["6.6.6.6, 198.51.100.1"]),
                &trusted
            )),
            "198.51.100.1"
        );
        // Proxies in a chain are skipped; several header lines count as one list.
        assert_eq!(
            ip(&client(
                proxy,
                &headers(&["203.0.113.7", "10.1.1.1"]),
                &trusted
            )),
            "203.0.113.7"
        );
        // No header, or an unreadable hop the proxies wrote: the proxy itself.
        assert_eq!(ip(&client(proxy, &headers(&[]), &trusted)), "10.0.0.5");
        assert_eq!(
            ip(&client(proxy, &headers(&["1.2.3.4, junk"]), &trusted)),
            "10.0.0.5"
        );
        // Junk a client wrote on the left is never reached, even bytes that are not UTF-8, in
        // the proxy's line or a line of its own.
        assert_eq!(
            ip(&client(proxy, &headers(&["junk, 198.51.100.1"]), &trusted)),
            "198.51.100.1"
        );
        let mut raw = HeaderMap::new();
        raw.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 198.51.100.1").unwrap(),
        );
        assert_eq!(ip(&client(proxy, &raw, &trusted)), "198.51.100.1");
        let mut raw = HeaderMap::new();
        raw.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
        raw.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        assert_eq!(ip(&client(proxy, &raw, &trusted)), "198.51.100.1");
        // The forms proxies write: ports, brackets, zones, a trailing comma.
        for (xff, want) in [
            ("198.51.100.1:4711", "198.51.100.1"),
            ("[2001:db8::7]:4711", "2001:db8::7"),
            ("fe80::1%eth0", "fe80::1"),
            ("198.51.100.1,", "198.51.100.1"),
        ] {
            assert_eq!(
                ip(&client(proxy, &headers(&[xff]), &trusted)),
                want,
                "{xff}"
            );
        }
    }
}
