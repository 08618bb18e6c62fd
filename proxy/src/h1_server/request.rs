//! Reading a client's request head, and telling the plain ones from the rest.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::{Method, Request, Uri, Version};

use crate::plain_request::PlainFields;
use crate::span::{Field, Span};

/// Header fields accepted in a request head (hyper's default too, so that a
/// head refused here is refused by hyper in the same way).
const MAX_HEADERS: usize = 100;

/// What the front of the read buffer holds.
#[derive(Debug)]
// Unpacked where it is returned, once per request: boxing the request would
// allocate for each one.
#[allow(clippy::large_enum_variant)]
pub(super) enum Head {
    /// A whole request with no body, taken off the buffer.
    Plain(Request<PlainFields>),
    /// The head is not complete yet.
    Partial,
    /// Anything else, left in the buffer for hyper: a body, `Expect`, an
    /// upgrade, `CONNECT`, a target not in origin form, HTTP/2's preface, or
    /// a head that does not parse (hyper answers it with its 4xx).
    Other,
}

/// Parses the request head at the front of `buf`.
///
/// A head is taken only when its request has no body and asks for nothing
/// but an answer. Whatever could frame a body (`Transfer-Encoding`, a
/// `Content-Length` other than a single `0`) or change the connection
/// (`Upgrade`, `Expect`) sends the connection to hyper with the head still in
/// the buffer. So no request with a body, and no head two parsers could read
/// two ways (the stuff of request smuggling), is read here.
///
/// The request's fields stay in the head's bytes (see [`PlainFields`]).
pub(super) fn parse(buf: &mut BytesMut) -> Head {
    let mut raw = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buf,
        &mut raw,
    ) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Other,
    };
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Head::Other;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Head::Other;
    };
    if method == Method::CONNECT || !target.starts_with('/') {
        return Head::Other;
    }
    let target = Span::within(buf, target.as_bytes());
    let fields: Vec<Field> = parsed
        .headers
        .iter()
        .map(|header| Field::within(buf, header))
        .collect();
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };

    // Checked on the raw bytes first, so that a head left to hyper stays
    // in the buffer untouched.
    let mut lengths = 0;
    for Field { name, value } in &fields {
        let name = name.of(buf);
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            if lengths > 1 || value.of(buf) != b"0" {
                return Head::Other;
            }
        } else if [&b"transfer-encoding"[..], b"expect", b"upgrade"]
            .iter()
            .any(|special| name.eq_ignore_ascii_case(special))
        {
            return Head::Other;
        }
    }
    let head = buf.split_to(length).freeze();
    let Ok(uri) = Uri::from_maybe_shared(target.slice(&head)) else {
        // httparse and `http` disagree on the target (one `http` finds too
        // long, or with a byte it does not allow): hyper gets the head back,
        // and answers it with its 400 or 414.
        let mut restored = BytesMut::from(&head[..]);
        restored.unsplit(std::mem::take(buf));
        *buf = restored;
        return Head::Other;
    };
    let fields = PlainFields::new(head, fields, version);
    let mut request = Request::new(fields);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    Head::Plain(request)
}
