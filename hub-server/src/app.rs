//! The one application state, built from the same parts by `serve` and by tests.

use crate::config::Settings;
use crate::db::Db;
use crate::git::GitStore;
use crate::storage::Storage;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub storage: Storage,
    pub git: GitStore,
    pub settings: Settings,
    /// HMAC key for self-authenticating LFS transfer URLs.
    pub secret: Vec<u8>,
    /// Recent failed web logins per username and per client address (rate limiting).
    pub login_failures: crate::limits::AttemptLimiter,
    pub login_failures_by_ip: crate::limits::AttemptLimiter,
    /// Where Inference API requests go (none configured: inference is off).
    pub inference: crate::inference::Workers,
    /// Xet upload limits and caches.
    pub xet: crate::xet::XetState,
    /// What each commit holds (files, card), computed once.
    pub snapshots: crate::browse::SnapshotCache,
    /// Requests, latency, bytes and storage, for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Metadata and content the read path remembers (read_cache.rs).
    pub cache: crate::read_cache::ReadCaches,
    /// Download counts waiting to be written.
    pub downloads: crate::downloads::DownloadCounts,
    /// Serializes writes to one repository within this process.
    repo_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Opens (and migrates) the database and storage named by `settings`.
    pub async fn open(mut settings: Settings) -> anyhow::Result<AppState> {
        settings.validate()?;
        std::fs::create_dir_all(&settings.data_dir)?;
        // Absolute: git hooks run in the repository's directory and open the same database.
        settings.data_dir = settings.data_dir.canonicalize()?;
        let db = Db::connect(&settings.database_url(), std::time::Duration::from_secs(settings.db_acquire_timeout_secs)).await?;
        db.migrate().await?;
        db.start_monitor();
        let storage = Storage::from_url(settings.storage_url.as_deref(), settings.data_dir.join("objects"), settings.s3_max_retries)?
            .with_upload_memory(settings.upload_memory_mib * 1024 * 1024);
        let git = GitStore::new(settings.data_dir.join("repos"))?;
        crate::hooks::install(&settings.data_dir.join("hooks"))?;
        let secret = match &settings.secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => load_or_create_secret(&settings.data_dir.join("secret"))?,
        };
        let inference = crate::inference::Workers::new(settings.inference_urls())?;
        let xet = crate::xet::XetState::new(settings.xet_upload_concurrency, 2);
        let window = std::time::Duration::from_secs(300);
        let login_failures = crate::limits::AttemptLimiter::new(settings.login_max_failures, window, 10_000);
        let login_failures_by_ip = crate::limits::AttemptLimiter::new(settings.login_max_failures_per_ip, window, 10_000);
        let downloads = crate::downloads::DownloadCounts::default();
        let cache =
            crate::read_cache::ReadCaches::new(&settings.data_dir, std::time::Duration::from_millis(settings.read_cache_max_age_ms))?;
        downloads.start(db.clone());
        Ok(AppState(Arc::new(Inner {
            metrics: Arc::new(crate::metrics::Metrics::new()),
            inference,
            xet,
            snapshots: Default::default(),
            cache,
            downloads,
            db,
            storage,
            git,
            settings,
            secret,
            login_failures,
            login_failures_by_ip,
            repo_locks: Mutex::new(HashMap::new()),
        })))
    }

    /// The base URL clients reach us on: configured, or from the request's Host header.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.settings.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
        format!("{proto}://{host}")
    }

    /// The directory of the hooks git runs during pushes (absolute).
    pub fn hooks_dir(&self) -> std::path::PathBuf {
        let dir = self.settings.data_dir.join("hooks");
        dir.canonicalize().unwrap_or(dir)
    }

    /// The binary hooks call back into.
    pub fn hook_bin(&self) -> std::path::PathBuf {
        self.settings.git_hook_bin.clone().or_else(|| std::env::current_exe().ok()).unwrap_or_else(|| "hub-server".into())
    }

    /// Runs `work` holding the write lock of one repository (commits, ref updates): an
    /// in-process mutex, then the database's cross-process lock, so replicas serialize too.
    pub async fn locked<T>(
        &self,
        repo_id: &str,
        work: impl std::future::Future<Output = crate::error::ApiResult<T>>,
    ) -> crate::error::ApiResult<T> {
        let local = self.repo_lock(repo_id);
        let _local = local.lock().await;
        let shared = self.db.lock_repo(repo_id).await?;
        // Every hub process writes this repo only under the lock just taken: git lock files on
        // its refs now are what a writer killed mid-update (a crashed replica) left behind, and
        // would make every later update of that ref fail.
        let stale = self.git.path(repo_id);
        let _ = tokio::task::spawn_blocking(move || crate::git::remove_stale_ref_locks(&stale)).await;
        let result = work.await;
        shared.release().await;
        result
    }

    fn repo_lock(&self, repo_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.repo_locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() > 1024 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(repo_id.to_string()).or_default().clone()
    }
}

fn load_or_create_secret(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read(path) {
        if existing.len() >= 32 {
            return Ok(existing);
        }
        anyhow::bail!("{} holds fewer than 32 bytes; remove it or set HUB_SECRET", path.display());
    }
    let secret: [u8; 32] = rand::random();
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, secret)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    // Replicas sharing a data dir may start together: the first link wins and all read it.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read(path)?),
        Err(e) => Err(e.into()),
    }
}
