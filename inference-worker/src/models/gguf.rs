//! Quantized decoders from a GGUF file (llama.cpp's format): the Llama layout that llama.cpp
//! writes for `llama`/`mistral` and `qwen2` models, with its weights kept quantized (Q8_0, Q4_K,
//! …) and multiplied by candle's quantized kernels. Like GPT-2, several sequences decode as one
//! batch: each weight matrix is read once per step for all of them, and only attention (each
//! sequence's own cache) runs per sequence.

use std::path::Path;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::kv_cache::KvCache;
use rayon::prelude::*;

use crate::error::{Result, WorkerError};

/// Positions the RoPE tables cover at most, whatever context the file claims: the KV cache of
/// one sequence grows with its length, and prompts beyond this are refused per request.
const MAX_POSITIONS: usize = 32_768;

/// A quantized weight that multiplies every row the same way whatever the number of rows.
/// candle chooses its kernel by the row count: on x86 with AVX2, Q6_K multiplies one row with
/// its compact dot product and several with repacked tiles, whose sums round differently. A
/// stream's tokens must not depend on how many others share its step, so where one row would
/// not get the numbers it gets among others (found at load, by multiplying both ways), it is
/// multiplied as a pair of itself. (A file's F32 or F16 matrices are multiplied by gemm, whose
/// sums for a row change from 5 rows on: those are not covered.)
struct QLinear {
    w: QMatMul,
    pair_single: bool,
}

impl QLinear {
    fn new(t: std::sync::Arc<QTensor>) -> Result<QLinear> {
        let (k, device) = (t.shape().dims2()?.1, t.device());
        let w = QMatMul::from_arc(t)?;
        let one = Tensor::from_vec(noise(k, 0x9e37_79b9_7f4a_7c15), (1, k), &device)?;
        let alone = w.forward(&one)?.flatten_all()?.to_vec1::<f32>()?;
        let paired = w.forward(&Tensor::cat(&[&one, &one], 0)?)?.get(0)?.to_vec1::<f32>()?;
        let pair_single = alone.iter().zip(&paired).any(|(a, b)| a.to_bits() != b.to_bits());
        Ok(QLinear { w, pair_single })
    }

    /// `x` `(rows, in)` times the weight: `(rows, out)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.pair_single && x.dim(0)? == 1 {
            return Ok(self.w.forward(&Tensor::cat(&[x, x], 0)?)?.narrow(0, 0, 1)?);
        }
        Ok(self.w.forward(x)?)
    }
}

/// `count` values in [-1, 1) from a fixed seed (a linear congruential generator).
fn noise(count: usize, mut seed: u64) -> Vec<f32> {
    (0..count)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

struct Layer {
    attn_norm: Tensor,
    wq: QLinear,
    wk: QLinear,
    wv: QLinear,
    /// qwen2 has biases on q, k and v; llama none.
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    wo: QLinear,
    ffn_norm: Tensor,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
}

pub struct QuantLm {
    /// The token embeddings, kept quantized: each step dequantizes only its tokens' rows (as f32
    /// the table of a 128k-token vocabulary would take a gigabyte by itself).
    embed: std::sync::Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QLinear,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    eps: f32,
    /// GPT-NeoX's rotation (halves) for qwen2, the interleaved pairs llama.cpp's llama files use.
    neox: bool,
    cos: Tensor,
    sin: Tensor,
    pub max_positions: usize,
    /// `tokenizer.ggml.eos_token_id`, when the file names one.
    pub eos: Option<u32>,
    device: Device,
}

/// Keys and values per layer, `(kv_heads, seen, head_dim)`, in buffers written in place.
pub struct Cache {
    kvs: Vec<KvCache>,
}

fn unsupported(msg: impl std::fmt::Display) -> WorkerError {
    WorkerError::Unsupported(format!("GGUF: {msg}"))
}

impl QuantLm {
    pub fn load(path: &Path, device: &Device) -> Result<QuantLm> {
        let mut file = std::fs::File::open(path).map_err(|e| unsupported(format!("{}: {e}", path.display())))?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| unsupported(format!("not a readable GGUF file: {e}")))?;
        // candle bounds every read by the file's size, but multiplies a tensor's dimensions
        // unchecked: a header whose product wraps around must not get that far.
        for (name, info) in &content.tensor_infos {
            if info.shape.dims().iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_none() {
                return Err(unsupported(format!("tensor {name} has impossible dimensions {:?}", info.shape.dims())));
            }
        }
        let md = &content.metadata;
        let arch = md.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        let neox = match arch.as_str() {
            "llama" | "mistral" => false,
            "qwen2" => true,
            other => return Err(unsupported(format!("architecture {other:?} is not supported (llama, mistral and qwen2 are)"))),
        };
        let uint = |key: &str| -> Result<usize> {
            let v = md.get(&format!("{arch}.{key}")).ok_or_else(|| unsupported(format!("the file has no {arch}.{key}")))?;
            v.to_u32()
                .map(|v| v as usize)
                .or_else(|_| v.to_u64().map(|v| v as usize))
                .map_err(|e| unsupported(format!("{arch}.{key}: {e}")))
        };
        let float = |key: &str| md.get(&format!("{arch}.{key}")).and_then(|v| v.to_f32().ok());
        let n_head = uint("attention.head_count")?;
        let n_kv_head = uint("attention.head_count_kv").unwrap_or(n_head);
        let n_layer = uint("block_count")?;
        let n_embd = uint("embedding_length")?;
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 || n_embd % n_head != 0 {
            return Err(unsupported(format!("{n_head} heads, {n_kv_head} key-value heads and width {n_embd} do not fit together")));
        }
        let head_dim = uint("attention.key_length").unwrap_or(n_embd / n_head);
        let rope_dim = uint("rope.dimension_count").unwrap_or(head_dim);
        if rope_dim != head_dim || head_dim % 2 != 0 {
            return Err(unsupported(format!("partial rotary embeddings ({rope_dim} of {head_dim} dimensions) are not supported")));
        }
        let eps = float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5);
        let base = float("rope.freq_base").unwrap_or(10_000.0);
        let context = uint("context_length").unwrap_or(2048);
        let max_positions = context.clamp(1, MAX_POSITIONS);
        let eos = md.get("tokenizer.ggml.eos_token_id").and_then(|v| v.to_u32().ok());

        let file = std::cell::RefCell::new(file);
        let tensor = |name: &str| -> Result<QTensor> {
            content.tensor(&mut *file.borrow_mut(), name, device).map_err(|e| unsupported(format!("tensor {name}: {e}")))
        };
        let has = |name: &str| content.tensor_infos.contains_key(name);
        let dense = |t: QTensor| -> Result<Tensor> { Ok(t.dequantize(device)?) };
        // llama 3's long-context scaling ships as per-frequency divisors.
        let freq_factors = match has("rope_freqs.weight") {
            true => Some(dense(tensor("rope_freqs.weight")?)?.to_vec1::<f32>()?),
            false => None,
        };
        let (cos, sin) = rope_tables(head_dim, base, freq_factors.as_deref(), max_positions, device)?;
        let embed_q = std::sync::Arc::new(tensor("token_embd.weight")?);
        let norm = dense(tensor("output_norm.weight")?)?;
        // Without its own output matrix the model's head is tied to the token embeddings.
        let output = match has("output.weight") {
            true => std::sync::Arc::new(tensor("output.weight")?),
            false => embed_q.clone(),
        };
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let get = |n: &str| tensor(&format!("blk.{i}.{n}"));
            // qwen2 has biases on q, k and v.
            let bias = |n: &str| -> Result<Option<Tensor>> {
                match has(&format!("blk.{i}.{n}")) {
                    true => Ok(Some(dense(get(n)?)?)),
                    false => Ok(None),
                }
            };
            let layer = Layer {
                attn_norm: dense(get("attn_norm.weight")?)?,
                wq: QLinear::new(get("attn_q.weight")?.into())?,
                wk: QLinear::new(get("attn_k.weight")?.into())?,
                wv: QLinear::new(get("attn_v.weight")?.into())?,
                bq: bias("attn_q.bias")?,
                bk: bias("attn_k.bias")?,
                bv: bias("attn_v.bias")?,
                wo: QLinear::new(get("attn_output.weight")?.into())?,
                ffn_norm: dense(get("ffn_norm.weight")?)?,
                gate: QLinear::new(get("ffn_gate.weight")?.into())?,
                up: QLinear::new(get("ffn_up.weight")?.into())?,
                down: QLinear::new(get("ffn_down.weight")?.into())?,
            };
            layers.push(layer);
        }
        Ok(QuantLm {
            embed: embed_q,
            layers,
            norm,
            output: QLinear::new(output)?,
            n_head,
            n_kv_head,
            head_dim,
            eps,
            neox,
            cos,
            sin,
            max_positions,
            eos,
            device: device.clone(),
        })
    }

    pub fn new_cache(&self) -> Cache {
        Cache { kvs: (0..self.layers.len()).map(|_| KvCache::new(1, super::gpt2::KV_CHUNK)).collect() }
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        Ok(if self.neox { candle_nn::rotary_emb::rope(x, cos, sin)? } else { candle_nn::rotary_emb::rope_i(x, cos, sin)? })
    }

    /// q, k and v of `x` `(t, c)` at the positions whose rotations are `cos`/`sin` `(t, d/2)`:
    /// q `(t, heads, d)`, k and v `(t, kv_heads, d)`.
    fn qkv(&self, layer: &Layer, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let t = x.dim(0)?;
        let proj = |w: &QLinear, b: &Option<Tensor>| -> Result<Tensor> {
            let y = w.forward(x)?;
            Ok(match b {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            })
        };
        let (q, k, v) = (proj(&layer.wq, &layer.bq)?, proj(&layer.wk, &layer.bk)?, proj(&layer.wv, &layer.bv)?);
        // The kernels rotate `(batch, heads, t, d)`: the t rows are this step's tokens, each with
        // its own position (one sequence's prompt, or one token of each sequence).
        let rotate = |x: Tensor, heads: usize| -> Result<Tensor> {
            let x = x.reshape((1, t, heads, self.head_dim))?.transpose(1, 2)?.contiguous()?;
            Ok(self.rope(&x, cos, sin)?.transpose(1, 2)?.squeeze(0)?)
        };
        let q = rotate(q, self.n_head)?;
        let k = rotate(k, self.n_kv_head)?;
        Ok((q, k, v.reshape((t, self.n_kv_head, self.head_dim))?))
    }

    /// Attention of one sequence: `q` `(t, heads, d)`, `k`/`v` `(t, kv_heads, d)` for its newest
    /// t positions, over its cache extended by them; returns `(t, heads * d)`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, kv: &mut KvCache, mask: Option<&Tensor>) -> Result<Tensor> {
        let t = q.dim(0)?;
        let group = self.n_head / self.n_kv_head;
        let (k, v) = kv.append(&k.transpose(0, 1)?.contiguous()?, &v.transpose(0, 1)?.contiguous()?)?;
        if let Device::Cpu = self.device {
            let q = q.contiguous()?.reshape((t, self.n_head * self.head_dim))?;
            return super::attention::cached_attention(&q, &k, &v, self.n_head);
        }
        // Heads sharing a key-value head are stacked: (kv_heads, group * t, d), with no copies
        // of the keys and values.
        let q = q.transpose(0, 1)?.contiguous()?.reshape((self.n_kv_head, group * t, self.head_dim))?;
        let mut att = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?;
        if let Some(mask) = mask {
            let total = k.dim(1)?;
            att = att.reshape((self.n_kv_head, group, t, total))?.broadcast_add(mask)?.reshape((self.n_kv_head, group * t, total))?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v)?.reshape((self.n_head, t, self.head_dim))?;
        Ok(y.transpose(0, 1)?.reshape((t, self.n_head * self.head_dim))?)
    }

    fn mlp(&self, layer: &Layer, x: &Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(x, &layer.ffn_norm, self.eps)?;
        let g = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
        layer.down.forward(&(g * layer.up.forward(&h)?)?)
    }

    /// The rotations of the packed tokens' positions, `(tokens, d/2)` each.
    fn rotations(&self, packed: &super::Packed) -> Result<(Tensor, Tensor)> {
        if packed.last_position >= self.max_positions {
            return Err(WorkerError::BadInput(format!(
                "position {} is beyond the model's {} positions",
                packed.last_position, self.max_positions
            )));
        }
        Ok((self.cos.index_select(&packed.positions, 0)?, self.sin.index_select(&packed.positions, 0)?))
    }

    /// One step for several sequences at once, as `Gpt2::forward_batch`: `feeds[i]` is the
    /// tokens sequence i takes now and the position of the first; every quantized product runs
    /// once for all their tokens, attention per sequence. Returns the logits after each feed's
    /// last token, `(n, vocab)`.
    pub fn forward_batch(&self, feeds: &[(&[u32], usize)], caches: &mut [&mut Cache]) -> Result<Tensor> {
        let packed = super::Packed::new(feeds, caches.len(), &self.device)?;
        let (cos, sin) = self.rotations(&packed)?;
        let mut x = self.embed.embedding(&packed.ids)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.eps)?;
            let (q, k, v) = self.qkv(layer, &h, &cos, &sin)?;
            let ys = caches
                .par_iter_mut()
                .zip(packed.spans.par_iter().zip(packed.masks.par_iter()))
                .map(|(cache, (&(start, len), mask))| {
                    self.attend(
                        &q.narrow(0, start, len)?,
                        &k.narrow(0, start, len)?,
                        &v.narrow(0, start, len)?,
                        &mut cache.kvs[l],
                        mask.as_ref(),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            x = (x + layer.wo.forward(&Tensor::cat(&ys, 0)?)?)?;
            x = (&x + self.mlp(layer, &x)?)?;
        }
        let last = candle_nn::ops::rms_norm(&x.index_select(&packed.last_rows, 0)?, &self.norm, self.eps)?;
        self.output.forward(&last)
    }
}

/// cos and sin of every position's rotation angles, `(positions, d/2)`: angle i of position p is
/// `p / base^(2i/d)`, divided by `factors[i]` where the file scales frequencies.
fn rope_tables(dim: usize, base: f32, factors: Option<&[f32]>, positions: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = dim / 2;
    if factors.is_some_and(|f| f.len() != half) {
        return Err(unsupported(format!("rope_freqs has not {half} factors")));
    }
    let inv: Vec<f32> = (0..half).map(|i| 1.0 / base.powf(2.0 * i as f32 / dim as f32) / factors.map(|f| f[i]).unwrap_or(1.0)).collect();
    let inv = Tensor::from_vec(inv, (1, half), device)?;
    let p = Tensor::arange(0u32, positions as u32, device)?.to_dtype(DType::F32)?.reshape((positions, 1))?;
    let angles = p.broadcast_mul(&inv)?;
    Ok((angles.cos()?.contiguous()?, angles.sin()?.contiguous()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    impl QuantLm {
        /// One sequence's step: `ids` at positions `pos..`; the logits after the last.
        fn forward(&self, ids: &[u32], pos: usize, cache: &mut Cache) -> Result<Tensor> {
            Ok(self.forward_batch(&[(ids, pos)], &mut [cache])?.squeeze(0)?)
        }
    }

    /// A row's product has the same bits whether it is multiplied alone or among others, for every
    /// quantized weight type and row counts on both sides of the kernels' tile sizes. (F32 and F16
    /// matrices go through gemm, whose sums change at 5 rows: not covered, see `QLinear`.)
    #[test]
    fn every_row_is_multiplied_alike_in_any_batch() {
        use GgmlDType as G;
        let (n, k) = (64usize, 512usize);
        let x = Tensor::from_vec(noise(40 * k, 1), (40, k), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(noise(n * k, 2), (n, k), &Device::Cpu).unwrap();
        let mut paired = Vec::new();
        for dtype in [G::Q4_0, G::Q4_1, G::Q5_0, G::Q5_1, G::Q8_0, G::Q2K, G::Q3K, G::Q4K, G::Q5K, G::Q6K] {
            let lin = QLinear::new(std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap())).unwrap();
            if lin.pair_single {
                paired.push(dtype);
            }
            let alone: Vec<Vec<f32>> =
                (0..40).map(|i| lin.forward(&x.narrow(0, i, 1).unwrap()).unwrap().get(0).unwrap().to_vec1().unwrap()).collect();
            for m in [2, 3, 4, 5, 8, 16, 17, 32, 33, 40] {
                let rows = lin.forward(&x.narrow(0, 0, m).unwrap()).unwrap().to_vec2::<f32>().unwrap();
                for (i, row) in rows.iter().enumerate() {
                    let same = row.iter().zip(&alone[i]).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{dtype:?}: row {i} of {m} differs from the row alone");
                }
            }
        }
        eprintln!("weight types multiplied as pairs on this CPU: {paired:?}");
    }

    /// A tiny model's batched decode step gives each sequence exactly the logits its own step
    /// gives, and a prompt fed in chunks the logits of the whole prompt at once.
    #[test]
    fn batched_decode_matches_one_sequence_at_a_time() {
        for (dtype, width) in [(GgmlDType::Q8_0, 64), (GgmlDType::Q4K, 256), (GgmlDType::Q6K, 256)] {
            let dir = std::env::temp_dir().join(format!("gguf-test-{}-{dtype:?}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("tiny.gguf");
            write_tiny(&path, dtype, width);
            let lm = QuantLm::load(&path, &Device::Cpu).unwrap();
            check_batched(&lm);
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    fn check_batched(lm: &QuantLm) {
        let prompts: [&[u32]; 3] = [&[1, 2, 3], &[7], &[4, 5, 6, 8, 9]];
        let mut caches: Vec<Cache> = prompts.iter().map(|_| lm.new_cache()).collect();
        let mut alone: Vec<Cache> = prompts.iter().map(|_| lm.new_cache()).collect();
        for ((p, c), a) in prompts.iter().zip(caches.iter_mut()).zip(alone.iter_mut()) {
            lm.forward(p, 0, c).unwrap();
            lm.forward(p, 0, a).unwrap();
        }
        // One sequence decodes while another prefills a chunk: one batch.
        let extra: [u32; 3] = [12, 13, 14];
        let feeds: Vec<(&[u32], usize)> = vec![(&[11], prompts[0].len()), (&extra, prompts[1].len()), (&[11], prompts[2].len())];
        let mut refs: Vec<&mut Cache> = caches.iter_mut().collect();
        let batched = lm.forward_batch(&feeds, &mut refs).unwrap().to_vec2::<f32>().unwrap();
        for (i, (feed, a)) in feeds.iter().zip(alone.iter_mut()).enumerate() {
            let one = lm.forward(feed.0, feed.1, a).unwrap().to_vec1::<f32>().unwrap();
            let same = one.iter().zip(&batched[i]).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "sequence {i}'s logits in the batch differ from its own step's");
        }
        // A prompt fed in two chunks gives the logits of the whole prompt fed at once.
        let (mut whole, mut parts) = (lm.new_cache(), lm.new_cache());
        let w = lm.forward(&[4, 5, 6, 8, 9], 0, &mut whole).unwrap().to_vec1::<f32>().unwrap();
        lm.forward(&[4, 5], 0, &mut parts).unwrap();
        let p = lm.forward(&[6, 8, 9], 2, &mut parts).unwrap().to_vec1::<f32>().unwrap();
        let diff = w.iter().zip(&p).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "chunked prefill: {diff}");
        // A prompt of 40 tokens takes the kernels' many-row paths (AMX tiles for Q4_K from 32
        // rows, where the CPU has them); its last logits equal those of the same prompt fed in
        // two parts.
        let long: Vec<u32> = (0..40).map(|i| (i * 7 % 64) as u32).collect();
        let (mut whole, mut parts) = (lm.new_cache(), lm.new_cache());
        let w = lm.forward(&long, 0, &mut whole).unwrap().to_vec1::<f32>().unwrap();
        lm.forward(&long[..39], 0, &mut parts).unwrap();
        let p = lm.forward(&long[39..], 39, &mut parts).unwrap().to_vec1::<f32>().unwrap();
        let diff = w.iter().zip(&p).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-2, "40-token prefill: {diff}");
    }

    /// Writes a random 2-layer llama GGUF with vocab 64, 4 heads and 2 key-value heads.
    fn write_tiny(path: &Path, dtype: GgmlDType, c: usize) {
        use gguf_file::Value as V;
        let dev = Device::Cpu;
        let (vocab, ffn) = (64usize, 2 * c);
        let mut seed = 0u64;
        let mut rand = |shape: &[usize], scale: f32| {
            seed += 1;
            let data: Vec<f32> = noise(shape.iter().product(), seed).into_iter().map(|v| v * scale / 2.0).collect();
            Tensor::from_vec(data, shape, &dev).unwrap()
        };
        let q = |t: Tensor| QTensor::quantize(&t, dtype).unwrap();
        let f = |t: Tensor| QTensor::quantize(&t, GgmlDType::F32).unwrap();
        let mut tensors = vec![("token_embd.weight".to_string(), q(rand(&[vocab, c], 1.0)))];
        tensors.push(("output_norm.weight".into(), f(rand(&[c], 0.2).affine(1.0, 1.0).unwrap())));
        tensors.push(("output.weight".into(), q(rand(&[vocab, c], 1.0))));
        for i in 0..2 {
            let b = format!("blk.{i}");
            tensors.push((format!("{b}.attn_norm.weight"), f(rand(&[c], 0.2).affine(1.0, 1.0).unwrap())));
            tensors.push((format!("{b}.ffn_norm.weight"), f(rand(&[c], 0.2).affine(1.0, 1.0).unwrap())));
            tensors.push((format!("{b}.attn_q.weight"), q(rand(&[c, c], 0.5))));
            tensors.push((format!("{b}.attn_k.weight"), q(rand(&[c / 2, c], 0.5))));
            tensors.push((format!("{b}.attn_v.weight"), q(rand(&[c / 2, c], 0.5))));
            tensors.push((format!("{b}.attn_output.weight"), q(rand(&[c, c], 0.5))));
            tensors.push((format!("{b}.ffn_gate.weight"), q(rand(&[ffn, c], 0.5))));
            tensors.push((format!("{b}.ffn_up.weight"), q(rand(&[ffn, c], 0.5))));
            tensors.push((format!("{b}.ffn_down.weight"), q(rand(&[c, ffn], 0.5))));
        }
        let md = [
            ("general.architecture", V::String("llama".into())),
            ("llama.attention.head_count", V::U32(4)),
            ("llama.attention.head_count_kv", V::U32(2)),
            ("llama.block_count", V::U32(2)),
            ("llama.embedding_length", V::U32(c as u32)),
            ("llama.context_length", V::U32(64)),
            ("llama.rope.dimension_count", V::U32(c as u32 / 4)),
            ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ];
        let md: Vec<(&str, &V)> = md.iter().map(|(k, v)| (*k, v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut out = std::fs::File::create(path).unwrap();
        gguf_file::write(&mut out, &md, &ts).unwrap();
    }
}
