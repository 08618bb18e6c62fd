//! The serde shape of the settings file: every key has a default, unknown keys are refused.

use std::path::PathBuf;

use serde::Deserialize;

use super::{
    DEFAULT_ADMIN_ADDRESS, DEFAULT_DATA_DIR, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_LOG_FILTER, DEFAULT_WEBSECURE_ADDRESS, DEFAULT_WEB_ADDRESS,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSettings {
    pub(super) data_dir: PathBuf,
    pub(super) entrypoints: RawEntrypoints,
    pub(super) admin: RawAdmin,
    pub(super) providers: RawProviders,
    pub(super) server: RawServer,
    pub(super) log: RawLog,
    pub(super) tls: RawTls,
    pub(super) acme: super::acme::RawAcme,
    pub(super) secrets: RawSecrets,
    pub(super) tenants: super::tenants::RawTenants,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSecrets {
    pub(super) key_file: Option<PathBuf>,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            entrypoints: RawEntrypoints::default(),
            admin: RawAdmin::default(),
            providers: RawProviders::default(),
            server: RawServer::default(),
            log: RawLog::default(),
            tls: RawTls::default(),
            acme: super::acme::RawAcme::default(),
            secrets: RawSecrets::default(),
            tenants: super::tenants::RawTenants::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEntrypoints {
    pub(super) web: RawListener,
    pub(super) websecure: RawListener,
}

impl Default for RawEntrypoints {
    fn default() -> Self {
        Self {
            web: RawListener::new(DEFAULT_WEB_ADDRESS),
            websecure: RawListener::new(DEFAULT_WEBSECURE_ADDRESS),
        }
    }
}

/// `address` only; which listener it is decides the default, so no `Default` impl.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub(super) address: String,
}

impl RawListener {
    fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProviders {
    pub(super) file: RawFileProvider,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawFileProvider {
    pub(super) directory: Option<PathBuf>,
    pub(super) watch: bool,
}

impl Default for RawFileProvider {
    fn default() -> Self {
        Self {
            directory: None,
            watch: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) drain_timeout: String,
    pub(super) header_read_timeout: String,
    pub(super) unknown_host_status: u16,
    pub(super) workers: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            drain_timeout: DEFAULT_DRAIN_TIMEOUT.to_owned(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT.to_owned(),
            unknown_host_status: 404,
            workers: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAdmin {
    pub(super) address: String,
    pub(super) require_approval: bool,
    pub(super) mtls_client_ca: Option<PathBuf>,
    pub(super) router_templates:
        std::collections::BTreeMap<String, crate::model::template::RouterTemplate>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            address: DEFAULT_ADMIN_ADDRESS.to_owned(),
            require_approval: true,
            mtls_client_ca: None,
            router_templates: std::collections::BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) filter: String,
    pub(super) format: String,
    pub(super) access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            filter: DEFAULT_LOG_FILTER.to_owned(),
            format: "text".to_owned(),
            access_log: true,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTls {
    pub(super) default_cert_file: Option<PathBuf>,
    pub(super) default_key_file: Option<PathBuf>,
}
