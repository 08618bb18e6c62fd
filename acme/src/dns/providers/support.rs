//! Helpers the HTTP providers share: DNS names as the APIs want them, TXT
//! values in and out of presentation format, what goes into a URL, the
//! calls of the APIs reached with one token, reading their JSON, and how a
//! refusal becomes a [`DnsError`] without a secret in it.

use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;

use crate::dns::http::{Answer, HttpApi};
use crate::dns::provider::{DnsError, Fields, ProviderSpec};

#[cfg(test)]
mod tests;

// === names ===

/// Lower-case, no trailing dot.
pub(super) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Compares DNS names the way DNS does: case and a trailing dot aside.
pub(super) fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// `fqdn` relative to `zone` (both normalized first), `apex` for the zone
/// itself (`@` or empty, as the API wants it), or a `Config` error when
/// `fqdn` is not inside `zone`.
pub(super) fn relative_name(
    provider: &'static str,
    zone: &str,
    fqdn: &str,
    apex: &str,
) -> Result<String, DnsError> {
    let (zone, fqdn) = (normalize(zone), normalize(fqdn));
    if fqdn == zone {
        return Ok(apex.to_owned());
    }
    fqdn.strip_suffix(&format!(".{zone}"))
        .map(str::to_owned)
        .ok_or_else(|| DnsError::Config {
            provider,
            field: "zone".into(),
            message: format!("\"{fqdn}\" is not inside zone \"{zone}\""),
        })
}

/// `fqdn` must be `zone` or below it, compared exactly as given (the
/// record-set providers keep the names they were handed).
pub(super) fn in_zone(provider: &'static str, zone: &str, fqdn: &str) -> Result<(), DnsError> {
    if fqdn == zone
        || fqdn
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
    {
        Ok(())
    } else {
        Err(DnsError::Config {
            provider,
            field: "zone".into(),
            message: format!("\"{fqdn}\" is not in zone \"{zone}\""),
        })
    }
}

// === TXT values ===

/// A TXT value without the surrounding quotes a provider may add.
pub(super) fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// A TXT value as presentation-format character-strings: quoted, `"` and
/// `\` escaped, split every 255 bytes (RFC 1035 §3.3.14, §5.1).
pub(super) fn txt_quote(value: &str) -> String {
    let bytes = value.as_bytes();
    bytes
        .chunks(255)
        .map(|chunk| {
            let mut out = String::from("\"");
            for &b in chunk {
                match b {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(char::from(b));
                    }
                    0x20..=0x7e => out.push(char::from(b)),
                    _ => out.push_str(&format!("\\{b:03}")),
                }
            }
            out.push('"');
            out
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text a presentation-format TXT value carries (RFC 1035 §5.1): its
/// character-strings unquoted, unescaped and joined.
pub(super) fn txt_text(rdata: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = rdata.trim().bytes().peekable();
    let mut quoted = false;
    while let Some(b) = bytes.next() {
        match b {
            b'"' => quoted = !quoted,
            b'\\' => {
                let mut digits = Vec::new();
                while digits.len() < 3 && bytes.peek().is_some_and(u8::is_ascii_digit) {
                    digits.extend(bytes.next());
                }
                if digits.len() == 3 {
                    let code = digits
                        .iter()
                        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                    out.push(u8::try_from(code).unwrap_or(b'?'));
                } else if digits.is_empty() {
                    out.extend(bytes.next());
                } else {
                    out.extend(digits);
                }
            }
            b if b.is_ascii_whitespace() && !quoted => {}
            b => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// === requests ===

/// Percent-encodes every byte but the unreserved `A-Z a-z 0-9 - . _ ~`
/// (RFC 3986 §2.3), with upper-case hex: for path segments and query
/// values (`/` is encoded too).
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A secret as a header value marked sensitive, or a `Config` error that
/// names `field` (and not the value) when a header cannot carry it.
pub(super) fn secret_header(
    provider: &'static str,
    field: &str,
    value: &str,
    what: &str,
) -> Result<HeaderValue, DnsError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| DnsError::Config {
        provider,
        field: field.to_owned(),
        message: format!("holds characters an HTTP header cannot carry; paste the {what} again"),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// An API reached with one secret token in one header (`cloudflare`,
/// `digitalocean`, `hetzner`): the credential's `api_token` and optional
/// `base_url`.
pub(super) struct TokenApi {
    /// The API client.
    pub(super) api: HttpApi,
    /// The header that carries the token.
    pub(super) header: HeaderName,
    /// Its value (the token, maybe after a scheme), marked sensitive.
    pub(super) value: HeaderValue,
    /// The token, only to scrub it from messages the API sends back.
    pub(super) token: String,
}

impl TokenApi {
    /// The fields of a credential for such an API: secret `api_token`,
    /// optional setting `base_url`.
    pub(super) const fn spec(name: &'static str) -> ProviderSpec {
        ProviderSpec {
            name,
            secrets: &["api_token"],
            optional_secrets: &[],
            required: &[],
            optional: &["base_url"],
        }
    }

    /// Sends the token as `Authorization: Bearer <token>`.
    pub(super) fn bearer(
        provider: &'static str,
        fields: &Fields,
        default_base_url: &str,
    ) -> Result<Self, DnsError> {
        Self::new(
            provider,
            fields,
            default_base_url,
            http::header::AUTHORIZATION,
            "Bearer ",
        )
    }

    /// Sends the token as `header: {scheme}{token}`; refuses a token a
    /// header cannot carry before anything is sent.
    pub(super) fn new(
        provider: &'static str,
        fields: &Fields,
        default_base_url: &str,
        header: HeaderName,
        scheme: &str,
    ) -> Result<Self, DnsError> {
        let token = fields.secret(provider, "api_token")?;
        let value = secret_header(provider, "api_token", &format!("{scheme}{token}"), "token")?;
        Ok(Self {
            api: HttpApi::new(provider, fields.config_or("base_url", default_base_url))?,
            header,
            value,
            token: token.to_owned(),
        })
    }

    /// Sends one call with the token and JSON (or no) body.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, DnsError> {
        self.api
            .json(
                method,
                path,
                &[(self.header.clone(), self.value.clone())],
                body,
            )
            .await
    }

    /// `text` without the token.
    pub(super) fn scrub(&self, text: &str) -> String {
        scrub(text, &[&self.token])
    }
}

// === JSON answers ===

/// The string at `key` of a JSON object, empty when absent or not one.
pub(super) fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The elements of the array at `key`, none when absent or not one.
pub(super) fn items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

// === errors ===

/// The start of an answer body, for messages.
pub(super) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty body".into();
    }
    text.chars().take(200).collect()
}

/// Replaces each secret in text the provider sent back, in order, with
/// `[redacted]`; empty secrets are skipped.
pub(super) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "[redacted]");
    }
    out
}

/// A refused call as one error, in the order every provider decides it:
/// the credential was `refused` (`Auth`), else the API said `missing_zone`
/// does not exist (`ZoneNotFound`), else the API's own error (`Api`).
pub(super) fn refusal(
    provider: &'static str,
    status: u16,
    message: String,
    refused: bool,
    missing_zone: Option<&str>,
) -> DnsError {
    match (refused, missing_zone) {
        (true, _) => DnsError::Auth { provider, message },
        (false, Some(zone)) => DnsError::ZoneNotFound {
            provider,
            zone: zone.to_owned(),
        },
        (false, None) => DnsError::Api {
            provider,
            status,
            message,
        },
    }
}
