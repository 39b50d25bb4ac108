//! A linear layer for the CPU that keeps both cores busy at the small row counts inference has
//! (a sentence of 30 tokens, a prompt of 20, one decode row per stream), and does what follows
//! the product — bias, activation, residual, layer norm — in the same pass that gathers it.
//!
//! gemm splits one product over its threads per depth chunk, with a fork and join each time; at
//! 20–30 rows that ran *slower* on 2 threads than on 1 (e.g. 30×384 · 384×1152: 0.38 ms against
//! 0.30 ms on a 2-core Xeon), while PyTorch's MKL went 1.5× faster. Here the weight is kept as
//! contiguous panels of 128 whole columns, the panels' products are shared out over the rayon
//! threads, and the gathering pass writes each row once, bias and the rest included.
//!
//! Why panels: at few rows gemm reads the weight in place, 64 columns at a time down its whole
//! depth. In a wide row-major weight each step down is a row further (4.5 KB for 1152 columns):
//! a new page, and a TLB miss, at every step. A panel's rows are 512 bytes apart. 16 rows ·
//! 768×1152 on one thread: 0.44 ms as one block, 0.35 ms as panels; one row: the same.
//!
//! The elementwise ops this replaces ran as three or four candle ops, each a new tensor, on
//! candle's own thread pool, which took turns at the cores with rayon's.

use candle_core::{DType, Device, Storage, Tensor};
use rayon::prelude::*;

use super::vmath;
use crate::error::{Result, WorkerError};

/// The activation applied after the bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    GeluErf,
    GeluTanh,
    Relu,
}

/// A layer norm's scale and shift, as plain vectors.
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
    /// The same as a candle module, for other devices.
    candle: candle_nn::LayerNorm,
}

impl Norm {
    pub fn new(gamma: Tensor, beta: Tensor, eps: f64) -> Result<Norm> {
        let vec = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec1()?) };
        Ok(Norm { gamma: vec(&gamma)?, beta: vec(&beta)?, eps: eps as f32, candle: candle_nn::LayerNorm::new(gamma, beta, eps) })
    }
}

/// `x @ w + b` with `w` given `[in, out]`.
pub struct Linear {
    /// On the CPU, `w` as panels of [`PANEL`] whole columns `(in, ≤ PANEL)`, each contiguous;
    /// elsewhere one block.
    parts: Vec<Tensor>,
    bias: Tensor,
    bias_cpu: Vec<f32>,
}

/// Columns per panel: a multiple of gemm's 64-column (AVX-512) and 32-column (AVX2) strips.
const PANEL: usize = 128;

impl Linear {
    /// `w` `(in, out)`; no bias is zeros.
    pub fn new(w: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        let (_, n) = w.dims2()?;
        let bias = match bias {
            Some(b) => b,
            None => Tensor::zeros(n, w.dtype(), w.device())?,
        };
        if bias.dims1()? != n {
            return Err(WorkerError::Unsupported(format!("a bias of {} for a weight of {} columns", bias.dims1()?, n)));
        }
        let bias_cpu = bias.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec1()?;
        let parts = if w.device().is_cpu() {
            (0..n).step_by(PANEL).map(|s| Ok(w.narrow(1, s, PANEL.min(n - s))?.contiguous()?)).collect::<Result<Vec<_>>>()?
        } else {
            vec![w.contiguous()?]
        };
        Ok(Linear { parts, bias, bias_cpu })
    }

    /// `norm(act(x @ w + b) + residual)` for `x` `(rows, in)`; `residual` `(rows, out)`.
    pub fn forward(&self, x: &Tensor, act: Act, residual: Option<&Tensor>, norm: Option<&Norm>) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return self.forward_candle(x, act, residual, norm);
        }
        let (m, _) = x.dims2()?;
        let n = self.bias_cpu.len();
        let x = x.contiguous()?;
        let outs = if self.parts.len() == 1 {
            vec![x.matmul(&self.parts[0])?]
        } else {
            // Runs of neighbouring panels per task, two tasks per thread (so that a thread that
            // starts late is made up for).
            let run = self.parts.len().div_ceil(2 * rayon::current_num_threads().max(1));
            self.parts.par_iter().with_min_len(run).map(|w| x.matmul(w)).collect::<candle_core::Result<Vec<_>>>()?
        };
        let residual = residual.map(Tensor::contiguous).transpose()?;
        if residual.as_ref().is_some_and(|r| r.dims() != [m, n]) {
            return Err(WorkerError::Unsupported(format!("a residual of {:?} for {m} rows of {n}", residual.map(|r| r.shape().clone()))));
        }
        if norm.is_some_and(|nm| nm.gamma.len() != n || nm.beta.len() != n) {
            return Err(WorkerError::Unsupported(format!("a layer norm of {:?} for rows of {n}", norm.map(|nm| nm.gamma.len()))));
        }
        let guards: Vec<_> = outs.iter().map(Tensor::storage_and_layout).collect();
        let res_guard = residual.as_ref().map(Tensor::storage_and_layout);
        let parts =
            outs.iter().zip(&guards).map(|(o, g)| Ok((slice(g, o.elem_count())?, o.dim(1)?))).collect::<Result<Vec<(&[f32], usize)>>>()?;
        let res = res_guard.as_ref().map(|g| slice(g, m * n)).transpose()?;
        let mut dst = vec![0f32; m * n];
        let per = (16 * 1024 / n).max(1);
        dst.par_chunks_mut(per * n).enumerate().for_each(|(i, rows)| {
            vmath::simd(Gather { rows, first: i * per, parts: &parts, bias: &self.bias_cpu, res, act, norm });
        });
        Ok(Tensor::from_vec(dst, (m, n), &Device::Cpu)?)
    }

    /// The same with candle's ops, for a GPU.
    fn forward_candle(&self, x: &Tensor, act: Act, residual: Option<&Tensor>, norm: Option<&Norm>) -> Result<Tensor> {
        let y = x.matmul(&self.parts[0])?.broadcast_add(&self.bias)?;
        let y = match act {
            Act::Identity => y,
            Act::GeluErf => y.gelu_erf()?,
            Act::GeluTanh => y.gelu()?,
            Act::Relu => y.relu()?,
        };
        let y = match residual {
            Some(r) => (y + r)?,
            None => y,
        };
        Ok(match norm {
            Some(nm) => candle_core::Module::forward(&nm.candle, &y)?,
            None => y,
        })
    }
}

/// The values of a contiguous CPU tensor, from its storage guard.
fn slice<'a>((storage, layout): &'a (candle_core::StorageRef<'_>, &candle_core::Layout), len: usize) -> Result<&'a [f32]> {
    match &**storage {
        Storage::Cpu(s) => Ok(&s.as_slice::<f32>()?[layout.start_offset()..][..len]),
        _ => Err(WorkerError::Unsupported("a CPU product on another device".into())),
    }
}

/// Writes rows `first..` of the output from the blocks' products.
struct Gather<'a> {
    rows: &'a mut [f32],
    first: usize,
    /// Each block's product `(rows, width)` and its width, in column order.
    parts: &'a [(&'a [f32], usize)],
    bias: &'a [f32],
    res: Option<&'a [f32]>,
    act: Act,
    norm: Option<&'a Norm>,
}

impl pulp::WithSimd for Gather<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Gather { rows, first, parts, bias, res, act, norm } = self;
        let n = bias.len();
        for (i, row) in rows.chunks_exact_mut(n).enumerate() {
            let r = first + i;
            let mut col = 0;
            for &(part, width) in parts {
                let (dst, src, b) = (&mut row[col..col + width], &part[r * width..(r + 1) * width], &bias[col..col + width]);
                let res = res.map(|res| &res[r * n + col..r * n + col + width]);
                // One loop per activation, so that each vectorizes without a branch per value.
                match act {
                    Act::Identity => combine(dst, src, b, res, |v| v),
                    Act::GeluErf => combine(dst, src, b, res, vmath::gelu_erf),
                    Act::GeluTanh => combine(dst, src, b, res, vmath::gelu_tanh),
                    Act::Relu => combine(dst, src, b, res, |v| v.max(0.0)),
                }
                col += width;
            }
            if let Some(nm) = norm {
                // Two passes (the mean, then the spread around it), as PyTorch's kernel: one pass
                // of Σx² − (Σx)² loses digits when the mean is large against the spread.
                let mean = sum(row, |v| v) / n as f32;
                let var = sum(row, |v| (v - mean) * (v - mean)) / n as f32;
                let inv = 1.0 / (var + nm.eps).sqrt();
                for ((v, g), b) in row.iter_mut().zip(&nm.gamma).zip(&nm.beta) {
                    *v = (*v - mean) * inv * g + b;
                }
            }
        }
    }
}

/// `dst = f(src + bias) [+ residual]`.
#[inline(always)]
fn combine(dst: &mut [f32], src: &[f32], bias: &[f32], residual: Option<&[f32]>, f: impl Fn(f32) -> f32) {
    match residual {
        Some(res) => {
            for (((d, s), b), r) in dst.iter_mut().zip(src).zip(bias).zip(res) {
                *d = f(s + b) + r;
            }
        }
        None => {
            for ((d, s), b) in dst.iter_mut().zip(src).zip(bias) {
                *d = f(s + b);
            }
        }
    }
}

/// Σ f(x) in 16 partial sums.
#[inline(always)]
fn sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for l in 0..16 {
            acc[l] += f(c[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, f: f32, off: f32) -> Tensor {
        let v: Vec<f32> = (0..n).map(|i| off + 3.0 * (i as f32 * f).sin()).collect();
        Tensor::from_vec(v, n, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// The layer norm of `z`'s rows, computed in f64 (candle's f32 kernel is off by ~2e-4 for
    /// rows whose mean is large against their spread, as here).
    fn layer_norm_f64(z: &Tensor, norm: &Norm) -> Tensor {
        let f64s = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
        let z = z.to_dtype(DType::F64).unwrap();
        let d = z.broadcast_sub(&z.mean_keepdim(1).unwrap()).unwrap();
        let inv = ((d.sqr().unwrap().mean_keepdim(1).unwrap() + norm.eps as f64).unwrap().sqrt().unwrap()).recip().unwrap();
        let y = d.broadcast_mul(&inv).unwrap().broadcast_mul(&f64s(&norm.gamma)).unwrap().broadcast_add(&f64s(&norm.beta)).unwrap();
        y.to_dtype(DType::F32).unwrap()
    }

    #[test]
    fn every_form_matches_a_reference() {
        // Widths: several blocks on any thread count, one with a short last block, one narrower
        // than a block; rows: one (decode), a few, and more than one gathering task.
        for (k, n) in [(64, 384), (48, 1000), (16, 37)] {
            for m in [1, 7, 300] {
                let x = wave(m * k, 0.37, 0.1).reshape((m, k)).unwrap();
                let w = (wave(k * n, 0.23, 0.0).reshape((k, n)).unwrap() / 10.0).unwrap();
                let res = wave(m * n, 0.11, 20.0).reshape((m, n)).unwrap();
                let bias = wave(n, 0.7, -1.0);
                let norm = Norm::new(wave(n, 0.3, 1.0), wave(n, 0.9, 0.0), 1e-12).unwrap();
                let linear = Linear::new(w.clone(), Some(bias.clone())).unwrap();
                let y = x.matmul(&w).unwrap().broadcast_add(&bias).unwrap();
                type Case<'a> = (&'a str, Act, Option<&'a Tensor>, Option<&'a Norm>, Tensor);
                let cases: [Case; 5] = [
                    ("bias", Act::Identity, None, None, y.clone()),
                    ("gelu", Act::GeluErf, None, None, y.gelu_erf().unwrap()),
                    ("tanh gelu", Act::GeluTanh, None, None, y.gelu().unwrap()),
                    ("relu + residual", Act::Relu, Some(&res), None, (y.relu().unwrap() + &res).unwrap()),
                    ("residual + norm", Act::Identity, Some(&res), Some(&norm), layer_norm_f64(&(&y + &res).unwrap(), &norm)),
                ];
                for (name, act, residual, nm, want) in cases {
                    let got = linear.forward(&x, act, residual, nm).unwrap();
                    assert_eq!(got.dims(), [m, n]);
                    let diff = max_diff(&got, &want);
                    assert!(diff < 5e-5, "{name}, {m}×{k}·{k}×{n}: max difference {diff}");
                }
            }
        }
    }

    #[test]
    fn the_weight_is_kept_as_contiguous_panels() {
        for (n, want) in [(100, vec![100]), (1000, [vec![128; 7], vec![104]].concat())] {
            let linear = Linear::new(Tensor::zeros((8, n), DType::F32, &Device::Cpu).unwrap(), None).unwrap();
            let widths: Vec<usize> = linear.parts.iter().map(|p| p.dim(1).unwrap()).collect();
            assert_eq!(widths, want);
            assert!(linear.parts.iter().all(|p| p.is_contiguous() && p.dim(0).unwrap() == 8));
        }
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let linear = Linear::new(Tensor::zeros((8, 4), DType::F32, &Device::Cpu).unwrap(), None).unwrap();
        let x = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
        let r = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(linear.forward(&x, Act::Identity, Some(&r), None).is_err());
        let norm = Norm::new(Tensor::ones(5, DType::F32, &Device::Cpu).unwrap(), Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap(), 1e-5)
            .unwrap();
        assert!(linear.forward(&x, Act::Identity, None, Some(&norm)).is_err());
        assert!(Linear::new(
            Tensor::zeros((8, 4), DType::F32, &Device::Cpu).unwrap(),
            Some(Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap())
        )
        .is_err());
    }
}
