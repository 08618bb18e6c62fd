//! The file provider's format: TOML files declaring services, routers and
//! static certificates.
//!
//! Each file becomes one [`Layer`] named after its path, so a name defined in
//! two files is reported with both paths. Relative paths inside a file
//! (`cert_file`, `key_file`, `client_ca`) are resolved against the file's
//! directory, so a directory of files can be moved as a whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{Entrypoint, Layer, Mtls, Router, Service, StaticCertificate};
use crate::{parse_duration, Error};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFile {
    services: BTreeMap<String, RawService>,
    routers: BTreeMap<String, RawRouter>,
    certificates: Vec<RawCertificate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    upstreams: Vec<String>,
    connect_timeout: Option<String>,
    response_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    hosts: Vec<String>,
    #[serde(default)]
    path_prefix: Option<String>,
    service: String,
    #[serde(default)]
    entrypoint: Entrypoint,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    mtls: Mtls,
    client_ca: Option<PathBuf>,
    tls_issuer: Option<String>,
    challenge: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// Reads every `*.toml` file directly in `dir`, in name order.
///
/// A missing directory is an empty configuration, not an error: the embedded
/// default creates it, and an operator may remove it to clear file routes.
pub fn load_dir(dir: &Path) -> Result<Vec<Layer>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files.iter().map(|path| load_file(path)).collect()
}

/// Reads one dynamic-configuration file into a layer.
pub fn load_file(path: &Path) -> Result<Layer, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(&text, path)
}

/// Parses dynamic-configuration text; `path` locates relative files and names errors.
pub fn parse_file(text: &str, path: &Path) -> Result<Layer, Error> {
    let raw: RawFile = toml::from_str(text).map_err(|e| Error::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let in_file = |e: Error| Error::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut layer = Layer::new(path.display().to_string());
    for (name, raw) in raw.services {
        let service = service(name, raw, path)?;
        service.validate().map_err(in_file)?;
        layer.services.insert(service.name.clone(), service);
    }
    for (name, raw) in raw.routers {
        let client_ca_pem = match &raw.client_ca {
            Some(file) => Some(read_relative(base, file, path)?),
            None => None,
        };
        let router = Router {
            name: name.clone(),
            hosts: raw.hosts,
            path_prefix: raw.path_prefix.unwrap_or_else(|| "/".to_owned()),
            service: raw.service,
            entrypoint: raw.entrypoint,
            priority: raw.priority,
            mtls: raw.mtls,
            client_ca_pem,
            tls_issuer: raw.tls_issuer,
            challenge: raw.challenge,
            certificate_id: None,
            request_headers: BTreeMap::new(),
        }
        .normalize()
        .map_err(in_file)?;
        layer.routers.insert(name, router);
    }
    for raw in raw.certificates {
        layer
            .certificates
            .push(std::sync::Arc::new(StaticCertificate {
                source: base.join(&raw.cert_file).display().to_string(),
                chain_pem: read_relative(base, &raw.cert_file, path)?,
                key_pem: read_relative(base, &raw.key_file, path)?,
            }));
    }
    Ok(layer)
}

fn service(name: String, raw: RawService, path: &Path) -> Result<Service, Error> {
    let mut service = Service::new(name, raw.upstreams);
    let timeout = |key: &str, text: &str| {
        parse_duration(text).map_err(|message| Error::Invalid {
            path: path.to_owned(),
            key: format!("services.{}.{key}", service.name),
            message,
        })
    };
    let connect = raw
        .connect_timeout
        .as_deref()
        .map(|t| timeout("connect_timeout", t));
    let response = raw
        .response_timeout
        .as_deref()
        .map(|t| timeout("response_timeout", t));
    if let Some(connect) = connect {
        service.connect_timeout = connect?;
    }
    if let Some(response) = response {
        service.response_timeout = response?;
    }
    Ok(service)
}

fn read_relative(base: &Path, file: &Path, config: &Path) -> Result<String, Error> {
    let full = base.join(file);
    std::fs::read_to_string(&full).map_err(|source| Error::Parse {
        path: config.to_owned(),
        message: format!("could not read {}: {source}", full.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_format_parses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.pem"), "CERT").unwrap();
        std::fs::write(dir.path().join("metrics.key"), "KEY").unwrap();
        let path = dir.path().join("metrics.toml");
        std::fs::write(
            &path,
            r#"
            [services.metrics]
            upstreams = ["10.0.0.5:8080", "10.0.0.6:8080"]
            response_timeout = "5s"

            [routers.metrics]
            hosts = ["Metrics.Example.com"]
            path_prefix = "/"
            service = "metrics"
            entrypoint = "websecure"

            [[certificates]]
            cert_file = "metrics.pem"
            key_file = "metrics.key"
            "#,
        )
        .unwrap();
        let layers = load_dir(dir.path()).unwrap();
        assert_eq!(layers.len(), 1);
        let layer = &layers[0];
        assert_eq!(layer.services["metrics"].upstreams.len(), 2);
        assert_eq!(layer.services["metrics"].response_timeout.as_secs(), 5);
        assert_eq!(layer.routers["metrics"].hosts, vec!["metrics.example.com"]);
        assert_eq!(layer.certificates[0].chain_pem, "CERT");
        assert_eq!(layer.certificates[0].key_pem, "KEY");
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let path = Path::new("/etc/p/bad.toml");
        let err = parse_file(
            "[routers.r]\nhosts=[\"a.com\"]\nservice=\"s\"\nentrypont=\"web\"",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("bad.toml") && err.contains("entrypont"),
            "{err}"
        );
        let err = parse_file(
            "[services.s]\nupstreams=[\"x:1\"]\nconnect_timeout=\"5\"",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("services.s.connect_timeout"), "{err}");
        let err = parse_file(
            "[[certificates]]\ncert_file=\"nope.pem\"\nkey_file=\"nope.key\"",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope.pem"), "{err}");
    }

    #[test]
    fn missing_directory_is_empty() {
        assert!(load_dir(Path::new("/nonexistent/portcullis"))
            .unwrap()
            .is_empty());
    }
}
