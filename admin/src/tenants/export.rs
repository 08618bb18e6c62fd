//! Export of the rendered tenant state: one deterministic JSON file per
//! tenant (sorted keys, stable order, no secrets, no timestamps), so the
//! directory diffs cleanly in Git.

use std::collections::BTreeMap;
use std::path::Path;

use portcullis_config::settings::tenants::TenantSettings;
use serde_json::{json, Value};

use super::{render, DomainStatus, TenantDomain};

/// File name → content for every tenant with a row.
pub(crate) fn render_files(
    rows: &[TenantDomain],
    settings: &TenantSettings,
) -> BTreeMap<String, String> {
    let routers = render::desired(rows);
    let mut files = BTreeMap::new();
    for row in rows {
        let mine: BTreeMap<&String, Value> = routers
            .iter()
            .filter(|(_, r)| r.request_headers.get(render::TENANT_HEADER) == Some(&row.tenant_id))
            .map(|(name, r)| {
                (
                    name,
                    json!({
                        "hosts": r.hosts,
                        "path_prefix": r.path_prefix,
                        "service": r.service,
                        "entrypoint": r.entrypoint.as_str(),
                        "certificate_id": r.certificate_id,
                        "request_headers": r.request_headers,
                    }),
                )
            })
            .collect();
        // serde_json's map keeps keys sorted: the same state gives the same bytes.
        let document = json!({
            "tenant_id": row.tenant_id,
            "domain": row.domain,
            "canonical_host": row.canonical_host,
            "status": row.status.as_str(),
            "routed": matches!(row.status, DomainStatus::Active | DomainStatus::Deploying),
            "routers": mine,
            "service": {
                "name": render::SERVICE,
                "upstreams": settings.portal_upstreams,
            },
        });
        let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
        text.push('\n');
        files.insert(format!("{}.json", row.tenant_id), text);
    }
    files
}

/// Writes the files into `dir` (removing files of tenants that no longer
/// have a row); returns the names that changed.
pub fn write(dir: &Path, files: &BTreeMap<String, String>) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut changed = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
            std::fs::write(&path, content)?;
            changed.push(name.clone());
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !files.contains_key(&name) {
            std::fs::remove_file(dir.join(&name))?;
            changed.push(name);
        }
    }
    changed.sort();
    Ok(changed)
}

/// Commits the directory with a message naming what changed (initialising
/// the repository on first use). Nothing to commit is not an error.
pub fn commit(dir: &Path, changed: &[String]) -> Result<(), String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=portcullis",
                "-c",
                "user.email=portcullis@localhost",
            ])
            .args(args)
            .output()
            .map_err(|e| format!("git: {e}"))
    };
    if !dir.join(".git").exists() {
        let output = git(&["init", "-q"])?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    git(&["add", "-A", "."])?;
    let message = format!(
        "portcullis export: {}",
        changed
            .iter()
            .map(|c| c.trim_end_matches(".json"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let output = git(&["commit", "-q", "-m", &message])?;
    if output.status.success()
        || String::from_utf8_lossy(&output.stdout).contains("nothing to commit")
    {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Reads the rows from `store` and exports them.
pub async fn export(
    store: &dyn portcullis_config::Store,
    settings: &TenantSettings,
    dir: &Path,
    git: bool,
) -> Result<Vec<String>, String> {
    let rows = super::all(store).await.map_err(|e| e.to_string())?;
    let files = render_files(&rows, settings);
    let changed = write(dir, &files).map_err(|e| format!("{}: {e}", dir.display()))?;
    if git {
        commit(dir, &changed)?;
    }
    Ok(changed)
}
