//! The embedded default store: one SQLite file in WAL mode.
//!
//! SQLite calls block, so each runs on tokio's blocking pool; the connection
//! sits behind a mutex because SQLite serializes writers anyway and this is
//! the control plane, never the request path.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::watch;

use super::{prepare, Change, Entry, Expect, Snapshot, Store};
use crate::model::{Router, Service};
use crate::Error;

/// Schema migrations, applied in order; the index + 1 is the schema version.
/// Append only: a released migration is never edited.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
     INSERT INTO meta (key, value) VALUES ('revision', 0);
     CREATE TABLE services (name TEXT PRIMARY KEY, body TEXT NOT NULL, revision INTEGER NOT NULL);
     CREATE TABLE routers (name TEXT PRIMARY KEY, service TEXT NOT NULL, body TEXT NOT NULL, revision INTEGER NOT NULL);
     CREATE INDEX routers_service ON routers (service);",
    "CREATE TABLE entries (space TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                           revision INTEGER NOT NULL, PRIMARY KEY (space, key));",
];

/// Desired state in a SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    revision: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let connection = Connection::open(path)?;
        Self::init(connection)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut connection: Connection) -> Result<Self, Error> {
        // WAL lets readers proceed during a write; FULL makes every commit
        // durable before `apply` returns, so nothing acknowledged is lost to
        // a crash.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut connection)?;
        let revision = read_revision(&connection)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            revision: Arc::new(watch::channel(revision).0),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic mid-call; SQLite rolled the
            // transaction back, so the connection itself is still sound.
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            job(&mut guard)
        })
        .await
        .map_err(|_| Error::WorkerGone)?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot, Error> {
        self.blocking(|connection| {
            let tx = connection.transaction()?;
            let snapshot = Snapshot {
                revision: read_revision(&tx)?,
                services: read_rows::<Service>(&tx, "services")?
                    .into_iter()
                    .map(|s| (s.name.clone(), s))
                    .collect(),
                routers: read_rows::<Router>(&tx, "routers")?
                    .into_iter()
                    .map(|r| (r.name.clone(), r))
                    .collect(),
            };
            tx.commit()?;
            Ok(snapshot)
        })
        .await
    }

    async fn apply(
        &self,
        changes: Vec<Change>,
        expected_revision: Option<u64>,
    ) -> Result<u64, Error> {
        let changes = prepare(changes)?;
        let revision = self
            .blocking(move |connection| {
                let tx = connection.transaction()?;
                let current = read_revision(&tx)?;
                if let Some(expected) = expected_revision {
                    if expected != current {
                        return Err(Error::RevisionMismatch {
                            expected,
                            actual: current,
                        });
                    }
                }
                let next = current + 1;
                for change in &changes {
                    write_change(&tx, change, next)?;
                }
                check_references(&tx)?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'revision'",
                    params![to_sql_revision(next)],
                )?;
                tx.commit()?;
                Ok(next)
            })
            .await?;
        self.revision.send_replace(revision);
        Ok(revision)
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    async fn get(&self, space: &'static str, key: &str) -> Result<Option<Entry>, Error> {
        let key = key.to_owned();
        self.blocking(move |connection| read_entry(connection, space, &key))
            .await
    }

    async fn list(&self, space: &'static str) -> Result<Vec<Entry>, Error> {
        self.blocking(move |connection| {
            let mut statement = connection.prepare(
                "SELECT key, value, revision FROM entries WHERE space = ?1 ORDER BY key",
            )?;
            let rows = statement
                .query_map(params![space], |row| {
                    Ok(Entry {
                        key: row.get(0)?,
                        value: row.get(1)?,
                        revision: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

fn read_entry(
    connection: &Connection,
    space: &'static str,
    key: &str,
) -> Result<Option<Entry>, Error> {
    Ok(connection
        .query_row(
            "SELECT value, revision FROM entries WHERE space = ?1 AND key = ?2",
            params![space, key],
            |row| {
                Ok(Entry {
                    key: key.to_owned(),
                    value: row.get(0)?,
                    revision: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                })
            },
        )
        .optional()?)
}

fn check_expect(
    tx: &Transaction<'_>,
    space: &'static str,
    key: &str,
    expect: Expect,
) -> Result<Option<Entry>, Error> {
    let current = read_entry(tx, space, key)?;
    let conflict = |expected: String| Error::EntryConflict {
        space,
        key: key.to_owned(),
        expected,
        found: current.as_ref().map_or_else(
            || "nothing".to_owned(),
            |e| format!("revision {}", e.revision),
        ),
    };
    match (expect, &current) {
        (Expect::Any, _) | (Expect::Absent, None) => {}
        (Expect::Absent, Some(_)) => return Err(conflict("no entry".into())),
        (Expect::Revision(expected), Some(entry)) if entry.revision == expected => {}
        (Expect::Revision(expected), _) => return Err(conflict(format!("revision {expected}"))),
    }
    Ok(current)
}

fn migrate(connection: &mut Connection) -> Result<(), Error> {
    let tx = connection.transaction()?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
    }
    tx.commit()?;
    Ok(())
}

fn read_revision(connection: &Connection) -> Result<u64, Error> {
    let value: i64 =
        connection.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |row| {
            row.get(0)
        })?;
    u64::try_from(value).map_err(|_| Error::Corrupt {
        table: "meta",
        message: format!("negative revision {value}"),
    })
}

/// SQLite integers are signed; a revision past i64::MAX would take longer than
/// the universe has left at one write per nanosecond.
fn to_sql_revision(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

fn read_rows<T: serde::de::DeserializeOwned>(
    tx: &Transaction<'_>,
    table: &'static str,
) -> Result<Vec<T>, Error> {
    let mut statement = tx.prepare(&format!("SELECT body FROM {table} ORDER BY name"))?;
    let bodies = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    bodies
        .iter()
        .map(|body| {
            serde_json::from_str(body).map_err(|e| Error::Corrupt {
                table,
                message: e.to_string(),
            })
        })
        .collect()
}

fn encode<T: serde::Serialize>(value: &T, table: &'static str) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt {
        table,
        message: e.to_string(),
    })
}

fn write_change(tx: &Transaction<'_>, change: &Change, revision: u64) -> Result<(), Error> {
    let revision = to_sql_revision(revision);
    match change {
        Change::PutService(service) => {
            tx.execute(
                "INSERT INTO services (name, body, revision) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body, revision = excluded.revision",
                params![service.name, encode(service, "services")?, revision],
            )?;
        }
        Change::PutRouter(router) => {
            tx.execute(
                "INSERT INTO routers (name, service, body, revision) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET service = excluded.service, body = excluded.body,
                 revision = excluded.revision",
                params![
                    router.name,
                    router.service,
                    encode(router, "routers")?,
                    revision
                ],
            )?;
        }
        Change::DeleteService(name) => delete(tx, "services", "service", name)?,
        Change::DeleteRouter(name) => delete(tx, "routers", "router", name)?,
        Change::PutEntry {
            space,
            key,
            value,
            expect,
        } => {
            check_expect(tx, space, key, *expect)?;
            tx.execute(
                "INSERT INTO entries (space, key, value, revision) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (space, key) DO UPDATE SET value = excluded.value, revision = excluded.revision",
                params![space, key, value, revision],
            )?;
        }
        Change::DeleteEntry { space, key, expect } => {
            if check_expect(tx, space, key, *expect)?.is_none() {
                return Err(Error::NotFound {
                    kind: "entry",
                    name: format!("{space}/{key}"),
                });
            }
            tx.execute(
                "DELETE FROM entries WHERE space = ?1 AND key = ?2",
                params![space, key],
            )?;
        }
    }
    Ok(())
}

fn delete(
    tx: &Transaction<'_>,
    table: &'static str,
    kind: &'static str,
    name: &str,
) -> Result<(), Error> {
    let removed = tx.execute(
        &format!("DELETE FROM {table} WHERE name = ?1"),
        params![name],
    )?;
    if removed == 0 {
        return Err(Error::NotFound {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn check_references(tx: &Transaction<'_>) -> Result<(), Error> {
    let dangling: Option<(String, String)> = tx
        .query_row(
            "SELECT r.name, r.service FROM routers r
             LEFT JOIN services s ON s.name = r.service
             WHERE s.name IS NULL ORDER BY r.name LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match dangling {
        None => Ok(()),
        Some((router, service)) => Err(Error::Model {
            kind: "router",
            name: router,
            message: format!(
                "refers to service \"{service}\", which does not exist in the store; create the service first or in the same batch"
            ),
        }),
    }
}

#[cfg(test)]
mod tests;
