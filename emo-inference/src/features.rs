//! Speech features in Rust on `rustfft` (two real frames per complex transform), with the
//! surrounding loops auto-vectorised for the widest instruction set `pulp` finds at run time: the
//! "logmel64_v1" log-mel spectrogram the speech model is trained on, and an MFCC that follows
//! `librosa.feature.mfcc` conventions (used for the speed comparison with librosa and available to
//! future models).
//!
//! Conventions (all constants come from the manifest's `[models.speech.features]`):
//! * frames of `n_fft` samples every `hop_length` samples, **no centre padding**;
//! * periodic Hann window of `win_length`, zero-padded on both sides to `n_fft` (librosa's
//!   `pad_center`);
//! * power spectrum `|rfft|²` (`n_fft/2 + 1` bins);
//! * Slaney-scale mel filterbank with Slaney area normalisation (librosa `htk=False,
//!   norm="slaney"`);
//! * `ln(mel + log_offset)`, then a z-score over the whole window (population std, `+ norm_eps`
//!   on the std).

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

/// Feature parameters, deserialised from `[models.speech.features]` of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub kind: String,
    pub sample_rate: u32,
    pub window_samples: usize,
    pub n_fft: usize,
    pub win_length: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    pub fmin: f64,
    pub fmax: f64,
    pub log_offset: f64,
    pub norm_eps: f64,
}

impl FeatureSpec {
    /// Number of frames in one window (`1 + (window - n_fft) / hop`, no centre padding).
    pub fn n_frames(&self) -> usize {
        n_frames(self.window_samples, self.n_fft, self.hop_length)
    }

    /// Checks that the parameters are usable (so a bad manifest is an error, not a panic).
    pub fn validate(&self) -> Result<(), String> {
        if self.kind != "logmel64_v1" {
            return Err(format!("unsupported speech feature kind `{}`", self.kind));
        }
        if self.n_fft < 2 || self.win_length == 0 || self.win_length > self.n_fft {
            return Err("features: need 0 < win_length <= n_fft".into());
        }
        if self.hop_length == 0 || self.window_samples < self.n_fft || self.n_mels == 0 {
            return Err(
                "features: need hop_length > 0, window_samples >= n_fft, n_mels > 0".into(),
            );
        }
        if !(self.fmin >= 0.0
            && self.fmax > self.fmin
            && self.fmax <= self.sample_rate as f64 / 2.0 + 1e-6)
        {
            return Err("features: need 0 <= fmin < fmax <= sample_rate/2".into());
        }
        Ok(())
    }
}

mod filters;
mod math;

pub use filters::*;
use math::{ln_any, max_of};
pub use math::{ln_offset, rms, zscore};

/// A reusable feature extractor (FFT plan, window, filterbank and DCT are built once).
pub struct FeatureExtractor {
    spec: FeatureSpec,
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    filters: Vec<MelFilter>,
    /// Two windowed frames as the real and imaginary parts of one complex signal (transformed
    /// in place).
    pair: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// The MFCC's intermediate mel spectrogram, kept between calls.
    mel_scratch: Vec<f32>,
    /// The widest instruction set this CPU has among those `pulp` dispatches to.
    arch: pulp::Arch,
    /// The transform of one pair, split into real and imaginary parts.
    re: Vec<f32>,
    im: Vec<f32>,
    /// Power spectra of one block of frames, frame-major (`BLOCK × (n_fft/2 + 1)`).
    spectra: Vec<f32>,
    /// The same, bin-major (`(n_fft/2 + 1) × BLOCK`).
    block: Vec<f32>,
}

impl std::fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureExtractor")
            .field("spec", &self.spec)
            .finish()
    }
}

impl FeatureExtractor {
    pub fn new(spec: FeatureSpec) -> Result<Self, String> {
        spec.validate()?;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(spec.n_fft);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        Ok(Self {
            window: padded_hann(spec.win_length, spec.n_fft),
            filters: mel_filterbank(
                spec.sample_rate as f64,
                spec.n_fft,
                spec.n_mels,
                spec.fmin,
                spec.fmax,
            ),
            pair: vec![Complex::default(); spec.n_fft],
            re: vec![0.0; spec.n_fft],
            im: vec![0.0; spec.n_fft],
            spectra: vec![0.0; (spec.n_fft / 2 + 1) * BLOCK],
            block: vec![0.0; (spec.n_fft / 2 + 1) * BLOCK],
            mel_scratch: Vec::new(),
            arch: pulp::Arch::new(),
            scratch,
            fft,
            spec,
        })
    }

    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// The mel power spectrogram of `samples`, row-major `n_mels × n_frames` (librosa's layout).
    ///
    /// Frames go through in blocks of [`BLOCK`]: the block's power spectra are stored bin-major
    /// (`bin × frame`), so each filter weight multiplies a whole block of frames at once (vector
    /// multiply-adds with no horizontal sums) and each mel row receives the block's values as one
    /// contiguous store.
    pub fn mel_power(&mut self, samples: &[f32]) -> (Vec<f32>, usize) {
        self.mel_power_map(samples, |_| {})
    }

    /// [`FeatureExtractor::mel_power`] with `post` applied to each mel row's block of up to
    /// [`BLOCK`] frames before it is stored: the log (and the dB maximum) are taken while the
    /// values are in registers instead of in extra passes over a spectrogram that, for a minute
    /// of audio, no longer fits in the cache.
    fn mel_power_map(
        &mut self,
        samples: &[f32],
        post: impl FnMut(&mut [f32]),
    ) -> (Vec<f32>, usize) {
        let mut mel = Vec::new();
        let frames = self.mel_power_into(samples, &mut mel, post);
        (mel, frames)
    }

    /// [`FeatureExtractor::mel_power_map`] into `mel` (resized; every value is overwritten, so
    /// a reused buffer is not cleared first: zeroing, or page-faulting in, a fresh megabyte
    /// per minute of audio was a measurable part of the MFCC time).
    fn mel_power_into(
        &mut self,
        samples: &[f32],
        mel: &mut Vec<f32>,
        post: impl FnMut(&mut [f32]),
    ) -> usize {
        let arch = self.arch;
        arch.dispatch(MelPowerOp {
            fx: self,
            samples,
            mel,
            post,
        })
    }

    /// The body of [`FeatureExtractor::mel_power_map`], always inlined into the function that
    /// [`pulp::Arch::dispatch`] compiles for the instruction set it detects at run time (AVX2
    /// where the CPU has it, else the baseline SSE2): the loops below are written to
    /// auto-vectorise, so the wider vectors come for free. Plain safe Rust: the `unsafe` of the
    /// feature detection stays inside `pulp`. Rust never fuses or reorders float operations, so
    /// every instruction set gives the same bits.
    #[inline(always)]
    fn mel_power_map_simd(
        &mut self,
        samples: &[f32],
        mel: &mut Vec<f32>,
        mut post: impl FnMut(&mut [f32]),
    ) -> usize {
        let (n_fft, hop, n_mels) = (self.spec.n_fft, self.spec.hop_length, self.spec.n_mels);
        let bins = n_fft / 2 + 1;
        let frames = n_frames(samples.len(), n_fft, hop);
        mel.truncate(n_mels * frames);
        mel.resize(n_mels * frames, 0.0);
        for t0 in (0..frames).step_by(BLOCK) {
            let width = BLOCK.min(frames - t0);
            // Frames j and j+1 go through one complex FFT as z = a + i·b; then
            // A[k] = (Z[k] + conj Z[N-k]) / 2 and B[k] = (Z[k] - conj Z[N-k]) / 2i, so
            // |A[k]|² = ((Zr[k] + Zr[N-k])² + (Zi[k] - Zi[N-k])²) / 4 and
            // |B[k]|² = ((Zi[k] + Zi[N-k])² + (Zr[k] - Zr[N-k])²) / 4.
            // Half the transforms of one real FFT per frame, and no twiddled post-processing.
            for j in (0..width).step_by(2) {
                let a = &samples[(t0 + j) * hop..(t0 + j) * hop + n_fft];
                if j + 1 < width {
                    let b = &samples[(t0 + j + 1) * hop..(t0 + j + 1) * hop + n_fft];
                    for (((z, &x), &y), &w) in self.pair.iter_mut().zip(a).zip(b).zip(&self.window)
                    {
                        *z = Complex::new(x * w, y * w);
                    }
                } else {
                    for ((z, &x), &w) in self.pair.iter_mut().zip(a).zip(&self.window) {
                        *z = Complex::new(x * w, 0.0);
                    }
                }
                self.fft
                    .process_with_scratch(&mut self.pair, &mut self.scratch);
                // Each power spectrum goes to its own contiguous row first, from the transform
                // split into plain real and imaginary arrays: both loops then vectorise (the
                // mirrored reads become reversed vector loads), where the same arithmetic on the
                // interleaved complex values, written into the bin-major block, ran one bin at a
                // time and cost more than the FFT itself.
                for ((r, i), z) in self.re.iter_mut().zip(&mut self.im).zip(&self.pair) {
                    *r = z.re;
                    *i = z.im;
                }
                let (re, im) = (&self.re, &self.im);
                let half = n_fft / 2;
                let (pa, pb) = self.spectra[j * bins..(j + 2) * bins].split_at_mut(bins);
                // Bin 0 pairs with itself: |A|² = Zr², |B|² = Zi².
                pa[0] = re[0] * re[0];
                pb[0] = im[0] * im[0];
                // Bin k (1..=N/2) pairs with bin N-k, i.e. with `[half..N]` read backwards.
                // Indexing slices whose lengths the compiler can see lets it drop the bounds
                // checks and vectorise with reversed loads (zipped reversed iterators did not).
                let (pa, pb) = (&mut pa[1..=half], &mut pb[1..=half]);
                let (kr, ki) = (&re[1..=half], &im[1..=half]);
                let (nr, ni) = (&re[n_fft - half..], &im[n_fft - half..]);
                let (nr, ni) = (&nr[..half], &ni[..half]);
                for k in 0..half {
                    let m = half - 1 - k;
                    let (sr, dr) = (kr[k] + nr[m], kr[k] - nr[m]);
                    let (si, di) = (ki[k] + ni[m], ki[k] - ni[m]);
                    pa[k] = 0.25 * (sr * sr + di * di);
                    pb[k] = 0.25 * (si * si + dr * dr);
                }
            }
            transpose_block(&self.spectra, &mut self.block, bins);
            for (m, filt) in self.filters.iter().enumerate() {
                let mut acc = [0.0f32; BLOCK];
                let bins = self.block[filt.start * BLOCK..].chunks_exact(BLOCK);
                for (p, &w) in bins.zip(&filt.weights) {
                    for (a, &x) in acc.iter_mut().zip(p) {
                        *a += w * x;
                    }
                }
                post(&mut acc[..width]);
                copy_prefix::<BLOCK>(&mut mel[m * frames + t0..], &acc, width);
            }
        }
        frames
    }

    /// The "logmel64_v1" features of one window (already fitted to `window_samples`):
    /// row-major `n_mels × n_frames`, z-scored over the whole window.
    pub fn logmel(&mut self, window: &[f32]) -> Vec<f32> {
        let off = self.spec.log_offset as f32;
        let (mut mel, _) = self.mel_power_map(window, |b| ln_offset(b, off));
        zscore(&mut mel, self.spec.norm_eps);
        mel
    }

    /// [`FeatureExtractor::logmel`] of the windows `signal[s..s + window_samples]` for each `s`
    /// in `starts`, computing each frame's spectrum once. Analysis windows overlap (3 s every
    /// second), so this does a third of the work of one `logmel` per window, with identical
    /// results (a frame is the same samples either way). `None` unless every start is a multiple
    /// of `hop_length` and every window lies inside the signal.
    pub fn logmel_windows(&mut self, signal: &[f32], starts: &[usize]) -> Option<Vec<Vec<f32>>> {
        let (hop, w) = (self.spec.hop_length, self.spec.window_samples);
        if starts.iter().any(|&s| s % hop != 0 || s + w > signal.len()) {
            return None;
        }
        let (Some(&first), Some(&last)) = (starts.iter().min(), starts.iter().max()) else {
            return Some(Vec::new());
        };
        // The log once per frame, not once per window that contains the frame.
        let off = self.spec.log_offset as f32;
        let (mel, frames) = self.mel_power_map(&signal[first..last + w], |b| ln_offset(b, off));
        let (n_mels, per_window) = (self.spec.n_mels, self.spec.n_frames());
        Some(
            starts
                .iter()
                .map(|&s| {
                    let f0 = (s - first) / hop;
                    let mut out = Vec::with_capacity(n_mels * per_window);
                    for m in 0..n_mels {
                        out.extend_from_slice(&mel[m * frames + f0..m * frames + f0 + per_window]);
                    }
                    zscore(&mut out, self.spec.norm_eps);
                    out
                })
                .collect(),
        )
    }

    /// Fit an arbitrary clip to the model window (centre crop / pad) and compute its features.
    pub fn logmel_clip(&mut self, clip: &[f32]) -> Vec<f32> {
        let w = fit_window(clip, self.spec.window_samples);
        self.logmel(&w)
    }

    /// MFCC following `librosa.feature.mfcc(y, sr, n_mfcc, n_fft, hop_length, win_length,
    /// center=False, n_mels, fmin, fmax)`: `power_to_db` (ref 1, amin 1e-10, top_db 80) of the
    /// mel power spectrogram, then DCT-II (orthonormal) over the mel axis. Row-major
    /// `n_mfcc × n_frames`.
    pub fn mfcc(&mut self, samples: &[f32], n_mfcc: usize) -> Vec<f32> {
        let dct = Dct::new(n_mfcc, self.spec.n_mels);
        self.mfcc_with(samples, &dct)
    }

    /// [`FeatureExtractor::mfcc`] with a precomputed [`Dct`] (`dct.n_in()` must be `n_mels`).
    pub fn mfcc_with(&mut self, samples: &[f32], dct: &Dct) -> Vec<f32> {
        let n_mels = self.spec.n_mels;
        assert_eq!(dct.n_in, n_mels, "DCT built for {} mel bands", dct.n_in);
        // power_to_db: 10·log10(max(p, amin)), floored at max - top_db (the floor is applied
        // below, per tile, once the maximum over the whole signal is known).
        const DB_PER_LN: f32 = 10.0 / std::f32::consts::LN_10;
        let mut max_db = f32::NEG_INFINITY;
        let mut mel = std::mem::take(&mut self.mel_scratch);
        let frames = self.mel_power_into(samples, &mut mel, |block| {
            for v in block.iter_mut() {
                *v = ln_any(v.max(1e-10)) * DB_PER_LN;
            }
            max_db = max_db.max(max_of(block));
        });
        let floor = max_db - 80.0;
        let out = self.arch.dispatch(DctOp {
            mel: &mel,
            frames,
            n_mels,
            dct,
            floor,
        });
        self.mel_scratch = mel;
        out
    }
}

// `pulp` calls `with_simd` (always inlined) inside a function compiled for the instruction set it
// detected; a plain closure was not always inlined there and then ran at the baseline width.

/// [`FeatureExtractor::mel_power_map_simd`] as a `pulp` operation.
struct MelPowerOp<'a, F> {
    fx: &'a mut FeatureExtractor,
    samples: &'a [f32],
    mel: &'a mut Vec<f32>,
    post: F,
}

impl<F: FnMut(&mut [f32])> pulp::WithSimd for MelPowerOp<'_, F> {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        self.fx
            .mel_power_map_simd(self.samples, self.mel, self.post)
    }
}

/// [`dct_tiles`] as a `pulp` operation.
struct DctOp<'a> {
    mel: &'a [f32],
    frames: usize,
    n_mels: usize,
    dct: &'a Dct,
    floor: f32,
}

impl pulp::WithSimd for DctOp<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        dct_tiles(self.mel, self.frames, self.n_mels, self.dct, self.floor)
    }
}

/// The DCT of [`FeatureExtractor::mfcc_with`] (`mel` in dB, row-major `n_mels × frames`, floored
/// at `floor` on the way in). Always inlined so that it is compiled for the instruction set
/// [`pulp::Arch::dispatch`] picked.
#[inline(always)]
fn dct_tiles(mel: &[f32], frames: usize, n_mels: usize, dct: &Dct, floor: f32) -> Vec<f32> {
    // DCT over the mel axis, vectorised along time: for a tile of DCT_TILE frames, the
    // folded sums and differences of mirrored mel rows (see [`Dct`]) are formed once, then
    // each coefficient's sums stay in registers while the tile's folded values (in L1)
    // stream past.
    let h = n_mels.div_ceil(2);
    let n_mfcc = dct.n_out;
    let mut out = vec![0.0f32; n_mfcc * frames];
    let mut sum = vec![0.0f32; h * DCT_TILE];
    let mut diff = vec![0.0f32; h * DCT_TILE];
    let (mut lo, mut hi) = ([0.0f32; DCT_TILE], [0.0f32; DCT_TILE]);
    for t0 in (0..frames).step_by(DCT_TILE) {
        let width = DCT_TILE.min(frames - t0);
        let rows = sum
            .chunks_exact_mut(DCT_TILE)
            .zip(diff.chunks_exact_mut(DCT_TILE));
        for (n, (s, d)) in rows.enumerate() {
            copy_prefix::<DCT_TILE>(&mut lo, &mel[n * frames + t0..], width);
            let m = n_mels - 1 - n;
            if m == n {
                // Odd n_mels: the middle row goes into the sums alone.
                for (s, &a) in s.iter_mut().zip(&lo) {
                    *s = a.max(floor);
                }
                d.fill(0.0);
                continue;
            }
            copy_prefix::<DCT_TILE>(&mut hi, &mel[m * frames + t0..], width);
            for (((s, d), &a), &b) in s.iter_mut().zip(d.iter_mut()).zip(&lo).zip(&hi) {
                let (a, b) = (a.max(floor), b.max(floor));
                *s = a + b;
                *d = a - b;
            }
        }
        for (k, row) in dct.rows.chunks_exact(h).enumerate() {
            let src = if k % 2 == 0 { &sum } else { &diff };
            let mut acc = [0.0f32; DCT_TILE];
            for (x, &c) in src.chunks_exact(DCT_TILE).zip(row) {
                for (a, &x) in acc.iter_mut().zip(x) {
                    *a += c * x;
                }
            }
            copy_prefix::<DCT_TILE>(&mut out[k * frames + t0..], &acc, width);
        }
    }
    out
}

/// Frame-major power spectra (`BLOCK × bins`) → bin-major block (`bins × BLOCK`). Lanes past the
/// block's real width hold stale values that only reach accumulator lanes which are never stored.
///
/// Never inlined: compiled for the baseline it is a plain load/store loop, but inside the AVX2
/// code the compiler turned the strided reads into gathers that took twice the instructions.
#[inline(never)]
fn transpose_block(spectra: &[f32], block: &mut [f32], bins: usize) {
    for (k, dst) in block.chunks_exact_mut(BLOCK).enumerate() {
        for (f, d) in dst.iter_mut().enumerate() {
            *d = spectra[f * bins + k];
        }
    }
}

/// Frames per block in [`FeatureExtractor::mel_power`] (two SSE or one AVX register of `f32`;
/// must be even: frames are transformed in pairs).
const BLOCK: usize = 8;
const _: () = assert!(BLOCK.is_multiple_of(2));

/// Frames per tile of the MFCC's DCT (sixteen accumulators: four SSE registers).
const DCT_TILE: usize = 16;

/// `dst[..n] = src[..n]` for a tile of `N` values: the full tiles (all but the last) get a
/// fixed-length copy the compiler turns into a few vector moves instead of a `memmove` call.
#[inline(always)]
fn copy_prefix<const N: usize>(dst: &mut [f32], src: &[f32], n: usize) {
    if n == N {
        dst[..N].copy_from_slice(&src[..N]);
    } else {
        dst[..n].copy_from_slice(&src[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    pub(crate) fn spec() -> FeatureSpec {
        FeatureSpec {
            kind: "logmel64_v1".into(),
            sample_rate: 16000,
            window_samples: 48000,
            n_fft: 512,
            win_length: 400,
            hop_length: 160,
            n_mels: 64,
            fmin: 50.0,
            fmax: 8000.0,
            log_offset: 1e-6,
            norm_eps: 1e-5,
        }
    }

    #[test]
    fn shared_frames_equal_one_logmel_per_window() {
        let mut fx = FeatureExtractor::new(spec()).unwrap();
        // 6.5 s of a chirp with noise-like harmonics: every window sees different content.
        let x: Vec<f32> = (0..104_000)
            .map(|i| {
                let t = i as f32 / 16000.0;
                0.3 * (2.0 * std::f32::consts::PI * (200.0 + 150.0 * t) * t).sin()
                    + 0.05 * ((i * 7919 % 1000) as f32 / 500.0 - 1.0)
            })
            .collect();
        let starts = [0, 16_000, 32_000, 48_000, 56_000];
        let shared = fx.logmel_windows(&x, &starts).unwrap();
        assert_eq!(shared.len(), starts.len());
        for (&s, got) in starts.iter().zip(&shared) {
            let want = fx.logmel(&x[s..s + 48_000]);
            assert_eq!(got.len(), want.len());
            let diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            // Not bit-identical: a frame shares its FFT with whichever frame follows it in the
            // call (see `mel_power`), which changes f32 rounding (observed 2.4e-6).
            assert!(diff <= 1e-5, "window at {s}: max diff {diff}");
        }
        // Not frame-aligned, or past the end: refused (the caller computes those one by one).
        assert!(fx.logmel_windows(&x, &[100]).is_none());
        assert!(fx.logmel_windows(&x, &[64_000]).is_none());
        assert_eq!(fx.logmel_windows(&x, &[]).unwrap().len(), 0);
    }

    #[test]
    fn mel_scale_known_values() {
        // librosa.hz_to_mel(1000) == 15, hz_to_mel(440) == 6.6, hz_to_mel(8000) == 45.245640471924965
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(440.0) - 6.6).abs() < 1e-12);
        assert!((hz_to_mel(8000.0) - 45.245_640_471_924_965).abs() < 1e-9);
        for hz in [0.0, 50.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
    }

    #[test]
    fn frame_count_is_297() {
        assert_eq!(spec().n_frames(), 297);
        assert_eq!(n_frames(100, 512, 160), 0);
    }

    #[test]
    fn hann_is_periodic_and_centred() {
        let w = padded_hann(400, 512);
        assert_eq!(w.len(), 512);
        assert!(w[..56].iter().all(|&v| v == 0.0) && w[456..].iter().all(|&v| v == 0.0));
        assert_eq!(w[56], 0.0);
        assert!((w[56 + 200] - 1.0).abs() < 1e-7); // periodic: peak at N/2
        assert!((w[56 + 100] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn filterbank_matches_librosa_values() {
        // librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000):
        // (filter, sum of weights, first non-zero bin, max weight)
        let known = [
            (0, 0.034_821_76, 2, 0.021_006_435),
            (10, 0.030_687_047, 17, 0.016_871_723),
            (40, 0.031_864_82, 79, 0.007_669_185),
            (63, 0.031_957_336, 234, 0.002_725_728),
        ];
        let fb = mel_filterbank(16000.0, 512, 64, 50.0, 8000.0);
        assert_eq!(fb.len(), 64);
        for (i, sum, start, max) in known {
            let f = &fb[i];
            assert!(
                (f.weights.iter().sum::<f32>() - sum).abs() < 1e-6,
                "filter {i}"
            );
            assert_eq!(f.start, start, "filter {i}");
            assert!((f.weights.iter().fold(0.0f32, |a, &b| a.max(b)) - max).abs() < 1e-7);
        }
    }

    #[test]
    fn dct_is_orthonormal() {
        let m = dct2_ortho_matrix(64, 64);
        for a in 0..64 {
            for b in 0..64 {
                let d: f32 = (0..64).map(|n| m[a * 64 + n] * m[b * 64 + n]).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-4);
            }
        }
    }

    /// A tone, a chirp and a little deterministic noise at 16 kHz: energy in many bands, no
    /// silent frames.
    fn test_signal(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let t = i as f32 / 16000.0;
                0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                    + 0.1 * (2.0 * std::f32::consts::PI * 3100.0 * t * (1.0 + t)).sin()
                    + 0.01 * ((i * 7919 % 101) as f32 / 101.0 - 0.5)
            })
            .collect()
    }

    #[test]
    fn folded_dct_equals_the_matrix_product() {
        // Even and odd band counts (the odd one has a middle row), on dB-like values above the
        // -80 dB floor so the floor does not touch them.
        for n_mels in [64usize, 7] {
            let spec = FeatureSpec { n_mels, ..spec() };
            let mut fx = FeatureExtractor::new(spec).unwrap();
            let audio = test_signal(16000 + 37 * 160);
            let n_mfcc = n_mels.min(40);
            let got = fx.mfcc(&audio, n_mfcc);
            let (mel, frames) = fx.mel_power(&audio);
            let db: Vec<f64> = mel
                .iter()
                .map(|&p| 10.0 * (p.max(1e-10) as f64).log10())
                .collect();
            let floor = db.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b)) - 80.0;
            let m = dct2_ortho_matrix(n_mfcc, n_mels);
            assert_eq!(got.len(), n_mfcc * frames);
            for k in 0..n_mfcc {
                for t in 0..frames {
                    let want: f64 = (0..n_mels)
                        .map(|n| m[k * n_mels + n] as f64 * db[n * frames + t].max(floor))
                        .sum();
                    let g = got[k * frames + t] as f64;
                    assert!(
                        (g - want).abs() < 2e-3,
                        "n_mels {n_mels} k {k} t {t}: {g} vs {want}"
                    );
                }
            }
        }
    }

    /// The dispatched (AVX2 on this CPU) and baseline builds of the same loops give the same
    /// bits: no float operation is fused or reordered by the wider vectors.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let audio = test_signal(3 * 16000 + 77);
        let mut wide = FeatureExtractor::new(spec()).unwrap();
        let mut base = FeatureExtractor::new(spec()).unwrap();
        base.arch = pulp::Arch::Scalar;
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(wide.mfcc(&audio, 40)), bits(base.mfcc(&audio, 40)));
        let w = fit_window(&audio, 48000);
        assert_eq!(bits(wide.logmel(&w)), bits(base.logmel(&w)));
    }

    #[test]
    fn fit_window_crops_and_pads() {
        let x: Vec<f32> = (0..10).map(|v| v as f32).collect();
        assert_eq!(fit_window(&x, 4), vec![3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            fit_window(&x[..3], 6),
            vec![0.0, 0.0, 1.0, 2.0, 0.0, 0.0][..]
        );
        let y = fit_window(&x[..2], 5);
        assert_eq!(y, vec![0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn sine_energy_lands_in_the_right_band() {
        let s = spec();
        let mut fx = FeatureExtractor::new(s.clone()).unwrap();
        let x: Vec<f32> = (0..48000)
            .map(|i| (2.0 * PI * 1000.0 * i as f64 / 16000.0).sin() as f32)
            .collect();
        let (mel, frames) = fx.mel_power(&x);
        assert_eq!(frames, 297);
        let energies: Vec<f32> = (0..64).map(|m| mel[m * frames + 100]).collect();
        let best = energies
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        let fb = mel_filterbank(16000.0, 512, 64, 50.0, 8000.0);
        let bin = 1000.0 / (16000.0 / 512.0);
        let f = &fb[best];
        assert!((f.start as f64) <= bin && bin <= (f.start + f.weights.len()) as f64);
        let feats = fx.logmel(&x);
        let mean: f32 = feats.iter().sum::<f32>() / feats.len() as f32;
        assert!(mean.abs() < 1e-4);
    }

    #[test]
    fn fast_ln_matches_libm() {
        // Every exponent, dense mantissas: within 2 ulp-ish of f64 ln rounded to f32.
        let mut worst = 0.0f64;
        let mut x = 1e-45f32;
        while x < 1e38 {
            for k in 0..97 {
                let v = x * (1.0 + k as f32 / 97.0);
                if !v.is_finite() {
                    continue;
                }
                let mut got = [v];
                ln_offset(&mut got, 0.0);
                let want = (v as f64).ln();
                let err = (got[0] as f64 - want).abs() / want.abs().max(1.0);
                worst = worst.max(err);
            }
            x *= 3.7;
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        // Offsets, zero and non-finite values behave like f32::ln.
        let mut v = [1.0, 0.0, -1.0, f32::INFINITY, f32::NAN, -3.0];
        ln_offset(&mut v, 1.0);
        assert!((v[0] - 2f32.ln()).abs() < 1e-7 && v[1] == 0.0);
        assert_eq!(v[2], f32::NEG_INFINITY);
        assert_eq!(v[3], f32::INFINITY);
        assert!(v[4].is_nan() && v[5].is_nan());
    }

    #[test]
    fn max_of_any_length() {
        assert_eq!(max_of(&[]), f32::NEG_INFINITY);
        for n in 1..40 {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
            let want = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max_of(&x), want, "n = {n}");
        }
    }

    #[test]
    fn blocked_mel_power_equals_frame_by_frame() {
        // Frame counts around the block size, against a direct per-frame computation in f64.
        let spec = spec();
        for len in [511, 512, 512 + 160 * 7, 512 + 160 * 8, 512 + 160 * 20 + 5] {
            let x: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.37).sin() * 0.3).collect();
            let mut fx = FeatureExtractor::new(spec.clone()).unwrap();
            let (mel, frames) = fx.mel_power(&x);
            assert_eq!(frames, n_frames(len, 512, 160));
            assert_eq!(mel.len(), 64 * frames);
            let win = padded_hann(400, 512);
            let filters = mel_filterbank(16000.0, 512, 64, 50.0, 8000.0);
            let fft = rustfft::FftPlanner::<f64>::new().plan_fft_forward(512);
            for t in 0..frames {
                let mut buf: Vec<Complex<f64>> = (0..512)
                    .map(|i| Complex::new((x[t * 160 + i] * win[i]) as f64, 0.0))
                    .collect();
                fft.process(&mut buf);
                for (m, f) in filters.iter().enumerate() {
                    let want: f64 = f
                        .weights
                        .iter()
                        .enumerate()
                        .map(|(i, &w)| w as f64 * buf[f.start + i].norm_sqr())
                        .sum();
                    let got = mel[m * frames + t] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1e-3),
                        "len {len} frame {t} mel {m}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn zscore_population() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        zscore(&mut x, 0.0);
        let sd = (1.25f64).sqrt();
        assert!((x[0] as f64 + 1.5 / sd).abs() < 1e-6);
    }
}
