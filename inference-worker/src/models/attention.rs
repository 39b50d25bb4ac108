//! Causal attention of one sequence's newest tokens over its KV cache, as one op: the scores,
//! the causal limit, the softmax and the weighted sum of values per head, straight from the
//! query rows and the cache's views. Done with candle's ops it took about fifteen of them per
//! sequence and layer (copies, transposes, two small matmuls, a mask), each allocating and
//! dispatching: with 16 sequences decoding, thousands per step.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::vmath;
use crate::error::Result;

/// `q` `(t, heads·d)` (any row stride), `k`/`v` `(.., kv_heads, seen, d)` (the cache's views,
/// the newest `t` positions last) → `(t, heads·d)`. Query i sees the keys up to its own position,
/// `seen − t + i`; heads share a key-value head in groups of `heads / kv_heads`.
pub fn cached_attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    Ok(q.apply_op3_no_bwd(k, v, &CachedAttention { heads })?)
}

struct CachedAttention {
    heads: usize,
}

/// Where a tensor's values are: its slice, and for the last three dimensions (for `q`: rows
/// and `heads·d` only) their strides.
struct View<'a> {
    data: &'a [f32],
    start: usize,
    dims: Vec<usize>,
    strides: Vec<usize>,
}

fn view<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<View<'a>> {
    if l.stride().last() != Some(&1) {
        candle_core::bail!("cached-attention: the last dimension of {what} must be contiguous");
    }
    Ok(View { data: s.as_slice::<f32>()?, start: l.start_offset(), dims: l.dims().to_vec(), strides: l.stride().to_vec() })
}

impl CustomOp3 for CachedAttention {
    fn name(&self) -> &'static str {
        "cached-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k, v) = (view(s1, l1, "q")?, view(s2, l2, "k")?, view(s3, l3, "v")?);
        let heads = self.heads;
        if q.dims.len() != 2 || k.dims.len() < 3 || k.dims != v.dims {
            candle_core::bail!("cached-attention: unexpected shapes {:?} {:?} {:?}", q.dims, k.dims, v.dims);
        }
        let n = k.dims.len();
        let (kv_heads, seen, d) = (k.dims[n - 3], k.dims[n - 2], k.dims[n - 1]);
        let (t, width) = (q.dims[0], q.dims[1]);
        if kv_heads == 0 || heads % kv_heads != 0 || width != heads * d || t > seen || k.dims[..n - 3].iter().any(|&x| x != 1) {
            candle_core::bail!("cached-attention: {heads} heads do not fit q {:?} and k {:?}", q.dims, k.dims);
        }
        let group = heads / kv_heads;
        let scale = (d as f32).sqrt();
        let per_head: Vec<Vec<f32>> = (0..heads)
            .into_par_iter()
            .map(|h| {
                let kvh = h / group;
                let mut out = vec![0f32; t * d];
                vmath::simd(Head {
                    q: (0..t).map(|i| &q.data[q.start + i * q.strides[0] + h * d..][..d]).collect(),
                    k: &k.data[k.start + kvh * k.strides[n - 3]..],
                    v: &v.data[v.start + kvh * v.strides[n - 3]..],
                    k_row: k.strides[n - 2],
                    v_row: v.strides[n - 2],
                    seen,
                    scale,
                    out: &mut out,
                });
                out
            })
            .collect();
        let mut out = vec![0f32; t * width];
        for (h, block) in per_head.iter().enumerate() {
            for i in 0..t {
                out[i * width + h * d..][..d].copy_from_slice(&block[i * d..][..d]);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((t, width))))
    }
}

/// One head's attention, a `WithSimd` op so that its loops are compiled for the CPU's vector
/// width.
struct Head<'a> {
    /// The head's query of each new token.
    q: Vec<&'a [f32]>,
    /// The kv head's keys and values from position 0, a row every `k_row` / `v_row` values.
    k: &'a [f32],
    v: &'a [f32],
    k_row: usize,
    v_row: usize,
    seen: usize,
    /// Scores are divided by it (√d), as transformers does.
    scale: f32,
    /// `(t, d)`.
    out: &'a mut [f32],
}

impl pulp::WithSimd for Head<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Head { q, k, v, k_row, v_row, seen, scale, out } = self;
        let (t, d) = (q.len(), out.len() / q.len().max(1));
        let mut scores = vec![0f32; seen];
        for (i, q) in q.iter().enumerate() {
            let visible = seen - t + i + 1;
            let scores = &mut scores[..visible];
            for (j, s) in scores.iter_mut().enumerate() {
                *s = vmath::dot(q, &k[j * k_row..][..d]) / scale;
            }
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            for s in scores.iter_mut() {
                *s = vmath::exp(*s - max);
            }
            let sum: f32 = scores.iter().sum();
            let o = &mut out[i * d..][..d];
            for (j, s) in scores.iter().enumerate() {
                let p = s / sum;
                for (o, v) in o.iter_mut().zip(&v[j * v_row..][..d]) {
                    *o += p * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    /// The same attention with candle's ops, as the models computed it before.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Tensor {
        let (t, width) = q.dims2().unwrap();
        let (kv_heads, seen, d) = k.dims3().unwrap();
        let group = heads / kv_heads;
        let q = q.reshape((t, heads, d)).unwrap().transpose(0, 1).unwrap().contiguous().unwrap();
        let q = q.reshape((kv_heads, group * t, d)).unwrap();
        let att = (q.matmul(&k.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
        let mask: Vec<f32> = (0..t).flat_map(|i| (0..seen).map(move |j| if j <= seen - t + i { 0.0 } else { f32::NEG_INFINITY })).collect();
        let mask = Tensor::from_vec(mask, (t, seen), &Device::Cpu).unwrap();
        let att =
            att.reshape((kv_heads, group, t, seen)).unwrap().broadcast_add(&mask).unwrap().reshape((kv_heads, group * t, seen)).unwrap();
        let att = candle_nn::ops::softmax_last_dim(&att).unwrap();
        let y = att.matmul(v).unwrap().reshape((heads, t, d)).unwrap();
        y.transpose(0, 1).unwrap().reshape((t, width)).unwrap()
    }

    #[test]
    fn cached_attention_equals_candles_ops() {
        let dev = Device::Cpu;
        for (heads, kv_heads, d, t, seen) in
            [(12, 12, 64, 1, 1), (12, 12, 64, 1, 37), (12, 12, 64, 7, 7), (4, 2, 16, 5, 20), (8, 1, 32, 3, 9)]
        {
            // q as a view into wider rows (GPT-2 passes its fused qkv rows), k and v as views of
            // a longer cache, as KvCache hands them out.
            let rows = Tensor::randn(0f32, 1.0, (t, 3 * heads * d), &dev).unwrap();
            let q = rows.narrow(D::Minus1, 0, heads * d).unwrap();
            let cache_k = Tensor::randn(0f32, 1.0, (1, kv_heads, seen + 11, d), &dev).unwrap();
            let cache_v = Tensor::randn(0f32, 1.0, (1, kv_heads, seen + 11, d), &dev).unwrap();
            let (k, v) = (cache_k.narrow(2, 0, seen).unwrap(), cache_v.narrow(2, 0, seen).unwrap());
            let ours = cached_attention(&q, &k, &v, heads).unwrap();
            let want = reference(
                &q.contiguous().unwrap(),
                &k.squeeze(0).unwrap().contiguous().unwrap(),
                &v.squeeze(0).unwrap().contiguous().unwrap(),
                heads,
            );
            let diff = (ours - want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-5, "heads {heads}/{kv_heads}, d {d}, t {t}, seen {seen}: max difference {diff}");
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused() {
        let dev = Device::Cpu;
        let q = Tensor::zeros((2, 64), candle_core::DType::F32, &dev).unwrap();
        let k = Tensor::zeros((1, 4, 1, 16), candle_core::DType::F32, &dev).unwrap();
        // More new tokens than positions seen, and heads that do not divide the width.
        assert!(cached_attention(&q, &k, &k, 4).is_err());
        let k = Tensor::zeros((1, 3, 5, 16), candle_core::DType::F32, &dev).unwrap();
        assert!(cached_attention(&q, &k, &k, 4).is_err());
    }
}
