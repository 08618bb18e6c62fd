//! Request heads written to an upstream and response heads read back.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, response, Method, StatusCode, Version};

use super::Error;
use crate::headers::{self, Known, RequestRewrite};
use crate::plain_request::PlainFields;
use crate::span::Field;

/// Response header fields accepted from an upstream (hyper's default too).
const MAX_HEADERS: usize = 100;
/// Longest response head accepted; a longer one is a broken upstream.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// How a request body is framed on the wire (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    /// No body follows the head.
    Empty,
    /// Exactly this many bytes follow (the request's `Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`, for a body of unknown length.
    Chunked,
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: a HEAD request, or a 1xx, 204 or 304 status.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head and what it says about the connection.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// Status and version; the header fields too, unless `lines` has them.
    pub parts: response::Parts,
    pub framing: Framing,
    /// The connection may carry another request once this body is read.
    pub keep_alive: bool,
    /// The header fields as lines, when they were asked for that way.
    pub lines: Option<Box<FieldLines>>,
}

/// How the forwarder wants a response's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldsAs {
    /// In the response's `HeaderMap`, for hyper to encode.
    Map,
    /// As the lines to write, for a server that writes heads itself (see
    /// [`FieldLines`]).
    Lines,
}

/// An upstream's header fields as they are written to the client: what a
/// server that writes its own heads needs, without a `HeaderMap` built from
/// the head only to be written back out field by field.
#[derive(Debug)]
pub(crate) struct FieldLines {
    /// `name: value\r\n` for each field passed on: hop-by-hop fields and
    /// `Content-Length` are left out, names keep the upstream's case. A
    /// `Vec`, not `Bytes`: a `Bytes` made from a buffer with spare capacity
    /// allocates its shared header, one more allocation per response.
    pub lines: Vec<u8>,
    /// The upstream's `Content-Length`.
    pub content_length: Option<u64>,
    /// A `Date` is among the lines.
    pub dated: bool,
}

/// Writes the request line and header fields, ending with the blank line:
/// the client's fields that `rewrite` lets through, then the ones it adds.
pub(crate) fn encode_request(
    parts: &request::Parts,
    rewrite: &RequestRewrite<'_>,
    framing: RequestFraming,
    out: &mut Vec<u8>,
) {
    request_line(parts, out);
    let chunked = framing == RequestFraming::Chunked;
    // RFC 9112 §6.3: never both framings in one message (smuggling).
    let fields = parts.headers.iter().filter(|(name, _)| {
        rewrite.forwards(name) && !(chunked && *name == header::CONTENT_LENGTH)
    });
    encode_fields(fields.chain(rewrite.added()), out);
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// [`encode_request`] for a plain request (no body), whose fields are kept
/// as read: they are written as the client wrote them, names in its case.
pub(crate) fn encode_plain_request(
    parts: &request::Parts,
    fields: &PlainFields,
    rewrite: &RequestRewrite<'_>,
    out: &mut Vec<u8>,
) {
    request_line(parts, out);
    for (name, value) in fields
        .iter()
        .filter(|(name, _)| rewrite.forwards_name(name))
    {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    encode_fields(rewrite.added(), out);
    out.extend_from_slice(b"\r\n");
}

fn request_line(parts: &request::Parts, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    // Origin form (RFC 9112 §3.2.1): an absolute-form or HTTP/2 request's
    // authority travels in `Host`.
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// Writes `name: value` lines, for a head or a chunked body's trailers.
pub(crate) fn encode_fields<'a>(
    fields: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    out: &mut Vec<u8>,
) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses a response head from the front of `buf` and removes it from the
/// buffer; `Ok(None)` when the head is not complete yet.
///
/// Header values share the head's bytes rather than being copied. Hop-by-hop
/// fields are left out on the way (except on a 101, whose `Upgrade` and
/// `Connection` the client needs), and the framing fields are read as they
/// go by, so the head is walked once.
///
/// `fields` is scratch space kept with the connection, so that parsing
/// allocates and zeroes nothing but the header map.
pub(crate) fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
    fields: &mut Vec<Field>,
    fields_as: FieldsAs,
) -> Result<Option<ResponseHead>, Error> {
    let mut raw = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut raw,
    ) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(Error::Malformed(error)),
    };
    let code = parsed.code.unwrap_or_default();
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    fields.clear();
    fields.extend(
        parsed
            .headers
            .iter()
            .map(|header| Field::within(buf, header)),
    );
    let head = buf.split_to(length).freeze();
    let status = StatusCode::from_u16(code).map_err(|_| Error::Status(code))?;
    // A 101's fields go to hyper's upgrade; a `Connection` naming more
    // fields to drop (rare) is left to the map's hop-by-hop strip.
    if fields_as == FieldsAs::Lines && status != StatusCode::SWITCHING_PROTOCOLS {
        if let Some(head) = lines(&head, fields, status, version, method)? {
            return Ok(Some(head));
        }
    }
    build(head, fields, status, version, method).map(Some)
}

/// The head with its fields as [`FieldLines`]; `None` when its `Connection`
/// names fields to drop, which [`build`] handles.
///
/// httparse has already checked each name is a token and each value holds
/// no control character, the checks `HeaderName` and `HeaderValue` make.
fn lines(
    head: &Bytes,
    fields: &[Field],
    status: StatusCode,
    version: Version,
    method: &Method,
) -> Result<Option<ResponseHead>, Error> {
    let mut lines = Vec::with_capacity(head.len());
    let mut seen = Seen::default();
    let mut dated = false;
    for field in fields {
        let name = field.name.of(head);
        let value = field.value.of(head);
        match Known::of(name) {
            Known::ContentLength => {
                seen.content_length(value)?;
                continue;
            }
            Known::TransferEncoding => {
                seen.transfer_encoding(value);
                continue;
            }
            Known::Connection => {
                if seen.connection(value) {
                    return Ok(None);
                }
                continue;
            }
            // Not on a 101, which keeps the map.
            Known::Upgrade | Known::HopByHop => continue,
            Known::Date => dated = true,
            Known::SetByProxy | Known::Other => {}
        }
        lines.extend_from_slice(name);
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(value);
        lines.extend_from_slice(b"\r\n");
    }
    let (framing, keep_alive) = seen.framing(status, version, method);
    let mut parts = response::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    Ok(Some(ResponseHead {
        parts,
        framing,
        keep_alive,
        lines: Some(Box::new(FieldLines {
            lines,
            content_length: seen.content_length,
            dated,
        })),
    }))
}

/// What the framing and connection fields of a response head said.
#[derive(Debug, Default)]
struct Seen {
    content_length: Option<u64>,
    /// `Transfer-Encoding` was present; whether its final coding is chunked.
    chunked: Option<bool>,
    close: bool,
    keep_alive: bool,
}

impl Seen {
    fn content_length(&mut self, value: &[u8]) -> Result<(), Error> {
        let length = parse_length(value).ok_or(Error::ContentLength)?;
        if self.content_length.is_some_and(|seen| seen != length) {
            return Err(Error::ContentLength);
        }
        self.content_length = Some(length);
        Ok(())
    }

    fn transfer_encoding(&mut self, value: &[u8]) {
        // RFC 9112 §6.3: chunked counts only as the final coding.
        self.chunked = Some(last_token(value).eq_ignore_ascii_case(b"chunked"));
    }

    /// Reads a `Connection` value; true when it names other fields.
    fn connection(&mut self, value: &[u8]) -> bool {
        let mut named = false;
        for token in value.split(|&b| b == b',').map(trim) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !token.is_empty() {
                named = true;
            }
        }
        named
    }

    /// How the body is delimited, and whether the connection can be reused.
    fn framing(&self, status: StatusCode, version: Version, method: &Method) -> (Framing, bool) {
        let switching = status == StatusCode::SWITCHING_PROTOCOLS;
        let bodiless = method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let framing = match (bodiless, self.chunked, self.content_length) {
            (true, _, _) => Framing::Empty,
            (false, Some(true), _) => Framing::Chunked,
            (false, Some(false), _) => Framing::UntilClose,
            (false, None, Some(length)) => Framing::Length(length),
            (false, None, None) => Framing::UntilClose,
        };
        let persistent = match version {
            Version::HTTP_10 => self.keep_alive && !self.close,
            _ => !self.close,
        };
        // Both framings at once can be a smuggling attempt: never reuse.
        let ambiguous = self.chunked.is_some() && self.content_length.is_some();
        let keep_alive = persistent && !ambiguous && !switching && framing != Framing::UntilClose;
        (framing, keep_alive)
    }
}

fn build(
    head: Bytes,
    fields: &[Field],
    status: StatusCode,
    version: Version,
    method: &Method,
) -> Result<ResponseHead, Error> {
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut map = HeaderMap::with_capacity(fields.len());
    let mut seen = Seen::default();
    let mut named = false;
    for field in fields {
        let name = HeaderName::from_bytes(field.name.of(&head)).map_err(|_| Error::HeaderName)?;
        let raw = field.value.slice(&head);
        if name == header::CONTENT_LENGTH {
            seen.content_length(&raw)?;
        } else if name == header::TRANSFER_ENCODING {
            seen.transfer_encoding(&raw);
            if !switching {
                continue;
            }
        } else if name == header::CONNECTION {
            named |= seen.connection(&raw);
            if !switching {
                continue;
            }
        } else if !switching && (headers::is_hop_by_hop(&name) || name == header::UPGRADE) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(raw).map_err(|_| Error::HeaderValue)?;
        map.append(name, value);
    }
    if named && !switching {
        // `Connection` lists more hop-by-hop fields (rare): put it back and
        // let the forwarder's own hop-by-hop strip remove what it names.
        for field in fields {
            let name = field.name.of(&head);
            if name.eq_ignore_ascii_case(b"connection") {
                let value = HeaderValue::from_maybe_shared(field.value.slice(&head))
                    .map_err(|_| Error::HeaderValue)?;
                map.append(header::CONNECTION, value);
            }
        }
        headers::strip_hop_by_hop(&mut map);
    }
    let (framing, keep_alive) = seen.framing(status, version, method);

    let mut parts = response::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = map;
    Ok(ResponseHead {
        parts,
        framing,
        keep_alive,
        lines: None,
    })
}

pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn last_token(value: &[u8]) -> &[u8] {
    value.rsplit(|&b| b == b',').next().map_or(value, trim)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |end| end + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, method: Method) -> Result<Option<ResponseHead>, Error> {
        parse_as(text, method, FieldsAs::Map)
    }

    fn parse_as(
        text: &str,
        method: Method,
        fields_as: FieldsAs,
    ) -> Result<Option<ResponseHead>, Error> {
        parse_response(
            &mut BytesMut::from(text),
            &method,
            &mut Vec::new(),
            fields_as,
        )
    }

    #[test]
    fn a_request_head_has_the_origin_form_target_and_the_rewritten_fields() {
        let (mut parts, ()) = http::Request::post("https://App.test/a?b=1")
            .header("host", "app.test")
            .header("connection", "keep-alive")
            .header("x-one", "1")
            .body(())
            .unwrap()
            .into_parts();
        let client = HeaderValue::from_static("192.0.2.1");
        let host = HeaderValue::from_static("App.test");
        let forwarded = || headers::Forwarded {
            forwarded_for: &client,
            proto: HeaderValue::from_static("https"),
            host: &host,
            client_subject: None,
        };
        let rewrite = RequestRewrite::new(
            headers::connection_values(&parts.headers),
            false,
            forwarded(),
            &[],
        );
        let mut out = Vec::new();
        encode_request(&parts, &rewrite, RequestFraming::Chunked, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /a?b=1 HTTP/1.1\r\nx-one: 1\r\nhost: App.test\r\nx-forwarded-for: 192.0.2.1\r\n\
             x-forwarded-proto: https\r\nx-forwarded-host: App.test\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        // A length that could not be used is not sent beside chunked.
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("x"));
        encode_request(&parts, &rewrite, RequestFraming::Chunked, &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("content-length"));
        parts.method = Method::PUT;
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        encode_request(&parts, &rewrite, RequestFraming::Length(3), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("PUT /a?b=1 HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("\r\ncontent-length: 3\r\n"), "{text}");
        assert!(!text.contains("chunked"), "{text}");
    }

    #[test]
    fn a_partial_head_waits_and_the_rest_stays_in_the_buffer() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n");
        assert!(
            parse_response(&mut buf, &Method::GET, &mut Vec::new(), FieldsAs::Map)
                .unwrap()
                .is_none()
        );
        buf.extend_from_slice(b"\r\nokNEXT");
        let head = parse_response(&mut buf, &Method::GET, &mut Vec::new(), FieldsAs::Map)
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert_eq!(head.parts.headers["content-length"], "2");
        assert_eq!(&buf[..], b"okNEXT");
    }

    #[test]
    fn hop_by_hop_fields_are_left_out_and_connection_decides_reuse() {
        let head = parse(
            "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\nTransfer-Encoding: gzip, chunked\r\nX-Kept: yes\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!head.keep_alive);
        let names: Vec<_> = head.parts.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                Method::GET,
                Framing::UntilClose,
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                Method::HEAD,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                Method::GET,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                Method::GET,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
                Method::GET,
                Framing::UntilClose,
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
                Method::GET,
                Framing::Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n",
                Method::GET,
                Framing::Length(1),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
                Method::GET,
                Framing::Chunked,
                false,
            ),
        ];
        for (text, method, framing, keep_alive) in cases {
            for fields_as in [FieldsAs::Map, FieldsAs::Lines] {
                let head = parse_as(text, method.clone(), fields_as).unwrap().unwrap();
                assert_eq!(
                    (head.framing, head.keep_alive),
                    (framing, keep_alive),
                    "{text:?} {fields_as:?}"
                );
            }
        }
    }

    #[test]
    fn fields_as_lines_are_those_the_map_keeps_written_as_the_upstream_sent_them() {
        let text = "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                    Content-Length: 2\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nSet-Cookie: a=1\r\n\
                    Upgrade: h2c\r\nset-cookie: b=2\r\nTE: trailers\r\nTrailer: x\r\nProxy-Connection: x\r\n\r\nok";
        let head = parse_as(text, Method::GET, FieldsAs::Lines)
            .unwrap()
            .unwrap();
        assert!(head.parts.headers.is_empty());
        let lines = head.lines.unwrap();
        assert_eq!(
            &lines.lines[..],
            b"Server: up\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
        );
        assert_eq!(lines.content_length, Some(2));
        assert!(lines.dated);
        let map = parse(text, Method::GET).unwrap().unwrap().parts.headers;
        let names: Vec<_> = map.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "server",
                "content-length",
                "date",
                "set-cookie",
                "set-cookie"
            ]
        );

        // A `Connection` that names fields to drop, or a 101, keeps the map.
        for text in [
            "HTTP/1.1 200 OK\r\nX-Secret: 1\r\nConnection: X-Secret\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ] {
            let head = parse_as(text, Method::GET, FieldsAs::Lines)
                .unwrap()
                .unwrap();
            assert!(head.lines.is_none(), "{text:?}");
            assert!(!head.parts.headers.contains_key("x-secret"), "{text:?}");
        }
        // Contradicting lengths are refused either way.
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n";
        assert!(matches!(
            parse_as(text, Method::GET, FieldsAs::Lines),
            Err(Error::ContentLength)
        ));
    }

    #[test]
    fn a_switching_response_keeps_its_upgrade_fields_and_is_never_reused() {
        let head = parse(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.parts.status, StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(head.parts.headers["upgrade"], "websocket");
        assert_eq!(head.parts.headers["connection"], "Upgrade");
        assert!(!head.keep_alive);
    }

    #[test]
    fn broken_heads_are_errors() {
        let cases = [
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "SMTP ready\r\n\r\n",
        ];
        for text in cases {
            assert!(parse(text, Method::GET).is_err(), "{text:?}");
        }
        let endless = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(
            parse(&endless, Method::GET),
            Err(Error::HeadTooLarge)
        ));
    }
}
