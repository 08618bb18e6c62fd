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
use http::Method;
use serde_json::{json, Value};

use super::support::{
    encode, items, normalize, refusal, relative_name, same_name, snippet, text, unquote, TokenApi,
};
use crate::dns::http::Answer;
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
pub(crate) const SPEC: ProviderSpec = TokenApi::spec(NAME);

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    let api = TokenApi::bearer(NAME, fields, DEFAULT_BASE_URL)?;
    Ok(Box::new(DigitalOcean { api }))
}

/// A DigitalOcean account reached with one personal access token.
struct DigitalOcean {
    /// The API, with `Authorization: Bearer <token>`.
    api: TokenApi,
}

// === impl DigitalOcean ===

impl DigitalOcean {
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
        let message = self.api.scrub(&message);
        let refused = matches!(answer.status, 401 | 403);
        let missing = zone.filter(|_| answer.status == 404);
        refusal(NAME, answer.status, message, refused, missing)
    }

    /// Every TXT record at `fqdn` as (id, value).
    async fn txt_records(&self, zone: &str, fqdn: &str) -> Result<Vec<(u64, String)>, DnsError> {
        let relative = relative_name(NAME, zone, fqdn, "@")?;
        let mut records = Vec::new();
        let mut seen = 0;
        for page in 1..=MAX_PAGES {
            let path = format!(
                "/v2/domains/{}/records?type=TXT&name={}&page={page}&per_page={PER_PAGE}",
                encode(zone),
                encode(fqdn)
            );
            let answer = self.api.call(Method::GET, &path, None).await?;
            if !answer.ok() {
                return Err(self.error(&answer, Some(zone)));
            }
            let body = answer.json();
            let page_records = body.get("domain_records").and_then(Value::as_array);
            let count = page_records.map_or(0, Vec::len);
            for record in page_records.into_iter().flatten() {
                let kind = text(record, "type");
                let name = text(record, "name");
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
        let relative = relative_name(NAME, zone, fqdn, "@")?;
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
        let answer = self.api.call(Method::POST, &path, Some(&body)).await?;
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
            let answer = self.api.call(Method::DELETE, &path, None).await?;
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
                .api
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
                items(&body, "domains")
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
