//! Signed requests to Route 53 and what its error answers mean.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use super::super::support::{refusal, scrub};
use super::{sigv4, xml, Route53, API, ATTEMPTS, NAME};
use crate::dns::provider::DnsError;

/// Error codes that mean the credential was refused (AWS "Common Errors").
const AUTH_CODES: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
];

impl Route53 {
    /// One signed call; the answer's XML on success. `zone` names the zone
    /// a `NoSuchHostedZone` answer is about.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<String>,
        zone: Option<&str>,
    ) -> Result<xml::Element, DnsError> {
        let query: String = query
            .iter()
            .map(|(k, v)| format!("{}={}", sigv4::uri_encode(k), sigv4::uri_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let path = format!("{API}{path}");
        let path_and_query = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        let payload = Bytes::from(body.unwrap_or_default());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let headers = self.signed_headers(method.as_str(), &path, &query, &payload)?;
            let answer = self
                .api
                .send(method.clone(), &path_and_query, &headers, payload.clone())
                .await?;
            let text = String::from_utf8_lossy(&answer.body);
            if answer.ok() {
                return xml::parse(&text).map_err(|e| DnsError::Api {
                    provider: NAME,
                    status: answer.status,
                    message: format!("unreadable answer from {}: {e}", self.api.base_url()),
                });
            }
            let (code, message) = error_parts(&text);
            let retry = matches!(code.as_str(), "Throttling" | "PriorRequestNotComplete");
            if retry && attempt < ATTEMPTS {
                tokio::time::sleep(self.retry_delay * 2u32.pow(attempt - 1)).await;
                continue;
            }
            return Err(self.error(answer.status, &code, &message, zone));
        }
    }

    /// `host`, `x-amz-date`, the session token, a content type for bodies,
    /// and the `Authorization` header signing them all.
    pub(super) fn signed_headers(
        &self,
        method: &str,
        path: &str,
        query: &str,
        payload: &[u8],
    ) -> Result<Vec<(HeaderName, HeaderValue)>, DnsError> {
        let amz_date = sigv4::amz_date(unix_now());
        let mut plain: Vec<(&str, &str)> = vec![("host", &self.host), ("x-amz-date", &amz_date)];
        if let Some(token) = &self.session_token {
            plain.push(("x-amz-security-token", token));
        }
        if !payload.is_empty() {
            plain.push(("content-type", "application/xml"));
        }
        let signer = sigv4::Signer {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            region: &self.region,
            service: "route53",
        };
        let full_path = format!("{}{path}", self.prefix);
        let request = sigv4::Request {
            method,
            path: &full_path,
            query,
            headers: &plain,
            payload,
        };
        let authorization = signer.authorization(&request, &amz_date);
        let mut headers = Vec::with_capacity(plain.len() + 1);
        for (name, value) in plain
            .iter()
            .copied()
            .chain([("authorization", authorization.as_str())])
        {
            let value = HeaderValue::from_str(value).map_err(|_| DnsError::Config {
                provider: NAME,
                field: if name == "x-amz-security-token" {
                    "session_token"
                } else {
                    "access_key_id"
                }
                .into(),
                message: "holds characters that cannot go in an HTTP header".into(),
            })?;
            headers.push((HeaderName::from_static(name), value));
        }
        Ok(headers)
    }

    /// Maps an error answer; the message is Route 53's own, minus anything
    /// secret.
    pub(super) fn error(
        &self,
        status: u16,
        code: &str,
        message: &str,
        zone: Option<&str>,
    ) -> DnsError {
        let message = self.redact(&format!("{code}: {message}"));
        if let (Some(zone), "NoSuchHostedZone") = (zone, code) {
            self.forget(zone);
            return DnsError::ZoneNotFound {
                provider: NAME,
                zone: zone.to_owned(),
            };
        }
        let refused = status == 401 || status == 403 || AUTH_CODES.contains(&code);
        refusal(NAME, status, message, refused, None)
    }

    /// Cuts the canonical request and string to sign some AWS services
    /// echo on `SignatureDoesNotMatch`, replaces any secret, and bounds
    /// the length.
    fn redact(&self, message: &str) -> String {
        let cut = ["The Canonical String", "The String-to-Sign", "\n\n"]
            .iter()
            .filter_map(|marker| message.find(marker))
            .min()
            .unwrap_or(message.len());
        let secrets: Vec<&str> = [
            Some(&self.secret_access_key),
            Some(&self.access_key_id),
            self.session_token.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.as_str())
        .collect();
        let mut out = scrub(message[..cut].trim(), &secrets);
        if out.chars().count() > 400 {
            out = out.chars().take(400).collect::<String>() + "...";
        }
        out
    }
}

/// The `Code` and `Message` of an `ErrorResponse` document (Route 53 API
/// Reference, "REST Responses → Error Responses"), or a stand-in when the
/// body is not one.
pub(super) fn error_parts(body: &str) -> (String, String) {
    match xml::parse(body) {
        Ok(doc) => {
            let error = doc.child("Error").unwrap_or(&doc);
            let code = error
                .text_at(&["Code"])
                .unwrap_or("UnknownError")
                .to_owned();
            let message = error
                .text_at(&["Message"])
                .unwrap_or("no message")
                .to_owned();
            (code, message)
        }
        Err(_) => (
            "UnknownError".to_owned(),
            "the answer is not an XML error document".to_owned(),
        ),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
