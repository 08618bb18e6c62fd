//! The audit log: who did what to which target, with what outcome.
//!
//! Entries are only ever created (`Expect::Absent`), never changed; keys
//! sort by time so a listing reads in order.

use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use serde::{Deserialize, Serialize};

/// One audited action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Token name, or `system`.
    pub actor: String,
    /// e.g. `plan.create`, `plan.approve`, `certificate.revoke`, `token.create`.
    pub action: String,
    /// What it acted on (plan id, certificate id, token name, hostname).
    pub target: String,
    /// `ok`, `denied`, `failed`, ...
    pub outcome: String,
    /// Human detail (never secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Appends an entry. Failures are logged, not returned: an action that
/// happened must not be reported as failed because its audit write failed.
pub(crate) async fn record(
    store: &dyn Store,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: Option<String>,
) {
    let at = portcullis_acme::unix_now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let key = format!("{nanos:024}-{:08x}", rand::random::<u32>());
    let entry = AuditEntry {
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
        detail,
    };
    let value = serde_json::to_vec(&entry).unwrap_or_default();
    if let Err(error) = store.put(space::AUDIT, &key, value, Expect::Absent).await {
        tracing::error!(%error, action, target, "could not write the audit log");
    }
}

/// The newest `limit` entries, newest first.
pub(crate) async fn list(
    store: &dyn Store,
    limit: usize,
) -> Result<Vec<AuditEntry>, portcullis_config::Error> {
    let entries = store.list(space::AUDIT).await?;
    Ok(entries
        .iter()
        .rev()
        .take(limit)
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect())
}
