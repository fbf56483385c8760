//! The scalar kernels of the features, written so their loops vectorise: maximum, natural
//! logarithm (Cephes `logf`, branch-free), z-score and RMS.

/// Largest value (`-inf` for an empty slice), in eight lanes so it vectorises.
pub(super) fn max_of(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    lanes.iter().fold(tail, |a, &b| a.max(b))
}

/// `x ← ln(x + offset)` for a whole slice, as `f32::ln` would compute it.
///
/// `f32::ln` is a libm call per element that the compiler cannot vectorise, and it was the
/// largest single cost of the features after the FFT. This is Cephes' `logf` (the algorithm
/// behind most SIMD math libraries; within about 1 ulp of the correctly rounded result), written
/// branch-free (zero, negative, subnormal and non-finite arguments by selects) so the loop
/// vectorises.
pub fn ln_offset(x: &mut [f32], offset: f32) {
    for v in x.iter_mut() {
        *v = ln_any(*v + offset);
    }
}

#[inline(always)]
pub(super) fn ln_any(a: f32) -> f32 {
    // Subnormals: scale into the normal range, then take the scale's log back out.
    let sub = a < f32::MIN_POSITIVE;
    let s = if sub { a * 33_554_432.0 } else { a }; // 2^25
    let y = ln_normal(s)
        - if sub {
            25.0 * std::f32::consts::LN_2
        } else {
            0.0
        };
    if a > 0.0 && a < f32::INFINITY {
        y
    } else if a == 0.0 {
        f32::NEG_INFINITY
    } else if a == f32::INFINITY {
        f32::INFINITY
    } else {
        f32::NAN
    }
}

/// Cephes `logf` for a positive normal `x` (see [`ln_offset`]).
#[inline(always)]
pub(super) fn ln_normal(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    // x = m · 2^e with m in [0.5, 1).
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Centre m on 1: for m < √½ use 2m and one less in the exponent.
    let small = m < SQRT_HALF;
    let e = (e - small as i32) as f32;
    let r = if small { m + m - 1.0 } else { m - 1.0 };
    let z = r * r;
    let mut y = 7.037_683_6e-2;
    y = y * r - 1.151_461e-1;
    y = y * r + 1.167_699_9e-1;
    y = y * r - 1.242_014_1e-1;
    y = y * r + 1.424_932_3e-1;
    y = y * r - 1.666_805_8e-1;
    y = y * r + 2.000_071_5e-1;
    y = y * r - 2.499_999_4e-1;
    y = y * r + 3.333_333e-1;
    y *= r * z;
    y += -2.121_944_4e-4 * e;
    y += -0.5 * z;
    r + y + 0.693_359_4 * e
}

/// In-place z-score with population std and `eps` added to the std.
pub fn zscore(x: &mut [f32], eps: f64) {
    if x.is_empty() {
        return;
    }
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let denom = var.sqrt() + eps;
    for v in x.iter_mut() {
        *v = ((*v as f64 - mean) / denom) as f32;
    }
}

/// Root-mean-square level of a signal (0 for an empty one).
pub fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64).sqrt() as f32
}
