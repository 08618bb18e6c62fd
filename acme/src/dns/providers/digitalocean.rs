//! The `digitalocean` DNS provider: TXT records through the DigitalOcean API v2.
//!
//! Calls (<https://docs.digitalocean.com/reference/api/api-reference/#tag/Domain-Records>),
//! all with `Authorization: Bearer <api_token>`:
//! - `GET /v2/domains?page=&per_page=`: the domains (zones) the token sees.
//! - `GET /v2/domains/{domain}/records?type=TXT&name=<fqdn>`: the values at a
//!   name (`name` filters by fully qualified name).
//! - `POST /v2/domains/{domain}/records` `{"type","name","data","ttl"}`: add
//!   one; `name` is relative to the domain, `@` for the apex.
//! - `DELETE /v2/domains/{domain}/records/{id}`: remove one (204).
//!
//! Errors are `{"id":"unauthorized","message":"Unable to authenticate you"}`.

use async_trait::async_trait;
use http::{header, HeaderValue, Method};
use serde_json::{json, Value};

use crate::dns::http::{Answer, HttpApi};
use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

#[cfg(test)]
mod tests;

/// Provider name.
const NAME: &str = "digitalocean";

/// The API every credential talks to unless `base_url` says otherwise.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com";

/// TTL of challenge records (DigitalOcean accepts 30 and up).
const TTL: u32 = 60;

/// Items per page: the maximum the API allows.
const PER_PAGE: u32 = 200;

/// Bound on pages followed, so a misbehaving answer cannot loop forever.
const MAX_PAGES: u32 = 100;

/// Fields of a `digitalocean` credential.
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
    let mut auth =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| DnsError::Config {
            provider: NAME,
            field: "api_token".into(),
            message: "holds characters an HTTP header cannot carry; paste the token again".into(),
        })?;
    auth.set_sensitive(true);
    Ok(Box::new(DigitalOcean {
        api: HttpApi::new(NAME, fields.config_or("base_url", DEFAULT_BASE_URL))?,
        auth,
        token: token.to_owned(),
    }))
}

/// A DigitalOcean account reached with one personal access token.
struct DigitalOcean {
    /// The API client.
    api: HttpApi,
    /// `Bearer <token>`, marked sensitive.
    auth: HeaderValue,
    /// The token, only to scrub it from messages the API sends back.
    token: String,
}

// === impl DigitalOcean ===

impl DigitalOcean {
    /// Sends one call with the token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, DnsError> {
        self.api
            .json(
                method,
                path,
                &[(header::AUTHORIZATION, self.auth.clone())],
                body,
            )
            .await
    }

    /// Turns a refusal into `Auth`, `ZoneNotFound` (for `zone`) or `Api`.
    fn error(&self, answer: &Answer, zone: Option<&str>) -> DnsError {
        let body = answer.json();
        let message = match (
            body.get("id").and_then(Value::as_str),
            body.get("message").and_then(Value::as_str),
        ) {
            (Some(id), Some(message)) => format!("{message} ({id})"),
            (None, Some(message)) => message.to_owned(),
            _ => format!("unexpected answer: {}", snippet(&answer.body)),
        };
        let message = scrub(&message, &self.token);
        match (answer.status, zone) {
            (401 | 403, _) => DnsError::Auth {
                provider: NAME,
                message,
            },
            (404, Some(zone)) => DnsError::ZoneNotFound {
                provider: NAME,
                zone: zone.to_owned(),
            },
            (status, _) => DnsError::Api {
                provider: NAME,
                status,
                message,
            },
        }
    }

    /// Every TXT record at `fqdn` as (id, value).
    async fn txt_records(&self, zone: &str, fqdn: &str) -> Result<Vec<(u64, String)>, DnsError> {
        let relative = relative_name(zone, fqdn)?;
        let mut records = Vec::new();
        let mut seen = 0;
        for page in 1..=MAX_PAGES {
            let path = format!(
                "/v2/domains/{}/records?type=TXT&name={}&page={page}&per_page={PER_PAGE}",
                encode(zone),
                encode(fqdn)
            );
            let answer = self.call(Method::GET, &path, None).await?;
            if !answer.ok() {
                return Err(self.error(&answer, Some(zone)));
            }
            let body = answer.json();
            let page_records = body.get("domain_records").and_then(Value::as_array);
            let count = page_records.map_or(0, Vec::len);
            for record in page_records.into_iter().flatten() {
                let kind = record
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = record
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let (Some(id), Some(data)) = (
                    record.get("id").and_then(Value::as_u64),
                    record.get("data").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if kind == "TXT" && (name.eq_ignore_ascii_case(&relative) || same_name(name, fqdn))
                {
                    records.push((id, unquote(data).to_owned()));
                }
            }
            seen += count;
            if count == 0 || seen >= total(&body) {
                break;
            }
        }
        Ok(records)
    }
}

#[async_trait]
impl DnsProvider for DigitalOcean {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let relative = relative_name(zone, fqdn)?;
        if self
            .txt_records(zone, fqdn)
            .await?
            .iter()
            .any(|(_, v)| v == value)
        {
            return Ok(());
        }
        let body = json!({ "type": "TXT", "name": relative, "data": value, "ttl": TTL });
        let path = format!("/v2/domains/{}/records", encode(zone));
        let answer = self.call(Method::POST, &path, Some(&body)).await?;
        if answer.ok() {
            Ok(())
        } else {
            Err(self.error(&answer, Some(zone)))
        }
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        for (id, _) in self
            .txt_records(zone, fqdn)
            .await?
            .into_iter()
            .filter(|(_, v)| v == value)
        {
            let path = format!("/v2/domains/{}/records/{id}", encode(zone));
            let answer = self.call(Method::DELETE, &path, None).await?;
            if !answer.ok() && answer.status != 404 {
                return Err(self.error(&answer, None));
            }
        }
        Ok(())
    }

    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        let mut zones = Vec::new();
        for page in 1..=MAX_PAGES {
            let answer = self
                .call(
                    Method::GET,
                    &format!("/v2/domains?page={page}&per_page={PER_PAGE}"),
                    None,
                )
                .await?;
            if !answer.ok() {
                return Err(self.error(&answer, None));
            }
            let body = answer.json();
            let before = zones.len();
            zones.extend(
                body.get("domains")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.get("name").and_then(Value::as_str))
                    .map(normalize),
            );
            if zones.len() == before || zones.len() >= total(&body) {
                break;
            }
        }
        Ok(zones)
    }
}

// === helpers ===

/// `meta.total` of a list answer (0 when absent: stop after this page).
fn total(body: &Value) -> usize {
    body.pointer("/meta/total")
        .and_then(Value::as_u64)
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
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

/// A TXT value without surrounding quotes.
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
