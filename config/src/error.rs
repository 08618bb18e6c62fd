use std::path::PathBuf;

/// Errors from loading settings, parsing dynamic configuration and the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("could not read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML did not parse, or named an unknown key or a wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, including the key and line.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{path}: invalid value for `{key}`: {message}")]
    Invalid {
        /// The file (or `<defaults>` when no file was given).
        path: PathBuf,
        /// The dotted key, e.g. `entrypoints.web.address`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A desired-state object is not valid (bad host, unknown service, ...).
    #[error("{kind} \"{name}\": {message}")]
    Model {
        /// `service` or `router` or `certificate`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The same name is defined by two sources.
    #[error("{kind} \"{name}\" is defined twice: in {first} and in {second}; rename one of them")]
    Conflict {
        /// `service` or `router`.
        kind: &'static str,
        /// The clashing name.
        name: String,
        /// Where the first definition came from.
        first: String,
        /// Where the second definition came from.
        second: String,
    },
    /// A compare-and-swap write found a different revision than expected.
    #[error("store revision is {actual}, expected {expected}: reload and retry")]
    RevisionMismatch {
        /// The revision the writer based its change on.
        expected: u64,
        /// The revision the store is at.
        actual: u64,
    },
    /// A conditional write found the entry in another state than expected.
    #[error("{space}/{key} was changed concurrently (expected {expected}, found {found}): reload and retry")]
    EntryConflict {
        /// The key space.
        space: &'static str,
        /// The key.
        key: String,
        /// What the writer expected.
        expected: String,
        /// What the store holds.
        found: String,
    },
    /// An object to update or delete does not exist.
    #[error("{kind} \"{name}\" does not exist")]
    NotFound {
        /// `service` or `router`.
        kind: &'static str,
        /// The missing name.
        name: String,
    },
    /// The database failed.
    #[error("store: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored row could not be decoded.
    #[error("store: corrupt row in {table}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What failed to decode.
        message: String,
    },
    /// The store's worker thread is gone.
    #[error("store: worker stopped")]
    WorkerGone,
}
