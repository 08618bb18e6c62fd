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

/// Client fields the proxy sets itself: never passed on as the client sent
/// them.
const SET_BY_PROXY: [HeaderName; 6] = [
    header::HOST,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    TENANT,
    CLIENT_SUBJECT,
];

/// What a field's name makes it, for the fields the proxy treats apart:
/// read from the name as written, in any case, without building a
/// `HeaderName` (by length first, so that most names are told apart without
/// comparing their bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Date,
    /// Any other field in [`HOP_BY_HOP`].
    HopByHop,
    /// A field in [`SET_BY_PROXY`].
    SetByProxy,
    Other,
}

impl Known {
    pub(crate) fn of(name: &[u8]) -> Self {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        match name.len() {
            2 if is("te") => Self::HopByHop,
            4 if is("date") => Self::Date,
            4 if is("host") => Self::SetByProxy,
            7 if is("trailer") => Self::HopByHop,
            7 if is("upgrade") => Self::Upgrade,
            10 if is("connection") => Self::Connection,
            10 if is("keep-alive") => Self::HopByHop,
            14 if is("content-length") => Self::ContentLength,
            15 if is("x-forwarded-for") => Self::SetByProxy,
            16 if is("proxy-connection") => Self::HopByHop,
            16 if is("x-forwarded-host") => Self::SetByProxy,
            17 if is("transfer-encoding") => Self::TransferEncoding,
            17 if is("x-forwarded-proto") => Self::SetByProxy,
            18 if is("proxy-authenticate") => Self::HopByHop,
            19 if is("proxy-authorization") => Self::HopByHop,
            19 if is("x-portcullis-tenant") => Self::SetByProxy,
            27 if is("x-portcullis-client-subject") => Self::SetByProxy,
            _ => Self::Other,
        }
    }
}

/// True when an HTTP/1.1 request asks to switch protocols (e.g. WebSocket).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(token))
}

/// The tokens of a message's `Connection` fields (RFC 9110 §7.6.1).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    tokens(connection_values(headers))
}

/// The values of a message's `Connection` fields.
pub(crate) fn connection_values(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .map(HeaderValue::as_bytes)
}

/// The comma-separated tokens of field values; a value that is not all
/// visible ASCII has none (as `HeaderValue::to_str` would have it).
pub(crate) fn tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a str> {
    values
        .filter_map(visible_ascii)
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

/// A field value as text when it is all visible ASCII (or tabs), as
/// `HeaderValue::to_str` reads one.
pub(crate) fn visible_ascii(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names,
/// and `Upgrade` (a response's, when there is no protocol switch).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none (HTTP/2) or only `Connection: keep-alive`:
    // one pass over the few names present is cheaper than a hash lookup
    // for each of the nine names that could be.
    if headers
        .keys()
        .any(|name| is_hop_by_hop(name) || name == header::UPGRADE)
    {
        remove_hop_by_hop(headers);
    }
}

pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.iter().any(|hop| hop == name)
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// `n` in decimal, written at the end of `scratch`: a Content-Length or a
/// status code, without a `String` per response.
pub(crate) fn decimal(mut n: u64, scratch: &mut [u8; 20]) -> &[u8] {
    let mut at = scratch.len();
    loop {
        at -= 1;
        // n % 10 < 10: fits in a u8.
        scratch[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &scratch[at..];
        }
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
    pub proto: HeaderValue,
    /// The Host the client asked for, as sent.
    pub host: &'a HeaderValue,
    /// A verified client certificate's subject, when the route passes it on.
    pub client_subject: Option<HeaderValue>,
}

/// How the client's request head becomes the one the upstream gets.
///
/// The rewrite is applied while the upstream head is written, field by
/// field, rather than by editing the client's header map first: removing
/// and inserting in a `HeaderMap` hashes every name again, and the map is
/// thrown away right after.
///
/// `X-Forwarded-*` from the client are replaced, not appended to: at the
/// edge nothing before us is trusted, and appending would let a client forge
/// the address a backend sees. The same goes for the client-subject and
/// tenant headers, and for any header the route sets.
#[derive(Debug)]
pub(crate) struct RequestRewrite<'a> {
    /// `Upgrade` and `Connection: upgrade` go through (a protocol switch).
    keep_upgrade: bool,
    forwarded: Forwarded<'a>,
    /// Headers the route sets, replacing the client's.
    route_headers: &'a [(HeaderName, HeaderValue)],
    /// Fields the client's `Connection` names besides `close`, `keep-alive`
    /// and `upgrade`: hop-by-hop too (RFC 9110 §7.6.1). Almost always empty.
    connection_named: Vec<HeaderName>,
}

impl<'a> RequestRewrite<'a> {
    /// `connection` is the values of the client's `Connection` fields.
    pub(crate) fn new<'c>(
        connection: impl Iterator<Item = &'c [u8]>,
        keep_upgrade: bool,
        forwarded: Forwarded<'a>,
        route_headers: &'a [(HeaderName, HeaderValue)],
    ) -> Self {
        let connection_named = tokens(connection)
            .filter(|t| {
                !(t.is_empty()
                    || t.eq_ignore_ascii_case("close")
                    || t.eq_ignore_ascii_case("keep-alive")
                    || t.eq_ignore_ascii_case("upgrade"))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        Self {
            keep_upgrade,
            forwarded,
            route_headers,
            connection_named,
        }
    }

    /// True when the client's field `name` goes upstream as sent.
    pub(crate) fn forwards(&self, name: &HeaderName) -> bool {
        if name == header::UPGRADE {
            return self.keep_upgrade;
        }
        !(is_hop_by_hop(name)
            || SET_BY_PROXY.iter().any(|set| set == name)
            || self.route_headers.iter().any(|(set, _)| set == name)
            || self.connection_named.iter().any(|named| named == name))
    }

    /// [`Self::forwards`] for a name as the client wrote it, in any case.
    pub(crate) fn forwards_name(&self, name: &[u8]) -> bool {
        let is = |known: &HeaderName| name.eq_ignore_ascii_case(known.as_str().as_bytes());
        match Known::of(name) {
            Known::Upgrade => self.keep_upgrade,
            Known::Connection | Known::TransferEncoding | Known::HopByHop | Known::SetByProxy => {
                false
            }
            Known::ContentLength | Known::Date | Known::Other => {
                !(self.route_headers.iter().any(|(set, _)| is(set))
                    || self.connection_named.iter().any(is))
            }
        }
    }

    /// The fields the proxy sets, written after the client's.
    pub(crate) fn added(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        // Statics, not consts: the iterator hands out references to them.
        static HOST: HeaderName = header::HOST;
        static FOR: HeaderName = X_FORWARDED_FOR;
        static PROTO: HeaderName = X_FORWARDED_PROTO;
        static FORWARDED_HOST: HeaderName = X_FORWARDED_HOST;
        static SUBJECT: HeaderName = CLIENT_SUBJECT;
        static CONNECTION: HeaderName = header::CONNECTION;
        static UPGRADE: HeaderValue = HeaderValue::from_static("upgrade");
        let upgrade = self.keep_upgrade.then_some((&CONNECTION, &UPGRADE));
        let subject = self
            .forwarded
            .client_subject
            .as_ref()
            .map(|subject| (&SUBJECT, subject));
        [
            (&HOST, self.forwarded.host),
            (&FOR, self.forwarded.forwarded_for),
            (&PROTO, &self.forwarded.proto),
            (&FORWARDED_HOST, self.forwarded.host),
        ]
        .into_iter()
        .chain(subject)
        // A header the route sets wins over the proxy's own.
        .filter(|(name, _)| !self.route_headers.iter().any(|(set, _)| set == *name))
        .chain(upgrade)
        .chain(self.route_headers.iter().map(|(name, value)| (name, value)))
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
        strip_hop_by_hop(&mut map);
        assert_eq!(map.len(), 1);
        assert!(map.contains_key("accept"));
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_left_alone() {
        let mut map = headers(&[("content-type", "text/plain"), ("content-length", "2")]);
        strip_hop_by_hop(&mut map);
        assert_eq!(map.len(), 2);
        let mut map = headers(&[("upgrade", "h2c"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut map);
        assert_eq!(
            map.len(),
            1,
            "an Upgrade without Connection: upgrade is dropped"
        );
    }

    /// The upstream's fields: the client's that go through, then the added.
    fn upstream(client: &HeaderMap, rewrite: &RequestRewrite<'_>) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in client.iter().filter(|(name, _)| rewrite.forwards(name)) {
            map.append(name, value.clone());
        }
        for (name, value) in rewrite.added() {
            map.append(name, value.clone());
        }
        map
    }

    fn forwarded<'a>(client: &'a HeaderValue, host: &'a HeaderValue) -> Forwarded<'a> {
        Forwarded {
            forwarded_for: client,
            proto: HeaderValue::from_static("https"),
            host,
            client_subject: None,
        }
    }

    #[test]
    fn forwarded_headers_replace_client_values() {
        let client = headers(&[
            ("host", "App.Example.com"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "http"),
            ("x-portcullis-client-subject", "CN=forged"),
            ("x-portcullis-tenant", "someone-else"),
            ("accept", "*/*"),
        ]);
        let address = forwarded_for("2001:db8::1".parse().unwrap());
        let host = HeaderValue::from_static("app.example.com");
        let rewrite = RequestRewrite::new(
            connection_values(&client),
            false,
            forwarded(&address, &host),
            &[],
        );
        let map = upstream(&client, &rewrite);
        assert_eq!(map["x-forwarded-for"], "2001:db8::1");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-forwarded-host"], "app.example.com");
        assert_eq!(map["host"], "app.example.com");
        assert_eq!(map["accept"], "*/*");
        assert_eq!(map.len(), 5, "each set once: {map:?}");
        assert!(!map.contains_key("x-portcullis-client-subject"));
        assert!(!map.contains_key("x-portcullis-tenant"));
    }

    #[test]
    fn the_upstream_head_has_no_hop_by_hop_fields_and_the_route_headers_win() {
        let client = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-portcullis-tenant", "forged"),
            ("accept", "*/*"),
        ]);
        let route = [
            (TENANT, HeaderValue::from_static("t-1")),
            (X_FORWARDED_PROTO, HeaderValue::from_static("http")),
        ];
        let address = forwarded_for("192.0.2.1".parse().unwrap());
        let host = HeaderValue::from_static("a.test");
        let rewrite = RequestRewrite::new(
            connection_values(&client),
            false,
            forwarded(&address, &host),
            &route,
        );
        let map = upstream(&client, &rewrite);
        let mut names: Vec<_> = map.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "host",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-portcullis-tenant"
            ]
        );
        assert_eq!(map["x-portcullis-tenant"], "t-1");
        assert_eq!(map["x-forwarded-proto"], "http", "the route's value, once");
        assert_eq!(map.get_all("x-forwarded-proto").iter().count(), 1);
    }

    #[test]
    fn a_name_as_written_is_forwarded_exactly_when_its_header_name_is() {
        let client = headers(&[("connection", "keep-alive, X-Secret"), ("accept", "*/*")]);
        let address = forwarded_for("192.0.2.1".parse().unwrap());
        let host = HeaderValue::from_static("a.test");
        let route = [
            (TENANT, HeaderValue::from_static("t-1")),
            (
                HeaderName::from_static("x-set"),
                HeaderValue::from_static("1"),
            ),
        ];
        for keep_upgrade in [false, true] {
            let rewrite = RequestRewrite::new(
                connection_values(&client),
                keep_upgrade,
                forwarded(&address, &host),
                &route,
            );
            let (hop, set) = (HOP_BY_HOP, SET_BY_PROXY);
            let listed = hop.iter().chain(&set).map(HeaderName::as_str);
            let others = [
                "Accept",
                "Upgrade",
                "X-Secret",
                "x-secret",
                "X-Set",
                "Content-Length",
                "Cookie",
                "x-forwarded-fo",
                "hosts",
                "tf",
            ];
            for name in listed.chain(others) {
                let upper = name.to_ascii_uppercase();
                for written in [name, upper.as_str()] {
                    let header = HeaderName::from_bytes(written.as_bytes()).unwrap();
                    assert_eq!(
                        rewrite.forwards_name(written.as_bytes()),
                        rewrite.forwards(&header),
                        "{written} (upgrade {keep_upgrade})"
                    );
                }
            }
        }
    }

    #[test]
    fn a_known_name_is_known_in_any_case_and_the_lists_agree() {
        let (hop, set) = (HOP_BY_HOP, SET_BY_PROXY);
        for (names, expected) in [
            (&hop[..], Known::HopByHop),
            (&set[..], Known::SetByProxy),
            (&[header::UPGRADE][..], Known::Upgrade),
            (&[header::DATE][..], Known::Date),
            (&[header::CONTENT_LENGTH][..], Known::ContentLength),
        ] {
            for name in names {
                let name = name.as_str();
                let expected = match name {
                    "connection" => Known::Connection,
                    "transfer-encoding" => Known::TransferEncoding,
                    _ => expected,
                };
                assert_eq!(Known::of(name.as_bytes()), expected, "{name}");
                let upper = name.to_ascii_uppercase();
                assert_eq!(Known::of(upper.as_bytes()), expected, "{upper}");
            }
        }
        for other in ["accept", "x-forwarded-fo", "hosts", "dates", "tf", "cookie"] {
            assert_eq!(Known::of(other.as_bytes()), Known::Other, "{other}");
        }
    }

    #[test]
    fn a_protocol_switch_keeps_upgrade_and_says_connection_upgrade() {
        let client = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&client));
        let address = forwarded_for("192.0.2.1".parse().unwrap());
        let host = HeaderValue::from_static("a.test");
        let rewrite = RequestRewrite::new(
            connection_values(&client),
            true,
            forwarded(&address, &host),
            &[],
        );
        let map = upstream(&client, &rewrite);
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map.get_all("connection").iter().count(), 1);
    }
}
