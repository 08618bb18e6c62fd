//! The `hetzner` DNS provider: TXT records through the DNS part of the
//! Hetzner Cloud API. (The DNS Console API at `dns.hetzner.com` that this
//! provider used before was shut down in May 2026; the credential fields
//! did not change, but a DNS Console token does not work here: it takes a
//! Cloud API token of the project that holds the zones.)
//!
//! Calls (<https://docs.hetzner.cloud/reference/cloud#zones>,
//! <https://docs.hetzner.cloud/reference/cloud#zone-rrsets>,
//! <https://docs.hetzner.cloud/reference/cloud#actions>), all with
//! `Authorization: Bearer <api_token>`:
//! - `GET /zones?page=&per_page=`: the zones the token sees; `per_page` is
//!   at most 50 and `meta.pagination.next_page` is null on the last page.
//! - `GET /zones?name=<zone>`: a zone's numeric id (an empty list when the
//!   token does not see it).
//! - `GET /zones/{id}/rrsets/{name}/TXT`: the TXT RRSet at a name, 404
//!   `not_found` when there is none. `name` is relative to the zone, lower
//!   case, `@` for the apex.
//! - `POST /zones/{id}/rrsets/{name}/TXT/actions/add_records`
//!   `{"records": [{"value"}], "ttl"}`: adds a value, creating the RRSet
//!   when there is none. `ttl` goes only with a new RRSet: for an existing
//!   one it must equal the RRSet's own.
//! - `POST /zones/{id}/rrsets/{name}/TXT/actions/remove_records`
//!   `{"records": [{"value"}]}`: removes values; the RRSet goes with its
//!   last one.
//! - `GET /actions/{id}`: both changes answer 201 with an asynchronous
//!   action (`running`, `success` or `error`), polled until it ends.
//!
//! TXT values travel in presentation format: quoted character-strings of
//! at most 255 bytes each. Errors are
//! `{"error": {"code", "message", "details"}}`; a missing or unknown token
//! is 401 `unauthorized`.

use std::time::Duration;

use async_trait::async_trait;
use http::Method;
use serde_json::{json, Value};

use super::support::{
    encode, items, normalize, refusal, relative_name, same_name, snippet, text, txt_quote,
    txt_text, TokenApi,
};
use crate::dns::http::Answer;
use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

#[cfg(test)]
mod tests;

/// Provider name.
const NAME: &str = "hetzner";

/// The API every credential talks to unless `base_url` says otherwise.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.hetzner.cloud/v1";

/// TTL of an RRSet this provider creates: the API's minimum, so resolvers
/// do not keep a challenge value long after it is gone. An RRSet that
/// already exists keeps its own TTL.
const TTL: u32 = 60;

/// Zones per page: the most `GET /zones` allows (50, as every list but
/// RRSets).
const ZONES_PER_PAGE: u32 = 50;

/// Bound on pages followed, so a misbehaving answer cannot loop forever.
const MAX_PAGES: u64 = 100;

/// The wait between two polls of a running action. The API asks clients
/// not to poll too often: a project has 3600 requests an hour.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Polls of one action before giving up on it (about a minute at
/// [`POLL_INTERVAL`]; DNS changes usually finish within seconds).
const MAX_POLLS: u32 = 60;

/// Fields of a `hetzner` credential.
pub(crate) const SPEC: ProviderSpec = TokenApi::spec(NAME);

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Ok(Box::new(Hetzner::new(fields)?))
}

/// A Hetzner Cloud project reached with one API token.
struct Hetzner {
    /// The API, with `Authorization: Bearer <token>`.
    api: TokenApi,
    /// The wait between polls of an action ([`POLL_INTERVAL`]; tests
    /// shorten it).
    poll_interval: Duration,
}

/// `action.status` of an asynchronous action.
#[derive(Debug, PartialEq, Eq)]
enum ActionStatus {
    /// Not finished yet.
    Running,
    /// Finished; the change is applied.
    Success,
    /// Finished; the change was not applied, `action.error` says why.
    Error,
    /// A status this provider does not know: treated as not finished yet,
    /// so the bounded polling decides.
    Unknown(String),
}

impl ActionStatus {
    /// Reads the status of `action`.
    fn of(action: &Value) -> Self {
        match text(action, "status") {
            "running" => Self::Running,
            "success" => Self::Success,
            "error" => Self::Error,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

// === impl Hetzner ===

impl Hetzner {
    /// The provider for a credential, polling at [`POLL_INTERVAL`].
    fn new(fields: &Fields) -> Result<Self, DnsError> {
        Ok(Self {
            api: TokenApi::bearer(NAME, fields, DEFAULT_BASE_URL)?,
            poll_interval: POLL_INTERVAL,
        })
    }

    /// The body of a 2xx answer, or the error it carries (`ZoneNotFound`
    /// for `zone` when it is a 404).
    fn ok(&self, answer: &Answer, zone: Option<&str>) -> Result<Value, DnsError> {
        if answer.ok() {
            Ok(answer.json())
        } else {
            Err(self.error(answer, zone))
        }
    }

    /// Turns a refusal into `Auth`, `ZoneNotFound` (for `zone`, on a 404)
    /// or `Api`, in Hetzner's words followed by its error code.
    fn error(&self, answer: &Answer, zone: Option<&str>) -> DnsError {
        let body = answer.json();
        let code = body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let message = match body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            Some(message) if !code.is_empty() => format!("{message} ({code})"),
            Some(message) => message.to_owned(),
            None => format!("unexpected answer: {}", snippet(&answer.body)),
        };
        let message = self.api.scrub(&message);
        // 401 is `unauthorized` (unknown token) or `token_readonly`; 403 is
        // about the token only as `forbidden` (`maintenance` and
        // `resource_limit_exceeded` are 403s too).
        let refused = answer.status == 401 || (answer.status == 403 && code == "forbidden");
        let missing = zone.filter(|_| answer.status == 404);
        refusal(NAME, answer.status, message, refused, missing)
    }

    /// The numeric id of `zone`, or `ZoneNotFound` when the token does not
    /// see it.
    async fn zone_id(&self, zone: &str) -> Result<u64, DnsError> {
        let path = format!("/zones?name={}", encode(&normalize(zone)));
        let body = self.ok(&self.api.call(Method::GET, &path, None).await?, None)?;
        let id = items(&body, "zones")
            .find(|z| same_name(text(z, "name"), zone))
            .and_then(|z| z.get("id").and_then(Value::as_u64));
        id.ok_or_else(|| DnsError::ZoneNotFound {
            provider: NAME,
            zone: zone.to_owned(),
        })
    }

    /// The path of the TXT RRSet at `fqdn` in `zone`.
    async fn rrset_path(&self, zone: &str, fqdn: &str) -> Result<String, DnsError> {
        let relative = relative_name(NAME, zone, fqdn, "@")?;
        let zone_id = self.zone_id(zone).await?;
        Ok(format!(
            "/zones/{zone_id}/rrsets/{}/TXT",
            segment(&relative)
        ))
    }

    /// The values of the TXT RRSet at `path` as Hetzner holds them
    /// (quoted), or `None` when there is no such RRSet.
    async fn txt_values(&self, path: &str, zone: &str) -> Result<Option<Vec<String>>, DnsError> {
        let answer = self.api.call(Method::GET, path, None).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        let body = self.ok(&answer, Some(zone))?;
        let values = body
            .pointer("/rrset/records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("value").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        Ok(Some(values))
    }

    /// Starts one change (`add_records` or `remove_records`) of the RRSet
    /// at `path` and waits for its action to end.
    async fn change(
        &self,
        path: &str,
        action: &str,
        body: &Value,
        zone: &str,
    ) -> Result<(), DnsError> {
        let path = format!("{path}/actions/{action}");
        let answer = self.api.call(Method::POST, &path, Some(body)).await?;
        let mut status = answer.status;
        let mut body = self.ok(&answer, Some(zone))?;
        let mut polls = 0;
        loop {
            let action = body.get("action").unwrap_or(&Value::Null);
            let Some(id) = action.get("id").and_then(Value::as_u64) else {
                return Err(DnsError::Api {
                    provider: NAME,
                    status,
                    message: format!(
                        "answer without an action: {}",
                        snippet(body.to_string().as_bytes())
                    ),
                });
            };
            match ActionStatus::of(action) {
                ActionStatus::Success => return Ok(()),
                ActionStatus::Error => return Err(self.failed(action, status)),
                ActionStatus::Running | ActionStatus::Unknown(_) if polls == MAX_POLLS => {
                    return Err(DnsError::Api {
                        provider: NAME,
                        status,
                        message: format!(
                            "action {id} ({}) was still running after {MAX_POLLS} polls; \
                             it may still finish: try again in a minute",
                            text(action, "command")
                        ),
                    });
                }
                ActionStatus::Running | ActionStatus::Unknown(_) => {}
            }
            polls += 1;
            tokio::time::sleep(self.poll_interval).await;
            let answer = self
                .api
                .call(Method::GET, &format!("/actions/{id}"), None)
                .await?;
            status = answer.status;
            body = self.ok(&answer, None)?;
        }
    }

    /// An action that ended in `error`, in Hetzner's words (the answer
    /// that reported it was a success, hence its 2xx `status`).
    fn failed(&self, action: &Value, status: u16) -> DnsError {
        let error = action.get("error").unwrap_or(&Value::Null);
        let message = match (text(error, "message"), text(error, "code")) {
            ("", "") => format!(
                "action {} ({}) failed without saying why",
                action.get("id").and_then(Value::as_u64).unwrap_or_default(),
                text(action, "command")
            ),
            (message, "") => message.to_owned(),
            ("", code) => code.to_owned(),
            (message, code) => format!("{message} ({code})"),
        };
        DnsError::Api {
            provider: NAME,
            status,
            message: self.api.scrub(&message),
        }
    }
}

#[async_trait]
impl DnsProvider for Hetzner {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let path = self.rrset_path(zone, fqdn).await?;
        let existing = self.txt_values(&path, zone).await?;
        if existing.iter().flatten().any(|v| txt_text(v) == value) {
            return Ok(());
        }
        let records = json!([{ "value": txt_quote(value) }]);
        let body = match existing {
            Some(_) => json!({ "records": records }),
            None => json!({ "records": records, "ttl": TTL }),
        };
        self.change(&path, "add_records", &body, zone).await
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let path = self.rrset_path(zone, fqdn).await?;
        let Some(values) = self.txt_values(&path, zone).await? else {
            return Ok(());
        };
        // Removed exactly as Hetzner holds them: the value identifies a
        // record.
        let ours: Vec<Value> = values
            .into_iter()
            .filter(|v| txt_text(v) == value)
            .map(|v| json!({ "value": v }))
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        let body = json!({ "records": ours });
        self.change(&path, "remove_records", &body, zone).await
    }

    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        let mut zones = Vec::new();
        let mut page = 1;
        for _ in 0..MAX_PAGES {
            let path = format!("/zones?page={page}&per_page={ZONES_PER_PAGE}");
            let body = self.ok(&self.api.call(Method::GET, &path, None).await?, None)?;
            zones.extend(
                items(&body, "zones")
                    .map(|z| text(z, "name"))
                    .filter(|n| !n.is_empty())
                    .map(normalize),
            );
            match body
                .pointer("/meta/pagination/next_page")
                .and_then(Value::as_u64)
            {
                Some(next) if next > page => page = next,
                _ => break,
            }
        }
        Ok(zones)
    }
}

// === helpers ===

/// An RRSet name as a path segment: percent-encoded, but the apex's `@`
/// as it is (RFC 3986 §3.3 allows `@` in a segment, and the API documents
/// the apex as `@`).
fn segment(name: &str) -> String {
    if name == "@" {
        name.to_owned()
    } else {
        encode(name)
    }
}
