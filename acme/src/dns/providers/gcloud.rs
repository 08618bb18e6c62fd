//! The `gcloud` DNS provider: Google Cloud DNS API v1, authenticated as a
//! service account (see [`auth`]).
//!
//! Calls used (Cloud DNS API v1 reference):
//! - `managedZones.list` (`GET /dns/v1/projects/{project}/managedZones`,
//!   with `dnsName` to find one zone) to validate and to find a zone;
//! - `resourceRecordSets.list` (`GET .../managedZones/{zone}/rrsets?name=&type=TXT`);
//! - `changes.create` (`POST .../managedZones/{zone}/changes`).
//!
//! Cloud DNS keeps every value of a name and type in one record set, and a
//! change replaces sets whole: `present` deletes the current set (exactly
//! as it is, or the change fails with 412) and adds it back with the new
//! value; `cleanup` does the same without the value, or only deletes when
//! it was the last one. A change that lost a race (409/412) is retried
//! from a fresh read.
//!
//! Credential fields: secret `service_account_json` (the key file as
//! downloaded); optional settings `project` (default: the file's
//! `project_id`), `base_url` (default [`DEFAULT_BASE_URL`]) and
//! `token_uri` (default: the file's `token_uri`).

mod auth;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use http::{HeaderValue, Method};
use serde_json::{json, Value};

use super::support::{encode, in_zone, items, normalize, refusal, txt_quote, txt_text};
use crate::dns::http::HttpApi;
use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

const NAME: &str = "gcloud";

/// Fields of a `gcloud` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    secrets: &["service_account_json"],
    optional_secrets: &[],
    required: &[],
    optional: &["project", "base_url", "token_uri"],
};

/// Cloud DNS's API endpoint.
pub(crate) const DEFAULT_BASE_URL: &str = "https://dns.googleapis.com";
/// TTL of a TXT record set we create (an existing set keeps its own).
pub(crate) const TTL: u64 = 60;
/// Attempts for a change that lost a race with another writer.
const ATTEMPTS: u32 = 3;

/// One process-wide lock for read-modify-write of record sets (see the
/// module docs; a wildcard and its apex share a name).
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Ok(Box::new(CloudDns::new(fields)?))
}

/// A Cloud DNS client for one service account and project.
struct CloudDns {
    api: HttpApi,
    /// `/dns/v1/projects/{project}`.
    root: String,
    auth: auth::TokenSource,
    /// Zone name (`example.com`) → managed zone name (`example-com`).
    zones: Mutex<HashMap<String, String>>,
}

/// A TXT resource record set as Cloud DNS holds it.
#[derive(Debug, Clone, PartialEq)]
struct RecordSet {
    ttl: u64,
    /// Exactly as Cloud DNS returned them (quoted strings).
    rrdatas: Vec<String>,
}

// === impl CloudDns ===

impl CloudDns {
    fn new(fields: &Fields) -> Result<Self, DnsError> {
        let json = fields.secret(NAME, "service_account_json")?;
        let token_uri = fields
            .config
            .get("token_uri")
            .map(String::as_str)
            .filter(|u| !u.is_empty());
        let account = auth::ServiceAccount::from_json(json, token_uri)?;
        let project = match fields.config.get("project").filter(|p| !p.is_empty()) {
            Some(project) => project.clone(),
            None => account.project_id.clone().ok_or_else(|| DnsError::Config {
                provider: NAME,
                field: "project".into(),
                message: "is required: the key file has no `project_id`".into(),
            })?,
        };
        Ok(Self {
            api: HttpApi::new(NAME, fields.config_or("base_url", DEFAULT_BASE_URL))?,
            root: format!("/dns/v1/projects/{}", encode(&project)),
            auth: auth::TokenSource::new(account)?,
            zones: Mutex::new(HashMap::new()),
        })
    }

    /// One authorized call below the project; the answer's JSON on success.
    /// A refused token is dropped and the call made once more with a new
    /// one. `zone` names the zone a 404 is about.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        zone: Option<&str>,
    ) -> Result<Value, DnsError> {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let mut target = format!("{}{path}", self.root);
        if !query.is_empty() {
            target = format!("{target}?{}", query.join("&"));
        }
        let mut fresh_token = false;
        loop {
            let token = self.auth.token().await?;
            let bearer =
                HeaderValue::from_str(&format!("Bearer {}", token.as_str())).map_err(|_| {
                    DnsError::Api {
                        provider: NAME,
                        status: 200,
                        message: "the token endpoint issued a token that cannot go in a header"
                            .into(),
                    }
                })?;
            let headers = [(http::header::AUTHORIZATION, bearer)];
            let answer = self
                .api
                .json(method.clone(), &target, &headers, body)
                .await?;
            if answer.ok() {
                return Ok(answer.json());
            }
            if answer.status == 401 && !fresh_token {
                self.auth.invalidate().await;
                fresh_token = true;
                continue;
            }
            return Err(self.error(answer.status, &answer.json(), zone));
        }
    }

    /// Maps a Google error (`{"error": {"code", "message", "status"}}`).
    fn error(&self, status: u16, body: &Value, zone: Option<&str>) -> DnsError {
        let error = body.get("error");
        let text = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str);
        let message = match (text("status"), text("message")) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (None, Some(message)) => message.to_owned(),
            _ => format!("HTTP {status} without an error document"),
        };
        let refused = matches!(status, 401 | 403);
        let missing = zone.filter(|_| status == 404);
        if let Some(zone) = missing {
            if let Ok(mut zones) = self.zones.lock() {
                zones.remove(zone);
            }
        }
        refusal(NAME, status, message, refused, missing)
    }

    /// Every public managed zone, or those named `dns_name`.
    async fn managed_zones(
        &self,
        dns_name: Option<&str>,
    ) -> Result<Vec<(String, String)>, DnsError> {
        let mut found = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut query = Vec::new();
            if let Some(name) = dns_name {
                query.push(("dnsName", name));
            }
            if let Some(page) = &page {
                query.push(("pageToken", page.as_str()));
            }
            let list = self
                .call(Method::GET, "/managedZones", &query, None, None)
                .await?;
            for zone in items(&list, "managedZones") {
                let text = |name: &str| zone.get(name).and_then(Value::as_str).unwrap_or("");
                if text("visibility") == "private" {
                    continue;
                }
                let dns = normalize(text("dnsName"));
                found.push((dns, text("name").to_owned()));
            }
            match list
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                Some(next) => page = Some(next.to_owned()),
                None => return Ok(found),
            }
        }
    }

    /// The managed zone name of the public zone `zone`.
    async fn managed_zone(&self, zone: &str) -> Result<String, DnsError> {
        if let Some(name) = self.zones.lock().ok().and_then(|z| z.get(zone).cloned()) {
            return Ok(name);
        }
        let zones = self.managed_zones(Some(&format!("{zone}."))).await?;
        let (_, name) = zones
            .into_iter()
            .find(|(dns, _)| dns == zone)
            .ok_or_else(|| DnsError::ZoneNotFound {
                provider: NAME,
                zone: zone.to_owned(),
            })?;
        if let Ok(mut cache) = self.zones.lock() {
            cache.insert(zone.to_owned(), name.clone());
        }
        Ok(name)
    }

    /// The TXT set at `fqdn`, if any.
    async fn txt_set(
        &self,
        zone: &str,
        managed: &str,
        fqdn: &str,
    ) -> Result<Option<RecordSet>, DnsError> {
        let name = format!("{fqdn}.");
        let path = format!("/managedZones/{}/rrsets", encode(managed));
        let query = [("name", name.as_str()), ("type", "TXT")];
        let list = self
            .call(Method::GET, &path, &query, None, Some(zone))
            .await?;
        let sets = items(&list, "rrsets");
        let found = sets.into_iter().find(|set| {
            let name = set.get("name").and_then(Value::as_str).unwrap_or("");
            name.trim_end_matches('.').eq_ignore_ascii_case(fqdn)
                && set.get("type").and_then(Value::as_str) == Some("TXT")
        });
        Ok(found.map(|set| RecordSet {
            ttl: set.get("ttl").and_then(Value::as_u64).unwrap_or(TTL),
            rrdatas: items(set, "rrdatas")
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        }))
    }

    /// `changes.create`: delete `old` (exactly) and add `new`.
    async fn change(
        &self,
        zone: &str,
        managed: &str,
        fqdn: &str,
        old: Option<&RecordSet>,
        new: Option<&RecordSet>,
    ) -> Result<(), DnsError> {
        let rrset = |set: &RecordSet| json!({ "name": format!("{fqdn}."), "type": "TXT", "ttl": set.ttl, "rrdatas": set.rrdatas });
        let body = json!({
            "kind": "dns#change",
            "additions": new.map(rrset).into_iter().collect::<Vec<_>>(),
            "deletions": old.map(rrset).into_iter().collect::<Vec<_>>(),
        });
        let path = format!("/managedZones/{}/changes", encode(managed));
        self.call(Method::POST, &path, &[], Some(&body), Some(zone))
            .await
            .map(drop)
    }

    /// Reads the set at `fqdn`, lets `edit` say what it should become
    /// (`None`: nothing to do; `Some(None)`: no set), and writes that,
    /// again from a fresh read when another writer got in between.
    async fn update<F>(&self, zone: &str, fqdn: &str, edit: F) -> Result<(), DnsError>
    where
        F: Fn(Option<&RecordSet>) -> Option<Option<RecordSet>> + Send + Sync,
    {
        in_zone(NAME, zone, fqdn)?;
        let _write = WRITES.lock().await;
        let managed = self.managed_zone(zone).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.txt_set(zone, &managed, fqdn).await?;
            let Some(next) = edit(current.as_ref()) else {
                return Ok(());
            };
            match self
                .change(zone, &managed, fqdn, current.as_ref(), next.as_ref())
                .await
            {
                Err(DnsError::Api {
                    status: 409 | 412, ..
                }) if attempt < ATTEMPTS => continue,
                result => return result,
            }
        }
    }
}

#[async_trait]
impl DnsProvider for CloudDns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        self.update(zone, fqdn, |current| match current {
            Some(set) if set.rrdatas.iter().any(|r| txt_text(r) == value) => None,
            Some(set) => {
                let mut grown = set.clone();
                grown.rrdatas.push(txt_quote(value));
                Some(Some(grown))
            }
            None => Some(Some(RecordSet {
                ttl: TTL,
                rrdatas: vec![txt_quote(value)],
            })),
        })
        .await
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        self.update(zone, fqdn, |current| {
            let set = current?;
            let keep: Vec<String> = set
                .rrdatas
                .iter()
                .filter(|r| txt_text(r) != value)
                .cloned()
                .collect();
            if keep.len() == set.rrdatas.len() {
                None
            } else if keep.is_empty() {
                Some(None)
            } else {
                Some(Some(RecordSet {
                    ttl: set.ttl,
                    rrdatas: keep,
                }))
            }
        })
        .await
    }

    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        Ok(self
            .managed_zones(None)
            .await?
            .into_iter()
            .map(|(dns, _)| dns)
            .collect())
    }
}
