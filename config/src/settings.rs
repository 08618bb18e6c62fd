//! Static settings: the TOML file given to `portcullis serve --config`.
//!
//! Parsed in three stages: [`raw`] (serde, every key defaulted, unknown keys
//! refused) → validation → the typed [`Settings`]. Every error names the file
//! and the dotted key, so an operator can fix it without reading code.

pub mod acme;
mod raw;
pub mod tenants;

pub use acme::{AcmeSettings, Eab, IssuerKind, IssuerSettings};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{parse_duration, Error};

/// Default directory for all state: database, keys, dynamic config.
pub const DEFAULT_DATA_DIR: &str = "./portcullis-data";
/// Default address of the plain-HTTP entrypoint `web`.
pub const DEFAULT_WEB_ADDRESS: &str = "127.0.0.1:8080";
/// Default address of the HTTPS entrypoint `websecure`.
pub const DEFAULT_WEBSECURE_ADDRESS: &str = "127.0.0.1:8443";
/// Default address of the admin API (loopback: it must not be public by accident).
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9180";
/// Name of the file provider's directory under `data_dir` when not configured.
pub const DEFAULT_DYNAMIC_SUBDIR: &str = "dynamic";
/// Default time in-flight requests get to finish on shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: &str = "30s";
/// Default `server.header_read_timeout` (nginx's `client_header_timeout` is 60 s).
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "30s";
/// Name of the secret-store key file under `data_dir` when not configured.
pub const DEFAULT_SECRET_KEY_FILE: &str = "secret.key";
/// Default log filter (tracing-subscriber `EnvFilter` syntax).
pub const DEFAULT_LOG_FILTER: &str = "info";
/// Upper bound of `server.workers`: far beyond any core count, low enough
/// that a typo (an extra zero) is caught before thousands of threads start.
pub const MAX_WORKERS: usize = 1024;

/// Validated settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The file these came from, or `None` for the embedded default.
    pub source: Option<PathBuf>,
    /// Directory for the database, keys and default dynamic config.
    pub data_dir: PathBuf,
    /// Address of the `web` entrypoint.
    pub web_address: SocketAddr,
    /// Address of the `websecure` entrypoint.
    pub websecure_address: SocketAddr,
    /// Address of the admin API.
    pub admin_address: SocketAddr,
    /// Directory watched by the file provider.
    pub dynamic_dir: PathBuf,
    /// Whether the file provider watches its directory for changes.
    pub watch_dynamic_dir: bool,
    /// Time in-flight requests get to finish on shutdown.
    pub drain_timeout: Duration,
    /// Time an HTTP/1 client gets to send a whole request head, counted
    /// from the connection's start or its previous response: a client that
    /// trickles or idles is dropped, so it cannot hold a connection slot.
    pub header_read_timeout: Duration,
    /// Log filter.
    pub log_filter: String,
    /// Log as JSON lines instead of text.
    pub log_json: bool,
    /// Whether one access-log line is written per request.
    pub access_log: bool,
    /// Certificate served when no loaded certificate matches the SNI; a
    /// self-signed one is generated when unset.
    pub default_certificate: Option<CertificateFiles>,
    /// Certificate issuance.
    pub acme: AcmeSettings,
    /// File holding the key that encrypts secrets at rest (created 0600 when missing).
    pub secret_key_file: PathBuf,
    /// Whether plans wait for approval before they run.
    pub require_approval: bool,
    /// PEM CA bundle that mTLS routers created by templates verify clients against.
    pub mtls_client_ca: Option<PathBuf>,
    /// Router templates by name, built-ins included.
    pub router_templates:
        std::collections::BTreeMap<String, crate::model::template::RouterTemplate>,
    /// Status for requests whose Host no router serves: 404 or 403.
    pub unknown_host_status: u16,
    /// Data-plane worker threads, each with its own event loop and upstream
    /// pools; `server.workers = 0` (the default) means one per CPU.
    pub workers: usize,
    /// Tenant custom domains, when `tenants.canonical_base` is set.
    pub tenants: Option<tenants::TenantSettings>,
}

/// A PEM certificate chain and its key, by path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    /// PEM chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

impl Settings {
    /// The embedded default: what `portcullis serve` runs with no config file.
    pub fn embedded() -> Self {
        Self::from_raw(raw::RawSettings::default(), None)
            .unwrap_or_else(|e| unreachable!("the built-in defaults are valid: {e}"))
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates TOML text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let raw: raw::RawSettings = toml::from_str(text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::from_raw(raw, Some(path))
    }

    /// Where the admin token of the embedded default is written.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    /// Where the SQLite database lives.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("portcullis.db")
    }

    fn from_raw(raw: raw::RawSettings, path: Option<&Path>) -> Result<Self, Error> {
        let shown = path.map_or_else(|| PathBuf::from("<defaults>"), Path::to_owned);
        let invalid = |key: &str, message: String| Error::Invalid {
            path: shown.clone(),
            key: key.to_owned(),
            message,
        };
        let address = |key: &str, text: &str| -> Result<SocketAddr, Error> {
            text.parse().map_err(|_| {
                invalid(
                    key,
                    format!("\"{text}\" is not an IP address and port; write e.g. \"127.0.0.1:8443\" or \"[::]:443\""),
                )
            })
        };
        let web_address = address("entrypoints.web.address", &raw.entrypoints.web.address)?;
        let websecure_address = address(
            "entrypoints.websecure.address",
            &raw.entrypoints.websecure.address,
        )?;
        let admin_address = address("admin.address", &raw.admin.address)?;
        if !matches!(raw.server.unknown_host_status, 403 | 404) {
            return Err(invalid(
                "server.unknown_host_status",
                format!(
                    "{} is not allowed; use 404 or 403",
                    raw.server.unknown_host_status
                ),
            ));
        }
        if raw.server.workers > MAX_WORKERS {
            return Err(invalid(
                "server.workers",
                format!(
                    "{} is more than {MAX_WORKERS}; use 0 for one worker per CPU",
                    raw.server.workers
                ),
            ));
        }
        let workers = match raw.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        if let Some(ca) = &raw.admin.mtls_client_ca {
            if !ca.is_file() {
                return Err(invalid(
                    "admin.mtls_client_ca",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        let mut router_templates = crate::model::template::built_in();
        for (name, routes) in &raw.admin.router_templates {
            let key = format!("admin.router_templates.{name}");
            if routes.is_empty() {
                return Err(invalid(&key, "a template needs at least one router".into()));
            }
            let mut suffixes = std::collections::BTreeSet::new();
            for route in routes {
                if !suffixes.insert(route.suffix.as_str()) || route.suffix.is_empty() {
                    return Err(invalid(
                        &key,
                        format!("suffix \"{}\" is empty or repeated", route.suffix),
                    ));
                }
                if !route.path_prefix.starts_with('/') {
                    return Err(invalid(
                        &key,
                        format!(
                            "path_prefix \"{}\" must start with \"/\"",
                            route.path_prefix
                        ),
                    ));
                }
            }
            router_templates.insert(name.clone(), routes.clone());
        }
        let clashes = [
            (
                "entrypoints.websecure.address",
                websecure_address,
                web_address,
            ),
            ("admin.address", admin_address, web_address),
            ("admin.address", admin_address, websecure_address),
        ];
        for (key, a, b) in clashes {
            if a == b && a.port() != 0 {
                return Err(invalid(
                    key,
                    format!(
                        "{a} is already used by another listener; give each listener its own port"
                    ),
                ));
            }
        }
        let drain_timeout = parse_duration(&raw.server.drain_timeout)
            .map_err(|m| invalid("server.drain_timeout", m))?;
        let header_read_timeout = parse_duration(&raw.server.header_read_timeout)
            .map_err(|m| invalid("server.header_read_timeout", m))?;
        if header_read_timeout.is_zero() {
            return Err(invalid(
                "server.header_read_timeout",
                "must be more than 0; write e.g. \"30s\"".into(),
            ));
        }
        if raw.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty".into()));
        }
        let dynamic_dir = raw
            .providers
            .file
            .directory
            .unwrap_or_else(|| raw.data_dir.join(DEFAULT_DYNAMIC_SUBDIR));
        let log_json = match raw.log.format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("\"{other}\" is not a log format; use \"text\" or \"json\""),
                ))
            }
        };
        let default_certificate = match (raw.tls.default_cert_file, raw.tls.default_key_file) {
            (None, None) => None,
            (Some(cert_file), Some(key_file)) => Some(CertificateFiles {
                cert_file,
                key_file,
            }),
            _ => {
                return Err(invalid(
                    "tls.default_cert_file",
                    "set both `default_cert_file` and `default_key_file`, or neither".into(),
                ))
            }
        };
        let acme = acme::validate(raw.acme).map_err(|(key, message)| invalid(&key, message))?;
        let tenants =
            tenants::validate(raw.tenants).map_err(|(key, message)| invalid(&key, message))?;
        if let Some(t) = &tenants {
            if acme.issuer(&t.domain_issuer).is_none() {
                return Err(invalid(
                    "tenants.domain_issuer",
                    format!("\"{}\" is not a configured issuer", t.domain_issuer),
                ));
            }
        }
        let secret_key_file = raw
            .secrets
            .key_file
            .unwrap_or_else(|| raw.data_dir.join(DEFAULT_SECRET_KEY_FILE));
        Ok(Self {
            acme,
            secret_key_file,
            require_approval: raw.admin.require_approval,
            mtls_client_ca: raw.admin.mtls_client_ca,
            router_templates,
            unknown_host_status: raw.server.unknown_host_status,
            workers,
            tenants,
            source: path.map(Path::to_owned),
            data_dir: raw.data_dir,
            web_address,
            websecure_address,
            admin_address,
            dynamic_dir,
            watch_dynamic_dir: raw.providers.file.watch,
            drain_timeout,
            header_read_timeout,
            log_filter: raw.log.filter,
            log_json,
            access_log: raw.log.access_log,
            default_certificate,
        })
    }
}

#[cfg(test)]
mod tests;
