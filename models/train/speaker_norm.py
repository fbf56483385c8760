"""Speaker normalisation of logmel64 v1 features ("speaker profile", issue 26).

Why: a session has one speaker. A speech model trained on one acted corpus hears a speaker's timbre
and microphone (the long-term shape of the log-mel spectrum) as an emotion: one speaker is "sad" for
a whole session. Subtracting that speaker's mean log-mel profile removes what is constant for the
speaker and the recording chain and keeps what differs between the speaker's utterances (arousal,
voice quality). Per-utterance mean normalisation (CMN) hurt transfer (models/speech.md): it also
removes the utterance's own arousal cues. The speaker profile is pooled over many utterances, so it
does not.

The rule (shared with `emo-inference/src/speaker_norm.rs`; both must agree):

1. `f` = logmel64 v1 features of a window, [64, 297] (already z-scored over the window).
2. Signal frames: frames whose loudest bin is more than `GAP` (1.0) above the window's minimum
   (zero padding sits at the minimum in every bin).
3. Voiced frames: the signal frames whose mean over the 64 bins is >= the lower median of the signal
   frames' means (the louder half): the profile describes the voice, not the pauses.
4. A window contributes `sum` (the 64-vector sum of its voiced frames) and `count` (their number).
5. Profile = (sum of the contributions heard so far + prior_frames * prior) / (count so far +
   prior_frames). `prior` is the mean voiced frame of the training corpora; `prior_frames` weighs it
   like that many frames of speech. This is the warm-up rule: before any speech the profile is the
   prior (a constant shift, i.e. no speaker normalisation); it moves to the speaker's own mean as
   speech accumulates (at `prior_frames` voiced frames, half way), never with a jump.
6. Normalised features = `f - profile` on the signal frames; padding frames are left as they are.

Live, the contributions are the session's voice windows so far including the current one; in
`emod analyze`, all windows of the file; in training, a random number (0..K) of the same speaker's
other training clips plus the (augmented) clip itself, so the model sees every stage of the warm-up.
"""
from __future__ import annotations

import numpy as np

GAP = 1.0


def masks_np(f: np.ndarray):
    """(signal [T] bool, voiced [T] bool) for one window's features [64, T]."""
    sig = f.max(axis=0) > f.min() + GAP
    fm = f.mean(axis=0)
    voiced = np.zeros_like(sig)
    if sig.any():
        s = np.sort(fm[sig])
        med = s[(len(s) - 1) // 2]
        voiced = sig & (fm >= med)
    return sig, voiced


def stats_np(f: np.ndarray):
    """(sum [64] float64, count) of one window's voiced frames."""
    _, v = masks_np(f)
    return f[:, v].astype(np.float64).sum(axis=1), int(v.sum())


def profile_np(s: np.ndarray, n: float, prior: np.ndarray, prior_frames: float) -> np.ndarray:
    return (s + prior_frames * prior) / (n + prior_frames)


def apply_np(f: np.ndarray, profile: np.ndarray, bands: int = 64) -> np.ndarray:
    """`bands` < 64 subtracts the profile only from the lowest `bands` mel bands (timbre), so that
    the upper bands keep their arousal cues (an experiment of issue 26; 64 = every band)."""
    sig, _ = masks_np(f)
    out = f.copy()
    prof = profile.astype(out.dtype).copy()
    prof[bands:] = 0
    out[:, sig] -= prof[:, None]
    return out


# ---------------------------------------------------------------- batched torch versions (training)
def masks_t(f):
    """f [B, 64, T] -> (signal [B, T] bool, voiced [B, T] bool); same rule as masks_np."""
    import torch

    fmin = f.amin(dim=(1, 2), keepdim=False)                    # [B]
    sig = f.amax(dim=1) > (fmin[:, None] + GAP)                 # [B, T]
    fm = f.mean(dim=1)                                          # [B, T]
    med = torch.nanmedian(fm.masked_fill(~sig, float("nan")), dim=1).values  # lower median
    voiced = sig & (fm >= med[:, None])
    return sig, voiced


def stats_t(f):
    """f [B, 64, T] -> (sum [B, 64] float64, count [B] float64) of the voiced frames."""
    _, v = masks_t(f)
    vs = v.to(f.dtype)
    return (f * vs[:, None, :]).sum(dim=2).double(), vs.sum(dim=1).double()


def apply_t(f, profile, bands: int = 64):
    """f [B, 64, T], profile [B, 64] -> f - profile on the signal frames (on the lowest `bands`
    mel bands only; see apply_np)."""
    sig, _ = masks_t(f)
    prof = profile.to(f.dtype).clone()
    prof[:, bands:] = 0
    return f - prof[:, :, None] * sig.to(f.dtype)[:, None, :]


def selftest(paths):
    """The torch and numpy rules agree on real clips (features from the reference)."""
    import soundfile as sf
    import torch

    import features as FT

    rng = np.random.default_rng(0)
    prior = rng.normal(size=64) * 0.1
    worst = 0.0
    for p in paths:
        y, _ = sf.read(p, dtype="float64")
        f = FT.logmel64_v1(y)
        s, n = stats_np(f)
        prof = profile_np(s, n, prior, 600.0)
        a = apply_np(f, prof)
        st, nt = stats_t(torch.from_numpy(f)[None])
        assert int(nt[0]) == n, (p, int(nt[0]), n)
        pt = (st[0] + 600.0 * torch.from_numpy(prior)) / (nt[0] + 600.0)
        b = apply_t(torch.from_numpy(f)[None], pt[None])[0].numpy()
        worst = max(worst, float(np.abs(a - b).max()))
    print(f"{len(paths)} files: speaker norm torch vs numpy max abs diff {worst:.2e}")
    assert worst < 1e-5


if __name__ == "__main__":
    import glob
    import sys

    selftest(sorted(glob.glob(f"{sys.argv[1] if len(sys.argv) > 1 else '../shared/datasets/ravdess16k'}/Actor_*/*.wav"))[::40])
