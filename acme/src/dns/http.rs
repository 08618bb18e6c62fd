//! A small JSON-over-HTTPS client shared by the HTTP providers.
//!
//! Base URLs are configurable per credential (tests point them at a local
//! server speaking the provider's API), so plain `http://` is accepted too.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::DnsError;

/// Bound on one provider API call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A pooled client for one provider.
#[derive(Clone)]
pub struct HttpApi {
    provider: &'static str,
    base_url: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApi")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl HttpApi {
    /// A client for `base_url` (no trailing slash needed).
    pub fn new(provider: &'static str, base_url: &str) -> Result<Self, DnsError> {
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(DnsError::Config {
                provider,
                field: "base_url".into(),
                message: format!("\"{base_url}\" is not an http(s) URL"),
            });
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| DnsError::Transport {
            provider,
            message: e.to_string(),
        })?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            provider,
            base_url: base_url.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends `method base_url+path_and_query` with headers and a body.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Answer, DnsError> {
        let transport = |message: String| DnsError::Transport {
            provider: self.provider,
            message,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base_url));
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| transport(format!("bad request: {e}")))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| transport(format!("{} did not answer within 30 s", self.base_url)))?
            .map_err(|e| transport(format!("could not reach {}: {e}", self.base_url)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends JSON (or nothing) and returns the answer.
    pub async fn json(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, DnsError> {
        let mut all = headers.to_vec();
        let bytes = match body {
            Some(body) => {
                all.push((
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ));
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        all.push((
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        ));
        self.send(method, path_and_query, &all, bytes).await
    }
}
