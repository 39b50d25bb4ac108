//! Encoder-decoder models for summarization / translation / text2text-generation: T5.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::t5;
use serde_json::{json, Value};

use super::{default_field, parse, Weights};
use crate::error::{Result, WorkerError};

/// T5's decoder, written here: candle's uses the encoder's bidirectional relative-position
/// buckets in the decoder too, so its outputs leave transformers' after 8 generated tokens.
struct DecoderBlock {
    self_norm: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    cross_norm: Tensor,
    cq: Tensor,
    ck: Tensor,
    cv: Tensor,
    co: Tensor,
    ff_norm: Tensor,
    /// `wi` (or `wi_0` and `wi_1` when gated) and `wo`, all `[out, in]`.
    wi: Tensor,
    wi_1: Option<Tensor>,
    wo: Tensor,
}

pub struct Seq2Seq {
    encoder: t5::T5EncoderModel,
    shared: Tensor,
    lm_head: Option<Tensor>,
    blocks: Vec<DecoderBlock>,
    position_bias: Tensor,
    final_norm: Tensor,
    heads: usize,
    d_kv: usize,
    d_model: usize,
    eps: f64,
    buckets: usize,
    max_distance: usize,
    act: candle_nn::Activation,
    decoder_start: u32,
    eos: u32,
    device: Device,
}

/// transformers' `_relative_position_bucket` for a decoder (unidirectional): how far back key
/// `j` is from query `i`.
fn causal_bucket(i: usize, j: usize, buckets: usize, max_distance: usize) -> usize {
    let n = i.saturating_sub(j);
    let max_exact = buckets / 2;
    if n < max_exact {
        return n;
    }
    let large = max_exact
        + ((n as f32 / max_exact as f32).ln() / (max_distance as f32 / max_exact as f32).ln() * (buckets - max_exact) as f32) as usize;
    large.min(buckets - 1)
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    x.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(w)
}

impl Seq2Seq {
    pub fn load(config: &Value, weights: &Weights, device: &Device) -> Result<Seq2Seq> {
        let mut cfg = config.clone();
        for (k, v) in [
            ("dropout_rate", json!(0.1)),
            ("initializer_factor", json!(1.0)),
            ("is_encoder_decoder", json!(true)),
            ("pad_token_id", json!(0)),
            ("eos_token_id", json!(1)),
            ("layer_norm_epsilon", json!(1e-6)),
            ("relative_attention_num_buckets", json!(32)),
        ] {
            default_field(&mut cfg, k, v);
        }
        let c: t5::Config = parse(cfg, "T5")?;
        let w = |n: &str| -> Result<Tensor> { Ok(weights.get(n)?.clone()) };
        let vb = VarBuilder::from_tensors(weights.tensors.clone(), DType::F32, device);
        if !weights.has("shared.weight") || !weights.has("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight") {
            return Err(WorkerError::Unsupported("a T5 checkpoint needs shared.weight and the encoder's relative_attention_bias".into()));
        }
        let mut enc_cfg = c.clone();
        enc_cfg.is_decoder = false;
        enc_cfg.use_cache = false;
        let encoder = t5::T5EncoderModel::load(vb, &enc_cfg)?;
        let layers = c.num_decoder_layers.unwrap_or(c.num_layers);
        let gated = c.feed_forward_proj.gated;
        let blocks = (0..layers)
            .map(|i| {
                let b = format!("decoder.block.{i}.layer");
                let ff = format!("{b}.2.DenseReluDense");
                Ok(DecoderBlock {
                    self_norm: w(&format!("{b}.0.layer_norm.weight"))?,
                    q: w(&format!("{b}.0.SelfAttention.q.weight"))?,
                    k: w(&format!("{b}.0.SelfAttention.k.weight"))?,
                    v: w(&format!("{b}.0.SelfAttention.v.weight"))?,
                    o: w(&format!("{b}.0.SelfAttention.o.weight"))?,
                    cross_norm: w(&format!("{b}.1.layer_norm.weight"))?,
                    cq: w(&format!("{b}.1.EncDecAttention.q.weight"))?,
                    ck: w(&format!("{b}.1.EncDecAttention.k.weight"))?,
                    cv: w(&format!("{b}.1.EncDecAttention.v.weight"))?,
                    co: w(&format!("{b}.1.EncDecAttention.o.weight"))?,
                    ff_norm: w(&format!("{b}.2.layer_norm.weight"))?,
                    wi: w(&format!("{ff}.{}", if gated { "wi_0.weight" } else { "wi.weight" }))?,
                    wi_1: if gated { Some(w(&format!("{ff}.wi_1.weight"))?) } else { None },
                    wo: w(&format!("{ff}.wo.weight"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Seq2Seq {
            encoder,
            shared: w("shared.weight")?,
            lm_head: if c.tie_word_embeddings { None } else { Some(w("lm_head.weight")?) },
            blocks,
            position_bias: w("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")?,
            final_norm: w("decoder.final_layer_norm.weight")?,
            heads: c.num_heads,
            d_kv: c.d_kv,
            d_model: c.d_model,
            eps: c.layer_norm_epsilon,
            buckets: c.relative_attention_num_buckets,
            max_distance: c.relative_attention_max_distance,
            act: c.feed_forward_proj.activation,
            decoder_start: c.decoder_start_token_id.unwrap_or(c.pad_token_id) as u32,
            eos: c.eos_token_id as u32,
            device: device.clone(),
        })
    }

    /// `(1, in)` rows times a `[out, in]` weight.
    fn proj(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&w.t()?)
    }

    /// `(n, inner)` → `(heads, n, d_kv)`.
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(0)?;
        x.reshape((n, self.heads, self.d_kv))?.transpose(0, 1)?.contiguous()
    }

    /// T5 attention: no 1/sqrt(d) scaling; `bias` `(heads, 1, keys)` for self-attention.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(b) = bias {
            scores = scores.broadcast_add(b)?;
        }
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        p.matmul(v)?.transpose(0, 1)?.reshape((1, self.heads * self.d_kv))
    }

    /// Greedy decoding from the decoder start token until EOS or `max_new_tokens`; the EOS is
    /// not returned. Blocking.
    pub fn generate(&self, input: &[u32], max_new_tokens: usize, deadline: Instant, timeout_s: f64) -> Result<Vec<u32>> {
        use candle_core::Module;
        let mut encoder = self.encoder.clone();
        let input = Tensor::new(input, &self.device)?.unsqueeze(0)?;
        let encoded = encoder.forward(&input)?.squeeze(0)?;
        // Cross-attention keys and values, once per block.
        let cross: Vec<(Tensor, Tensor)> = self
            .blocks
            .iter()
            .map(|b| Ok((self.split_heads(&Self::proj(&encoded, &b.ck)?)?, self.split_heads(&Self::proj(&encoded, &b.cv)?)?)))
            .collect::<candle_core::Result<_>>()?;
        let mut cache: Vec<Option<(Tensor, Tensor)>> = vec![None; self.blocks.len()];
        let mut out: Vec<u32> = Vec::new();
        let mut last = self.decoder_start;
        for pos in 0..max_new_tokens {
            if Instant::now() > deadline {
                return Err(WorkerError::Timeout(timeout_s));
            }
            let buckets: Vec<u32> = (0..=pos).map(|j| causal_bucket(pos, j, self.buckets, self.max_distance) as u32).collect();
            let bias = self.position_bias.embedding(&Tensor::new(buckets.as_slice(), &self.device)?)?.t()?.unsqueeze(1)?;
            let mut x = self.shared.embedding(&Tensor::new(&[last], &self.device)?)?;
            for (i, b) in self.blocks.iter().enumerate() {
                let h = rms_norm(&x, &b.self_norm, self.eps)?;
                let (q, k, v) = (
                    self.split_heads(&Self::proj(&h, &b.q)?)?,
                    self.split_heads(&Self::proj(&h, &b.k)?)?,
                    self.split_heads(&Self::proj(&h, &b.v)?)?,
                );
                let (k, v) = match cache[i].take() {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 1)?, Tensor::cat(&[&pv, &v], 1)?),
                    None => (k, v),
                };
                let a = self.attend(&q, &k, &v, Some(&bias))?;
                cache[i] = Some((k, v));
                x = (x + Self::proj(&a, &b.o)?)?;
                let h = rms_norm(&x, &b.cross_norm, self.eps)?;
                let a = self.attend(&self.split_heads(&Self::proj(&h, &b.cq)?)?, &cross[i].0, &cross[i].1, None)?;
                x = (x + Self::proj(&a, &b.co)?)?;
                let h = rms_norm(&x, &b.ff_norm, self.eps)?;
                let mut f = self.act.forward(&Self::proj(&h, &b.wi)?)?;
                if let Some(wi_1) = &b.wi_1 {
                    f = (f * Self::proj(&h, wi_1)?)?;
                }
                x = (x + Self::proj(&f, &b.wo)?)?;
            }
            let x = rms_norm(&x, &self.final_norm, self.eps)?;
            let logits = match &self.lm_head {
                Some(head) => Self::proj(&x, head)?,
                // Tied embeddings: transformers scales by d_model^-0.5 before projecting.
                None => Self::proj(&(x * (self.d_model as f64).powf(-0.5))?, &self.shared)?,
            };
            let logits = logits.squeeze(0)?.to_vec1::<f32>()?;
            let next = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(self.eos);
            if next == self.eos {
                break;
            }
            out.push(next);
            last = next;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::causal_bucket;

    #[test]
    fn decoder_buckets_follow_transformers() {
        // Exact up to 15 back, then logarithmic up to bucket 31; never the future.
        assert_eq!((0..16).map(|n| causal_bucket(20, 20 - n, 32, 128)).collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
        assert_eq!(causal_bucket(3, 5, 32, 128), 0);
        assert_eq!(causal_bucket(16 + 16, 0, 32, 128), 21);
        assert_eq!(causal_bucket(1000, 0, 32, 128), 31);
    }
}
