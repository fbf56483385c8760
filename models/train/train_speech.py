"""Train the EMO speech emotion model on RAVDESS (actors 01-20), logmel64 v1 features.

    python3 models/train/train_speech.py --data ../shared/datasets/ravdess16k --out models/train/runs/speech

Runs the 5-fold leave-4-actors-out cross-validation (fold k holds out actors 4k+1..4k+4), writes
out-of-fold logits (<out>/cv_logits.npz) and a summary (<out>/cv_summary.json), then trains the
shipped model on all 20 actors with the same recipe (<out>/final.pt). Each completed fold is kept
and skipped on restart; within a run <out>/<run>_last.pt lets an interrupted epoch loop resume.
No epoch selection on held-out actors: every fold reports its last epoch.
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
import soundfile as sf
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import features as FT  # noqa: E402
from speech_model import SpeechCNN, n_params  # noqa: E402

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


def train_run(name, tr_idx, waves, ys, a, out, fx, log):
    seed = a.seed * 100 + (hash(name) % 97 if False else sum(map(ord, name)))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    model = SpeechCNN()
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
            wb = np.stack([augment_wave(waves[j], rng, a) for j in bi])
            with torch.no_grad():
                xb = spec_augment(fx(torch.from_numpy(wb)).unsqueeze(1), g, a)
            yb = torch.from_numpy(ys[bi])
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=a.label_smoothing)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
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
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--skip_final", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "log.txt", "a")

    def log(s):
        print(s, flush=True); logf.write(s + "\n"); logf.flush()

    waves, ys, actors, names = load_ravdess(a.data)
    log(f"{len(waves)} clips, params {n_params(SpeechCNN())}, args {json.dumps(vars(a))}")
    fx = FT.LogMel64Torch()
    for k in [int(s) for s in a.folds.split(",") if s != ""]:
        res = out / f"fold{k}.npz"
        if res.exists():
            log(f"fold {k}: done already"); continue
        test_actors = list(range(4 * k + 1, 4 * k + 5))
        te = np.where(np.isin(actors, test_actors))[0]
        tr = np.where(~np.isin(actors, test_actors))[0]
        model, secs = train_run(f"fold{k}", tr, waves, ys, a, out, fx, log)
        logits = predict(model, eval_features([waves[i] for i in te], fx))
        acc = float((logits.argmax(1) == ys[te]).mean())
        np.savez(res, logits=logits, y=ys[te], idx=te, actors=actors[te], secs=secs)
        log(json.dumps({"fold": k, "test_actors": test_actors, "acc": acc, "secs": round(secs)}))
    if not a.skip_final and not (out / "final.pt").exists():
        model, secs = train_run("final", np.arange(len(waves)), waves, ys, a, out, fx, log)
        torch.save({"model": model.state_dict(), "secs": secs, "args": vars(a)}, out / "final.pt")
        log(f"final model trained on all {len(waves)} clips in {secs:.0f}s")


if __name__ == "__main__":
    main()
