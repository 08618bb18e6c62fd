use std::net::SocketAddr;

/// Errors from the admin API.
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
}
