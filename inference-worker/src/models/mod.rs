//! Loading checkpoints saved by transformers into candle modules.

pub mod attention;
pub mod bert;
pub mod causal;
pub mod encoder;
pub mod gguf;
pub mod gpt2;
pub mod linear;
pub mod seq2seq;
pub mod vmath;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;

use crate::error::{Result, WorkerError};

/// The tokens several sequences take in one step, packed into one column for the weight
/// products: `ids` and `positions` `(tokens,)`, each sequence's rows `spans` (start, length) and
/// causal mask (`None` for a single token, and on the CPU, where attention applies causality
/// itself), the row of each one's last token, and the furthest position.
pub(crate) struct Packed {
    pub ids: Tensor,
    pub positions: Tensor,
    pub last_position: usize,
    pub spans: Vec<(usize, usize)>,
    pub masks: Vec<Option<Tensor>>,
    pub last_rows: Tensor,
}

impl Packed {
    pub fn new(feeds: &[(&[u32], usize)], caches: usize, device: &Device) -> Result<Packed> {
        if feeds.len() != caches || feeds.is_empty() || feeds.iter().any(|f| f.0.is_empty()) {
            return Err(WorkerError::Internal(format!("{} feeds (one empty?) for {caches} caches", feeds.len())));
        }
        let (mut ids, mut positions, mut spans, mut masks, mut last) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &(tokens, pos) in feeds {
            spans.push((ids.len(), tokens.len()));
            let masked = tokens.len() > 1 && !device.is_cpu();
            masks.push(if masked { Some(gpt2::causal_mask(tokens.len(), pos, device)?) } else { None });
            ids.extend_from_slice(tokens);
            positions.extend((pos..pos + tokens.len()).map(|p| p as u32));
            last.push((ids.len() - 1) as u32);
        }
        let n = ids.len();
        Ok(Packed {
            last_position: positions.iter().copied().max().unwrap_or(0) as usize,
            ids: Tensor::from_vec(ids, n, device)?,
            positions: Tensor::from_vec(positions, n, device)?,
            spans,
            masks,
            last_rows: Tensor::from_vec(last, feeds.len(), device)?,
        })
    }
}

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
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("weights").to_string();
            read_safetensors(&file, device, &mut tensors).map_err(|e| WorkerError::Unsupported(format!("{name}: {e}")))?;
        }
        Ok(Weights { tensors })
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| WorkerError::Unsupported(format!("the checkpoint has no tensor {name}")))
    }

    /// Takes `name` out, so that its memory goes as soon as what it became (a copy in another
    /// layout) no longer needs it: loaders that copy weights take them one layer at a time,
    /// and the peak stays near the model's size instead of twice it.
    pub fn take(&mut self, name: &str) -> Result<Tensor> {
        self.tensors.remove(name).ok_or_else(|| WorkerError::Unsupported(format!("the checkpoint has no tensor {name}")))
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

/// Reads a safetensors file tensor by tensor, so memory holds the weights plus one tensor in
/// flight (reading the whole file first, as candle's loader does, doubles the peak). Floating
/// point tensors become f32, what the models compute in.
fn read_safetensors(path: &Path, device: &Device, out: &mut HashMap<String, Tensor>) -> std::result::Result<(), String> {
    use candle_core::DType;
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| format!("not a safetensors file: {e}"))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 << 20 {
        return Err(format!("safetensors header of {header_len} bytes is too large"));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(|e| format!("truncated safetensors header: {e}"))?;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&header).map_err(|e| format!("bad safetensors header: {e}"))?;
    let file_len = f.metadata().map_err(|e| e.to_string())?.len();
    let base = 8 + header_len;
    for (name, info) in header.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        let dtype = match info["dtype"].as_str().unwrap_or_default() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F64" => DType::F64,
            "I64" => DType::I64,
            "I32" => DType::I32,
            "I16" => DType::I16,
            "U32" => DType::U32,
            "U8" | "BOOL" => DType::U8,
            other => return Err(format!("tensor {name} has unsupported dtype {other:?}")),
        };
        let shape: Vec<usize> =
            info["shape"].as_array().map(|a| a.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect()).unwrap_or_default();
        let (start, end) =
            match info["data_offsets"].as_array().map(|a| (a.first().and_then(Value::as_u64), a.get(1).and_then(Value::as_u64))) {
                Some((Some(s), Some(e))) if s <= e && base + e <= file_len => (s, e),
                _ => return Err(format!("tensor {name} has bad data offsets")),
            };
        let elements: usize = shape.iter().product();
        if (end - start) as usize != elements * dtype.size_in_bytes() {
            return Err(format!("tensor {name}: {} bytes do not hold shape {shape:?} of {dtype:?}", end - start));
        }
        f.seek(SeekFrom::Start(base + start)).map_err(|e| e.to_string())?;
        let tensor = if dtype == DType::F32 && cfg!(target_endian = "little") {
            // Straight into the f32 buffer the tensor keeps: no second copy.
            let mut data = vec![0f32; elements];
            f.read_exact(bytemuck::cast_slice_mut(&mut data)).map_err(|e| format!("reading {name}: {e}"))?;
            Tensor::from_vec(data, shape, device)
        } else {
            let mut raw = vec![0u8; (end - start) as usize];
            f.read_exact(&mut raw).map_err(|e| format!("reading {name}: {e}"))?;
            Tensor::from_raw_buffer(&raw, dtype, &shape, device).and_then(|t| if dtype.is_float() { t.to_dtype(DType::F32) } else { Ok(t) })
        }
        .map_err(|e| format!("tensor {name}: {e}"))?;
        out.insert(name.clone(), tensor);
    }
    Ok(())
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
