//! A BERT encoder laid out for fast inference: one fused QKV matmul with the attention scale
//! folded into the query weights, every matmul on `(tokens, hidden)` rows through
//! [`Linear`] (bias, GELU, residual and layer norm in the pass after each product), and on the
//! CPU only the real tokens, with attention fused per (sequence, head). candle's `BertModel` runs
//! three QKV matmuls, a five-pass softmax and a single-threaded erf, which left it at about
//! 0.6× PyTorch on CPU.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Shape, Tensor};
use candle_nn::{Embedding, LayerNorm};
use rayon::prelude::*;
use serde_json::Value;

use super::linear::{Act, Linear, Norm};
use super::{vmath, Weights};
use crate::error::{Result, WorkerError};

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    act: Act,
    device: Device,
}

impl Bert {
    pub fn load(config: &Value, w: &Weights, prefix: &str, device: &Device) -> Result<Bert> {
        let get =
            |k: &str| config[k].as_u64().map(|v| v as usize).ok_or_else(|| WorkerError::Unsupported(format!("config.json lacks {k}")));
        let hidden = get("hidden_size")?;
        let heads = get("num_attention_heads")?;
        let layers = get("num_hidden_layers")?;
        if heads == 0 || hidden % heads != 0 {
            return Err(WorkerError::Unsupported(format!("hidden_size {hidden} is not divisible by num_attention_heads {heads}")));
        }
        if config["position_embedding_type"].as_str().is_some_and(|p| p != "absolute") {
            return Err(WorkerError::Unsupported("only absolute position embeddings are supported".into()));
        }
        let eps = config["layer_norm_eps"].as_f64().unwrap_or(1e-12);
        let act = match config["hidden_act"].as_str().unwrap_or("gelu") {
            "gelu" => Act::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "relu" => Act::Relu,
            other => return Err(WorkerError::Unsupported(format!("activation {other:?} is not supported"))),
        };
        let t = |name: &str| -> Result<Tensor> { Ok(w.get(&format!("{prefix}{name}"))?.clone()) };
        // Linear weights are saved `[out, in]`; stored transposed so rows multiply directly.
        let dense =
            |name: &str| -> Result<Linear> { Linear::panels(t(&format!("{name}.weight"))?.t()?, Some(t(&format!("{name}.bias"))?)) };
        let norm = |name: &str| -> Result<Norm> { Norm::new(t(&format!("{name}.weight"))?, t(&format!("{name}.bias"))?, eps) };
        let scale = 1.0 / ((hidden / heads) as f64).sqrt();
        let layers = (0..layers)
            .map(|i| {
                let l = format!("encoder.layer.{i}");
                let a = format!("{l}.attention.self");
                let qkv_w = Tensor::cat(
                    &[(t(&format!("{a}.query.weight"))? * scale)?, t(&format!("{a}.key.weight"))?, t(&format!("{a}.value.weight"))?],
                    0,
                )?;
                let qkv_b = Tensor::cat(
                    &[(t(&format!("{a}.query.bias"))? * scale)?, t(&format!("{a}.key.bias"))?, t(&format!("{a}.value.bias"))?],
                    0,
                )?;
                Ok(Layer {
                    qkv: Linear::panels(qkv_w.t()?, Some(qkv_b))?,
                    attn_out: dense(&format!("{l}.attention.output.dense"))?,
                    attn_norm: norm(&format!("{l}.attention.output.LayerNorm"))?,
                    intermediate: dense(&format!("{l}.intermediate.dense"))?,
                    output: dense(&format!("{l}.output.dense"))?,
                    output_norm: norm(&format!("{l}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            word: Embedding::new(t("embeddings.word_embeddings.weight")?, hidden),
            position: Embedding::new(t("embeddings.position_embeddings.weight")?, hidden),
            token_type: t("embeddings.token_type_embeddings.weight")?.get(0)?,
            emb_norm: LayerNorm::new(t("embeddings.LayerNorm.weight")?, t("embeddings.LayerNorm.bias")?, eps),
            layers,
            heads,
            hidden,
            act,
            device: device.clone(),
        })
    }

    /// `ids`, `mask`: `(batch, tokens)` u32, mask 1 = a real token → `(batch, tokens, hidden)`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let (h, heads) = (self.hidden, self.heads);
        let hd = h / heads;
        let positions = Tensor::arange(0u32, t as u32, &self.device)?;
        let x = self.word.forward(&ids.flatten_all()?)?.reshape((b, t, h))?;
        let x = x.broadcast_add(&self.position.forward(&positions)?)?.broadcast_add(&self.token_type)?;
        let mut x = self.emb_norm.forward(&x.reshape((b * t, h))?)?;
        let real = mask.flatten_all()?.to_vec1::<u32>()?;
        let padded = real.contains(&0);
        if let Device::Cpu = self.device {
            // Only the real tokens go through the layers (a batch of sentences of 27 to 33 tokens
            // padded to 33 computes a tenth less): each sequence's, one after another, attention
            // within each sequence's span. Their values are the same as with the padding masked.
            let keep: Vec<u32> = (0..b * t).filter(|&r| real[r] != 0).map(|r| r as u32).collect();
            let mut spans = Vec::with_capacity(b);
            for bi in 0..b {
                let start = spans.last().map_or(0, |&(s, l)| s + l);
                spans.push((start, real[bi * t..(bi + 1) * t].iter().filter(|&&m| m != 0).count()));
            }
            let keep = Tensor::from_vec(keep, spans.last().map_or(0, |&(s, l)| s + l), &self.device)?;
            if padded {
                x = x.index_select(&keep, 0)?;
            }
            let attention = FusedAttention { spans, heads };
            for layer in &self.layers {
                let ctx = layer.qkv.forward(&x, Act::Identity, None, None)?.apply_op1_no_bwd(&attention)?;
                x = self.feed_forward(layer, &x, &ctx)?;
            }
            if padded {
                // Padding positions come back as zeros (every caller reads only real tokens).
                x = Tensor::zeros((b * t, h), DType::F32, &self.device)?.index_add(&keep, &x, 0)?;
            }
            return Ok(x.reshape((b, t, h))?);
        }
        // Elsewhere (a GPU), candle's ops over the padded batch with an additive mask: 0 where a
        // token is real, a large negative where it is padding.
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e30)?;
        for layer in &self.layers {
            let qkv =
                layer.qkv.forward(&x, Act::Identity, None, None)?.reshape((b, t, 3, heads, hd))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
            let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
            let mut scores = q.matmul(&k.t()?)?;
            if padded {
                scores = scores.broadcast_add(&bias.reshape((b, 1, 1, t))?)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b * t, h))?;
            x = self.feed_forward(layer, &x, &ctx)?;
        }
        Ok(x.reshape((b, t, h))?)
    }

    /// The rest of a layer after attention: output projection, residual and norm, the MLP.
    fn feed_forward(&self, layer: &Layer, x: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let x = layer.attn_out.forward(ctx, Act::Identity, Some(x), Some(&layer.attn_norm))?;
        let inter = layer.intermediate.forward(&x, self.act, None, None)?;
        layer.output.forward(&inter, Act::Identity, Some(&x), Some(&layer.output_norm))
    }
}

/// Self-attention of every (sequence, head) pair in parallel, straight from the fused QKV rows
/// `(tokens, 3·hidden)` (queries already scaled; each sequence's real tokens one after another,
/// at `spans` (first row, length), padding left out) into context rows `(tokens, hidden)`.
/// candle's batched matmul would run one multi-threaded GEMM per (sequence, head): thousands of
/// tiny ones per batch.
struct FusedAttention {
    spans: Vec<(usize, usize)>,
    heads: usize,
}

impl CustomOp1 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((q0, q1)) = l1.contiguous_offsets() else { candle_core::bail!("fused-attention needs a contiguous input") };
        let qkv = &s1.as_slice::<f32>()?[q0..q1];
        let heads = self.heads;
        let (rows, row) = l1.shape().dims2()?;
        let h = row / 3;
        let hd = h / heads;
        if rows * row != qkv.len() || hd * heads != h || self.spans.iter().any(|&(start, len)| start + len > rows) {
            candle_core::bail!("fused-attention: unexpected shapes");
        }
        // One (tokens, head_dim) block per (sequence, head), then laid out as rows.
        let blocks: Vec<Vec<f32>> = (0..self.spans.len() * heads)
            .into_par_iter()
            .map(|sh| {
                let ((start, len), hi) = (self.spans[sh / heads], sh % heads);
                let mut out = vec![0f32; len * hd];
                vmath::simd(HeadAttention { qkv, tokens: len, out: &mut out, first: start * row + hi * hd, row, h, hd });
                out
            })
            .collect();
        let mut ctx = vec![0f32; rows * h];
        for (sh, block) in blocks.iter().enumerate() {
            let ((start, len), hi) = (self.spans[sh / heads], sh % heads);
            for i in 0..len {
                let dst = (start + i) * h + hi * hd;
                ctx[dst..dst + hd].copy_from_slice(&block[i * hd..(i + 1) * hd]);
            }
        }
        Ok((CpuStorage::F32(ctx), Shape::from((rows, h))))
    }
}

/// One (sequence, head) pair's attention, into `out` `(tokens, head_dim)`. A `WithSimd` op
/// rather than a closure so that its loops are sure to be compiled for the CPU's vector width.
struct HeadAttention<'a> {
    qkv: &'a [f32],
    tokens: usize,
    out: &'a mut [f32],
    /// Where the head's query of the sequence's first token starts in `qkv`.
    first: usize,
    row: usize,
    h: usize,
    hd: usize,
}

impl pulp::WithSimd for HeadAttention<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let HeadAttention { qkv, tokens: t, out, first, row, h, hd } = self;
        let at = |tok: usize, part: usize| first + tok * row + part * h;
        // The keys transposed, `(head_dim, tokens)` with the tokens padded to lanes of 16: a query's
        // scores are then sums of rows, 16 tokens in one register for the whole head dimension
        // (a dot product per key would end each in a horizontal sum).
        const L: usize = 16;
        let tp = t.div_ceil(L) * L;
        let mut keys = vec![0f32; hd * tp];
        for j in 0..t {
            for (d, &k) in qkv[at(j, 1)..at(j, 1) + hd].iter().enumerate() {
                keys[d * tp + j] = k;
            }
        }
        let mut scores = vec![0f32; tp];
        for i in 0..t {
            let q = &qkv[at(i, 0)..at(i, 0) + hd];
            for (block, lanes) in scores.chunks_exact_mut(L).enumerate() {
                let mut acc = [0f32; L];
                for (d, &q) in q.iter().enumerate() {
                    let k = &keys[d * tp + block * L..][..L];
                    for l in 0..L {
                        acc[l] += q * k[l];
                    }
                }
                lanes.copy_from_slice(&acc);
            }
            let scores = &mut scores[..t];
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            for s in scores.iter_mut() {
                *s = vmath::exp(*s - max);
            }
            let sum: f32 = scores.iter().sum();
            let o = &mut out[i * hd..(i + 1) * hd];
            for (j, s) in scores.iter().enumerate() {
                let p = s / sum;
                for (o, v) in o.iter_mut().zip(&qkv[at(j, 2)..at(j, 2) + hd]) {
                    *o += p * v;
                }
            }
        }
    }
}
