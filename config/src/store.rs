//! Persistence of the desired state.
//!
//! [`Store`] is what the rest of Portcullis programs against. It is shaped so
//! that a replicated backend fits behind it as well as the embedded SQLite one:
//! every write is a batch of [`Change`]s applied atomically, optionally only if
//! the store is still at the revision the writer read (compare-and-swap), and
//! readers learn about new revisions through [`Store::watch`] instead of
//! polling. For etcd, revisions map to its cluster revision and `watch` to its
//! watch stream.

mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::model::{Layer, Router, Service};
use crate::Error;

pub use sqlite::SqliteStore;

/// Name of the store in conflict messages, where file paths name the file provider.
pub const STORE_SOURCE: &str = "store";

/// Key spaces for [`Entry`] values, one per kind of record the other crates keep.
pub mod space {
    /// Certificate records (JSON `CertificateRecord`).
    pub const CERTIFICATES: &str = "certificates";
    /// ACME account records (JSON; credentials live in the secret space).
    pub const ACCOUNTS: &str = "accounts";
    /// Ciphertext of secrets, sealed by the secret store.
    pub const SECRETS: &str = "secrets";
    /// Per registered domain issuance counts, for rate limits.
    pub const LEDGER: &str = "ledger";
    /// Admin API tokens (hashed).
    pub const TOKENS: &str = "tokens";
    /// DNS provider credentials (JSON; their secrets live in the secret space).
    pub const DNS_CREDENTIALS: &str = "dns_credentials";
    /// DNS-01 TXT records written and not yet removed, so a restart cleans them up.
    pub const DNS_CLEANUP: &str = "dns_cleanup";
    /// Tenant portal domains, one row per tenant (JSON).
    pub const TENANT_DOMAINS: &str = "tenant_domains";
    /// Approval plans (JSON).
    pub const PLANS: &str = "plans";
    /// The audit log, append-only; keys sort by time.
    pub const AUDIT: &str = "audit";
    /// Public material that must be shared across nodes (e.g. the internal CA's root certificate).
    pub const PUBLIC: &str = "public";
}

/// The condition a write puts on the entry's current revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Only if the key does not exist (create).
    Absent,
    /// Only if the entry was last written at this revision (compare-and-swap).
    Revision(u64),
}

/// A value stored under a key in a space, with the revision of its last write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key within its space.
    pub key: String,
    /// Opaque bytes (JSON for records, ciphertext for secrets).
    pub value: Vec<u8>,
    /// The store revision at which this value was written.
    pub revision: u64,
}

/// One write to the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Create or replace a service.
    PutService(Service),
    /// Remove a service; refused while a router still uses it.
    DeleteService(String),
    /// Create or replace a router; its service must exist after the batch.
    PutRouter(Router),
    /// Remove a router.
    DeleteRouter(String),
    /// Write an entry in a key space.
    PutEntry {
        /// One of [`space`].
        space: &'static str,
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The condition on the current entry.
        expect: Expect,
    },
    /// Remove an entry; refused with [`Error::NotFound`] if it does not exist.
    DeleteEntry {
        /// One of [`space`].
        space: &'static str,
        /// The key.
        key: String,
        /// The condition on the current entry.
        expect: Expect,
    },
}

/// The store's desired state at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Increases with every committed batch.
    pub revision: u64,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Routers by name.
    pub routers: BTreeMap<String, Router>,
}

impl Snapshot {
    /// The snapshot as a layer, to merge with the file provider's.
    pub fn to_layer(&self) -> Layer {
        Layer {
            source: STORE_SOURCE.to_owned(),
            services: self.services.clone(),
            routers: self.routers.clone(),
            certificates: Vec::new(),
        }
    }
}

/// Durable desired state with atomic batches and change notification.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads the whole desired state at one revision.
    async fn snapshot(&self) -> Result<Snapshot, Error>;

    /// Applies `changes` atomically and returns the new revision.
    ///
    /// With `expected_revision`, the batch is refused with
    /// [`Error::RevisionMismatch`] unless the store is still at that revision.
    /// Objects are validated and references checked before anything is
    /// written: a refused batch changes nothing.
    async fn apply(
        &self,
        changes: Vec<Change>,
        expected_revision: Option<u64>,
    ) -> Result<u64, Error>;

    /// A receiver that sees the latest committed revision.
    fn watch(&self) -> watch::Receiver<u64>;

    /// Reads one entry.
    async fn get(&self, space: &'static str, key: &str) -> Result<Option<Entry>, Error>;

    /// Reads every entry of a space, ordered by key.
    async fn list(&self, space: &'static str) -> Result<Vec<Entry>, Error>;

    /// Writes one entry; returns the new store revision.
    async fn put(
        &self,
        space: &'static str,
        key: &str,
        value: Vec<u8>,
        expect: Expect,
    ) -> Result<u64, Error> {
        self.apply(
            vec![Change::PutEntry {
                space,
                key: key.to_owned(),
                value,
                expect,
            }],
            None,
        )
        .await
    }

    /// Removes one entry.
    async fn delete(&self, space: &'static str, key: &str, expect: Expect) -> Result<u64, Error> {
        self.apply(
            vec![Change::DeleteEntry {
                space,
                key: key.to_owned(),
                expect,
            }],
            None,
        )
        .await
    }

    /// Creates or replaces one service.
    async fn put_service(&self, service: Service) -> Result<u64, Error> {
        self.apply(vec![Change::PutService(service)], None).await
    }

    /// Removes one service.
    async fn delete_service(&self, name: &str) -> Result<u64, Error> {
        self.apply(vec![Change::DeleteService(name.to_owned())], None)
            .await
    }

    /// Creates or replaces one router.
    async fn put_router(&self, router: Router) -> Result<u64, Error> {
        self.apply(vec![Change::PutRouter(router)], None).await
    }

    /// Removes one router.
    async fn delete_router(&self, name: &str) -> Result<u64, Error> {
        self.apply(vec![Change::DeleteRouter(name.to_owned())], None)
            .await
    }
}

/// Validates and normalizes a batch before it reaches any backend.
pub(crate) fn prepare(changes: Vec<Change>) -> Result<Vec<Change>, Error> {
    changes
        .into_iter()
        .map(|change| match change {
            Change::PutService(service) => {
                service.validate()?;
                Ok(Change::PutService(service))
            }
            Change::PutRouter(router) => Ok(Change::PutRouter(router.normalize()?)),
            other => Ok(other),
        })
        .collect()
}
