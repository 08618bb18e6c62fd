//! The `cloudflare` DNS provider: TXT records through the Cloudflare API v4.
//!
//! Calls (<https://developers.cloudflare.com/api/>), all with
//! `Authorization: Bearer <api_token>`:
//! - `GET /zones?name=&page=&per_page=`: find a zone's id; list zones.
//! - `GET /zones/{zone_id}/dns_records?type=TXT&name=<fqdn>`: the values at a name.
//! - `POST /zones/{zone_id}/dns_records` `{"type","name","content","ttl"}`: add one.
//! - `DELETE /zones/{zone_id}/dns_records/{id}`: remove one.
//!
//! Every answer is the envelope `{"success","errors":[{"code","message",
//! "error_chain"}],"messages","result","result_info"}`. Record names are
//! full names (`_acme-challenge.example.com`). `validate` lists zones only:
//! `GET /user/tokens/verify` refuses account-owned tokens that work.

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
const NAME: &str = "cloudflare";

/// The API every credential talks to unless `base_url` says otherwise.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// TTL of challenge records: Cloudflare's minimum outside Enterprise zones
/// ("between 60 and 86400, with the minimum reduced to 30 for Enterprise").
const TTL: u32 = 60;

/// Zones per page: the maximum `GET /zones` allows.
const ZONES_PER_PAGE: u32 = 50;

/// Records per page when listing one name's TXT values.
const RECORDS_PER_PAGE: u32 = 100;

/// Bound on pages followed, so a misbehaving answer cannot loop forever.
const MAX_PAGES: u32 = 200;

/// Error codes that mean the token was refused, whatever the HTTP status:
/// 6003/6111 "Invalid request headers" / "Invalid format for Authorization
/// header" (HTTP 400), 9109 "Invalid access token", 10000 "Authentication
/// error", 1000 "Invalid API Token".
const AUTH_CODES: &[u64] = &[1000, 6003, 6111, 9109, 10000];

/// "An identical record already exists.": `present` is then done.
const IDENTICAL_RECORD: u64 = 81058;

/// Fields of a `cloudflare` credential.
pub(crate) const SPEC: ProviderSpec = TokenApi::spec(NAME);

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    let api = TokenApi::bearer(NAME, fields, DEFAULT_BASE_URL)?;
    Ok(Box::new(Cloudflare { api }))
}

/// A Cloudflare account reached with one API token.
struct Cloudflare {
    /// The API, with `Authorization: Bearer <token>`.
    api: TokenApi,
}

/// One TXT record as Cloudflare lists it.
#[derive(Debug)]
struct TxtRecord {
    /// Record id.
    id: String,
    /// Its value, without the quotes Cloudflare may add.
    content: String,
}

// === impl Cloudflare ===

impl Cloudflare {
    /// The `result` of a successful answer, or the error it carries.
    fn result(&self, answer: &Answer) -> Result<Value, DnsError> {
        let mut body = answer.json();
        if answer.ok() && body.get("success").and_then(Value::as_bool) != Some(false) {
            return Ok(body
                .get_mut("result")
                .map(Value::take)
                .unwrap_or(Value::Null));
        }
        Err(self.error(answer))
    }

    /// Turns a refusal into `Auth` or `Api` with Cloudflare's own words.
    fn error(&self, answer: &Answer) -> DnsError {
        let body = answer.json();
        let mut auth = matches!(answer.status, 401 | 403);
        let mut parts = Vec::new();
        for error in items(&body, "errors") {
            let code = error.get("code").and_then(Value::as_u64).unwrap_or(0);
            auth |= AUTH_CODES.contains(&code);
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let chain: Vec<String> = items(error, "error_chain")
                .filter_map(|link| {
                    let link_code = link.get("code").and_then(Value::as_u64).unwrap_or(0);
                    auth |= AUTH_CODES.contains(&link_code);
                    link.get("message")
                        .and_then(Value::as_str)
                        .map(|m| format!("{m} ({link_code})"))
                })
                .collect();
            if chain.is_empty() {
                parts.push(format!("{message} ({code})"));
            } else {
                parts.push(format!("{message} ({code}): {}", chain.join("; ")));
            }
        }
        let message = if parts.is_empty() {
            format!("unexpected answer: {}", snippet(&answer.body))
        } else {
            parts.join("; ")
        };
        let message = self.api.scrub(&message);
        refusal(NAME, answer.status, message, auth, None)
    }

    /// The id of `zone`, or `ZoneNotFound`.
    async fn zone_id(&self, zone: &str) -> Result<String, DnsError> {
        let answer = self
            .api
            .call(
                Method::GET,
                &format!("/zones?name={}&per_page={ZONES_PER_PAGE}", encode(zone)),
                None,
            )
            .await?;
        let result = self.result(&answer)?;
        result
            .as_array()
            .into_iter()
            .flatten()
            .find(|z| {
                z.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| same_name(n, zone))
            })
            .and_then(|z| z.get("id").and_then(Value::as_str))
            .map(str::to_owned)
            .ok_or_else(|| DnsError::ZoneNotFound {
                provider: NAME,
                zone: zone.to_owned(),
            })
    }

    /// Every TXT record at `fqdn`.
    async fn txt_records(&self, zone_id: &str, fqdn: &str) -> Result<Vec<TxtRecord>, DnsError> {
        let mut records = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!(
                "/zones/{}/dns_records?type=TXT&name={}&page={page}&per_page={RECORDS_PER_PAGE}",
                encode(zone_id),
                encode(fqdn)
            );
            let answer = self.api.call(Method::GET, &path, None).await?;
            let result = self.result(&answer)?;
            for record in result.as_array().into_iter().flatten() {
                let name = text(record, "name");
                let kind = text(record, "type");
                let (Some(id), Some(content)) = (
                    record.get("id").and_then(Value::as_str),
                    record.get("content").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if kind == "TXT" && same_name(name, fqdn) {
                    records.push(TxtRecord {
                        id: id.to_owned(),
                        content: unquote(content).to_owned(),
                    });
                }
            }
            if page >= total_pages(&answer) {
                break;
            }
        }
        Ok(records)
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        check_in_zone(zone, fqdn)?;
        let zone_id = self.zone_id(zone).await?;
        if self
            .txt_records(&zone_id, fqdn)
            .await?
            .iter()
            .any(|r| r.content == value)
        {
            return Ok(());
        }
        let body = json!({ "type": "TXT", "name": fqdn, "content": value, "ttl": TTL });
        let path = format!("/zones/{}/dns_records", encode(&zone_id));
        let answer = self.api.call(Method::POST, &path, Some(&body)).await?;
        match self.result(&answer) {
            Ok(_) => Ok(()),
            Err(_) if has_code(&answer, IDENTICAL_RECORD) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        check_in_zone(zone, fqdn)?;
        let zone_id = self.zone_id(zone).await?;
        for record in self.txt_records(&zone_id, fqdn).await? {
            if record.content != value {
                continue;
            }
            let path = format!(
                "/zones/{}/dns_records/{}",
                encode(&zone_id),
                encode(&record.id)
            );
            let answer = self.api.call(Method::DELETE, &path, None).await?;
            if answer.status != 404 {
                self.result(&answer)?;
            }
        }
        Ok(())
    }

    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        let mut zones = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!("/zones?page={page}&per_page={ZONES_PER_PAGE}");
            let answer = self.api.call(Method::GET, &path, None).await?;
            let result = self.result(&answer)?;
            zones.extend(
                result
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|z| z.get("name").and_then(Value::as_str))
                    .map(normalize),
            );
            if page >= total_pages(&answer) {
                break;
            }
        }
        Ok(zones)
    }
}

// === helpers ===

/// `result_info.total_pages` of a list answer (1 when absent).
fn total_pages(answer: &Answer) -> u32 {
    answer
        .json()
        .pointer("/result_info/total_pages")
        .and_then(Value::as_u64)
        .map_or(1, |n| u32::try_from(n).unwrap_or(MAX_PAGES))
}

/// Whether the answer's `errors` hold `code`.
fn has_code(answer: &Answer, code: u64) -> bool {
    answer
        .json()
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|errors| {
            errors
                .iter()
                .any(|e| e.get("code").and_then(Value::as_u64) == Some(code))
        })
}

/// Refuses an `fqdn` outside `zone` before any call is made.
fn check_in_zone(zone: &str, fqdn: &str) -> Result<(), DnsError> {
    relative_name(NAME, zone, fqdn, "@").map(drop)
}
