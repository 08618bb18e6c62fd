//! The `ovh` DNS provider: TXT records through the OVHcloud API with signed
//! requests.
//!
//! Every call but `GET /auth/time` carries `X-Ovh-Application` (the
//! application key), `X-Ovh-Consumer` (the consumer key), `X-Ovh-Timestamp`
//! (OVH's clock: ours plus the offset learned from `GET /auth/time`) and
//! `X-Ovh-Signature` = `"$1$"` + SHA-1 hex of
//! `AS+"+"+CK+"+"+METHOD+"+"+URL+"+"+BODY+"+"+TIMESTAMP`, where URL is the
//! full URL with its query and BODY the exact JSON sent (empty when none)
//! (<https://help.ovhcloud.com/csm/en-api-getting-started-ovhcloud-api>).
//!
//! Calls:
//! - `GET /domain/zone`: the zones the keys see.
//! - `GET /domain/zone/{zone}/record?fieldType=TXT&subDomain=`: record ids.
//! - `GET /domain/zone/{zone}/record/{id}`: one record.
//! - `POST /domain/zone/{zone}/record` `{"fieldType","subDomain","target","ttl"}`:
//!   add one; `subDomain` is relative to the zone, empty for the apex.
//! - `DELETE /domain/zone/{zone}/record/{id}`: remove one.
//! - `POST /domain/zone/{zone}/refresh`: publish the changes.
//!
//! Errors are `{"errorCode","httpCode","message"}` or `{"class","message"}`.

use std::fmt::Write as _;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use tokio::sync::Mutex;

use super::support::{
    encode, normalize, refusal, relative_name, scrub, secret_header, snippet, unquote,
};
use crate::dns::http::{Answer, HttpApi};
use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

#[cfg(test)]
mod tests;

/// Provider name.
const NAME: &str = "ovh";

/// The API every credential talks to unless `base_url` says otherwise
/// (`https://ca.api.ovh.com/1.0` for OVHcloud Canada,
/// `https://api.us.ovhcloud.com/1.0` for the US).
pub(crate) const DEFAULT_BASE_URL: &str = "https://eu.api.ovh.com/1.0";

/// TTL of challenge records (OVH's minimum; 0 would mean the zone default).
const TTL: u32 = 60;

const APPLICATION: HeaderName = HeaderName::from_static("x-ovh-application");
const CONSUMER: HeaderName = HeaderName::from_static("x-ovh-consumer");
const TIMESTAMP: HeaderName = HeaderName::from_static("x-ovh-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("x-ovh-signature");

/// `errorCode`s that mean the keys were refused, whatever the HTTP status
/// (`INVALID_SIGNATURE` comes back as 400).
const AUTH_CODES: &[&str] = &[
    "INVALID_SIGNATURE",
    "INVALID_CREDENTIAL",
    "NOT_CREDENTIAL",
    "NOT_GRANTED_CALL",
    "INVALID_KEY",
    "FORBIDDEN",
];

/// Fields of a `ovh` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    secrets: &["application_key", "application_secret", "consumer_key"],
    optional_secrets: &[],
    required: &[],
    optional: &["base_url"],
};

/// Builds the provider from a credential.
pub(crate) fn build(fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    let header_value = |field: &str| secret_header(NAME, field, fields.secret(NAME, field)?, "key");
    Ok(Box::new(Ovh {
        api: HttpApi::new(NAME, fields.config_or("base_url", DEFAULT_BASE_URL))?,
        application: header_value("application_key")?,
        consumer: header_value("consumer_key")?,
        application_key: fields.secret(NAME, "application_key")?.to_owned(),
        application_secret: fields.secret(NAME, "application_secret")?.to_owned(),
        consumer_key: fields.secret(NAME, "consumer_key")?.to_owned(),
        offset: Mutex::new(None),
    }))
}

/// An OVHcloud account reached with one application and consumer key.
struct Ovh {
    /// The API client.
    api: HttpApi,
    /// `X-Ovh-Application`, marked sensitive.
    application: HeaderValue,
    /// `X-Ovh-Consumer`, marked sensitive.
    consumer: HeaderValue,
    /// AK, only to scrub it from messages.
    application_key: String,
    /// AS: signs, never sent.
    application_secret: String,
    /// CK.
    consumer_key: String,
    /// OVH's clock minus ours, in seconds, once learned from `/auth/time`.
    offset: Mutex<Option<i64>>,
}

/// One TXT record as OVH holds it.
#[derive(Debug)]
struct TxtRecord {
    /// Record id.
    id: u64,
    /// Its value, without the quotes OVH may add.
    target: String,
}

// === impl Ovh ===

impl Ovh {
    /// OVH's clock minus ours, asking `GET /auth/time` the first time.
    async fn offset(&self) -> Result<i64, DnsError> {
        let mut offset = self.offset.lock().await;
        if let Some(known) = *offset {
            return Ok(known);
        }
        let answer = self
            .api
            .json(
                Method::GET,
                "/auth/time",
                &[(APPLICATION, self.application.clone())],
                None,
            )
            .await?;
        if !answer.ok() {
            return Err(self.error(&answer, None));
        }
        let server = answer.json().as_i64().ok_or_else(|| DnsError::Api {
            provider: NAME,
            status: answer.status,
            message: format!(
                "GET /auth/time did not answer a Unix time: {}",
                snippet(&answer.body)
            ),
        })?;
        let learned = server - crate::unix_now();
        *offset = Some(learned);
        Ok(learned)
    }

    /// Sends one signed call; if OVH says the timestamp is off (the clock
    /// moved since the offset was learned), learns it again and retries once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, DnsError> {
        let answer = self.signed(method.clone(), path, body).await?;
        if !is_time_refusal(&answer) {
            return Ok(answer);
        }
        *self.offset.lock().await = None;
        self.signed(method, path, body).await
    }

    /// Sends one call with the four authentication headers.
    async fn signed(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, DnsError> {
        let timestamp = crate::unix_now() + self.offset().await?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let url = format!("{}{path}", self.api.base_url());
        let signature = sign(
            &self.application_secret,
            &self.consumer_key,
            method.as_str(),
            &url,
            &body,
            timestamp,
        );
        let mut signature = HeaderValue::from_str(&signature).map_err(|_| DnsError::Transport {
            provider: NAME,
            message: "could not build the signature header".into(),
        })?;
        signature.set_sensitive(true);
        let mut headers = vec![
            (APPLICATION, self.application.clone()),
            (CONSUMER, self.consumer.clone()),
            (TIMESTAMP, HeaderValue::from(timestamp)),
            (SIGNATURE, signature),
            (header::ACCEPT, HeaderValue::from_static("application/json")),
        ];
        if !body.is_empty() {
            headers.push((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ));
        }
        self.api
            .send(method, path, &headers, Bytes::from(body))
            .await
    }

    /// The body of a 2xx answer, or the error it carries.
    fn ok(&self, answer: &Answer, zone: Option<&str>) -> Result<Value, DnsError> {
        if answer.ok() {
            Ok(answer.json())
        } else {
            Err(self.error(answer, zone))
        }
    }

    /// Turns a refusal into `Auth`, `ZoneNotFound` (a 404 about `zone`) or
    /// `Api`, with OVH's own words.
    fn error(&self, answer: &Answer, zone: Option<&str>) -> DnsError {
        let body = answer.json();
        let code = body
            .get("errorCode")
            .or_else(|| body.get("class"))
            .and_then(Value::as_str);
        let message = match (body.get("message").and_then(Value::as_str), code) {
            (Some(message), Some(code)) => format!("{message} ({code})"),
            (Some(message), None) => message.to_owned(),
            _ => format!("unexpected answer: {}", snippet(&answer.body)),
        };
        let message = scrub(
            &message,
            &[
                &self.application_secret,
                &self.consumer_key,
                &self.application_key,
            ],
        );
        let refused = matches!(answer.status, 401 | 403)
            || body
                .get("errorCode")
                .and_then(Value::as_str)
                .is_some_and(|c| AUTH_CODES.contains(&c));
        let missing = zone.filter(|_| answer.status == 404);
        refusal(NAME, answer.status, message, refused, missing)
    }

    /// Every TXT record named `sub` in `zone`.
    async fn txt_records(&self, zone: &str, sub: &str) -> Result<Vec<TxtRecord>, DnsError> {
        let base = format!("/domain/zone/{}/record", encode(zone));
        // The apex has an empty subDomain: ask for every TXT id, filter below.
        let list = if sub.is_empty() {
            format!("{base}?fieldType=TXT")
        } else {
            format!("{base}?fieldType=TXT&subDomain={}", encode(sub))
        };
        let ids = self.ok(&self.call(Method::GET, &list, None).await?, Some(zone))?;
        let mut records = Vec::new();
        for id in ids
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
        {
            let answer = self
                .call(Method::GET, &format!("{base}/{id}"), None)
                .await?;
            if answer.status == 404 {
                continue; // removed meanwhile
            }
            let record = self.ok(&answer, None)?;
            let kind = record.get("fieldType").and_then(Value::as_str);
            let name = record
                .get("subDomain")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(target) = record.get("target").and_then(Value::as_str) else {
                continue;
            };
            if kind == Some("TXT") && name.eq_ignore_ascii_case(sub) {
                records.push(TxtRecord {
                    id,
                    target: unquote(target).to_owned(),
                });
            }
        }
        Ok(records)
    }

    /// `POST /domain/zone/{zone}/refresh`: OVH serves changes only after it.
    async fn refresh(&self, zone: &str) -> Result<(), DnsError> {
        let path = format!("/domain/zone/{}/refresh", encode(zone));
        self.ok(&self.call(Method::POST, &path, None).await?, Some(zone))?;
        Ok(())
    }
}

#[async_trait]
impl DnsProvider for Ovh {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let sub = relative_name(NAME, zone, fqdn, "")?;
        if !self
            .txt_records(zone, &sub)
            .await?
            .iter()
            .any(|r| r.target == value)
        {
            let body = json!({ "fieldType": "TXT", "subDomain": sub, "target": value, "ttl": TTL });
            let path = format!("/domain/zone/{}/record", encode(zone));
            self.ok(
                &self.call(Method::POST, &path, Some(&body)).await?,
                Some(zone),
            )?;
        }
        // Refresh even when the record was there: an earlier refresh may have failed.
        self.refresh(zone).await
    }

    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError> {
        let sub = relative_name(NAME, zone, fqdn, "")?;
        let mut changed = false;
        for record in self
            .txt_records(zone, &sub)
            .await?
            .into_iter()
            .filter(|r| r.target == value)
        {
            let path = format!("/domain/zone/{}/record/{}", encode(zone), record.id);
            let answer = self.call(Method::DELETE, &path, None).await?;
            if answer.status != 404 {
                self.ok(&answer, None)?;
                changed = true;
            }
        }
        if changed {
            self.refresh(zone).await?;
        }
        Ok(())
    }

    async fn validate(&self) -> Result<Vec<String>, DnsError> {
        let zones = self.ok(&self.call(Method::GET, "/domain/zone", None).await?, None)?;
        Ok(zones
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(normalize)
            .collect())
    }
}

// === helpers ===

/// `"$1$"` + SHA-1 hex of `AS+CK+METHOD+URL+BODY+TIMESTAMP` joined by `+`.
fn sign(
    secret: &str,
    consumer: &str,
    method: &str,
    url: &str,
    body: &str,
    timestamp: i64,
) -> String {
    let digest = Sha1::digest(format!(
        "{secret}+{consumer}+{method}+{url}+{body}+{timestamp}"
    ));
    let mut out = String::with_capacity(43);
    out.push_str("$1$");
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Whether OVH refused the timestamp rather than the keys.
fn is_time_refusal(answer: &Answer) -> bool {
    if answer.ok() {
        return false;
    }
    let body = answer.json();
    let code = body
        .get("errorCode")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    code == "QUERY_TIME_OUT" || message.contains("out of time") || message.contains("timestamp")
}
