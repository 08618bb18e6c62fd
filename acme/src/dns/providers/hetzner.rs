//! The `hetzner` DNS provider: TXT records through the Hetzner DNS Console API.
//!
//! Calls (<https://dns.hetzner.com/api-docs>), all with the
//! `Auth-API-Token: <api_token>` header:
//! - `GET /zones?name=<zone>`: find a zone's id (404 when there is none).
//! - `GET /zones?page=&per_page=`: the zones the token sees.
//! - `GET /records?zone_id=`: a zone's records.
//! - `POST /records` `{"zone_id","type","name","value","ttl"}`: add one;
//!   `name` is relative to the zone, `@` for the apex.
//! - `DELETE /records/{id}`: remove one.
//!
//! Errors are `{"message": "..."}` from the gateway (401) or
//! `{"error": {"message": "...", "code": 404}}` from the API.

use async_trait::async_trait;
use http::{HeaderName, HeaderValue, Method};
use serde_json::{json, Value};

use crate::dns::http::{Answer, HttpApi};
use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

#[cfg(test)]
mod tests;

/// Provider name.
const NAME: &str = "hetzner";

/// The API every credential talks to unless `base_url` says otherwise.
pub(crate) const DEFAULT_BASE_URL: &str = "https://dns.hetzner.com/api/v1";

/// The header carrying the token.
const AUTH_HEADER: HeaderName = HeaderName::from_static("auth-api-token");

/// TTL of challenge records (Hetzner's minimum is 60).
const TTL: u32 = 60;

/// Zones per page: the maximum `GET /zones` allows.
const ZONES_PER_PAGE: u32 = 100;

/// Bound on pages followed, so a misbehaving answer cannot loop forever.
const MAX_PAGES: u64 = 100;

/// Fields of a `hetzner` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    secrets: &["api_token"],
    optional_secrets: &[],
    required: &[],
    optional: &["base_url"],
};

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    let token = fields.secret(NAME, "api_token")?;
    let mut auth = HeaderValue::from_str(token).map_err(|_| DnsError::Config {
        provider: NAME,
        field: "api_token".into(),
        message: "holds characters an HTTP header cannot carry; paste the token again".into(),
    })?;
    auth.set_sensitive(true);
    Ok(Box::new(Hetzner {
        api: HttpApi::new(NAME, fields.config_or("base_url", DEFAULT_BASE_URL))?,
        auth,
        token: token.to_owned(),
    }))
}

/// A Hetzner DNS Console account reached with one API token.
struct Hetzner {
    /// The API client.
    api: HttpApi,
    /// The token, marked sensitive.
    auth: HeaderValue,
    /// The token, only to scrub it from messages the API sends back.
    token: String,
}

// === impl Hetzner ===

impl Hetzner {
    /// Sends one call with the token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, DnsError> {
        self.api
            .json(method, path, &[(AUTH_HEADER, self.auth.clone())], body)
            .await
    }

    /// The body of a 2xx answer, or the error it carries.
    fn ok(&self, answer: &Answer) -> Result<Value, DnsError> {
        if answer.ok() {
            Ok(answer.json())
        } else {
            Err(self.error(answer))
        }
    }

    /// Turns a refusal into `Auth` or `Api` with Hetzner's own words.
    fn error(&self, answer: &Answer) -> DnsError {
        let body = answer.json();
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .or_else(|| body.get("message").and_then(Value::as_str))
            .filter(|m| !m.is_empty())
            .map_or_else(
                || format!("unexpected answer: {}", snippet(&answer.body)),
                str::to_owned,
            );
        let message = scrub(&message, &self.token);
        if matches!(answer.status, 401 | 403) {
            DnsError::Auth {
                provider: NAME,
                message,
            }
        } else {
            DnsError::Api {
                provider: NAME,
                status: answer.status,
                message,
            }
        }
    }

    /// The id of `zone`, or `ZoneNotFound`.
    async fn zone_id(&self, zone: &str) -> Result<String, DnsError> {
        let not_found = || DnsError::ZoneNotFound {
            provider: NAME,
            zone: zone.to_owned(),
        };
        let answer = self
            .call(Method::GET, &format!("/zones?name={}", encode(zone)), None)
            .await?;
        if answer.status == 404 {
            return Err(not_found());
        }
        let body = self.ok(&answer)?;
        body.get("zones")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|z| {
                z.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| same_name(n, zone))
            })
            .and_then(|z| z.get("id").and_then(Value::as_str))
            .map(str::to_owned)
            .ok_or_else(not_found)
    }

    /// Every TXT record named `relative` in the zone, as (id, value).
    async fn txt_records(
        &self,
        zone_id: &str,
        relative: &str,
    ) -> Result<Vec<(String, String)>, DnsError> {
        let mut records = Vec::new();
        let mut page = 1;
        loop {
            let mut path = format!("/records?zone_id={}", encode(zone_id));
            if page > 1 {
                path.push_str(&format!("&page={page}"));
            }
            let body = self.ok(&self.call(Method::GET, &path, None).await?)?;
            for record in body
                .get("records")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = record
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = record
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let (Some(id), Some(value)) = (
                    record.get("id").and_then(Value::as_str),
                    record.get("value").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if kind == "TXT" && name.eq_ignore_ascii_case(relative) {
                    records.push((id.to_owned(), unquote(value).to_owned()));
                }
            }
            if page >= last_page(&body) {
                break;
            }
            page += 1;
        }
        Ok(records)
    }
}

#[async_trait]
impl DnsProvider for Hetzner {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let relative = relative_name(zone, fqdn)?;
        let zone_id = self.zone_id(zone).await?;
        if self
            .txt_records(&zone_id, &relative)
            .await?
            .iter()
            .any(|(_, v)| v == value)
        {
            return Ok(());
        }
        let body = json!({ "zone_id": zone_id, "type": "TXT", "name": relative, "value": value, "ttl": TTL });
        self.ok(&self.call(Method::POST, "/records", Some(&body)).await?)?;
        Ok(())
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let relative = relative_name(zone, fqdn)?;
        let zone_id = self.zone_id(zone).await?;
        for (id, _) in self
            .txt_records(&zone_id, &relative)
            .await?
            .into_iter()
            .filter(|(_, v)| v == value)
        {
            let answer = self
                .call(Method::DELETE, &format!("/records/{}", encode(&id)), None)
                .await?;
            if answer.status != 404 {
                self.ok(&answer)?;
            }
        }
        Ok(())
    }

    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        let mut zones = Vec::new();
        let mut page = 1;
        loop {
            let path = format!("/zones?page={page}&per_page={ZONES_PER_PAGE}");
            let body = self.ok(&self.call(Method::GET, &path, None).await?)?;
            zones.extend(
                body.get("zones")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|z| z.get("name").and_then(Value::as_str))
                    .map(normalize),
            );
            if page >= last_page(&body) {
                break;
            }
            page += 1;
        }
        Ok(zones)
    }
}

// === helpers ===

/// `meta.pagination.last_page` of a list answer (1 when absent), bounded.
fn last_page(body: &Value) -> u64 {
    body.pointer("/meta/pagination/last_page")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .min(MAX_PAGES)
}

/// The record name relative to `zone` (`@` for the apex), or a `Config`
/// error when `fqdn` is not inside `zone`.
fn relative_name(zone: &str, fqdn: &str) -> Result<String, DnsError> {
    let (zone, fqdn) = (normalize(zone), normalize(fqdn));
    if fqdn == zone {
        return Ok("@".into());
    }
    fqdn.strip_suffix(&format!(".{zone}"))
        .map(str::to_owned)
        .ok_or_else(|| DnsError::Config {
            provider: NAME,
            field: "zone".into(),
            message: format!("\"{fqdn}\" is not inside zone \"{zone}\""),
        })
}

/// Lower-case, no trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Compares DNS names the way DNS does.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// A TXT value without the surrounding quotes Hetzner may store.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
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

/// The start of an answer body, for messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty body".into();
    }
    text.chars().take(200).collect()
}

/// Removes the secret from text the provider sent back.
fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "[redacted]")
    }
}
