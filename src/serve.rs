//! `portcullis serve`: wiring the crates into one running process.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use portcullis_acme::{ChallengeResponder, Manager, SecretKey, Secrets};
use portcullis_admin::{AdminConfig, AdminServer, AdminState};
use portcullis_config::{Settings, SqliteStore, Store};
use portcullis_proxy::{DataPlane, DataPlaneOptions, Listeners, LoadedCertificate, Reconciler};
use tokio::sync::watch;

/// Environment variable holding the secret-store key (base64), for fleets
/// where every node must share it; overrides `secrets.key_file`.
pub(crate) const SECRET_KEY_ENV: &str = "PORTCULLIS_SECRET_KEY";

pub(crate) async fn run(settings: Settings) -> anyhow::Result<()> {
    create_private_dir(&settings.data_dir)?;
    std::fs::create_dir_all(&settings.dynamic_dir)
        .with_context(|| format!("could not create {}", settings.dynamic_dir.display()))?;
    let store = open_store(&settings)?;
    let secrets = Secrets::new(secret_key(&settings)?, Arc::clone(&store));
    let mtls_client_ca =
        match &settings.mtls_client_ca {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                format!("admin.mtls_client_ca: could not read {}", path.display())
            })?),
            None => None,
        };
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
        unknown_host_status: http::StatusCode::from_u16(settings.unknown_host_status)
            .unwrap_or(http::StatusCode::NOT_FOUND),
        workers: settings.workers,
        header_read_timeout: settings.header_read_timeout,
    })?;
    tracing::info!(entrypoint = %"web", address = %listeners.web_addr(), "listening");
    let websecure_addr = listeners.websecure_addr();
    tracing::info!(entrypoint = %"websecure", address = %websecure_addr, "listening");
    tracing::info!(entrypoint = %"admin", address = %admin.local_addr(), "listening");
    tracing::info!(data_dir = %settings.data_dir.display(), dynamic_dir = %settings.dynamic_dir.display(), "state");

    portcullis_admin::tokens::ensure_admin_token(store.as_ref(), &settings.admin_token_path())
        .await?;
    let responder: Arc<dyn ChallengeResponder> = Arc::clone(plane.challenges()) as _;
    let manager = Manager::new(
        settings.acme.clone(),
        Arc::clone(&store),
        secrets,
        responder,
    );
    let feed = portcullis_proxy::spawn_certificate_feed(Arc::clone(&plane), manager.clone()).await;
    let reconcile = Reconciler::new(
        Arc::clone(&plane),
        Arc::clone(&store),
        settings.dynamic_dir.clone(),
    )
    .with_certificates(manager.clone())
    .start(settings.watch_dynamic_dir)
    .await?;
    let resumed = manager.resume().await?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed unfinished certificate orders");
    }
    let renewal = manager.spawn_renewal();

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let admin_state = AdminState::new(
        Arc::clone(&plane),
        Arc::clone(&store),
        manager,
        AdminConfig {
            require_approval: settings.require_approval,
            router_templates: settings.router_templates.clone(),
            mtls_client_ca_pem: mtls_client_ca,
            tenants: settings.tenants.clone().map(Arc::new),
            websecure_addr: Some(websecure_addr),
        },
    );
    let admin_task = tokio::spawn(admin.serve(admin_state, stopped(stop_rx.clone())));
    let proxy =
        tokio::spawn(listeners.serve(Arc::clone(&plane), stopped(stop_rx), settings.drain_timeout));

    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    proxy.await.context("proxy task failed")??;
    let _ = admin_task.await;
    for task in [reconcile, feed, renewal] {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

pub(crate) fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let path = settings.database_path();
    let store =
        SqliteStore::open(&path).with_context(|| format!("could not open {}", path.display()))?;
    restrict(&path);
    Ok(Arc::new(store))
}

pub(crate) fn secret_key(settings: &Settings) -> anyhow::Result<SecretKey> {
    match std::env::var(SECRET_KEY_ENV) {
        Ok(value) => SecretKey::from_base64(&value)
            .with_context(|| format!("{SECRET_KEY_ENV} is not usable")),
        Err(_) => Ok(SecretKey::load_or_create(&settings.secret_key_file)?),
    }
}

/// The database holds no key material, but labels, accounts and hashes are
/// still nobody else's business.
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
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
    Ok(LoadedCertificate::from_pem(
        &files.cert_file.display().to_string(),
        &read(&files.cert_file)?,
        &read(&files.key_file)?,
        &portcullis_proxy::default_crypto_provider(),
    )?)
}

/// The data directory holds keys and the database: only the owner may read it.
pub(crate) fn create_private_dir(path: &Path) -> anyhow::Result<()> {
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
