//! Service-account authentication for Google APIs: the JWT bearer grant
//! (RFC 7523 §2.1) as Google's "Using OAuth 2.0 for Server to Server
//! Applications" describes it.
//!
//! A JWT signed RS256 with the service account's private key, claims `iss`
//! (the account's `client_email`), `scope`, `aud` (the token endpoint),
//! `iat` and `exp` (at most an hour later), is exchanged at the token URI
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=...`)
//! for an access token, kept until [`REFRESH_MARGIN`] before it expires.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde_json::json;
use zeroize::Zeroizing;

use super::super::support::refusal;
use super::NAME;
use crate::dns::http::HttpApi;
use crate::dns::provider::DnsError;

/// The OAuth scope Cloud DNS changes need.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/ndev.clouddns.readwrite";
/// Google's token endpoint, when the key file names none.
pub(crate) const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Lifetime asked for in `exp`: Google accepts at most one hour.
const ASSERTION_LIFETIME: u64 = 3600;
/// An access token is replaced this long before it expires.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The grant type of RFC 7523 §2.1, form-encoded.
const GRANT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// What the provider reads from a service-account key file.
pub(crate) struct ServiceAccount {
    /// `client_email`: the JWT's issuer.
    pub(crate) client_email: String,
    /// `project_id`, the default project.
    pub(crate) project_id: Option<String>,
    /// `private_key_id`, sent as the JWT's `kid`.
    private_key_id: Option<String>,
    /// `token_uri`, or the `token_uri` setting.
    pub(crate) token_uri: String,
    key: RsaKeyPair,
}

impl ServiceAccount {
    /// Reads a key file (`"type": "service_account"` JSON); `token_uri`
    /// overrides the file's own. Errors never quote the file.
    pub(crate) fn from_json(json: &str, token_uri: Option<&str>) -> Result<Self, DnsError> {
        let invalid = |message: String| DnsError::Config {
            provider: NAME,
            field: "service_account_json".into(),
            message,
        };
        let file: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            invalid(format!(
                "is not JSON ({e}); paste the whole service-account key file"
            ))
        })?;
        let text = |name: &str| {
            file.get(name)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        if let Some(kind) = text("type").filter(|t| t != "service_account") {
            return Err(invalid(format!(
                "is a \"{kind}\" key, not a \"service_account\" key"
            )));
        }
        let client_email =
            text("client_email").ok_or_else(|| invalid("has no `client_email`".into()))?;
        let pem = Zeroizing::new(
            text("private_key").ok_or_else(|| invalid("has no `private_key`".into()))?,
        );
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| invalid("`private_key` is not a PEM private key".into()))?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => return Err(invalid("`private_key` is not an RSA key".into())),
        }
        .map_err(|e| invalid(format!("`private_key` was refused: {e}")))?;
        Ok(Self {
            client_email,
            project_id: text("project_id"),
            private_key_id: text("private_key_id"),
            token_uri: token_uri
                .map(str::to_owned)
                .or_else(|| text("token_uri"))
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.into()),
            key,
        })
    }

    /// The signed JWT for `now` (UNIX seconds).
    pub(crate) fn assertion(&self, now: u64) -> Result<Zeroizing<String>, DnsError> {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| DnsError::Config {
                provider: NAME,
                field: "service_account_json".into(),
                message: "signing with `private_key` failed".into(),
            })?;
        Ok(Zeroizing::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// A cached access token.
struct Cached {
    token: Zeroizing<String>,
    refresh_at: Instant,
}

/// Hands out access tokens for one service account, exchanging a new JWT
/// only when the cached token is near its end.
pub(crate) struct TokenSource {
    account: ServiceAccount,
    api: HttpApi,
    path: String,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    /// A source for `account`, whose token URI must be an http(s) URL.
    pub(crate) fn new(account: ServiceAccount) -> Result<Self, DnsError> {
        let bad = |message: String| DnsError::Config {
            provider: NAME,
            field: "token_uri".into(),
            message,
        };
        let uri: http::Uri = account
            .token_uri
            .parse()
            .map_err(|e| bad(format!("\"{}\" is not a URL: {e}", account.token_uri)))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(bad(format!(
                "\"{}\" is not an absolute URL",
                account.token_uri
            )));
        };
        let api = HttpApi::new(NAME, &format!("{scheme}://{authority}"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Self {
            account,
            api,
            path,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token, from the cache or a new exchange.
    pub(crate) async fn token(&self) -> Result<Zeroizing<String>, DnsError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.exchange().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (the API refused it).
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn exchange(&self) -> Result<Cached, DnsError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.account.assertion(now)?;
        let form = Zeroizing::new(format!(
            "grant_type={GRANT_TYPE}&assertion={}",
            assertion.as_str()
        ));
        let headers = [
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ),
            (
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            ),
        ];
        let sent_at = Instant::now();
        let answer = self
            .api
            .send(
                Method::POST,
                &self.path,
                &headers,
                Bytes::from(form.as_bytes().to_vec()),
            )
            .await?;
        let body = answer.json();
        if !answer.ok() {
            // RFC 6749 §5.2: {"error": "...", "error_description": "..."}.
            let code = body
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("error");
            let description = body
                .get("error_description")
                .and_then(|e| e.as_str())
                .unwrap_or("no description");
            let message = format!(
                "{code}: {description} (token endpoint {})",
                self.account.token_uri
            )
            .replace(assertion.as_str(), "[assertion]");
            let refused = matches!(
                code,
                "invalid_grant" | "invalid_client" | "unauthorized_client" | "access_denied"
            ) || matches!(answer.status, 401 | 403);
            return Err(refusal(NAME, answer.status, message, refused, None));
        }
        let token = body
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(DnsError::Api {
                provider: NAME,
                status: answer.status,
                message: format!(
                    "the token endpoint {} answered without an access_token",
                    self.account.token_uri
                ),
            });
        };
        let lifetime = Duration::from_secs(
            body.get("expires_in")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
        );
        Ok(Cached {
            token: Zeroizing::new(token.to_owned()),
            refresh_at: sent_at + lifetime.saturating_sub(REFRESH_MARGIN),
        })
    }
}
