//! The fixed parts of the features, computed once per extractor: frame count, the mel scale and
//! Slaney filterbank, the padded Hann window, the orthonormal DCT-II matrix, and fitting a signal
//! to the model's window.

use std::f64::consts::PI;

/// Number of frames of a signal of `len` samples without centre padding.
pub fn n_frames(len: usize, n_fft: usize, hop: usize) -> usize {
    if len < n_fft {
        0
    } else {
        1 + (len - n_fft) / hop
    }
}

/// Slaney mel scale (librosa `hz_to_mel(htk=False)`).
pub fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// Inverse of [`hz_to_mel`] (librosa `mel_to_hz(htk=False)`).
pub fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// One mel filter stored sparsely: weights for bins `start .. start + weights.len()`.
#[derive(Debug, Clone)]
pub struct MelFilter {
    pub start: usize,
    pub weights: Vec<f32>,
}

/// Slaney-normalised mel filterbank, as `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax,
/// htk=False, norm="slaney")` (computed in f64, stored in f32 like librosa).
pub fn mel_filterbank(
    sr: f64,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
) -> Vec<MelFilter> {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * sr / n_fft as f64).collect();
    let (mmin, mmax) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mmin + (mmax - mmin) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|i| {
            let fdiff_lo = mel_f[i + 1] - mel_f[i];
            let fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
            let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
            let dense: Vec<f64> = fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - mel_f[i]) / fdiff_lo;
                    let upper = (mel_f[i + 2] - f) / fdiff_hi;
                    lower.min(upper).max(0.0) * enorm
                })
                .collect();
            let start = dense.iter().position(|&w| w > 0.0).unwrap_or(0);
            let end = dense
                .iter()
                .rposition(|&w| w > 0.0)
                .map_or(start, |e| e + 1);
            MelFilter {
                start,
                weights: dense[start..end].iter().map(|&w| w as f32).collect(),
            }
        })
        .collect()
}

/// Periodic Hann window of `win_length`, zero-padded centrally to `n_fft` (librosa `pad_center`).
pub fn padded_hann(win_length: usize, n_fft: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; n_fft];
    let left = (n_fft - win_length) / 2;
    for i in 0..win_length {
        w[left + i] = (0.5 - 0.5 * (2.0 * PI * i as f64 / win_length as f64).cos()) as f32;
    }
    w
}

/// Orthonormal DCT-II matrix (`n_out × n_in`, row-major), as `scipy.fft.dct(type=2, norm="ortho")`.
pub fn dct2_ortho_matrix(n_out: usize, n_in: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; n_out * n_in];
    for k in 0..n_out {
        let scale = if k == 0 {
            (1.0 / n_in as f64).sqrt()
        } else {
            (2.0 / n_in as f64).sqrt()
        };
        for n in 0..n_in {
            m[k * n_in + n] =
                (scale * (PI * k as f64 * (2 * n + 1) as f64 / (2 * n_in) as f64).cos()) as f32;
        }
    }
    m
}

/// The orthonormal DCT-II of [`dct2_ortho_matrix`], folded by its symmetry.
///
/// Row `k` of the matrix satisfies `c[k][N-1-n] = (-1)^k · c[k][n]`, so with
/// `s[n] = x[n] + x[N-1-n]` and `d[n] = x[n] - x[N-1-n]` (for `n < N/2`; for odd `N` the middle
/// value goes into `s` alone) the even coefficients are `Σ c[k][n]·s[n]` and the odd ones
/// `Σ c[k][n]·d[n]`: half the multiply-adds of the plain matrix product (the DCT was about a
/// fifth of the MFCC's instructions before).
#[derive(Debug, Clone)]
pub struct Dct {
    pub(super) n_out: usize,
    pub(super) n_in: usize,
    /// Half-rows (`n_in.div_ceil(2)` values each) of the coefficients, in output order.
    pub(super) rows: Vec<f32>,
}

impl Dct {
    pub fn new(n_out: usize, n_in: usize) -> Self {
        let m = dct2_ortho_matrix(n_out, n_in);
        let h = n_in.div_ceil(2);
        let mut rows = Vec::with_capacity(n_out * h);
        for k in 0..n_out {
            rows.extend_from_slice(&m[k * n_in..k * n_in + h]);
            if k % 2 == 1 && n_in % 2 == 1 {
                // The middle value sits in no odd sum (its odd coefficients are cos(k·π/2) = 0).
                rows[k * h + h - 1] = 0.0;
            }
        }
        Self { n_out, n_in, rows }
    }

    pub fn n_out(&self) -> usize {
        self.n_out
    }

    pub fn n_in(&self) -> usize {
        self.n_in
    }
}

/// Centre-crop (longer) or zero-pad (shorter: `floor((window - len)/2)` zeros left, the rest
/// right) a clip to exactly `window` samples, as the training code does for a whole clip.
pub fn fit_window(samples: &[f32], window: usize) -> Vec<f32> {
    if samples.len() >= window {
        let start = (samples.len() - window) / 2;
        samples[start..start + window].to_vec()
    } else {
        let left = (window - samples.len()) / 2;
        let mut out = vec![0.0f32; window];
        out[left..left + samples.len()].copy_from_slice(samples);
        out
    }
}
