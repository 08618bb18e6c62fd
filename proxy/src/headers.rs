//! Header rewriting between client and upstream (RFC 9110 §7.6.1).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Header that carries the tenant of a tenant-portal route upstream; never
/// accepted from clients.
pub const TENANT: HeaderName = HeaderName::from_static("x-portcullis-tenant");
/// Header that carries a verified client certificate's subject upstream.
pub const CLIENT_SUBJECT: HeaderName = HeaderName::from_static("x-portcullis-client-subject");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// True when an HTTP/1.1 request asks to switch protocols (e.g. WebSocket).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// With `keep_upgrade`, `Upgrade` and `Connection: upgrade` survive so that
/// the upstream sees the protocol switch request.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none (HTTP/2) or only `Connection: keep-alive`:
    // one pass over the few names present is cheaper than a hash lookup
    // for each of the nine names that could be.
    if headers
        .keys()
        .any(|name| is_hop_by_hop(name) || name == header::UPGRADE)
    {
        remove_hop_by_hop(headers, keep_upgrade);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.iter().any(|hop| hop == name)
}

fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|name| !(keep_upgrade && name == header::UPGRADE))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
}

/// The `X-Forwarded-For` value for a client address (once per connection).
pub(crate) fn forwarded_for(ip: std::net::IpAddr) -> HeaderValue {
    // An IP address's text form is always a valid header value.
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// What the proxy tells the upstream about the original request.
#[derive(Debug)]
pub(crate) struct Forwarded<'a> {
    /// The client's IP address, as an `X-Forwarded-For` value.
    pub forwarded_for: &'a HeaderValue,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The Host the client asked for, as sent.
    pub host: &'a HeaderValue,
    /// A verified client certificate's subject, when the route passes it on.
    pub client_subject: Option<HeaderValue>,
}

/// Rewrites request headers for the upstream.
///
/// `X-Forwarded-*` from the client are replaced, not appended to: at the
/// edge nothing before us is trusted, and appending would let a client forge
/// the address a backend sees. The same goes for the client-subject header.
pub(crate) fn rewrite_request(
    headers: &mut HeaderMap,
    keep_upgrade: bool,
    forwarded: Forwarded<'_>,
) {
    strip_hop_by_hop(headers, keep_upgrade);
    // Headers only Portcullis may set: any the client sent are dropped
    // (checked in one pass, as they are almost never there).
    if headers
        .keys()
        .any(|name| name == TENANT || name == CLIENT_SUBJECT)
    {
        headers.remove(TENANT);
        headers.remove(CLIENT_SUBJECT);
    }
    headers.insert(X_FORWARDED_FOR, forwarded.forwarded_for.clone());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(forwarded.proto));
    headers.insert(X_FORWARDED_HOST, forwarded.host.clone());
    headers.insert(header::HOST, forwarded.host.clone());
    if let Some(subject) = forwarded.client_subject {
        headers.insert(CLIENT_SUBJECT, subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(map.len(), 1);
        assert!(map.contains_key("accept"));
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_left_alone() {
        let mut map = headers(&[("content-type", "text/plain"), ("content-length", "2")]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(map.len(), 2);
        let mut map = headers(&[("upgrade", "h2c"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(
            map.len(),
            1,
            "an Upgrade without Connection: upgrade is dropped"
        );
    }

    #[test]
    fn upgrade_survives_when_tunnelling() {
        let mut map = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&map));
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["connection"], "upgrade");
    }

    #[test]
    fn forwarded_headers_replace_client_values() {
        let mut map = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-portcullis-client-subject", "CN=forged"),
            ("x-portcullis-tenant", "someone-else"),
        ]);
        let host = HeaderValue::from_static("app.example.com");
        rewrite_request(
            &mut map,
            false,
            Forwarded {
                forwarded_for: &forwarded_for("2001:db8::1".parse().unwrap()),
                proto: "https",
                host: &host,
                client_subject: None,
            },
        );
        assert_eq!(map["x-forwarded-for"], "2001:db8::1");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-forwarded-host"], "app.example.com");
        assert_eq!(map["host"], "app.example.com");
        assert!(!map.contains_key("x-portcullis-client-subject"));
        assert!(!map.contains_key("x-portcullis-tenant"));
    }
}
