//! GPT-2 (`GPT2LMHeadModel` / `GPT2Model` checkpoints) with a KV cache. candle has no GPT-2
//! module and its bigcode one mis-shapes multi-head attention, hence this one.

use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear};
use rayon::prelude::*;
use serde_json::Value;

use super::Weights;
use crate::error::{Result, WorkerError};

/// transformers' Conv1D: the weight is stored `[in, out]`, so `x @ w + b` with no transpose.
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    fn load(w: &Weights, prefix: &str) -> Result<Conv1D> {
        Ok(Conv1D { weight: w.get(&format!("{prefix}.weight"))?.clone(), bias: w.get(&format!("{prefix}.bias"))?.clone() })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_matmul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
}

pub struct Gpt2 {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Linear,
    n_head: usize,
    pub n_positions: usize,
    activation: candle_nn::Activation,
    device: Device,
}

/// Keys and values per layer, `(batch, heads, seen, head_dim)`.
pub struct Cache {
    kvs: Vec<Option<(Tensor, Tensor)>>,
}

impl Gpt2 {
    pub fn load(config: &Value, w: &Weights, device: &Device) -> Result<Gpt2> {
        let get = |k: &str| config[k].as_u64().map(|v| v as usize);
        let n_embd = get("n_embd").ok_or_else(|| WorkerError::Unsupported("GPT-2 config.json lacks n_embd".into()))?;
        let n_layer = get("n_layer").ok_or_else(|| WorkerError::Unsupported("GPT-2 config.json lacks n_layer".into()))?;
        let n_head = get("n_head").ok_or_else(|| WorkerError::Unsupported("GPT-2 config.json lacks n_head".into()))?;
        let n_positions = get("n_positions").or(get("n_ctx")).unwrap_or(1024);
        let eps = config["layer_norm_epsilon"].as_f64().unwrap_or(1e-5);
        if n_head == 0 || n_embd % n_head != 0 {
            return Err(WorkerError::Unsupported(format!("n_embd {n_embd} is not divisible by n_head {n_head}")));
        }
        let activation = match config["activation_function"].as_str().unwrap_or("gelu_new") {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => candle_nn::Activation::NewGelu,
            "gelu" => candle_nn::Activation::Gelu,
            "relu" => candle_nn::Activation::Relu,
            other => return Err(WorkerError::Unsupported(format!("GPT-2 activation {other:?} is not supported"))),
        };
        // GPT2LMHeadModel saves under `transformer.`, a bare GPT2Model without a prefix.
        let p = w
            .prefix_of("wte.weight", &["transformer.", ""])
            .ok_or_else(|| WorkerError::Unsupported("no GPT-2 token embeddings (wte.weight) in the checkpoint".into()))?;
        let wte = w.get(&format!("{p}wte.weight"))?.clone();
        let blocks = (0..n_layer)
            .map(|i| {
                let b = format!("{p}h.{i}");
                Ok(Block {
                    ln_1: w.layer_norm(&format!("{b}.ln_1"), eps)?,
                    c_attn: Conv1D::load(w, &format!("{b}.attn.c_attn"))?,
                    attn_proj: Conv1D::load(w, &format!("{b}.attn.c_proj"))?,
                    ln_2: w.layer_norm(&format!("{b}.ln_2"), eps)?,
                    c_fc: Conv1D::load(w, &format!("{b}.mlp.c_fc"))?,
                    mlp_proj: Conv1D::load(w, &format!("{b}.mlp.c_proj"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The LM head is tied to the token embeddings unless the checkpoint has its own.
        let lm_head = Linear::new(w.tensors.get("lm_head.weight").cloned().unwrap_or_else(|| wte.clone()), None);
        Ok(Gpt2 {
            wte: Embedding::new(wte, n_embd),
            wpe: Embedding::new(w.get(&format!("{p}wpe.weight"))?.clone(), n_embd),
            blocks,
            ln_f: w.layer_norm(&format!("{p}ln_f"), eps)?,
            lm_head,
            n_head,
            n_positions,
            activation,
            device: device.clone(),
        })
    }

    pub fn new_cache(&self) -> Cache {
        Cache { kvs: vec![None; self.blocks.len()] }
    }

    /// Runs `ids` (one sequence) at positions `pos..`, extending `cache`; returns the logits of
    /// the last position `(vocab,)`.
    pub fn forward(&self, ids: &[u32], pos: usize, cache: &mut Cache) -> Result<Tensor> {
        let t = ids.len();
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let positions = Tensor::arange(pos as u32, (pos + t) as u32, &self.device)?.unsqueeze(0)?;
        let mut x = self.wte.forward(&input)?.broadcast_add(&self.wpe.forward(&positions)?)?;
        let mask = if t > 1 { Some(causal_mask(t, pos, &self.device)?) } else { None };
        for (block, kv) in self.blocks.iter().zip(cache.kvs.iter_mut()) {
            let h = self.attention(block, &block.ln_1.forward(&x)?, kv, mask.as_ref())?;
            x = (x + h)?;
            let m = block.mlp_proj.forward(&self.activation.forward(&block.c_fc.forward(&block.ln_2.forward(&x)?)?)?)?;
            x = (x + m)?;
        }
        let last = self.ln_f.forward(&x.i((.., t - 1, ..))?)?;
        Ok(self.lm_head.forward(&last)?.squeeze(0)?)
    }

    fn attention(&self, block: &Block, x: &Tensor, kv: &mut Option<(Tensor, Tensor)>, mask: Option<&Tensor>) -> Result<Tensor> {
        let y = self.attend(&block.c_attn.forward(x)?, kv, mask)?;
        block.attn_proj.forward(&y)
    }

    /// Attention of one sequence, `qkv` `(1, t, 3c)`, over its cache extended by these `t`
    /// positions; returns `(1, t, c)` before the output projection.
    fn attend(&self, qkv: &Tensor, kv: &mut Option<(Tensor, Tensor)>, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, c3) = qkv.dims3()?;
        let c = c3 / 3;
        let hd = c / self.n_head;
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv.narrow(D::Minus1, i * c, c)?.reshape((b, t, self.n_head, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let (q, mut k, mut v) = (split(0)?, split(1)?, split(2)?);
        if let Some((pk, pv)) = kv.as_ref() {
            k = Tensor::cat(&[pk, &k], 2)?;
            v = Tensor::cat(&[pv, &v], 2)?;
        }
        *kv = Some((k.clone(), v.clone()));
        let mut att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        if let Some(mask) = mask {
            att = att.broadcast_add(mask)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        Ok(att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))?)
    }

    /// One decode step for several sequences at once: `steps[i]` is sequence i's newest token
    /// and its position, `caches[i]` its cache. Every weight matrix is read once for all of them
    /// (one `(n, c)` product instead of n `(1, c)` ones); only attention, which reads each
    /// sequence's own cache, runs per sequence. Returns the next-token logits `(n, vocab)`.
    pub fn forward_batch(&self, steps: &[(u32, usize)], caches: &mut [&mut Cache]) -> Result<Tensor> {
        let n = steps.len();
        if n != caches.len() || n == 0 {
            return Err(WorkerError::Internal(format!("{n} decode steps for {} caches", caches.len())));
        }
        let ids = Tensor::from_vec(steps.iter().map(|s| s.0).collect::<Vec<_>>(), n, &self.device)?;
        let positions = Tensor::from_vec(steps.iter().map(|s| s.1 as u32).collect::<Vec<_>>(), n, &self.device)?;
        let mut x = (self.wte.forward(&ids)? + self.wpe.forward(&positions)?)?;
        for (layer, block) in self.blocks.iter().enumerate() {
            let qkv = block.c_attn.forward(&block.ln_1.forward(&x)?)?;
            // Each sequence's attention is small and independent of the others': spread over
            // the cores instead of one after another.
            let ys = caches
                .par_iter_mut()
                .enumerate()
                .map(|(i, cache)| Ok(self.attend(&qkv.narrow(0, i, 1)?.unsqueeze(0)?, &mut cache.kvs[layer], None)?.squeeze(0)?))
                .collect::<Result<Vec<_>>>()?;
            x = (x + block.attn_proj.forward(&Tensor::cat(&ys, 0)?)?)?;
            let m = block.mlp_proj.forward(&self.activation.forward(&block.c_fc.forward(&block.ln_2.forward(&x)?)?)?)?;
            x = (x + m)?;
        }
        Ok(self.lm_head.forward(&self.ln_f.forward(&x)?)?)
    }
}

/// Additive mask `(t, pos + t)`: query i sees keys up to `pos + i`.
pub(super) fn causal_mask(t: usize, pos: usize, device: &Device) -> Result<Tensor> {
    let total = pos + t;
    let data: Vec<f32> = (0..t).flat_map(|i| (0..total).map(move |j| if j <= pos + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Ok(Tensor::from_vec(data, (t, total), device)?.to_dtype(DType::F32)?)
}
