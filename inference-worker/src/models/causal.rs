//! Decoder-only language models for text-generation: GPT-2 and Llama from safetensors, and
//! quantized Llama-layout models from GGUF.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama;
use serde_json::{json, Value};

use super::{gguf::QuantLm, gpt2::Gpt2, model_type, parse, Weights};
use crate::error::{Result, WorkerError};

enum Arch {
    Gpt2(Gpt2),
    Llama { model: llama::Llama, config: llama::Config },
    Gguf(QuantLm),
}

/// Prompt tokens per prefill step (GPT-2, GGUF).
const PREFILL_CHUNK: usize = 128;

pub struct CausalLm {
    arch: Arch,
    pub max_positions: usize,
    device: Device,
}

pub enum State {
    Gpt2(super::gpt2::Cache),
    Llama(Box<llama::Cache>),
    Gguf(super::gguf::Cache),
}

impl CausalLm {
    pub fn supports(config: &Value) -> bool {
        matches!(model_type(config).as_str(), "gpt2" | "llama")
    }

    pub fn load(config: &Value, weights: Weights, device: &Device) -> Result<CausalLm> {
        match model_type(config).as_str() {
            "gpt2" => {
                let m = Gpt2::load(config, weights, device)?;
                Ok(CausalLm { max_positions: m.n_positions, arch: Arch::Gpt2(m), device: device.clone() })
            }
            "llama" => {
                let mut cfg = config.clone();
                // transformers 5 moved rope_theta into rope_parameters.
                if cfg["rope_theta"].is_null() {
                    if let Some(theta) = cfg["rope_parameters"]["rope_theta"].as_f64() {
                        cfg["rope_theta"] = json!(theta);
                    }
                }
                let scaling = cfg["rope_scaling"]["rope_type"]
                    .as_str()
                    .or(cfg["rope_parameters"]["rope_type"].as_str())
                    .unwrap_or("default")
                    .to_string();
                match scaling.as_str() {
                    "default" => cfg["rope_scaling"] = Value::Null,
                    "llama3" => {
                        if cfg["rope_scaling"].is_null() {
                            cfg["rope_scaling"] = cfg["rope_parameters"].clone();
                        }
                    }
                    other => return Err(WorkerError::Unsupported(format!("rope scaling {other:?} is not supported"))),
                }
                if cfg["max_position_embeddings"].is_null() {
                    cfg["max_position_embeddings"] = json!(2048);
                }
                let lc: llama::LlamaConfig = parse(cfg, "Llama")?;
                let config = lc.into_config(false);
                // candle's Llama::load panics on a missing tensor: check them first.
                let mut needed = vec!["model.embed_tokens.weight".to_string(), "model.norm.weight".to_string()];
                if !config.tie_word_embeddings {
                    needed.push("lm_head.weight".into());
                }
                for i in 0..config.num_hidden_layers {
                    for n in [
                        "self_attn.q_proj",
                        "self_attn.k_proj",
                        "self_attn.v_proj",
                        "self_attn.o_proj",
                        "mlp.gate_proj",
                        "mlp.up_proj",
                        "mlp.down_proj",
                        "input_layernorm",
                        "post_attention_layernorm",
                    ] {
                        needed.push(format!("model.layers.{i}.{n}.weight"));
                    }
                }
                if let Some(missing) = needed.iter().find(|n| !weights.has(n)) {
                    return Err(WorkerError::Unsupported(format!("the checkpoint has no tensor {missing}")));
                }
                let vb = VarBuilder::from_tensors(weights.tensors, DType::F32, device);
                let model = llama::Llama::load(vb, &config)?;
                Ok(CausalLm { max_positions: config.max_position_embeddings, arch: Arch::Llama { model, config }, device: device.clone() })
            }
            other => Err(WorkerError::Unsupported(format!("text-generation supports gpt2 and llama models, not {other:?}"))),
        }
    }

    /// A quantized model from a GGUF file.
    pub fn load_gguf(path: &std::path::Path, device: &Device) -> Result<CausalLm> {
        let m = QuantLm::load(path, device)?;
        Ok(CausalLm { max_positions: m.max_positions, arch: Arch::Gguf(m), device: device.clone() })
    }

    /// The end-of-sequence token a GGUF file names (safetensors models name theirs in config.json).
    pub fn gguf_eos(&self) -> Option<u32> {
        match &self.arch {
            Arch::Gguf(m) => m.eos,
            _ => None,
        }
    }

    pub fn new_state(&self) -> Result<State> {
        Ok(match &self.arch {
            Arch::Gpt2(m) => State::Gpt2(m.new_cache()),
            Arch::Llama { config, .. } => State::Llama(Box::new(llama::Cache::new(true, DType::F32, config, &self.device)?)),
            Arch::Gguf(m) => State::Gguf(m.new_cache()),
        })
    }

    /// The most prompt tokens one step feeds (of all the prompts being prefilled): long prompts
    /// are prefilled in chunks between the decode steps of the streams already running, so they
    /// are not held up for their whole length. candle's Llama masks a multi-token step as if the
    /// cache were empty, so its prompts go in whole.
    pub fn prefill_chunk(&self) -> usize {
        match &self.arch {
            Arch::Gpt2(_) | Arch::Gguf(_) => PREFILL_CHUNK,
            Arch::Llama { .. } => usize::MAX,
        }
    }

    /// One step for several sequences: `feeds[i]` is the tokens `states[i]` takes now (its
    /// newest token, or a chunk of its prompt) and the position of the first. Returns the logits
    /// after each feed's last token. GPT-2 and GGUF models run them as one batch; Llama (candle's
    /// cache is one per batch) one after another.
    pub fn step(&self, feeds: &[(&[u32], usize)], states: &mut [&mut State]) -> Result<Vec<Vec<f32>>> {
        match &self.arch {
            Arch::Gpt2(m) => {
                let mut caches = caches(states, |s| if let State::Gpt2(c) = s { Some(c) } else { None })?;
                Ok(m.forward_batch(feeds, &mut caches)?.to_vec2::<f32>()?)
            }
            Arch::Gguf(m) => {
                let mut caches = caches(states, |s| if let State::Gguf(c) = s { Some(c) } else { None })?;
                Ok(m.forward_batch(feeds, &mut caches)?.to_vec2::<f32>()?)
            }
            Arch::Llama { model, .. } => feeds
                .iter()
                .zip(caches(states, |s| if let State::Llama(c) = s { Some(c) } else { None })?)
                .map(|(&(ids, pos), cache)| {
                    let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
                    Ok(model.forward(&input, pos, cache)?.squeeze(0)?.to_vec1::<f32>()?)
                })
                .collect(),
        }
    }
}

/// Each state's cache of the architecture `pick` takes (a state of another one is a bug).
fn caches<'a, C>(states: &'a mut [&mut State], pick: impl Fn(&'a mut State) -> Option<&'a mut C>) -> Result<Vec<&'a mut C>> {
    states.iter_mut().map(|s| pick(s).ok_or_else(|| WorkerError::Internal("generation state of another architecture".into()))).collect()
}
