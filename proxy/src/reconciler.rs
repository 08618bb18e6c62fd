//! Keeps the data plane in step with its sources: the file provider's
//! directory and the store.
//!
//! Whichever source changes, the reconciler merges the latest good layers of
//! both and applies the result. A source that fails to load (a file with a
//! syntax error, a clash between two files) is logged and its previous good
//! layers are kept: the data plane never serves a half-applied change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use portcullis_config::dynamic;
use portcullis_config::model::{DesiredState, Layer};
use portcullis_config::Store;
use tokio::sync::mpsc;

use crate::dataplane::DataPlane;
use crate::Error;

/// Events closer together than this are handled as one reload, so an editor
/// writing a file in several steps (within milliseconds) causes one rebuild;
/// short enough that a file rewritten ten times a second is applied ten
/// times a second.
pub(crate) const FILE_DEBOUNCE: Duration = Duration::from_millis(50);

/// Merges file and store state into the data plane.
pub struct Reconciler {
    plane: Arc<DataPlane>,
    store: Arc<dyn Store>,
    dynamic_dir: PathBuf,
    file_layers: Vec<Layer>,
    store_layer: Layer,
    certificates: Option<portcullis_acme::Manager>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("dynamic_dir", &self.dynamic_dir)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler for `plane` over the directory and the store.
    pub fn new(plane: Arc<DataPlane>, store: Arc<dyn Store>, dynamic_dir: PathBuf) -> Self {
        Self {
            plane,
            store,
            dynamic_dir,
            file_layers: Vec::new(),
            store_layer: Layer::default(),
            certificates: None,
        }
    }

    /// Asks `manager` for a certificate for every router with a `tls_issuer`
    /// after each applied change (Traefik's certResolver, Caddy's automatic HTTPS).
    pub fn with_certificates(mut self, manager: portcullis_acme::Manager) -> Self {
        self.certificates = Some(manager);
        self
    }

    /// Loads both sources, applies them, and spawns a task that follows
    /// their changes. Returns once the first state is applied, so listeners
    /// started afterwards never serve an empty table by accident.
    ///
    /// A bad dynamic file at start is logged, not fatal: the store's routes
    /// still come up, as they would after a bad edit at run time. With
    /// `watch_files` false only the store is followed.
    pub async fn start(mut self, watch_files: bool) -> Result<tokio::task::JoinHandle<()>, Error> {
        let (events_tx, events) = mpsc::channel::<()>(1);
        // Watch before the first load, so an edit made during it is not missed.
        let watcher = if watch_files {
            let mut watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    // Reading the files ourselves raises access events: only
                    // changes count. A full channel already holds a pending reload.
                    if event.is_ok_and(|e| !matches!(e.kind, EventKind::Access(_))) {
                        let _ = events_tx.try_send(());
                    }
                })
                .map_err(|source| Error::Watch {
                    path: self.dynamic_dir.clone(),
                    source,
                })?;
            watcher
                .watch(&self.dynamic_dir, RecursiveMode::NonRecursive)
                .map_err(|source| Error::Watch {
                    path: self.dynamic_dir.clone(),
                    source,
                })?;
            Some(watcher)
        } else {
            drop(events_tx);
            None
        };
        let revisions = self.store.watch();
        self.reload_files();
        self.store_layer = self.store.snapshot().await?.to_layer();
        self.apply().await;
        Ok(tokio::spawn(self.follow(watcher, events, revisions)))
    }

    async fn follow(
        mut self,
        _watcher: Option<notify::RecommendedWatcher>,
        mut events: mpsc::Receiver<()>,
        mut revisions: tokio::sync::watch::Receiver<u64>,
    ) {
        loop {
            tokio::select! {
                Some(()) = events.recv() => {
                    tokio::time::sleep(FILE_DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                    if self.reload_files() {
                        self.apply().await;
                    }
                }
                changed = revisions.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    match self.store.snapshot().await {
                        // Other writes (certificate records, secrets) also move
                        // the revision; only a change of routes needs a rebuild.
                        Ok(snapshot) if snapshot.to_layer() == self.store_layer => {}
                        Ok(snapshot) => {
                            self.store_layer = snapshot.to_layer();
                            self.apply().await;
                        }
                        Err(error) => tracing::error!(%error, "could not read the store; keeping the current routes"),
                    }
                }
            }
        }
    }

    /// Re-reads the directory; on error keeps the previous layers and returns false.
    fn reload_files(&mut self) -> bool {
        match dynamic::load_dir(&self.dynamic_dir) {
            Ok(layers) if layers == self.file_layers => false,
            Ok(layers) => {
                self.file_layers = layers;
                true
            }
            Err(error) => {
                tracing::error!(%error, dir = %self.dynamic_dir.display(), "dynamic configuration refused; the last good configuration keeps serving");
                false
            }
        }
    }

    async fn apply(&self) {
        let layers = self
            .file_layers
            .iter()
            .chain(std::iter::once(&self.store_layer));
        let applied = DesiredState::merge(layers)
            .map_err(Error::from)
            .and_then(|state| self.plane.apply(&state).map(|()| state));
        let state = match applied {
            Ok(state) => state,
            Err(error) => {
                tracing::error!(%error, "configuration refused; the last good configuration keeps serving");
                return;
            }
        };
        tracing::info!(
            services = state.services.len(),
            routers = state.routers.len(),
            certificates = state.certificates.len(),
            generation = self.plane.generation(),
            "configuration applied"
        );
        if let Some(manager) = &self.certificates {
            if let Err(error) = manager.ensure_router_certificates(&state).await {
                tracing::error!(%error, "could not reconcile router certificates");
            }
        }
    }
}
