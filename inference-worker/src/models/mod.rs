//! Loading checkpoints saved by transformers into candle modules.

pub mod bert;
pub mod causal;
pub mod encoder;
pub mod gpt2;
pub mod seq2seq;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;

use crate::error::{Result, WorkerError};

/// All tensors of a checkpoint by name: `model.safetensors`, or the shards its
/// `model.safetensors.index.json` lists.
pub struct Weights {
    pub tensors: HashMap<String, Tensor>,
}

impl Weights {
    pub fn load(dir: &Path, device: &Device) -> Result<Weights> {
        let single = dir.join("model.safetensors");
        let files = if single.exists() {
            vec![single]
        } else {
            let index = dir.join("model.safetensors.index.json");
            let text = std::fs::read_to_string(&index).map_err(|_| {
                WorkerError::Unsupported(
                    "the model has no model.safetensors (nor a sharded index); only safetensors weights are supported".into(),
                )
            })?;
            let index: Value =
                serde_json::from_str(&text).map_err(|e| WorkerError::Unsupported(format!("model.safetensors.index.json: {e}")))?;
            let mut shards: Vec<String> = index["weight_map"]
                .as_object()
                .map(|m| m.values().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            shards.into_iter().map(|s| dir.join(s)).collect()
        };
        let mut tensors = HashMap::new();
        for file in files {
            let loaded = candle_core::safetensors::load(&file, device).map_err(|e| {
                WorkerError::Unsupported(format!("{}: {e}", file.file_name().and_then(|n| n.to_str()).unwrap_or("weights")))
            })?;
            tensors.extend(loaded);
        }
        // Compute in f32 whatever the checkpoint's storage type (half-precision checkpoints too).
        for t in tensors.values_mut() {
            if t.dtype() != candle_core::DType::F32 && t.dtype().is_float() {
                *t = t.to_dtype(candle_core::DType::F32)?;
            }
        }
        Ok(Weights { tensors })
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| WorkerError::Unsupported(format!("the checkpoint has no tensor {name}")))
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The first of `prefixes` under which `name` exists ("" for none), e.g. `bert.` for heads.
    pub fn prefix_of<'a>(&self, name: &str, prefixes: &[&'a str]) -> Option<&'a str> {
        prefixes.iter().copied().find(|p| self.has(&format!("{p}{name}")))
    }

    pub fn linear(&self, prefix: &str) -> Result<candle_nn::Linear> {
        let w = self.get(&format!("{prefix}.weight"))?.clone();
        let b = self.tensors.get(&format!("{prefix}.bias")).cloned();
        Ok(candle_nn::Linear::new(w, b))
    }

    pub fn layer_norm(&self, prefix: &str, eps: f64) -> Result<candle_nn::LayerNorm> {
        let w = self.get(&format!("{prefix}.weight"))?.clone();
        let b = self.get(&format!("{prefix}.bias"))?.clone();
        Ok(candle_nn::LayerNorm::new(w, b, eps))
    }
}

/// `config.json`, kept as JSON: each architecture reads what it needs after normalising the
/// differences between transformers versions.
pub fn read_config(dir: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(dir.join("config.json")).map_err(|_| WorkerError::Unsupported("the model has no config.json".into()))?;
    serde_json::from_str(&text).map_err(|e| WorkerError::Unsupported(format!("config.json is not valid JSON: {e}")))
}

pub fn architectures(config: &Value) -> Vec<String> {
    config["architectures"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

pub fn model_type(config: &Value) -> String {
    config["model_type"].as_str().unwrap_or_default().to_string()
}

/// Labels by index from `id2label` (keys are strings in config.json), `LABEL_i` where missing.
pub fn id2label(config: &Value, num_labels: usize) -> Vec<String> {
    (0..num_labels)
        .map(|i| config["id2label"][i.to_string()].as_str().map(str::to_string).unwrap_or_else(|| format!("LABEL_{i}")))
        .collect()
}

/// Sets `key` to `value` where config.json lacks it (fields newer transformers stopped saving).
pub fn default_field(config: &mut Value, key: &str, value: Value) {
    if let Some(obj) = config.as_object_mut() {
        if obj.get(key).is_none_or(Value::is_null) {
            obj.insert(key.to_string(), value);
        }
    }
}

pub fn parse<T: serde::de::DeserializeOwned>(config: Value, what: &str) -> Result<T> {
    serde_json::from_value(config)
        .map_err(|e| WorkerError::Unsupported(format!("config.json does not describe a {what} model candle can load: {e}")))
}
