//! A request's head from its decoded header block (RFC 9113 §8.3.1), with
//! the checks that make a request malformed (§8.1.1, §8.2).

use bytes::{BufMut, Bytes, BytesMut};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri};

use super::hpack::{DecodeError, DecodeErrorOr, Decoder};

/// A request head as the handler takes it.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    /// The Content-Length the client declared: DATA must add up to it.
    pub(crate) content_length: Option<u64>,
}

/// Why a decoded block is not a request the server takes; the stream is
/// refused, the connection goes on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// RFC 9113 §8.1.1: a stream error of type PROTOCOL_ERROR.
    Malformed(&'static str),
    /// Past SETTINGS_MAX_HEADER_LIST_SIZE: answered 431 (RFC 6585 §5).
    TooLarge,
}

/// The pseudo-header fields of a request (RFC 9113 §8.3.1).
#[derive(Default)]
struct Pseudo {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
}

/// A header block's fields as they are decoded.
#[derive(Default)]
struct Fields {
    pseudo: Pseudo,
    headers: HeaderMap,
    /// Cookie crumbs joined (RFC 9113 §8.2.3: HTTP/1.1 allows one Cookie).
    cookies: Option<BytesMut>,
    /// A regular field has been seen: no pseudo-field may follow.
    regular: bool,
    /// The block's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it.
    size: usize,
    refused: Option<Refused>,
}

/// Decodes a request's header block.
///
/// The whole block is always decoded, whatever is wrong with the request:
/// the decoder's table must see every field for the blocks that follow.
/// Only a block HPACK cannot decode ends the connection.
pub(crate) fn decode(
    decoder: &mut Decoder,
    block: &Bytes,
    max_list_size: usize,
) -> Result<Result<Head, Refused>, DecodeError> {
    let fields = collect(decoder, block, max_list_size, true)?;
    Ok(fields.and_then(|(pseudo, headers)| head(pseudo, headers)))
}

/// Decodes a block of trailers: regular fields only (RFC 9113 §8.1).
pub(crate) fn decode_trailers(
    decoder: &mut Decoder,
    block: &Bytes,
    max_list_size: usize,
) -> Result<Result<HeaderMap, Refused>, DecodeError> {
    let fields = collect(decoder, block, max_list_size, false)?;
    Ok(fields.map(|(_, headers)| headers))
}

fn collect(
    decoder: &mut Decoder,
    block: &Bytes,
    max_list_size: usize,
    request: bool,
) -> Result<Result<(Pseudo, HeaderMap), Refused>, DecodeError> {
    let mut fields = Fields::default();
    let decoded = decoder.decode(block, |name: Bytes, value: Bytes| {
        // RFC 9113 §6.5.2: each field counts its name, its value and 32.
        fields.size += name.len() + value.len() + 32;
        if fields.refused.is_some() {
            return Ok::<(), ()>(());
        }
        fields.refused = if fields.size > max_list_size {
            Some(Refused::TooLarge)
        } else if !request && name.starts_with(b":") {
            Some(Refused::Malformed("pseudo-header field in trailers"))
        } else {
            fields.take(name, value).err().map(Refused::Malformed)
        };
        Ok(())
    });
    match decoded {
        Ok(()) | Err(DecodeErrorOr::Field(())) => {}
        Err(DecodeErrorOr::Hpack(error)) => return Err(error),
    }
    if let Some(refused) = fields.refused {
        return Ok(Err(refused));
    }
    let mut headers = fields.headers;
    if let Some(cookies) = fields.cookies {
        let Ok(value) = HeaderValue::from_maybe_shared(cookies.freeze()) else {
            return Ok(Err(Refused::Malformed("invalid cookie")));
        };
        headers.insert(header::COOKIE, value);
    }
    Ok(Ok((fields.pseudo, headers)))
}

impl Fields {
    /// Takes one field into the head.
    fn take(&mut self, name: Bytes, value: Bytes) -> Result<(), &'static str> {
        if let Some(pseudo_name) = name.strip_prefix(b":") {
            // §8.3: pseudo-fields come first, once each, and only these four
            // (`:protocol` needs SETTINGS_ENABLE_CONNECT_PROTOCOL, not sent).
            if self.regular {
                return Err("pseudo-header field after a regular field");
            }
            let pseudo = &mut self.pseudo;
            let slot = match pseudo_name {
                b"method" => &mut pseudo.method,
                b"scheme" => &mut pseudo.scheme,
                b"authority" => &mut pseudo.authority,
                b"path" => &mut pseudo.path,
                _ => return Err("unknown pseudo-header field"),
            };
            if slot.replace(value).is_some() {
                return Err("repeated pseudo-header field");
            }
            return Ok(());
        }
        self.regular = true;
        // §8.2.1: field names are lower-case in HTTP/2 (`from_lowercase`
        // refuses upper case).
        let name = HeaderName::from_lowercase(&name).map_err(|_| "invalid field name")?;
        // §8.2.2: connection-specific fields have no meaning in HTTP/2.
        if is_connection_specific(&name) {
            return Err("connection-specific field");
        }
        if name == header::TE && value.as_ref() != b"trailers" {
            return Err("TE other than \"trailers\"");
        }
        // §8.2.1: no whitespace at either end (HeaderValue refuses NUL, CR
        // and LF).
        if value.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
            || value.last().is_some_and(|b| matches!(b, b' ' | b'\t'))
        {
            return Err("field value with surrounding whitespace");
        }
        if name == header::COOKIE {
            match &mut self.cookies {
                Some(joined) => {
                    joined.put_slice(b"; ");
                    joined.put_slice(&value);
                }
                None => self.cookies = Some(BytesMut::from(&value[..])),
            }
            return Ok(());
        }
        let value = HeaderValue::from_maybe_shared(value).map_err(|_| "invalid field value")?;
        self.headers.append(name, value);
        Ok(())
    }
}

/// The head from its fields, with the pseudo-fields checked (§8.3.1).
fn head(pseudo: Pseudo, headers: HeaderMap) -> Result<Head, Refused> {
    let malformed = |why| Err(Refused::Malformed(why));
    let Some(method) = pseudo.method else {
        return malformed("no :method");
    };
    let Ok(method) = Method::from_bytes(&method) else {
        return malformed("invalid :method");
    };
    let mut parts = http::uri::Parts::default();
    if let Some(authority) = pseudo.authority {
        let Ok(authority) = Authority::from_maybe_shared(authority) else {
            return malformed("invalid :authority");
        };
        parts.authority = Some(authority);
    }
    if method == Method::CONNECT {
        // §8.5: CONNECT names only the authority.
        if pseudo.scheme.is_some() || pseudo.path.is_some() || parts.authority.is_none() {
            return malformed("CONNECT with :scheme or :path, or without :authority");
        }
    } else {
        let Some(scheme) = pseudo.scheme else {
            return malformed("no :scheme");
        };
        let Ok(scheme) = Scheme::try_from(&scheme[..]) else {
            return malformed("invalid :scheme");
        };
        // A URI cannot have a scheme without an authority; the request's
        // Host field names the authority then.
        if parts.authority.is_some() {
            parts.scheme = Some(scheme);
        }
        let Some(path) = pseudo.path.filter(|path| !path.is_empty()) else {
            return malformed("no :path");
        };
        let Ok(path) = PathAndQuery::from_maybe_shared(path) else {
            return malformed("invalid :path");
        };
        parts.path_and_query = Some(path);
    }
    let Ok(uri) = Uri::from_parts(parts) else {
        return malformed("invalid request target");
    };
    let content_length = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(value) => match std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
        {
            Some(length) if headers.get_all(header::CONTENT_LENGTH).iter().count() == 1 => {
                Some(length)
            }
            _ => return malformed("invalid Content-Length"),
        },
    };
    Ok(Head {
        method,
        uri,
        headers,
        content_length,
    })
}

/// RFC 9113 §8.2.2: the fields that describe an HTTP/1 connection, which
/// an HTTP/2 message must not carry (`TE` is checked apart).
pub(crate) fn is_connection_specific(name: &HeaderName) -> bool {
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}
