//! The client's address: the socket peer, unless that peer is a reverse
//! proxy the operator trusts (`KEYWARD_TRUSTED_PROXIES`), in which case the
//! address it forwarded in `X-Forwarded-For`.
//!
//! Behind a proxy every socket peer is the proxy, so per-IP login throttling
//! would otherwise lock everyone out together. The header is read only from
//! trusted peers, and right to left: each trusted proxy appends the address
//! it saw, so the first one from the right that is not a trusted proxy is
//! the client (anything left of it was written by the client and may lie).

use std::net::IpAddr;

use axum::http::HeaderMap;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim);
    let mut client = peer;
    for hop in hops.rev() {
        // A hop that is not an address (garbage or `unknown`) ends the
        // chain: nothing to its left can be trusted.
        let Ok(hop) = hop.parse::<IpAddr>() else {
            break;
        };
        client = hop;
        if !trusted_proxies.contains(&hop) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &headers, &[]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(ip("198.51.100.1"), &headers, &[ip("10.0.0.1")]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_spoofed_hops_are_skipped() {
        let proxy = ip("10.0.0.1");
        // The client claimed 1.2.3.4; the proxy appended what it saw.
        let headers = forwarded(&["1.2.3.4, 203.0.113.9"]);
        assert_eq!(client_ip(proxy, &headers, &[proxy]), ip("203.0.113.9"));
        // Two proxies in a row, the header split over two lines.
        let inner = ip("10.0.0.2");
        let headers = forwarded(&["203.0.113.9", "10.0.0.2"]);
        assert_eq!(
            client_ip(proxy, &headers, &[proxy, inner]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_proxy_without_a_usable_header_is_the_client() {
        let proxy = ip("10.0.0.1");
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
        let headers = forwarded(&["unknown"]);
        assert_eq!(client_ip(proxy, &headers, &[proxy]), proxy);
        let headers = forwarded(&["1.2.3.4, garbage, 203.0.113.9"]);
        assert_eq!(client_ip(proxy, &headers, &[proxy]), ip("203.0.113.9"));
    }
}
