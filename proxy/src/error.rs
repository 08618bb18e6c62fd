use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors from building the data plane's state and starting its listeners.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not bind its address.
    #[error("could not listen on {address} for entrypoint `{entrypoint}`: {source}; is another process using the port?")]
    Bind {
        /// `web`, `websecure` or `admin`.
        entrypoint: &'static str,
        /// The configured address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A data-plane worker could not start (thread, runtime or socket).
    #[error("could not start the data-plane {what}: {source}")]
    Serve {
        /// What failed: `worker thread`, `worker runtime`, `worker listener`,
        /// `listener (TCP_NODELAY)`.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate or key material could not be loaded.
    #[error("certificate from {source_name}: {message}")]
    Certificate {
        /// Where the material came from (file path or record id).
        source_name: String,
        /// What is wrong and how to fix it. Never contains key material.
        message: String,
    },
    /// A router's client CA bundle is unusable.
    #[error("router \"{router}\": client CA: {message}")]
    ClientCa {
        /// The router.
        router: String,
        /// What is wrong.
        message: String,
    },
    /// The desired state was refused (clash, dangling reference).
    #[error(transparent)]
    Config(#[from] portcullis_config::Error),
    /// The file provider's directory could not be watched.
    #[error("could not watch {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
    /// rustls refused a configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}
