//! Which models are loaded: fetched through hub-client into the on-disk cache, built once per
//! (model, commit, task) even when many requests ask at the same time, and evicted least
//! recently used beyond `max_models`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::Device;
use hub_client::{HubClient, RepoType};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::error::{Result, WorkerError};
use crate::limits::ComputeSlots;
use crate::pipelines::{self, LoadedModel, Task};

/// How long a revision → commit answer (and the access check it implies) is reused.
const RESOLVE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Resolved {
    pub sha: String,
    pub pipeline_tag: Option<String>,
}

type Key = (String, String, Option<Task>);
/// (model, revision, token fingerprint) → what the hub answered, and when.
type ResolveCache = HashMap<(String, String, String), (Resolved, Instant)>;

struct Entry {
    cell: Arc<OnceCell<Arc<LoadedModel>>>,
    last_used: u64,
}

pub struct Registry {
    hub: String,
    cache_dir: PathBuf,
    pub device: Device,
    pub max_models: usize,
    max_batch: usize,
    pub compute: Arc<ComputeSlots>,
    streams: pipelines::generate::StreamLimits,
    pub stream_gauges: Arc<pipelines::generate::StreamGauges>,
    entries: Mutex<HashMap<Key, Entry>>,
    clock: AtomicU64,
    resolved: Mutex<ResolveCache>,
    clients: Mutex<HashMap<String, HubClient>>,
}

pub struct RegistryConfig {
    pub hub: String,
    pub cache_dir: PathBuf,
    pub device: Device,
    pub max_models: usize,
    pub max_batch: usize,
    pub max_concurrency: usize,
    /// Generation sequences one model decodes together, and requests that may wait for a place.
    pub streams: pipelines::generate::StreamLimits,
}

fn fingerprint(token: Option<&str>) -> String {
    token.map(|t| hex::encode(Sha256::digest(t.as_bytes()))).unwrap_or_default()
}

impl Registry {
    pub fn new(c: RegistryConfig) -> Registry {
        Registry {
            hub: c.hub,
            cache_dir: c.cache_dir,
            device: c.device,
            max_models: c.max_models.max(1),
            max_batch: c.max_batch,
            compute: Arc::new(ComputeSlots::new(c.max_concurrency)),
            streams: c.streams,
            stream_gauges: Arc::new(pipelines::generate::StreamGauges::new()),
            entries: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
            resolved: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// One HTTP client per token (building one loads TLS roots).
    fn client(&self, token: Option<&str>) -> Result<HubClient> {
        let fp = fingerprint(token);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&fp) {
            return Ok(c.clone());
        }
        let client = HubClient::builder()
            .endpoint(self.hub.clone())
            .token(token.map(str::to_string))
            .cache_dir(self.cache_dir.clone())
            .offline(false)
            .build()
            .map_err(|e| WorkerError::Internal(e.to_string()))?;
        if clients.len() > 256 {
            clients.clear();
        }
        clients.insert(fp, client.clone());
        Ok(client)
    }

    /// The commit `revision` points at, asked of the hub with the caller's token, which also
    /// checks the caller may read the model.
    pub async fn resolve(&self, id: &str, revision: &str, token: Option<&str>) -> Result<Resolved> {
        let key = (id.to_string(), revision.to_string(), fingerprint(token));
        if let Some((r, at)) = self.resolved.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if at.elapsed() < RESOLVE_TTL {
                return Ok(r.clone());
            }
        }
        let info = self.client(token)?.repo(RepoType::Model, id, revision).info().await?;
        let resolved = Resolved {
            sha: info.sha.ok_or_else(|| WorkerError::Hub("the hub's model info has no sha".into()))?,
            pipeline_tag: info.pipeline_tag.flatten(),
        };
        let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (_, at)| at.elapsed() < RESOLVE_TTL);
        cache.insert(key, (resolved.clone(), Instant::now()));
        Ok(resolved)
    }

    /// The loaded model for `id` at `resolved`, loading it if needed.
    pub async fn get(&self, id: &str, resolved: &Resolved, task: Option<Task>, token: Option<&str>) -> Result<Arc<LoadedModel>> {
        let key: Key = (id.to_string(), resolved.sha.clone(), task);
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let tick = self.clock.fetch_add(1, Ordering::Relaxed);
            let entry = entries.entry(key.clone()).or_insert_with(|| Entry { cell: Arc::new(OnceCell::new()), last_used: tick });
            entry.last_used = tick;
            entry.cell.clone()
        };
        let loaded = cell.get_or_try_init(|| self.load(id, resolved, task, token)).await;
        match loaded {
            Ok(model) => {
                self.evict(&key);
                Ok(model.clone())
            }
            Err(e) => {
                // Let a later request try again (the hub may have been down, the token wrong).
                let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                if entries.get(&key).is_some_and(|en| Arc::ptr_eq(&en.cell, &cell)) {
                    entries.remove(&key);
                }
                Err(e)
            }
        }
    }

    async fn load(&self, id: &str, resolved: &Resolved, task: Option<Task>, token: Option<&str>) -> Result<Arc<LoadedModel>> {
        let started = Instant::now();
        let repo = self.client(token)?.repo(RepoType::Model, id, &resolved.sha);
        let dir = repo.snapshot(&["*.json", "model*.safetensors", "README.md"], &[]).await?;
        let config = crate::models::read_config(&dir)?;
        let task = match task {
            Some(t) => t,
            None => pipelines::task_for(resolved.pipeline_tag.as_deref(), &config)?,
        };
        let req_id = id.to_string();
        let (sha, device, max_batch, compute) = (resolved.sha.clone(), self.device.clone(), self.max_batch, self.compute.clone());
        let (streams, stream_gauges) = (self.streams, self.stream_gauges.clone());
        let model = tokio::task::spawn_blocking(move || {
            pipelines::load(pipelines::LoadRequest {
                dir: &dir,
                id: req_id,
                revision: sha,
                task,
                device,
                max_batch,
                compute,
                streams,
                stream_gauges,
            })
        })
        .await
        .map_err(|e| WorkerError::Unsupported(format!("loading the model failed: {e}")))??;
        tracing::info!(model = id, revision = %resolved.sha, task = task.name(), ms = started.elapsed().as_millis() as u64, "model loaded");
        Ok(Arc::new(model))
    }

    fn evict(&self, keep: &Key) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        while entries.values().filter(|e| e.cell.initialized()).count() > self.max_models {
            let oldest =
                entries.iter().filter(|(k, e)| e.cell.initialized() && *k != keep).min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    tracing::info!(model = %k.0, revision = %k.1, "model evicted");
                    entries.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Models loaded now (for `/metrics`).
    pub fn loaded_count(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|e| e.cell.initialized()).count()
    }

    pub fn loaded(&self) -> Vec<serde_json::Value> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .filter_map(|e| e.cell.get())
            .map(|m| serde_json::json!({ "model_id": m.id, "sha": m.revision, "task": m.task.name() }))
            .collect()
    }
}
