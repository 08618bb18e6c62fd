//! The CLI's view of a running server: its admin URL and a token.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Args;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_config::Settings;

/// Where the server is; flags beat environment, which beats the config file,
/// which beats the embedded default.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// Settings file of the server (for its admin address and data_dir).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Admin API base URL, e.g. http://127.0.0.1:9180.
    #[arg(long, env = "PORTCULLIS_ADMIN_URL", global = true)]
    admin_url: Option<String>,
    /// Bearer token (default: <data_dir>/admin.token).
    #[arg(long, env = "PORTCULLIS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

impl Target {
    pub(crate) fn settings(&self) -> anyhow::Result<Settings> {
        Ok(match &self.config {
            Some(path) => Settings::load(path)?,
            None => Settings::embedded(),
        })
    }

    pub(crate) fn connect(&self) -> anyhow::Result<AdminClient> {
        let settings = self.settings()?;
        let base = match &self.admin_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", settings.admin_address),
        };
        let token = match &self.token {
            Some(token) => token.clone(),
            None => {
                let path = settings.admin_token_path();
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no token: could not read {}; pass --token or set PORTCULLIS_TOKEN",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Ok(AdminClient {
            base,
            token,
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }
}

/// A JSON client of the admin API.
pub(crate) struct AdminClient {
    base: String,
    token: String,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        self.call(Method::POST, path, body).await
    }

    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = self.http.request(request).await.with_context(|| {
            format!(
                "could not reach the admin API at {}; is `portcullis serve` running?",
                self.base
            )
        })?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"].as_str().unwrap_or("no details");
            let fields: Vec<String> = value["error"]["fields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| {
                            format!(
                                "\n  {}: {}",
                                f["field"].as_str().unwrap_or_default(),
                                f["message"].as_str().unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if status == StatusCode::UNPROCESSABLE_ENTITY && !fields.is_empty() {
                bail!("{status}:{}", fields.concat());
            }
            bail!("{status}: {message}");
        }
        Ok(value)
    }
}

/// A boolean field of an API answer as a table cell: "yes", "no", or "-"
/// when the answer has no such field.
pub(crate) fn yes_no(value: &serde_json::Value) -> &'static str {
    match value.as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}
