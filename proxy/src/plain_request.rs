//! The header fields of a plain request, kept as they were read.
//!
//! A plain request (no body, no upgrade; see [`crate::h1_server`]) is
//! forwarded by writing its fields out again, filtered, behind a new request
//! line. Building a `HeaderMap` from them first, only to walk it once, cost
//! more than parsing the head did: hashing each name, counting a reference
//! to the head for each value. So such a request keeps its head's bytes and
//! where each field lies in them.
//!
//! `Request` has no other place for them: its extensions allocate a map for
//! each request. A plain request has no body, so they travel as its body, an
//! empty one that the handler and the forwarder also read fields from (see
//! [`crate::forward::RequestBody`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Version};
use http_body::{Body, Frame, SizeHint};

use crate::headers;
use crate::span::{Field, Span};

/// A plain request's header fields in its head's bytes, as the request's
/// (empty) body.
#[derive(Debug)]
pub(crate) struct PlainFields {
    head: Bytes,
    /// Each field's name and value, in the order sent.
    fields: Vec<Field>,
    /// The first `Host` field's value.
    host: Option<Span>,
    /// The connection closes after the answer (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`).
    closes: bool,
}

impl PlainFields {
    /// The fields at `fields` in `head`, as httparse found them: each name a
    /// token, each value free of control characters.
    pub(crate) fn new(head: Bytes, fields: Vec<Field>, version: Version) -> Self {
        let host = fields
            .iter()
            .find(|field| field.name.of(&head).eq_ignore_ascii_case(b"host"))
            .map(|field| field.value);
        let connection = fields
            .iter()
            .filter(|field| field.name.of(&head).eq_ignore_ascii_case(b"connection"))
            .map(|field| field.value.of(&head));
        let closes = crate::close_notify::closes_after(version, connection);
        Self {
            head,
            fields,
            host,
            closes,
        }
    }

    /// Each field's name (as written) and value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|field| (field.name.of(&self.head), field.value.of(&self.head)))
    }

    /// The values of the `Connection` fields.
    pub(crate) fn connection_values(&self) -> impl Iterator<Item = &[u8]> {
        self.iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(b"connection"))
            .map(|(_, value)| value)
    }

    /// The `Host` value, when it is visible ASCII (as `HeaderValue::to_str`
    /// would have it).
    pub(crate) fn host(&self) -> Option<&str> {
        headers::visible_ascii(self.host?.of(&self.head))
    }

    /// The `Host` value as a header value, sharing the head's bytes.
    pub(crate) fn host_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(self.host?.slice(&self.head)).ok()
    }

    /// Whether the connection closes after this request's answer.
    pub(crate) fn closes(&self) -> bool {
        self.closes
    }
}

impl Body for PlainFields {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(0)
    }
}
