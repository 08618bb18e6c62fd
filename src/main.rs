//! The `portcullis` binary: CLI, runtime, signals, and wiring of the crates.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use portcullis_admin::{AdminServer, AdminState};
use portcullis_config::{Settings, SqliteStore, Store};
use portcullis_proxy::{DataPlane, DataPlaneOptions, Listeners, LoadedCertificate, Reconciler};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// An edge proxy that terminates TLS, routes by host and path, and manages its own certificates.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the embedded default when no --config is given).
    Serve {
        /// TOML settings file; every key has a default.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a settings file and exit.
    CheckConfig {
        /// TOML settings file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::CheckConfig { file } => check_config(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(file)?;
    println!(
        "{}: ok (web {}, websecure {}, admin {}, dynamic {})",
        file.display(),
        settings.web_address,
        settings.websecure_address,
        settings.admin_address,
        settings.dynamic_dir.display()
    );
    Ok(())
}

fn serve(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = match config {
        Some(path) => Settings::load(path)?,
        None => Settings::embedded(),
    };
    init_logging(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(run(settings))
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) => EnvFilter::try_new(filter).context("RUST_LOG is not a valid log filter")?,
        Err(_) => EnvFilter::try_new(&settings.log_filter).with_context(|| {
            format!(
                "log.filter \"{}\" is not a valid filter",
                settings.log_filter
            )
        })?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if settings.log_json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    Ok(())
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    create_private_dir(&settings.data_dir)?;
    std::fs::create_dir_all(&settings.dynamic_dir)
        .with_context(|| format!("could not create {}", settings.dynamic_dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&settings.database_path())
            .with_context(|| format!("could not open {}", settings.database_path().display()))?,
    );
    let fallback = match &settings.default_certificate {
        Some(files) => Some(load_default_certificate(files)?),
        None => None,
    };

    // Bind everything before serving anything: a taken port fails the start
    // cleanly instead of leaving some listeners up.
    let listeners = Listeners::bind(settings.web_address, settings.websecure_address).await?;
    let admin = AdminServer::bind(settings.admin_address).await?;
    let plane = DataPlane::new(DataPlaneOptions {
        access_log: settings.access_log,
        // The bound port, so that port 0 (tests) redirects correctly too.
        https_port: listeners.websecure_addr().port(),
        fallback,
    })?;
    tracing::info!(entrypoint = %"web", address = %listeners.web_addr(), "listening");
    tracing::info!(entrypoint = %"websecure", address = %listeners.websecure_addr(), "listening");
    tracing::info!(entrypoint = %"admin", address = %admin.local_addr(), "listening");
    tracing::info!(data_dir = %settings.data_dir.display(), dynamic_dir = %settings.dynamic_dir.display(), "state");

    let reconcile = Reconciler::new(
        Arc::clone(&plane),
        Arc::clone(&store),
        settings.dynamic_dir.clone(),
    )
    .start(settings.watch_dynamic_dir)
    .await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let admin_task = tokio::spawn(admin.serve(
        AdminState {
            plane: Arc::clone(&plane),
        },
        stopped(stop_rx.clone()),
    ));
    let proxy =
        tokio::spawn(listeners.serve(Arc::clone(&plane), stopped(stop_rx), settings.drain_timeout));

    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    proxy.await.context("proxy task failed")??;
    let _ = admin_task.await;
    reconcile.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).context("could not install the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("could not install the Ctrl-C handler")?,
    }
    Ok(())
}

fn load_default_certificate(
    files: &portcullis_config::settings::CertificateFiles,
) -> anyhow::Result<LoadedCertificate> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("tls: could not read {}", path.display()))
    };
    let provider = rustls_provider();
    Ok(LoadedCertificate::from_pem(
        &files.cert_file.display().to_string(),
        &read(&files.cert_file)?,
        &read(&files.key_file)?,
        &provider,
    )?)
}

fn rustls_provider() -> portcullis_proxy::CryptoProvider {
    portcullis_proxy::default_crypto_provider()
}

/// The data directory holds keys and the database: only the owner may read it.
fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("could not create data_dir {}", path.display()))?;
    } else if path.metadata()?.permissions().mode() & 0o077 != 0 {
        tracing::warn!(data_dir = %path.display(), "data_dir is readable by other users; run chmod 700 on it");
    }
    Ok(())
}
