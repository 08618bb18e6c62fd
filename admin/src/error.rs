use std::net::SocketAddr;

/// Errors from starting the admin API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The admin listener could not bind.
    #[error("could not listen on {address} for the admin API: {source}; is another process using the port?")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The admin token could not be created or read.
    #[error("admin token: {0}")]
    Token(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] portcullis_config::Error),
}
