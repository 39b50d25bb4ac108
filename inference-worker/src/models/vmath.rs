//! Elementwise math written to vectorize: `exp`, `erf`, `tanh` without libm calls or branches,
//! and a dot product with independent partial sums, run by [`simd`] under the widest instruction
//! set the CPU has (AVX-512, AVX2, else the baseline), which pulp detects at run time. libm's
//! scalar `expf`/`tanhf` took a sixth of a MiniLM batch; these keep every lane busy.

/// Runs `op` compiled for the CPU's best instruction set: its loops vectorize 16 (AVX-512) or 8
/// (AVX2) lanes wide instead of the 4 of the x86-64 baseline this crate is built for. A closure
/// will do for a small body; a large one should be a `WithSimd` type with an
/// `#[inline(always)]` `with_simd`, or it may not be inlined into the dispatching function (and
/// so compiled for it).
#[inline(always)]
pub fn simd<Op: pulp::WithSimd>(op: Op) -> Op::Output {
    pulp::Arch::new().dispatch(op)
}

/// `e^x`, within 2 ulp for x in [-87, 88] (Cephes' expf: x = n·ln2 + r, a degree-6 polynomial for
/// e^r, 2^n built in the exponent bits); clamped to that range, so e^x of a large negative x is
/// ~1e-38 rather than 0 and nothing overflows.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by the 1.5·2^23 trick: `f32::round` is a libm call on the baseline.
    const ROUND: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7; 5.3e-7 evaluated in f32), the form
/// PyTorch's vectorized CPU kernel uses.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let (p, a1, a2, a3, a4, a5) = (0.327_591_1f32, 0.254_829_6f32, -0.284_496_72f32, 1.421_413_8f32, -1.453_152_1f32, 1.061_405_4f32);
    let a = x.abs();
    let t = 1.0 / (1.0 + p * a);
    let y = 1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * exp(-a * a);
    y.copysign(x)
}

/// tanh as 1 − 2 / (1 + e^2x): within 1.2e-7 of libm's everywhere (absolute; near 0 it is not
/// relatively exact, which no caller here needs).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

/// The exact-erf GELU, `x · Φ(x)`.
#[inline(always)]
pub fn gelu_erf(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// The tanh-approximated GELU (GPT-2's `gelu_new`), with candle's and transformers' constants.
#[inline(always)]
pub fn gelu_tanh(v: f32) -> f32 {
    #[allow(clippy::excessive_precision)]
    const K: f32 = 0.79788456080286535587989211986876373; // sqrt(2/π), candle's SQRT_TWO_OVER_PI_F32
    0.5 * v * (1.0 + tanh(K * v * (1.0 + 0.044715 * v * v)))
}

/// ln Σ e^x over `xs` (not empty), by the largest value first; 16 partial maxima and sums.
#[inline(always)]
pub fn log_sum_exp(xs: &[f32]) -> f32 {
    const L: usize = 16;
    let chunks = xs.chunks_exact(L);
    let larger = |a: f32, b: f32| if b > a { b } else { a };
    let mut m = [f32::NEG_INFINITY; L];
    for c in chunks.clone() {
        for i in 0..L {
            m[i] = larger(m[i], c[i]);
        }
    }
    let max = m.iter().chain(chunks.remainder()).fold(f32::NEG_INFINITY, |a, &b| larger(a, b));
    let mut s = [0f32; L];
    for c in chunks.clone() {
        for i in 0..L {
            s[i] += exp(c[i] - max);
        }
    }
    let sum = s.iter().sum::<f32>() + chunks.remainder().iter().map(|&x| exp(x - max)).sum::<f32>();
    max + sum.ln()
}

/// `a · b` in 16 independent partial sums (a float sum in order cannot vectorize).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (ac, bc) = (a.chunks_exact(L), b.chunks_exact(L));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(from: f32, to: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| from + (to - from) * i as f32 / n as f32)
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        for x in grid(-87.0, 88.0, 1_000_000) {
            let (ours, libm) = (simd(|| exp(x)), x.exp());
            let ulp = (ours.to_bits() as i64 - libm.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {ours}, libm {libm}: {ulp} ulp apart");
        }
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37 && exp(1000.0).is_finite());
    }

    #[test]
    fn tanh_and_erf_are_close_to_the_exact_ones() {
        let mut worst = (0f32, 0f32);
        for x in grid(-12.0, 12.0, 1_000_000) {
            worst.0 = worst.0.max((tanh(x) - x.tanh()).abs());
            worst.1 = worst.1.max((erf(x) - erf_f64(x as f64) as f32).abs());
        }
        // erf: the approximation's own 1.5e-7, plus its polynomial's rounding in f32 (as with libm's exp).
        assert!(worst.0 < 2e-7 && worst.1 < 6e-7, "largest differences: tanh {}, erf {}", worst.0, worst.1);
        assert_eq!((tanh(100.0), tanh(-100.0), erf(10.0), erf(-10.0)), (1.0, -1.0, 1.0, -1.0));
    }

    /// erf to double precision by its Taylor series (|x| ≤ 3) or its asymptotic complement.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let v = if a > 3.0 {
            let mut term = 1.0;
            let mut sum = 1.0;
            for n in 1..12 {
                term *= -((2 * n - 1) as f64) / (2.0 * a * a);
                sum += term;
            }
            1.0 - (-a * a).exp() / (a * std::f64::consts::PI.sqrt()) * sum
        } else {
            let (mut term, mut sum) = (a, a);
            for n in 1..200 {
                term *= -a * a / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        };
        v.copysign(x)
    }

    #[test]
    fn log_sum_exp_matches_f64() {
        for n in [1, 15, 16, 17, 50257] {
            let xs: Vec<f32> = (0..n).map(|i| 12.0 * (i as f32 * 0.61).sin() - 3.0).collect();
            let max = xs.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let exact = max + xs.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            let ours = simd(|| log_sum_exp(&xs)) as f64;
            assert!((ours - exact).abs() < 1e-5 * exact.abs().max(1.0), "n = {n}: {ours} vs {exact}");
        }
    }

    #[test]
    fn dot_matches_the_sum_in_order() {
        for n in [0, 1, 15, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((simd(|| dot(&a, &b)) as f64 - exact).abs() < 1e-5, "n = {n}");
        }
    }
}
