//! A linear layer for the CPU that keeps both cores busy at the small row counts inference has
//! (a sentence of 30 tokens, a prompt of 20, one decode row per stream), and does what follows
//! the product — bias, activation, residual, layer norm — in the same pass that gathers it.
//!
//! gemm splits one product over its threads per depth chunk, with a fork and join each time; at
//! 20–30 rows that ran *slower* on 2 threads than on 1 (e.g. 30×384 · 384×1152: 0.38 ms against
//! 0.30 ms on a 2-core Xeon), while PyTorch's MKL went 1.5× faster. Here the weight is kept as
//! strips of a few whole columns, each contiguous down the depth, exactly the block gemm's
//! kernel reads; the products are shared out over the rayon threads (by groups of strips for
//! few rows, by runs of rows for many), and the gathering pass writes each row once, bias and
//! the rest included.
//!
//! Why strips: at few rows the weight comes from memory, once per product. Stored row-major, or
//! as 128-column panels, each step down the depth is a new cache line a row further on (a new
//! page, and a TLB miss, for a wide weight); a strip is one sequential run, which the hardware
//! prefetches. 16 rows · 768×3072 from memory on one Zen 1 core: 23 GFLOP/s as panels, 32 as
//! strips.
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
    /// On the CPU, `w` in groups of about [`GROUP`] columns, `(strips, in, strip)`: each strip
    /// [`strip_width`] whole columns, contiguous down the depth (a short last strip is a group
    /// of its own). Elsewhere one `(in, out)` block.
    parts: Vec<Tensor>,
    /// Columns per strip on the CPU ([`GROUP`] for panels).
    strip: usize,
    /// Kept as panels ([`Linear::panels`]): split by columns at every row count, one row
    /// through gemm.
    panels: bool,
    bias: Tensor,
    bias_cpu: Vec<f32>,
}

/// Columns per task's group of strips.
const GROUP: usize = 128;

/// Rows from which a product is split by rows rather than by columns.
const ROW_SPLIT: usize = 64;

/// Columns per strip: the height of gemm's kernel on this CPU, 16 with AVX2, 64 with AVX-512. A
/// strip is then exactly the block gemm's kernel reads, stored as it reads it: down the depth,
/// one contiguous run. With the columns stored row-major instead, each step down the depth reads
/// one cache line 512 bytes from the last, and at 16 rows on a 2-core EPYC (Zen 1) a product
/// whose weight comes from memory ran at 23 GFLOP/s against 32 as strips (40 when cached).
fn strip_width() -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return 64;
    }
    16
}

impl Linear {
    /// `w` `(in, out)`; no bias is zeros.
    pub fn new(w: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        Linear::build(w, bias, strip_width(), false)
    }

    /// The same with the weight as panels of [`GROUP`] whole columns, for a model that mostly
    /// runs on many rows at once (an encoder's batches): gemm then packs the rows once per
    /// panel rather than reading them strided once per strip. A MiniLM batch of 32 took ~8%
    /// more CPU as strips on a 2-core EPYC; its single sentences about the same.
    pub fn panels(w: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        Linear::build(w, bias, GROUP, true)
    }

    fn build(w: Tensor, bias: Option<Tensor>, s: usize, panels: bool) -> Result<Linear> {
        let (k, n) = w.dims2()?;
        let bias = match bias {
            Some(b) => b,
            None => Tensor::zeros(n, w.dtype(), w.device())?,
        };
        if bias.dims1()? != n {
            return Err(WorkerError::Unsupported(format!("a bias of {} for a weight of {} columns", bias.dims1()?, n)));
        }
        let bias_cpu = bias.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec1()?;
        let parts = if w.device().is_cpu() {
            // `s` divides GROUP: every group but a short last strip holds whole strips.
            let whole = n / s * s;
            let mut parts = Vec::new();
            for start in (0..whole).step_by(GROUP) {
                let width = GROUP.min(whole - start);
                parts.push(w.narrow(1, start, width)?.reshape((k, width / s, s))?.transpose(0, 1)?.contiguous()?);
            }
            if whole < n {
                parts.push(w.narrow(1, whole, n - whole)?.reshape((k, 1, n - whole))?.transpose(0, 1)?.contiguous()?);
            }
            parts
        } else {
            vec![w.contiguous()?]
        };
        Ok(Linear { parts, strip: s, panels, bias, bias_cpu })
    }

    /// `norm(act(x @ w + b) + residual)` for `x` `(rows, in)`; `residual` `(rows, out)`.
    pub fn forward(&self, x: &Tensor, act: Act, residual: Option<&Tensor>, norm: Option<&Norm>) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return self.forward_candle(x, act, residual, norm);
        }
        let (m, k) = x.dims2()?;
        let n = self.bias_cpu.len();
        let x = x.contiguous()?;
        let residual = residual.map(Tensor::contiguous).transpose()?;
        if residual.as_ref().is_some_and(|r| r.dims() != [m, n]) {
            return Err(WorkerError::Unsupported(format!("a residual of {:?} for {m} rows of {n}", residual.map(|r| r.shape().clone()))));
        }
        if norm.is_some_and(|nm| nm.gamma.len() != n || nm.beta.len() != n) {
            return Err(WorkerError::Unsupported(format!("a layer norm of {:?} for rows of {n}", norm.map(|nm| nm.gamma.len()))));
        }
        let res_guard = residual.as_ref().map(Tensor::storage_and_layout);
        let res = res_guard.as_ref().map(|g| slice(g, m * n)).transpose()?;
        let threads = rayon::current_num_threads().max(1);
        let mut dst = vec![0f32; m * n];
        if m < ROW_SPLIT || self.panels {
            // Few rows (or panels): the weight is what costs, read once, the groups shared out. Runs of
            // neighbouring groups per task, two tasks per thread (so that a thread that starts
            // late is made up for); then the rows gathered.
            let run = self.parts.len().div_ceil(2 * threads);
            let outs = self.parts.par_iter().with_min_len(run).map(|g| product(&x, g, self.panels)).collect::<Result<Vec<_>>>()?;
            let guards: Vec<_> = outs.iter().map(Tensor::storage_and_layout).collect();
            let parts = strips_of(&outs, &guards, m)?;
            let per = (16 * 1024 / n).max(1);
            dst.par_chunks_mut(per * n).enumerate().for_each(|(i, rows)| {
                vmath::simd(Gather { rows, first: i * per, parts: &parts, bias: &self.bias_cpu, res, act, norm });
            });
        } else {
            // Many rows: each task takes a run of rows, multiplies it by every group in blocks
            // small enough that gemm does not split them over threads again (it forked and
            // joined inside every product, ~7% of a MiniLM batch of 32), and gathers its rows.
            let block = self.block_rows(k);
            let per = m.div_ceil(2 * threads);
            dst.par_chunks_mut(per * n).enumerate().try_for_each(|(i, rows)| -> Result<()> {
                let first = i * per;
                let len = rows.len() / n;
                let xs: Vec<Tensor> = (first..first + len)
                    .step_by(block)
                    .map(|r| x.narrow(0, r, block.min(first + len - r)))
                    .collect::<candle_core::Result<_>>()?;
                // Group by group, so that each stays in cache across the blocks.
                let mut outs: Vec<Vec<Tensor>> = xs.iter().map(|_| Vec::with_capacity(self.parts.len())).collect();
                for g in &self.parts {
                    for (xb, out) in xs.iter().zip(&mut outs) {
                        out.push(product(xb, g, false)?);
                    }
                }
                for ((xb, out), b) in xs.iter().zip(&outs).zip((0..len).step_by(block)) {
                    let rows_b = xb.dim(0)?;
                    let guards: Vec<_> = out.iter().map(Tensor::storage_and_layout).collect();
                    let parts = strips_of(out, &guards, rows_b)?;
                    let res = res.map(|r| &r[(first + b) * n..(first + b + rows_b) * n]);
                    let rows = &mut rows[b * n..(b + rows_b) * n];
                    vmath::simd(Gather { rows, first: 0, parts: &parts, bias: &self.bias_cpu, res, act, norm });
                }
                Ok(())
            })?;
        }
        Ok(Tensor::from_vec(dst, (m, n), &Device::Cpu)?)
    }

    /// Rows per product when the rows are split: as many as stay under gemm's threading
    /// threshold (its work is rows × strip × depth chunk of ≤ 512), within 8..=64.
    fn block_rows(&self, k: usize) -> usize {
        (gemm::get_threading_threshold() / (self.strip * k.clamp(1, 512))).saturating_sub(1).clamp(8, 64)
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

/// Each group's product `(strips, rows, strip)` as one part per strip, in column order.
fn strips_of<'a>(
    outs: &[Tensor],
    guards: &'a [(candle_core::StorageRef<'_>, &candle_core::Layout)],
    rows: usize,
) -> Result<Vec<(&'a [f32], usize)>> {
    let mut parts = Vec::new();
    for (o, g) in outs.iter().zip(guards) {
        let (_, _, w) = o.dims3()?;
        parts.extend(slice(g, o.elem_count())?.chunks_exact(rows * w).map(|p| (p, w)));
    }
    Ok(parts)
}

/// `x` `(rows, in)` times a group of strips `(strips, in, strip)` → `(strips, rows, strip)`.
fn product(x: &Tensor, group: &Tensor, panel: bool) -> Result<Tensor> {
    let (strips, k, w) = group.dims3()?;
    let m = x.dim(0)?;
    if m > 1 || panel {
        // (A panel's one row, a short last panel's too, goes through gemm's matrix-vector path,
        // as before the strips.)
        return Ok(x.unsqueeze(0)?.broadcast_as((strips, m, k))?.matmul(group)?);
    }
    // One row: gemm's matrix-vector path, called per strip, ran ~30% slower than on whole
    // panels; this reads each strip once, straight down.
    let (xg, wg) = (x.storage_and_layout(), group.storage_and_layout());
    let (xs, ws) = (slice(&xg, k)?, slice(&wg, strips * k * w)?);
    let mut out = vec![0f32; strips * w];
    for (strip, dst) in ws.chunks_exact(k * w).zip(out.chunks_exact_mut(w)) {
        vmath::simd(Gemv { x: xs, strip, dst });
    }
    Ok(Tensor::from_vec(out, (strips, 1, w), &Device::Cpu)?)
}

/// `dst = x · strip`, the strip `(x.len(), dst.len())` row-major.
struct Gemv<'a> {
    x: &'a [f32],
    strip: &'a [f32],
    dst: &'a mut [f32],
}

impl pulp::WithSimd for Gemv<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Gemv { x, strip, dst } = self;
        match dst.len() {
            16 => gemv_fixed::<16>(x, strip, dst),
            64 => gemv_fixed::<64>(x, strip, dst),
            w => {
                for (&xv, row) in x.iter().zip(strip.chunks_exact(w)) {
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = xv.mul_add(v, *d);
                    }
                }
            }
        }
    }
}

/// The same for a strip of `W` columns, its accumulators in registers.
#[inline(always)]
fn gemv_fixed<const W: usize>(x: &[f32], strip: &[f32], dst: &mut [f32]) {
    let mut acc = [0f32; W];
    for (&xv, row) in x.iter().zip(strip.chunks_exact(W)) {
        if let Ok(row) = <&[f32; W]>::try_from(row) {
            for l in 0..W {
                acc[l] = xv.mul_add(row[l], acc[l]);
            }
        }
    }
    dst.copy_from_slice(&acc);
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
                for (layout, linear) in [
                    ("strips", Linear::new(w.clone(), Some(bias.clone())).unwrap()),
                    ("panels", Linear::panels(w.clone(), Some(bias.clone())).unwrap()),
                ] {
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
                        assert!(diff < 5e-5, "{layout}, {name}, {m}×{k}·{k}×{n}: max difference {diff}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_weight_is_kept_as_strips_down_the_depth() {
        let s = strip_width();
        for n in [100, 1000, 3 * s, s - 3] {
            let k = 5;
            let w = Tensor::arange(0f32, (k * n) as f32, &Device::Cpu).unwrap().reshape((k, n)).unwrap();
            let linear = Linear::new(w, None).unwrap();
            let mut col = 0;
            for (i, g) in linear.parts.iter().enumerate() {
                let (strips, depth, width) = g.dims3().unwrap();
                assert!(g.is_contiguous() && depth == k && strips * width <= GROUP);
                // Full strips everywhere; a short one only last, alone.
                assert!(width == s || (i + 1 == linear.parts.len() && strips == 1 && width < s), "{n}: group {i} is {strips}×{width}");
                // Strip j's value at depth r, column c is w[r][col + j·width + c].
                let v = g.to_vec3::<f32>().unwrap();
                for (j, strip) in v.iter().enumerate() {
                    for (r, row) in strip.iter().enumerate() {
                        for (c, &x) in row.iter().enumerate() {
                            assert_eq!(x, (r * n + col + j * width + c) as f32);
                        }
                    }
                }
                col += strips * width;
            }
            assert_eq!(col, n);
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
