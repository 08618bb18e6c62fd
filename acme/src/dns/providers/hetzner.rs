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
use http::{HeaderName, Method};
use serde_json::{json, Value};

use super::support::{
    encode, items, normalize, refusal, relative_name, same_name, snippet, text, unquote, TokenApi,
};
use crate::dns::http::Answer;
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
pub(crate) const SPEC: ProviderSpec = TokenApi::spec(NAME);

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    let api = TokenApi::new(NAME, fields, DEFAULT_BASE_URL, AUTH_HEADER, "")?;
    Ok(Box::new(Hetzner { api }))
}

/// A Hetzner DNS Console account reached with one API token.
struct Hetzner {
    /// The API, with `Auth-API-Token: <token>`.
    api: TokenApi,
}

// === impl Hetzner ===

impl Hetzner {
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
        let message = self.api.scrub(&message);
        let refused = matches!(answer.status, 401 | 403);
        refusal(NAME, answer.status, message, refused, None)
    }

    /// The id of `zone`, or `ZoneNotFound`.
    async fn zone_id(&self, zone: &str) -> Result<String, DnsError> {
        let not_found = || DnsError::ZoneNotFound {
            provider: NAME,
            zone: zone.to_owned(),
        };
        let answer = self
            .api
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
            let body = self.ok(&self.api.call(Method::GET, &path, None).await?)?;
            for record in items(&body, "records") {
                let kind = text(record, "type");
                let name = text(record, "name");
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
        let relative = relative_name(NAME, zone, fqdn, "@")?;
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
        self.ok(&self.api.call(Method::POST, "/records", Some(&body)).await?)?;
        Ok(())
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let relative = relative_name(NAME, zone, fqdn, "@")?;
        let zone_id = self.zone_id(zone).await?;
        for (id, _) in self
            .txt_records(&zone_id, &relative)
            .await?
            .into_iter()
            .filter(|(_, v)| v == value)
        {
            let answer = self
                .api
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
            let body = self.ok(&self.api.call(Method::GET, &path, None).await?)?;
            zones.extend(
                items(&body, "zones")
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
