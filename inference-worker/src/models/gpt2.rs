//! GPT-2 (`GPT2LMHeadModel` / `GPT2Model` checkpoints) with a KV cache. candle has no GPT-2
//! module and its bigcode one mis-shapes multi-head attention, hence this one.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::kv_cache::KvCache;
use candle_nn::{Embedding, LayerNorm};
use rayon::prelude::*;
use serde_json::Value;

use super::linear::{Act, Linear};
use super::Weights;
use crate::error::{Result, WorkerError};

/// transformers' Conv1D: the weight is stored `[in, out]`, so `x @ w + b` with no transpose.
fn conv1d(w: &mut Weights, prefix: &str) -> Result<Linear> {
    Linear::new(w.take(&format!("{prefix}.weight"))?, Some(w.take(&format!("{prefix}.bias"))?))
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

pub struct Gpt2 {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Linear,
    n_head: usize,
    pub n_positions: usize,
    activation: Act,
    device: Device,
}

/// Keys and values per layer, `(batch, heads, seen, head_dim)`, written in place into buffers
/// that grow by `KV_CHUNK` positions (instead of copying the whole cache at every token).
pub struct Cache {
    kvs: Vec<KvCache>,
}

/// Positions a KV buffer grows by.
pub(super) const KV_CHUNK: usize = 64;

impl Gpt2 {
    /// Takes each tensor out of `w` as it is used: the linear layers are copies (strips
    /// down the depth), and the checkpoint's originals go layer by layer instead of after the whole
    /// model is built.
    pub fn load(config: &Value, mut w: Weights, device: &Device) -> Result<Gpt2> {
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
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "gelu" => Act::GeluErf,
            "relu" => Act::Relu,
            other => return Err(WorkerError::Unsupported(format!("GPT-2 activation {other:?} is not supported"))),
        };
        // GPT2LMHeadModel saves under `transformer.`, a bare GPT2Model without a prefix.
        let p = w
            .prefix_of("wte.weight", &["transformer.", ""])
            .ok_or_else(|| WorkerError::Unsupported("no GPT-2 token embeddings (wte.weight) in the checkpoint".into()))?;
        let wte = w.take(&format!("{p}wte.weight"))?;
        let w = &mut w;
        let blocks = (0..n_layer)
            .map(|i| {
                let b = format!("{p}h.{i}");
                Ok(Block {
                    ln_1: w.layer_norm(&format!("{b}.ln_1"), eps)?,
                    c_attn: conv1d(w, &format!("{b}.attn.c_attn"))?,
                    attn_proj: conv1d(w, &format!("{b}.attn.c_proj"))?,
                    ln_2: w.layer_norm(&format!("{b}.ln_2"), eps)?,
                    c_fc: conv1d(w, &format!("{b}.mlp.c_fc"))?,
                    mlp_proj: conv1d(w, &format!("{b}.mlp.c_proj"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The LM head is tied to the token embeddings unless the checkpoint has its own. `Linear`
        // keeps its own copy as strips: used as a transposed view of `(vocab, c)`, gemm gathered
        // all of it value by value at every product of more than one row (a quarter of a
        // 16-stream decode step). 154 MB more for GPT-2 small.
        let lm_head = Linear::new(w.tensors.remove("lm_head.weight").unwrap_or_else(|| wte.clone()).t()?, None)?;
        Ok(Gpt2 {
            wte: Embedding::new(wte, n_embd),
            wpe: Embedding::new(w.take(&format!("{p}wpe.weight"))?, n_embd),
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
        Cache { kvs: (0..self.blocks.len()).map(|_| KvCache::new(2, KV_CHUNK)).collect() }
    }

    /// Attention of one sequence, `qkv` `(t, 3c)`, over its cache extended by these `t`
    /// positions; returns `(t, c)` before the output projection.
    fn attend(&self, qkv: &Tensor, kv: &mut KvCache, mask: Option<&Tensor>) -> Result<Tensor> {
        let (t, c3) = qkv.dims2()?;
        let c = c3 / 3;
        let hd = c / self.n_head;
        // `(1, heads, t, hd)`, the cache's layout.
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv.narrow(D::Minus1, i * c, c)?.reshape((1, t, self.n_head, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let (k, v) = kv.append(&split(1)?, &split(2)?)?;
        let q = qkv.narrow(D::Minus1, 0, c)?;
        if let Device::Cpu = self.device {
            return super::attention::cached_attention(&q, &k, &v, self.n_head);
        }
        let q = q.reshape((1, t, self.n_head, hd))?.transpose(1, 2)?.contiguous()?;
        let mut att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        if let Some(mask) = mask {
            att = att.broadcast_add(mask)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        Ok(att.matmul(&v)?.transpose(1, 2)?.reshape((t, c))?)
    }

    /// One step for several sequences at once: `feeds[i]` is the tokens sequence i takes now
    /// (its newest token when decoding, a chunk of its prompt when prefilling) and the position
    /// of the first, `caches[i]` its cache. All their tokens go through every weight matrix
    /// together (one `(tokens, c)` product instead of one per sequence); only attention, which
    /// reads each sequence's own cache, runs per sequence. Returns the logits after each feed's
    /// last token, `(n, vocab)`.
    pub fn forward_batch(&self, feeds: &[(&[u32], usize)], caches: &mut [&mut Cache]) -> Result<Tensor> {
        let packed = super::Packed::new(feeds, caches.len(), &self.device)?;
        let mut x = (self.wte.forward(&packed.ids)? + self.wpe.forward(&packed.positions)?)?;
        for (layer, block) in self.blocks.iter().enumerate() {
            let qkv = block.c_attn.forward(&block.ln_1.forward(&x)?, Act::Identity, None, None)?;
            // Each sequence's attention is small and independent of the others': spread over
            // the cores instead of one after another.
            let ys = caches
                .par_iter_mut()
                .zip(packed.spans.par_iter().zip(packed.masks.par_iter()))
                .map(|(cache, (&(start, len), mask))| self.attend(&qkv.narrow(0, start, len)?, &mut cache.kvs[layer], mask.as_ref()))
                .collect::<Result<Vec<_>>>()?;
            x = block.attn_proj.forward(&Tensor::cat(&ys, 0)?, Act::Identity, Some(&x), None)?;
            let m = block.c_fc.forward(&block.ln_2.forward(&x)?, self.activation, None, None)?;
            x = block.mlp_proj.forward(&m, Act::Identity, Some(&x), None)?;
        }
        // The LM head only for the rows whose next token is wanted.
        self.lm_head.forward(&self.ln_f.forward(&x.index_select(&packed.last_rows, 0)?)?, Act::Identity, None, None)
    }
}

/// Additive mask `(t, pos + t)`: query i sees keys up to `pos + i`.
pub(super) fn causal_mask(t: usize, pos: usize, device: &Device) -> Result<Tensor> {
    let total = pos + t;
    let data: Vec<f32> = (0..t).flat_map(|i| (0..total).map(move |j| if j <= pos + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Ok(Tensor::from_vec(data, (t, total), device)?.to_dtype(DType::F32)?)
}
