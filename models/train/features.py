"""Speech features "logmel64 v1" — the single definition shared by training and the Rust daemon.

Input: mono waveform, float in [-1, 1] (16-bit PCM divided by 32768), 16 kHz.
Output: float32 [64, 297] per 3-s window.

 1. Window = 48000 samples. Longer clip: take a 48000 crop (centre crop, start = (len-48000)//2, for
    evaluation/inference; random crop in training). Shorter clip: zero-pad to 48000 with
    floor((48000-len)/2) zeros on the left and the rest on the right.
 2. Frames of n_fft=512 samples, hop 160, no centre padding: 297 frames = 1 + (48000-512)//160.
    Window: periodic Hann of length 400 (scipy.signal.get_window('hann', 400, fftbins=True)),
    zero-padded to 512 with 56 zeros on each side (as librosa does).
 3. Power spectrum |rfft(frame * window)|^2, 257 bins.
 4. mel = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50.0, fmax=8000.0, htk=False,
    norm='slaney') @ power -> [64, 297].
 5. logmel = ln(mel + 1e-6).
 6. Per-window z-score: (logmel - mean) / (std + 1e-5), mean/std over all 64*297 values, population std.

`logmel64_v1(wave)` is the numpy float64 reference. `LogMel64Torch` is the batched torch version used
for training (tested equal to the reference, max abs diff <= 1e-4: `python3 features.py --selftest`).
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 48000
N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
N_MELS = 64
FMIN = 50.0
FMAX = 8000.0
LOG_OFFSET = 1e-6
NORM_EPS = 1e-5
N_FRAMES = 1 + (WINDOW_SAMPLES - N_FFT) // HOP_LENGTH  # 297


def fit_window(wave: np.ndarray, start: int | None = None) -> np.ndarray:
    """Step 1: crop (centre crop unless `start` is given) or centre zero-pad to 48000 samples."""
    wave = np.asarray(wave)
    n = len(wave)
    if n >= WINDOW_SAMPLES:
        s = (n - WINDOW_SAMPLES) // 2 if start is None else start
        return wave[s : s + WINDOW_SAMPLES]
    left = (WINDOW_SAMPLES - n) // 2
    return np.pad(wave, (left, WINDOW_SAMPLES - n - left))


def hann_window_padded() -> np.ndarray:
    """Periodic Hann(400) zero-padded to 512 (56 zeros each side). Same as scipy get_window fftbins=True."""
    n = np.arange(WIN_LENGTH)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(w, (left, N_FFT - WIN_LENGTH - left))


_MEL = None


def mel_filterbank() -> np.ndarray:
    """[64, 257] Slaney-style mel filterbank (librosa.filters.mel with the constants above)."""
    global _MEL
    if _MEL is None:
        import librosa

        _MEL = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX,
                                   htk=False, norm="slaney", dtype=np.float64)
    return _MEL


def mel_power(win48k: np.ndarray) -> np.ndarray:
    """Steps 2-4 on an exactly-48000-sample window: mel power spectrogram [64, 297] (float64)."""
    x = np.asarray(win48k, dtype=np.float64)
    assert x.shape == (WINDOW_SAMPLES,)
    idx = np.arange(N_FFT)[None, :] + HOP_LENGTH * np.arange(N_FRAMES)[:, None]
    frames = x[idx] * hann_window_padded()[None, :]
    power = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) ** 2  # [297, 257]
    return mel_filterbank() @ power.T


def logmel64_v1(wave: np.ndarray, start: int | None = None) -> np.ndarray:
    """Reference implementation: waveform (any length) -> normalised log-mel [64, 297] float32."""
    m = np.log(mel_power(fit_window(wave, start)) + LOG_OFFSET)
    f = (m - m.mean()) / (m.std() + NORM_EPS)
    return f.astype(np.float32)


class LogMel64Torch:
    """Batched torch version of steps 2-6 for [B, 48000] windows -> [B, 64, 297] float32."""

    def __init__(self):
        import torch

        self.torch = torch
        self.window = torch.from_numpy(hann_window_padded()).float()
        self.mel = torch.from_numpy(mel_filterbank()).float()  # [64, 257]

    def __call__(self, w):
        torch = self.torch
        frames = w.float().unfold(-1, N_FFT, HOP_LENGTH)  # [B, 297, 512]
        spec = torch.fft.rfft(frames * self.window, n=N_FFT, dim=-1)
        power = spec.real ** 2 + spec.imag ** 2  # [B, 297, 257]
        mel = torch.matmul(power, self.mel.T).transpose(1, 2)  # [B, 64, 297]
        m = torch.log(mel + LOG_OFFSET)
        mean = m.mean(dim=(1, 2), keepdim=True)
        std = m.std(dim=(1, 2), keepdim=True, unbiased=False)
        return (m - mean) / (std + NORM_EPS)


def _selftest(paths):
    import librosa
    import scipy.signal
    import soundfile as sf
    import torch

    w_sc = scipy.signal.get_window("hann", WIN_LENGTH, fftbins=True)
    assert np.allclose(hann_window_padded()[56:456], w_sc) and hann_window_padded()[:56].sum() == 0
    tf = LogMel64Torch()
    worst_lib, worst_t = 0.0, 0.0
    for p in paths:
        y, sr = sf.read(p, dtype="float64")
        assert sr == SAMPLE_RATE and y.ndim == 1
        win = fit_window(y)
        ref_mel = mel_power(win)
        lib = librosa.feature.melspectrogram(y=win, sr=16000, n_fft=512, hop_length=160, win_length=400,
                                             window="hann", center=False, power=2.0, n_mels=64, fmin=50,
                                             fmax=8000)
        worst_lib = max(worst_lib, float(np.max(np.abs(lib - ref_mel) / (np.abs(ref_mel) + 1e-12))))
        f_ref = logmel64_v1(y)
        f_t = tf(torch.from_numpy(win.astype(np.float32))[None])[0].numpy()
        worst_t = max(worst_t, float(np.abs(f_ref - f_t).max()))
    print(f"{len(paths)} files: max rel diff vs librosa melspectrogram {worst_lib:.2e}; "
          f"max abs diff torch vs numpy features {worst_t:.2e}")
    assert worst_lib < 1e-5 and worst_t <= 1e-4


if __name__ == "__main__":
    import argparse
    import glob

    ap = argparse.ArgumentParser()
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--data", default="../shared/datasets/ravdess16k")
    a = ap.parse_args()
    if a.selftest:
        fs = sorted(glob.glob(f"{a.data}/Actor_*/*.wav"))
        _selftest(fs[::25])
