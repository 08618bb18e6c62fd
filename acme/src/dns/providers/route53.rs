//! The `route53` DNS provider: Amazon Route 53's REST API, version
//! 2013-04-01, XML bodies, requests signed with AWS Signature Version 4.
//!
//! Calls used (Route 53 API Reference):
//! - `ListHostedZones` (`GET /2013-04-01/hostedzone`) to validate the
//!   credential and list the public zones it sees;
//! - `ListHostedZonesByName` (`GET /2013-04-01/hostedzonesbyname`) to find
//!   a zone's id;
//! - `ListResourceRecordSets` (`GET /2013-04-01/hostedzone/{Id}/rrset`) to
//!   read the TXT values already at a name;
//! - `ChangeResourceRecordSets` (`POST /2013-04-01/hostedzone/{Id}/rrset`).
//!
//! Route 53 keeps every value of a name and type in ONE record set, so
//! `present` UPSERTs the set with the values already there plus the new
//! one, and `cleanup` UPSERTs it without the value, or DELETEs it (with
//! the exact current TTL and values, as `DELETE` requires) when the value
//! was the last one.
//!
//! Credential fields: secrets `access_key_id`, `secret_access_key`;
//! optional settings `base_url` (default [`DEFAULT_BASE_URL`]), `region`
//! (signing region, default [`DEFAULT_REGION`]); optional secret
//! `session_token`, the STS session token of temporary credentials
//! (which expire within hours: prefer an IAM user's long-lived key pair).

mod request;
mod sigv4;
#[cfg(test)]
mod tests;
mod xml;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use http::Method;
use zeroize::Zeroizing;

use super::support::{in_zone, normalize, txt_quote, txt_text};
use crate::dns::http::HttpApi;
use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

const NAME: &str = "route53";

/// Fields of a `route53` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    secrets: &["access_key_id", "secret_access_key"],
    optional_secrets: &["session_token"],
    required: &[],
    optional: &["base_url", "region"],
};

/// Route 53's global API endpoint.
pub(crate) const DEFAULT_BASE_URL: &str = "https://route53.amazonaws.com";
/// The signing region of the global endpoint.
pub(crate) const DEFAULT_REGION: &str = "us-east-1";
/// TTL of a TXT record set we create (an existing set keeps its own).
pub(crate) const TTL: u32 = 60;
/// Attempts for a change Route 53 answers `Throttling` or
/// `PriorRequestNotComplete` to (both say "retry later").
const ATTEMPTS: u32 = 3;
/// The wait before the first retry; doubled for each later one.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// The API version prefix of every path.
const API: &str = "/2013-04-01";
/// The namespace of request and response documents.
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// One process-wide lock for read-modify-write of record sets: two
/// challenges for one name (a wildcard and its apex) must not both read
/// the old set and each write back only their own value.
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Ok(Box::new(Route53::new(fields)?))
}

/// A Route 53 client for one credential.
struct Route53 {
    api: HttpApi,
    /// The `host` header (and signed value): the base URL's authority.
    host: String,
    /// The base URL's path, usually empty.
    prefix: String,
    access_key_id: Zeroizing<String>,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
    region: String,
    retry_delay: Duration,
    /// Zone name → hosted zone id, filled by lookups.
    zones: Mutex<HashMap<String, String>>,
}

/// A TXT record set as Route 53 holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordSet {
    ttl: u32,
    /// Values exactly as Route 53 returned them (quoted strings).
    values: Vec<String>,
}

// === impl Route53 ===

impl Route53 {
    fn new(fields: &Fields) -> Result<Self, DnsError> {
        let base_url = fields.config_or("base_url", DEFAULT_BASE_URL);
        let api = HttpApi::new(NAME, base_url)?;
        let uri: http::Uri = api.base_url().parse().map_err(|e| DnsError::Config {
            provider: NAME,
            field: "base_url".into(),
            message: format!("\"{base_url}\" is not a URL: {e}"),
        })?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| DnsError::Config {
                provider: NAME,
                field: "base_url".into(),
                message: format!("\"{base_url}\" has no host"),
            })?;
        let session_token = fields
            .secrets
            .get("session_token")
            .filter(|t| !t.is_empty())
            .map(|t| Zeroizing::new(t.clone()));
        Ok(Self {
            prefix: uri.path().trim_end_matches('/').to_owned(),
            host,
            access_key_id: Zeroizing::new(fields.secret(NAME, "access_key_id")?.to_owned()),
            secret_access_key: Zeroizing::new(fields.secret(NAME, "secret_access_key")?.to_owned()),
            session_token,
            region: fields.config_or("region", DEFAULT_REGION).to_owned(),
            retry_delay: RETRY_DELAY,
            zones: Mutex::new(HashMap::new()),
            api,
        })
    }

    fn forget(&self, zone: &str) {
        if let Ok(mut zones) = self.zones.lock() {
            zones.remove(zone);
        }
    }

    /// The id (`Z...`, without `/hostedzone/`) of the public hosted zone
    /// called `zone`.
    async fn zone_id(&self, zone: &str) -> Result<String, DnsError> {
        if let Some(id) = self.zones.lock().ok().and_then(|z| z.get(zone).cloned()) {
            return Ok(id);
        }
        // ListHostedZonesByName lists zones in name order starting at
        // `dnsname`; same-named zones (public and private) follow each
        // other, possibly across pages.
        let dns_name = format!("{zone}.");
        let mut next_id: Option<String> = None;
        loop {
            let mut query = vec![("dnsname", dns_name.as_str()), ("maxitems", "100")];
            if let Some(id) = &next_id {
                query.push(("hostedzoneid", id));
            }
            let doc = self
                .call(Method::GET, "/hostedzonesbyname", &query, None, None)
                .await?;
            let zones = doc
                .child("HostedZones")
                .map(|z| z.children("HostedZone").collect::<Vec<_>>());
            for hosted in zones.unwrap_or_default() {
                if !same_name(hosted.text_at(&["Name"]).unwrap_or(""), zone) {
                    return Err(not_found(zone));
                }
                if hosted.text_at(&["Config", "PrivateZone"]) == Some("true") {
                    continue;
                }
                let id = hosted.text_at(&["Id"]).unwrap_or("");
                let id = id.strip_prefix("/hostedzone/").unwrap_or(id).to_owned();
                if let Ok(mut cache) = self.zones.lock() {
                    cache.insert(zone.to_owned(), id.clone());
                }
                return Ok(id);
            }
            let truncated = doc.text_at(&["IsTruncated"]) == Some("true");
            let next_name = doc.text_at(&["NextDNSName"]).unwrap_or("");
            match doc.text_at(&["NextHostedZoneId"]) {
                Some(id) if truncated && same_name(next_name, zone) => {
                    next_id = Some(id.to_owned())
                }
                _ => return Err(not_found(zone)),
            }
        }
    }

    /// The TXT record set at `fqdn`, if any.
    async fn txt_set(
        &self,
        zone: &str,
        id: &str,
        fqdn: &str,
    ) -> Result<Option<RecordSet>, DnsError> {
        let name = format!("{fqdn}.");
        let query = [("name", name.as_str()), ("type", "TXT"), ("maxitems", "10")];
        let path = format!("/hostedzone/{id}/rrset");
        let doc = self
            .call(Method::GET, &path, &query, None, Some(zone))
            .await?;
        let sets = doc
            .child("ResourceRecordSets")
            .map(|s| s.children("ResourceRecordSet").collect::<Vec<_>>());
        // The list starts at the first set whose (name, type) sorts at or
        // after ours: it may be some other name's, or another type's.
        let found = sets.unwrap_or_default().into_iter().find(|set| {
            same_name(set.text_at(&["Name"]).unwrap_or(""), fqdn)
                && set.text_at(&["Type"]) == Some("TXT")
                && set.child("SetIdentifier").is_none()
        });
        Ok(found.map(|set| RecordSet {
            ttl: set
                .text_at(&["TTL"])
                .and_then(|t| t.parse().ok())
                .unwrap_or(TTL),
            values: set
                .at(&["ResourceRecords"])
                .map(|r| {
                    r.children("ResourceRecord")
                        .filter_map(|r| r.text_at(&["Value"]))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }

    /// `ChangeResourceRecordSets` with one change.
    async fn change(
        &self,
        zone: &str,
        id: &str,
        action: &str,
        fqdn: &str,
        set: &RecordSet,
    ) -> Result<(), DnsError> {
        let records: String = set
            .values
            .iter()
            .map(|v| {
                format!(
                    "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                    xml::escape(v)
                )
            })
            .collect();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ChangeResourceRecordSetsRequest xmlns=\"{XMLNS}\"><ChangeBatch>\
             <Comment>portcullis ACME DNS-01</Comment><Changes><Change>\
             <Action>{action}</Action><ResourceRecordSet>\
             <Name>{}.</Name><Type>TXT</Type><TTL>{}</TTL>\
             <ResourceRecords>{records}</ResourceRecords>\
             </ResourceRecordSet></Change></Changes></ChangeBatch>\
             </ChangeResourceRecordSetsRequest>",
            xml::escape(fqdn),
            set.ttl
        );
        let path = format!("/hostedzone/{id}/rrset");
        self.call(Method::POST, &path, &[], Some(body), Some(zone))
            .await
            .map(drop)
    }
}

#[async_trait]
impl DnsProvider for Route53 {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        in_zone(NAME, zone, fqdn)?;
        let _write = WRITES.lock().await;
        let id = self.zone_id(zone).await?;
        let wanted = txt_quote(value);
        let set = match self.txt_set(zone, &id, fqdn).await? {
            Some(set) if set.values.iter().any(|v| txt_text(v) == value) => return Ok(()),
            Some(mut set) => {
                set.values.push(wanted);
                set
            }
            None => RecordSet {
                ttl: TTL,
                values: vec![wanted],
            },
        };
        self.change(zone, &id, "UPSERT", fqdn, &set).await
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        in_zone(NAME, zone, fqdn)?;
        let _write = WRITES.lock().await;
        let id = self.zone_id(zone).await?;
        let Some(set) = self.txt_set(zone, &id, fqdn).await? else {
            return Ok(());
        };
        let keep: Vec<String> = set
            .values
            .iter()
            .filter(|v| txt_text(v) != value)
            .cloned()
            .collect();
        if keep.len() == set.values.len() {
            return Ok(());
        }
        if keep.is_empty() {
            // DELETE must name the set exactly as it is.
            return self.change(zone, &id, "DELETE", fqdn, &set).await;
        }
        let kept = RecordSet {
            ttl: set.ttl,
            values: keep,
        };
        self.change(zone, &id, "UPSERT", fqdn, &kept).await
    }

    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        let mut zones = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut query = vec![("maxitems", "100")];
            if let Some(marker) = &marker {
                query.push(("marker", marker));
            }
            let doc = self
                .call(Method::GET, "/hostedzone", &query, None, None)
                .await?;
            if let Some(list) = doc.child("HostedZones") {
                for hosted in list.children("HostedZone") {
                    if hosted.text_at(&["Config", "PrivateZone"]) == Some("true") {
                        continue;
                    }
                    if let Some(name) = hosted.text_at(&["Name"]) {
                        zones.push(normalize(name));
                    }
                }
            }
            match doc.text_at(&["NextMarker"]) {
                Some(next) if doc.text_at(&["IsTruncated"]) == Some("true") => {
                    marker = Some(next.to_owned())
                }
                _ => return Ok(zones),
            }
        }
    }
}

// === helpers ===

fn not_found(zone: &str) -> DnsError {
    DnsError::ZoneNotFound {
        provider: NAME,
        zone: zone.to_owned(),
    }
}

/// Compares a Route 53 name (trailing dot, any case) with ours.
fn same_name(theirs: &str, ours: &str) -> bool {
    theirs.trim_end_matches('.').eq_ignore_ascii_case(ours)
}
