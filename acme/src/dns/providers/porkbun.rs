//! The `porkbun` DNS provider: TXT records through the Porkbun API v3.
//!
//! Calls (<https://porkbun.com/api/json/v3/documentation>), all `POST` with
//! the keys in the JSON body (`{"apikey","secretapikey",...}`):
//! - `/ping`: proves the keys work.
//! - `/domain/listAll` `{"start"}`: the account's domains, 1000 at a time.
//! - `/dns/retrieveByNameType/{domain}/TXT/{subdomain}`: the values at a name
//!   (no subdomain segment for the apex).
//! - `/dns/create/{domain}` `{"name","type","content","ttl"}`: add one; `name`
//!   is the subdomain, empty for the apex.
//! - `/dns/delete/{domain}/{id}`: remove one.
//!
//! Every answer carries `"status": "SUCCESS"` or `"ERROR"` with a `message`;
//! refused keys come back as HTTP 400 `Invalid API key. (002)`, so the
//! message, not the status, says whether the credential was refused.

use async_trait::async_trait;
use http::Method;
use serde_json::{json, Map, Value};

use super::support::{
    encode, items, normalize, refusal, relative_name, same_name, scrub, snippet, unquote,
};
use crate::dns::http::{Answer, HttpApi};
use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

#[cfg(test)]
mod tests;

/// Provider name.
const NAME: &str = "porkbun";

/// The API every credential talks to unless `base_url` says otherwise.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.porkbun.com/api/json/v3";

/// TTL of challenge records: Porkbun's minimum ("the minimum and the
/// default is 600 seconds").
const TTL: u32 = 600;

/// Domains `/domain/listAll` returns per call.
const DOMAINS_PER_CALL: usize = 1000;

/// Bound on `/domain/listAll` calls, so a misbehaving answer cannot loop forever.
const MAX_PAGES: usize = 100;

/// Fields of a `porkbun` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    secrets: &["api_key", "secret_api_key"],
    optional_secrets: &[],
    required: &[],
    optional: &["base_url"],
};

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Ok(Box::new(Porkbun {
        api: HttpApi::new(NAME, fields.config_or("base_url", DEFAULT_BASE_URL))?,
        api_key: fields.secret(NAME, "api_key")?.to_owned(),
        secret_api_key: fields.secret(NAME, "secret_api_key")?.to_owned(),
    }))
}

/// A Porkbun account reached with one API key pair.
struct Porkbun {
    /// The API client.
    api: HttpApi,
    /// `apikey` (`pk1_...`).
    api_key: String,
    /// `secretapikey` (`sk1_...`).
    secret_api_key: String,
}

/// What a failed call was about, to pick the error variant.
#[derive(Clone, Copy)]
enum Subject<'a> {
    /// The account as a whole.
    Account,
    /// One domain (zone).
    Domain(&'a str),
}

// === impl Porkbun ===

impl Porkbun {
    /// POSTs `fields` plus the keys to `path`; the body of a `SUCCESS`.
    async fn call(
        &self,
        path: &str,
        fields: Value,
        subject: Subject<'_>,
    ) -> Result<Value, DnsError> {
        let mut body = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        body.insert("apikey".into(), Value::String(self.api_key.clone()));
        body.insert(
            "secretapikey".into(),
            Value::String(self.secret_api_key.clone()),
        );
        let answer = self
            .api
            .json(Method::POST, path, &[], Some(&Value::Object(body)))
            .await?;
        let json = answer.json();
        if answer.ok() && json.get("status").and_then(Value::as_str) == Some("SUCCESS") {
            Ok(json)
        } else {
            Err(self.error(&answer, subject))
        }
    }

    /// Turns an `ERROR` into `Auth`, `ZoneNotFound` or `Api`.
    fn error(&self, answer: &Answer, subject: Subject<'_>) -> DnsError {
        let body = answer.json();
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .map_or_else(
                || format!("unexpected answer: {}", snippet(&answer.body)),
                str::to_owned,
            );
        let message = scrub(&message, &[&self.secret_api_key, &self.api_key]);
        let lower = message.to_ascii_lowercase();
        // "Invalid API key. (002)"; "Domain is not opted in to API access."
        let refused = matches!(answer.status, 401 | 403)
            || lower.contains("api key")
            || lower.contains("api access");
        let missing = match subject {
            // "Invalid domain." for a domain that is not in the account.
            Subject::Domain(zone) if lower.contains("invalid domain") => Some(zone),
            _ => None,
        };
        refusal(NAME, answer.status, message, refused, missing)
    }

    /// Every TXT record at `fqdn` as (id, value).
    async fn txt_records(
        &self,
        zone: &str,
        fqdn: &str,
        sub: &str,
    ) -> Result<Vec<(String, String)>, DnsError> {
        let mut path = format!("/dns/retrieveByNameType/{}/TXT", encode(zone));
        if !sub.is_empty() {
            path.push('/');
            path.push_str(&encode(sub));
        }
        let body = self.call(&path, json!({}), Subject::Domain(zone)).await?;
        Ok(items(&body, "records")
            .filter(|r| r.get("type").and_then(Value::as_str) == Some("TXT"))
            .filter(|r| {
                r.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| same_name(n, fqdn))
            })
            .filter_map(|r| {
                let id = match r.get("id")? {
                    Value::String(id) => id.clone(),
                    Value::Number(id) => id.to_string(),
                    _ => return None,
                };
                let content = r.get("content").and_then(Value::as_str)?;
                Some((id, unquote(content).to_owned()))
            })
            .collect())
    }
}

#[async_trait]
impl DnsProvider for Porkbun {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let sub = relative_name(NAME, zone, fqdn, "")?;
        if self
            .txt_records(zone, fqdn, &sub)
            .await?
            .iter()
            .any(|(_, v)| v == value)
        {
            return Ok(());
        }
        let fields =
            json!({ "name": sub, "type": "TXT", "content": value, "ttl": TTL.to_string() });
        self.call(
            &format!("/dns/create/{}", encode(zone)),
            fields,
            Subject::Domain(zone),
        )
        .await?;
        Ok(())
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let sub = relative_name(NAME, zone, fqdn, "")?;
        for (id, _) in self
            .txt_records(zone, fqdn, &sub)
            .await?
            .into_iter()
            .filter(|(_, v)| v == value)
        {
            let path = format!("/dns/delete/{}/{}", encode(zone), encode(&id));
            self.call(&path, json!({}), Subject::Domain(zone)).await?;
        }
        Ok(())
    }

    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        self.call("/ping", json!({}), Subject::Account).await?;
        let mut zones = Vec::new();
        for page in 0..MAX_PAGES {
            let start = page * DOMAINS_PER_CALL;
            let fields = json!({ "start": start.to_string(), "includeLabels": "no" });
            let body = self
                .call("/domain/listAll", fields, Subject::Account)
                .await?;
            let domains = body.get("domains").and_then(Value::as_array);
            let count = domains.map_or(0, Vec::len);
            zones.extend(
                domains
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.get("domain").and_then(Value::as_str))
                    .map(normalize),
            );
            if count < DOMAINS_PER_CALL {
                break;
            }
        }
        Ok(zones)
    }
}
