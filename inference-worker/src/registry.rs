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
    /// The GGUF file the model is served from, for a repo without safetensors weights.
    pub gguf: Option<String>,
    /// What loading it downloads: the sizes of the files [`load_patterns`] selects.
    pub bytes: u64,
}

/// The files a model's load fetches: its configs and tokenizer, its weights (safetensors, or
/// the one GGUF file chosen) and its card.
pub fn load_patterns(gguf: Option<&str>) -> [&str; 3] {
    ["*.json", gguf.unwrap_or("model*.safetensors"), "README.md"]
}

/// Quantizations in the order a repo's GGUF file is chosen when it holds several: the usual
/// size/quality compromise first, as llama.cpp's and Ollama's defaults do.
const GGUF_PREFERENCE: [&str; 6] = ["q4_k_m", "q4_k", "q8_0", "q5_k_m", "q6_k", "f16"];

/// The GGUF file to serve from a repo's files, when it has no safetensors weights: the one
/// file, or the first quantization of `GGUF_PREFERENCE` among several (then the first by name).
/// Vision projectors (`mmproj*`) are not language models.
pub fn choose_gguf(files: &[String]) -> Option<String> {
    if files.iter().any(|f| f == "model.safetensors" || f == "model.safetensors.index.json") {
        return None;
    }
    let mut ggufs: Vec<&String> = files
        .iter()
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .filter(|f| !f.rsplit('/').next().unwrap_or(f).to_ascii_lowercase().starts_with("mmproj"))
        .collect();
    ggufs.sort();
    let rank = |f: &str| {
        let lower = f.to_ascii_lowercase();
        // "f16" names F16, not the end of "bf16": a quantization starts a word of the name.
        let names = |q: &str| lower.match_indices(q).any(|(i, _)| !lower[..i].ends_with(|c: char| c.is_ascii_alphanumeric()));
        GGUF_PREFERENCE.iter().position(|q| names(q)).unwrap_or(GGUF_PREFERENCE.len())
    };
    ggufs.into_iter().min_by_key(|f| rank(f)).cloned()
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
    max_model_bytes: u64,
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
    /// Largest download a model's load may take; larger models are refused before fetching.
    pub max_model_bytes: u64,
    pub max_batch: usize,
    pub max_concurrency: usize,
    /// Generation sequences one model decodes together, and requests that may wait for a place.
    pub streams: pipelines::generate::StreamLimits,
}

/// `bytes` in the units the Hub's model pages use (decimal).
fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} bytes"),
    }
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
            max_model_bytes: c.max_model_bytes,
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
        let siblings = info.siblings.unwrap_or_default();
        let files: Vec<String> = siblings.iter().map(|s| s.rfilename.clone()).collect();
        let gguf = choose_gguf(&files);
        // A file listed without a size (not our hub's answer) counts as nothing: the limit is
        // for the files a stranger can push, whose sizes the hub knows.
        let bytes = hub_client::snapshot_files(siblings, &load_patterns(gguf.as_deref()), &[])?
            .iter()
            .map(|s| s.lfs.as_ref().map(|l| l.size).or(s.size).unwrap_or(0))
            .fold(0u64, u64::saturating_add);
        let resolved = Resolved {
            sha: info.sha.ok_or_else(|| WorkerError::Hub("the hub's model info has no sha".into()))?,
            pipeline_tag: info.pipeline_tag.flatten(),
            gguf,
            bytes,
        };
        let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (_, at)| at.elapsed() < RESOLVE_TTL);
        cache.insert(key, (resolved.clone(), Instant::now()));
        Ok(resolved)
    }

    /// The loaded model for `id` at `resolved`, loading it if needed.
    pub async fn get(&self, id: &str, resolved: &Resolved, task: Option<Task>, token: Option<&str>) -> Result<Arc<LoadedModel>> {
        if resolved.bytes > self.max_model_bytes {
            return Err(WorkerError::Unsupported(format!(
                "the model {id} is too large to be loaded by this worker ({} > {}: its weights and configs, against --max-model-bytes)",
                human_bytes(resolved.bytes),
                human_bytes(self.max_model_bytes)
            )));
        }
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
        let dir = repo.snapshot(&load_patterns(resolved.gguf.as_deref()), &[]).await?;
        let tag = resolved.pipeline_tag.as_deref();
        let task = match (task, &resolved.gguf) {
            (Some(t), _) => t,
            // A GGUF file is a language model, and often comes without config.json.
            (None, Some(_)) => {
                tag.map(|t| pipelines::task_for(Some(t), &serde_json::Value::Null)).transpose()?.unwrap_or(Task::TextGeneration)
            }
            (None, None) => pipelines::task_for(tag, &crate::models::read_config(&dir)?)?,
        };
        let gguf = resolved.gguf.as_ref().map(|f| dir.join(f));
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
                gguf,
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

#[cfg(test)]
mod tests {
    use super::choose_gguf;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_repos_gguf_file_is_chosen_by_quantization() {
        // Safetensors weights win: the GGUF files beside them are for llama.cpp users.
        assert_eq!(choose_gguf(&names(&["config.json", "model.safetensors", "model-Q8_0.gguf"])), None);
        assert_eq!(choose_gguf(&names(&["config.json", "model.safetensors.index.json", "a.gguf"])), None);
        assert_eq!(choose_gguf(&names(&["README.md", "tokenizer.json"])), None);
        assert_eq!(choose_gguf(&names(&["tokenizer.json", "tiny.Q8_0.gguf"])).as_deref(), Some("tiny.Q8_0.gguf"));
        let many = names(&["m.F16.gguf", "m.Q8_0.gguf", "m.Q4_K_M.gguf", "m.Q2_K.gguf", "mmproj-m-Q4_K_M.gguf"]);
        assert_eq!(choose_gguf(&many).as_deref(), Some("m.Q4_K_M.gguf"));
        assert_eq!(choose_gguf(&names(&["m.F16.gguf", "m.q8_0.GGUF"])).as_deref(), Some("m.q8_0.GGUF"));
        assert_eq!(choose_gguf(&names(&["b.IQ2_XS.gguf", "a.IQ3_M.gguf"])).as_deref(), Some("a.IQ3_M.gguf"));
        assert_eq!(choose_gguf(&names(&["mmproj-f16.gguf"])), None);
        assert_eq!(choose_gguf(&names(&["m-bf16.gguf", "m-f16.gguf"])).as_deref(), Some("m-f16.gguf"));
        assert_eq!(choose_gguf(&names(&["m-f16.gguf", "m-bf16.gguf"])).as_deref(), Some("m-f16.gguf"));
    }
}
