//! Writing an answer's head, and the framing its body is written in.
//!
//! The rules are RFC 9112's, applied the way hyper's server applies them, so
//! that a client sees the same answer whichever of the two served it.

use http::header;
use http::{response, StatusCode};
use http_body::SizeHint;

use crate::date;
use crate::h1::FieldLines;

/// How the body follows the head (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// Exactly this many bytes (none for HEAD, 204 and 304).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes: an HTTP/1.0 client and a body whose
    /// length is not known.
    UntilClose,
}

/// What the request said that shapes its answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Asked {
    /// A HEAD request: the answer has a head only.
    pub head_only: bool,
    /// The client speaks HTTP/1.0.
    pub http10: bool,
    /// The connection may carry another request after this answer.
    pub keep_alive: bool,
}

/// The head written, and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    pub framing: Framing,
    /// The connection stays open after the body.
    pub keep_alive: bool,
}

/// Why an answer could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Invalid;

/// Appends the status line and header fields of an answer to `out`.
///
/// The fields are those of `parts` and, for an upstream's answer, its
/// `lines` (see [`FieldLines`]). `body` is the body's size hint, `None` when
/// the body has already ended.
/// `Content-Length`, `Transfer-Encoding` and `Connection` are decided here;
/// the answer's own `Connection` can only ask for a close, and its
/// `Transfer-Encoding` and `Trailer` are not passed on (hop-by-hop, and
/// already removed from an upstream's answer).
pub(super) fn encode_head(
    parts: &response::Parts,
    lines: Option<&FieldLines>,
    body: Option<&SizeHint>,
    asked: Asked,
    out: &mut Vec<u8>,
) -> Result<Written, Invalid> {
    let status = parts.status;
    let mut keep_alive = asked.keep_alive;
    if asked.http10 {
        out.extend_from_slice(b"HTTP/1.0 ");
    } else if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
    }
    if asked.http10 || status != StatusCode::OK {
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if status.is_informational() {
        // Only a final status answers a request here (no upgrades).
        return Err(Invalid);
    }
    // RFC 9110 §15.3.5, §15.4.5: no content after these.
    let no_content = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let mut length = None;
    let mut dated = false;
    for (name, value) in &parts.headers {
        match *name {
            header::CONTENT_LENGTH => {
                declare(&mut length, crate::h1::parse_length(value.as_bytes()))?;
                continue;
            }
            header::CONNECTION => {
                let mut tokens = crate::headers::tokens(std::iter::once(value.as_bytes()));
                if tokens.any(|token| token.eq_ignore_ascii_case("close")) {
                    keep_alive = false;
                }
                continue;
            }
            header::TRANSFER_ENCODING | header::TRAILER => continue,
            header::DATE => dated = true,
            _ => {}
        }
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(lines) = lines {
        out.extend_from_slice(&lines.lines);
        dated |= lines.dated;
        if lines.content_length.is_some() {
            declare(&mut length, lines.content_length)?;
        }
    }
    let has_body = !(asked.head_only || no_content);
    // An answer whose body has already ended keeps its declared length only
    // for HEAD (the length a GET would have had).
    let declared = length.filter(|_| body.is_some() || asked.head_only);
    let framing = match (declared, body.map(SizeHint::exact)) {
        (Some(declared), _) => {
            write_field(
                out,
                b"content-length",
                crate::headers::decimal(declared, &mut [0; 20]),
            );
            Framing::Length(declared)
        }
        (None, Some(None)) if asked.http10 || !has_body => Framing::UntilClose,
        (None, Some(None)) => {
            write_field(out, b"transfer-encoding", b"chunked");
            Framing::Chunked
        }
        (None, None | Some(Some(0))) => {
            if has_body {
                write_field(out, b"content-length", b"0");
            }
            Framing::Length(0)
        }
        (None, Some(Some(exact))) => {
            if !no_content {
                write_field(
                    out,
                    b"content-length",
                    crate::headers::decimal(exact, &mut [0; 20]),
                );
            }
            Framing::Length(exact)
        }
    };
    let framing = if has_body {
        framing
    } else {
        Framing::Length(0)
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    match (asked.http10, keep_alive) {
        (true, true) => write_field(out, b"connection", b"keep-alive"),
        (false, false) => write_field(out, b"connection", b"close"),
        _ => {}
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Written {
        framing,
        keep_alive,
    })
}

/// Notes a declared `Content-Length`; a missing or different second one
/// makes the answer invalid.
fn declare(length: &mut Option<u64>, declared: Option<u64>) -> Result<(), Invalid> {
    let declared = declared.ok_or(Invalid)?;
    if length.is_some_and(|seen| seen != declared) {
        return Err(Invalid);
    }
    *length = Some(declared);
    Ok(())
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
