"""Train the EMO speech emotion model on RAVDESS (actors 01-20), logmel64 v1 features.

    python3 models/train/train_speech.py --data ../shared/datasets/ravdess16k --out models/train/runs/speech

Runs the 5-fold leave-4-actors-out cross-validation (fold k holds out actors 4k+1..4k+4), writes
out-of-fold logits (<out>/cv_logits.npz) and a summary (<out>/cv_summary.json), then trains the
shipped model on all 20 actors with the same recipe (<out>/final.pt). Each completed fold is kept
and skipped on restart; within a run <out>/<run>_last.pt lets an interrupted epoch loop resume.
No epoch selection on held-out actors: every fold reports its last epoch.

Transfer recipe (v2, all options below, defaults = v1 unless given): `--short_p` trains on short
voiced crops zero-padded into the window the way inference pads short clips, `--reverb_p/--filter_p/
--codec_p` simulate other rooms and recording chains, `--cmn` normalises each mel bin per utterance
inside the network, `--gender_w` adds speaker gender (RAVDESS odd actor = male) as an auxiliary task,
`--mixup_p` mixes feature pairs. `--emodb DIR` scores every finished model once on EmoDB (6 shared
classes, boredom left out; cross-corpus VALIDATION only, never used for training or selection).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.signal as SS
import soundfile as sf
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import features as FT  # noqa: E402
from speech_model import SpeechCNN, build, n_params  # noqa: E402

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "calm"]
# RAVDESS emotion code -> index in LABELS
RAVDESS_TO_IDX = {1: 6, 2: 7, 3: 3, 4: 4, 5: 0, 6: 2, 7: 1, 8: 5}


def load_ravdess(root):
    waves, ys, actors, names = [], [], [], []
    for p in sorted(glob.glob(os.path.join(root, "Actor_*", "*.wav"))):
        parts = Path(p).stem.split("-")
        actor = int(parts[6])
        if not 1 <= actor <= 20:
            continue
        w, sr = sf.read(p, dtype="float32")
        assert sr == FT.SAMPLE_RATE and w.ndim == 1, p
        waves.append(w)
        ys.append(RAVDESS_TO_IDX[int(parts[2])])
        actors.append(actor)
        names.append(Path(p).name)
    return waves, np.array(ys), np.array(actors), names


# EmoDB emotion letter -> index in LABELS (boredom "L" has no class here and is left out)
EMODB_TO_IDX = {"W": 0, "E": 1, "A": 2, "F": 3, "T": 4, "N": 6}
SHARED6 = [0, 1, 2, 3, 4, 6]  # angry disgust fear happy sad neutral (calm folded into neutral)


def load_emodb(root):
    """EmoDB clips of the 6 shared classes, resampled to 16 kHz (labels from the file name's letter)."""
    waves, ys, names = [], [], []
    for p in sorted(glob.glob(os.path.join(root, "*.wav"))):
        e = Path(p).stem[5]
        if e not in EMODB_TO_IDX:
            continue
        w, sr = sf.read(p, dtype="float64")
        if w.ndim > 1:
            w = w.mean(1)
        if sr != FT.SAMPLE_RATE:
            g = math.gcd(sr, FT.SAMPLE_RATE)
            w = SS.resample_poly(w, FT.SAMPLE_RATE // g, sr // g)
        waves.append(w.astype(np.float32))
        ys.append(EMODB_TO_IDX[e])
        names.append(Path(p).name)
    return waves, np.array(ys), names


def emodb_scores(logits, y):
    """Accuracy on the 6 shared classes two ways: argmax over all 8 outputs (calm counts as neutral,
    surprise is always wrong) and argmax restricted to the 6 shared classes (neutral = p(neutral) +
    p(calm)); plus per-class recall of the restricted one."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    pred8 = p.argmax(1); pred8 = np.where(pred8 == 7, 6, pred8)
    p6 = p[:, SHARED6].copy(); p6[:, 5] += p[:, 7]
    pred6 = np.array(SHARED6)[p6.argmax(1)]
    rec = {LABELS[c]: round(float((pred6[y == c] == c).mean()), 4) for c in SHARED6}
    rec8 = {LABELS[c]: round(float((pred8[y == c] == c).mean()), 4) for c in SHARED6}
    return {"emodb_acc8": round(float((pred8 == y).mean()), 4), "emodb_acc6": round(float((pred6 == y).mean()), 4),
            "emodb_recall6": rec, "emodb_recall8": rec8, "emodb_n": int(len(y))}


def voiced_bounds(w, top_db=35.0, frame=320):
    """(start, end) sample indices of the region whose 20-ms frame RMS is within top_db of the loudest."""
    n = len(w) // frame
    r = np.sqrt(np.mean(w[: n * frame].reshape(n, frame).astype(np.float64) ** 2, 1) + 1e-12)
    db = 20 * np.log10(r)
    on = np.where(db > db.max() - top_db)[0]
    return int(on[0] * frame), int(min(len(w), (on[-1] + 1) * frame))


def rir(rng, rt60):
    """Synthetic room impulse response: direct path + exponentially decaying noise tail."""
    n = max(16, int(rt60 * FT.SAMPLE_RATE))
    t = np.arange(n) / FT.SAMPLE_RATE
    h = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    h[: int(0.002 * FT.SAMPLE_RATE)] = 0.0
    h *= rng.uniform(0.3, 1.0) / (np.sqrt(np.sum(h ** 2)) + 1e-9)
    h[0] = 1.0
    return h


def channel(w, rng, a):
    """Room, recording-chain and codec simulation on a speech segment (before zero-padding)."""
    w = w.astype(np.float64)
    rms0 = np.sqrt(np.mean(w ** 2)) + 1e-9
    if rng.random() < a.reverb_p:
        w = SS.fftconvolve(w, rir(rng, rng.uniform(0.15, 0.8)))[: len(w)]
    if rng.random() < a.filter_p:
        k = rng.integers(0, 4)
        nyq = FT.SAMPLE_RATE / 2
        if k == 0:    # low-pass (band-limited chain, mp3-like)
            sos = SS.butter(int(rng.integers(2, 7)), rng.uniform(2500, 7000) / nyq, "low", output="sos")
        elif k == 1:  # high-pass (small microphone, rumble filter)
            sos = SS.butter(2, rng.uniform(80, 400) / nyq, "high", output="sos")
        elif k == 2:  # telephone band
            sos = SS.butter(4, [rng.uniform(200, 400) / nyq, rng.uniform(3200, 4000) / nyq], "band", output="sos")
        else:         # spectral tilt: first-order pre-emphasis or de-emphasis
            c = rng.uniform(-0.7, 0.9)
            w = SS.lfilter([1.0, -c], [1.0], w) if c > 0 else SS.lfilter([1.0], [1.0, c], w)
            sos = None
        if sos is not None:
            w = SS.sosfilt(sos, w)
    w = w * (rms0 / (np.sqrt(np.mean(w ** 2)) + 1e-9))  # keep the level; gain is drawn below
    w = w * (10 ** (rng.uniform(-a.gain_db, a.gain_db) / 20))
    if rng.random() < a.noise_p:
        rms = np.sqrt(np.mean(w ** 2)) + 1e-9
        snr = rng.uniform(a.snr_lo, a.snr_hi)
        nz = rng.standard_normal(len(w))
        if rng.random() < 0.5:  # pink-ish noise (integrated white noise, high-passed)
            nz = SS.lfilter([1.0], [1.0, -0.97], nz); nz -= nz.mean()
            nz /= np.sqrt(np.mean(nz ** 2)) + 1e-9
        w = w + nz * rms / (10 ** (snr / 20))
    w = np.clip(w, -1, 1)
    if rng.random() < a.codec_p:  # 8-bit mu-law
        mu = 255.0
        y = np.sign(w) * np.log1p(mu * np.abs(w)) / np.log1p(mu)
        y = np.round(y * 127) / 127
        w = np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu
    return w.astype(np.float32)


def augment_v2(w, bounds, rng, a):
    """v2: speed, then either a random 3-s crop or (p=short_p) a short voiced crop of random length,
    room/chain/codec simulation on the signal only, then zero-padding as at inference (centred with
    p=center_p, else at a random place): digital-zero padding stays exact zeros as in real short clips."""
    s, e = bounds
    if rng.random() < a.speed_p:
        f = rng.uniform(1 - a.speed, 1 + a.speed)
        n = int(round(len(w) / f))
        w = np.interp(np.arange(n) * f, np.arange(len(w)), w).astype(np.float32)
        s, e = int(s / f), min(n, int(e / f))
    n = len(w)
    if rng.random() < a.short_p:
        L = int(rng.uniform(a.short_lo, a.short_hi) * FT.SAMPLE_RATE)
        m = int(0.15 * FT.SAMPLE_RATE)  # some context around the voiced region
        lo, hi = max(0, s - m), min(n, e + m)
        if hi - lo > L:
            st = int(rng.integers(lo, hi - L + 1))
            seg = w[st : st + L]
        else:
            seg = w[lo:hi]
    elif n >= FT.WINDOW_SAMPLES:
        st = int(rng.integers(0, n - FT.WINDOW_SAMPLES + 1))
        seg = w[st : st + FT.WINDOW_SAMPLES]
    else:
        seg = w
    seg = channel(seg, rng, a)
    k = len(seg)
    if k >= FT.WINDOW_SAMPLES:
        return seg[: FT.WINDOW_SAMPLES]
    left = (FT.WINDOW_SAMPLES - k) // 2 if rng.random() < a.center_p else int(rng.integers(0, FT.WINDOW_SAMPLES - k + 1))
    return np.pad(seg, (left, FT.WINDOW_SAMPLES - k - left))


def augment_wave(w, rng, a):
    if rng.random() < a.speed_p:  # speed perturbation (tempo and pitch together), linear resampling
        f = rng.uniform(1 - a.speed, 1 + a.speed)
        n = int(round(len(w) / f))
        w = np.interp(np.arange(n) * f, np.arange(len(w)), w).astype(np.float32)
    n = len(w)
    if n >= FT.WINDOW_SAMPLES:  # random crop (time shift)
        s = rng.integers(0, n - FT.WINDOW_SAMPLES + 1)
        w = w[s : s + FT.WINDOW_SAMPLES]
    else:  # random placement inside the zero-padded window
        left = rng.integers(0, FT.WINDOW_SAMPLES - n + 1)
        w = np.pad(w, (left, FT.WINDOW_SAMPLES - n - left))
    w = w * (10 ** (rng.uniform(-a.gain_db, a.gain_db) / 20))
    if rng.random() < a.noise_p:
        rms = np.sqrt(np.mean(w ** 2)) + 1e-8
        snr = rng.uniform(a.snr_lo, a.snr_hi)
        w = w + rng.standard_normal(len(w)).astype(np.float32) * rms / (10 ** (snr / 20))
    return np.clip(w, -1, 1).astype(np.float32)


def spec_augment(x, g, a):
    B, _, Fq, T = x.shape
    x = x.clone()
    for _ in range(a.n_fmask):
        wdt = torch.randint(0, a.fmask + 1, (B,), generator=g)
        f0 = (torch.rand(B, generator=g) * (Fq - wdt)).long()
        ar = torch.arange(Fq)
        m = (ar[None] >= f0[:, None]) & (ar[None] < (f0 + wdt)[:, None])
        x = x.masked_fill(m[:, None, :, None], 0.0)
    for _ in range(a.n_tmask):
        wdt = torch.randint(0, a.tmask + 1, (B,), generator=g)
        t0 = (torch.rand(B, generator=g) * (T - wdt)).long()
        ar = torch.arange(T)
        m = (ar[None] >= t0[:, None]) & (ar[None] < (t0 + wdt)[:, None])
        x = x.masked_fill(m[:, None, None, :], 0.0)
    return x


def eval_features(waves, fx):
    wins = np.stack([FT.fit_window(w) for w in waves]).astype(np.float32)
    out = []
    for i in range(0, len(wins), 64):
        out.append(fx(torch.from_numpy(wins[i : i + 64])))
    return torch.cat(out).unsqueeze(1)


@torch.no_grad()
def predict(model, feats):
    model.eval()
    return torch.cat([model(feats[i : i + 64]) for i in range(0, len(feats), 64)]).numpy()


def train_run(name, tr_idx, waves, ys, a, out, fx, log, gender=None, bounds=None, feat_hook=None):
    """`feat_hook(f [B,64,T], batch indices, rng) -> f`: a transform of the augmented features before
    SpecAugment (the speaker normalisation of train_speech_multicorpus.py); None leaves runs as before."""
    seed = a.seed * 100 + (hash(name) % 97 if False else sum(map(ord, name)))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    model = build(vars(a))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    spe = math.ceil(len(tr_idx) / a.bs)
    total, warm = spe * a.epochs, spe * a.warmup_epochs
    ck = out / f"{name}_last.pt"
    start = 0
    if ck.exists():
        s = torch.load(ck, map_location="cpu", weights_only=False)
        model.load_state_dict(s["model"]); opt.load_state_dict(s["opt"]); start = s["epoch"] + 1
        rng = s["rng"]; g.set_state(s["g"]); torch.set_rng_state(s["torch_rng"])
        log(f"{name}: resumed at epoch {start}")
    t_run = time.time()
    for ep in range(start, a.epochs):
        model.train()
        perm = rng.permutation(tr_idx)
        t0, tl, tc, tn = time.time(), 0.0, 0, 0
        for i in range(spe):
            step = ep * spe + i
            lr = a.lr * (step + 1) / warm if step < warm else \
                a.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            for pg in opt.param_groups:
                pg["lr"] = lr
            bi = perm[i * a.bs : (i + 1) * a.bs]
            if a.recipe == "v2":
                wb = np.stack([augment_v2(waves[j], bounds[j], rng, a) for j in bi])
            else:
                wb = np.stack([augment_wave(waves[j], rng, a) for j in bi])
            with torch.no_grad():
                fb = fx(torch.from_numpy(wb))
                if feat_hook is not None:
                    fb = feat_hook(fb, bi, rng)
                xb = spec_augment(fb.unsqueeze(1), g, a)
            yb = torch.from_numpy(ys[bi])
            gb = torch.from_numpy(gender[bi]) if gender is not None else None
            lam, pi = 1.0, None
            if a.mixup_p > 0 and rng.random() < a.mixup_p:
                lam = float(rng.beta(a.mixup_alpha, a.mixup_alpha)); lam = max(lam, 1 - lam)
                pi = torch.from_numpy(rng.permutation(len(bi)))
                xb = lam * xb + (1 - lam) * xb[pi]
            if a.gender_w > 0:
                logits, glog = model(xb, with_aux=True)
            else:
                logits, glog = model(xb), None

            def ce(z, t, ls):
                if pi is None:
                    return F.cross_entropy(z, t, label_smoothing=ls)
                return lam * F.cross_entropy(z, t, label_smoothing=ls) + (1 - lam) * F.cross_entropy(z, t[pi], label_smoothing=ls)

            loss = ce(logits, yb, a.label_smoothing)
            if glog is not None:
                loss = loss + a.gender_w * ce(glog, gb, 0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tl += loss.item() * len(bi); tc += (logits.argmax(1) == yb).sum().item(); tn += len(bi)
        log(json.dumps({"run": name, "epoch": ep, "lr": round(lr, 6), "loss": round(tl / tn, 4),
                        "train_acc": round(tc / tn, 4), "s": round(time.time() - t0, 1),
                        "utc": time.strftime("%H:%M:%S", time.gmtime())}))
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": ep, "rng": rng,
                    "g": g.get_state(), "torch_rng": torch.get_rng_state()}, ck)
    return model, time.time() - t_run


def arg_parser():
    """The recipe's options (shared with train_speech_multicorpus.py)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "runs" / "speech"))
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup_epochs", type=int, default=2)
    ap.add_argument("--label_smoothing", type=float, default=0.1)
    ap.add_argument("--speed_p", type=float, default=0.6)
    ap.add_argument("--speed", type=float, default=0.1)
    ap.add_argument("--gain_db", type=float, default=6.0)
    ap.add_argument("--noise_p", type=float, default=0.5)
    ap.add_argument("--snr_lo", type=float, default=15.0)
    ap.add_argument("--snr_hi", type=float, default=40.0)
    ap.add_argument("--n_fmask", type=int, default=2)
    ap.add_argument("--fmask", type=int, default=8)
    ap.add_argument("--n_tmask", type=int, default=2)
    ap.add_argument("--tmask", type=int, default=30)
    ap.add_argument("--recipe", choices=["v1", "v2"], default="v1", help="v2: augment_v2 (short crops, channel)")
    ap.add_argument("--short_p", type=float, default=0.5)
    ap.add_argument("--short_lo", type=float, default=1.0)
    ap.add_argument("--short_hi", type=float, default=2.6)
    ap.add_argument("--center_p", type=float, default=0.7)
    ap.add_argument("--reverb_p", type=float, default=0.3)
    ap.add_argument("--filter_p", type=float, default=0.4)
    ap.add_argument("--codec_p", type=float, default=0.15)
    ap.add_argument("--cmn", action="store_true", help="masked per-utterance mean normalisation in the network")
    ap.add_argument("--gender_w", type=float, default=0.0, help="weight of the auxiliary gender loss (0 = off)")
    ap.add_argument("--mixup_p", type=float, default=0.0)
    ap.add_argument("--mixup_alpha", type=float, default=0.4)
    ap.add_argument("--width", type=int, nargs=4, default=[24, 32, 64, 128])
    ap.add_argument("--emodb", default="", help="EmoDB dir: score each finished model on it once (validation only)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--skip_final", action="store_true")
    return ap


def main():
    ap = arg_parser()
    ap.add_argument("--data", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "log.txt", "a")

    def log(s):
        print(s, flush=True); logf.write(s + "\n"); logf.flush()

    waves, ys, actors, names = load_ravdess(a.data)
    gender = (actors % 2 == 1).astype(np.int64)  # RAVDESS: odd actor = male
    bounds = [voiced_bounds(w) for w in waves]
    log(f"{len(waves)} clips, params {n_params(build(vars(a)))}, args {json.dumps(vars(a))}")
    fx = FT.LogMel64Torch()
    emo = None
    if a.emodb:
        ew, ey, _ = load_emodb(a.emodb)
        emo = (eval_features(ew, fx), ey)
    for k in [int(s) for s in a.folds.split(",") if s != ""]:
        res = out / f"fold{k}.npz"
        if res.exists():
            log(f"fold {k}: done already"); continue
        test_actors = list(range(4 * k + 1, 4 * k + 5))
        te = np.where(np.isin(actors, test_actors))[0]
        tr = np.where(~np.isin(actors, test_actors))[0]
        model, secs = train_run(f"fold{k}", tr, waves, ys, a, out, fx, log, gender, bounds)
        logits = predict(model, eval_features([waves[i] for i in te], fx))
        acc = float((logits.argmax(1) == ys[te]).mean())
        extra, rec = {}, {"fold": k, "test_actors": test_actors, "acc": acc, "secs": round(secs)}
        if emo is not None:  # scored once, after training: reported, never used to choose anything
            el = predict(model, emo[0])
            extra = {"emodb_logits": el, "emodb_y": emo[1]}
            rec.update(emodb_scores(el, emo[1]))
        np.savez(res, logits=logits, y=ys[te], idx=te, actors=actors[te], secs=secs, **extra)
        log(json.dumps(rec))
    if not a.skip_final and not (out / "final.pt").exists():
        model, secs = train_run("final", np.arange(len(waves)), waves, ys, a, out, fx, log, gender, bounds)
        torch.save({"model": model.state_dict(), "secs": secs, "args": vars(a)}, out / "final.pt")
        log(f"final model trained on all {len(waves)} clips in {secs:.0f}s")
        if emo is not None:
            log(json.dumps({"final": True, **emodb_scores(predict(model, emo[0]), emo[1])}))


if __name__ == "__main__":
    main()
