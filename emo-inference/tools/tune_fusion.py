#!/usr/bin/env python3
"""Choose the calibrated late-fusion weights on validation data (not on training data).

Face: FER-2013 held-out validation logits of the shipped expression model
(models/train/runs/fer/val_logits_best.npz: `plain`, `flip`, `y`).
Voice: out-of-fold speech logits from the actor-wise cross-validation
(models/train/runs/speech/fold*.npz: `logits`, `y`), i.e. every clip scored by a model that never
heard its actor.

Each voice clip (label folded to 7 classes, calm -> neutral) is paired with a random validation
face of the same class, several seeds. Probabilities are softmax(logits / T) with the manifest's
temperatures (same as the daemon), then p ∝ p_face^1 · p_voice^w with a 1e-6 floor — exactly
emo_inference::fusion::log_linear. Prints the accuracy for each w and the best one; the result is
stored as FusionWeights::default() in emo-inference/src/fusion.rs.

    python3 emo-inference/tools/tune_fusion.py [--seeds 10] [--manifest models/manifest.toml]
"""
import argparse
import glob
import os
import tomllib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FLOOR = 1e-6


def softmax(l, t):
    z = l / t
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--runs", default=os.path.join(ROOT, "models", "train", "runs"))
    ap.add_argument("--manifest", default=os.path.join(ROOT, "models", "manifest.toml"))
    a = ap.parse_args()
    with open(a.manifest, "rb") as f:
        man = tomllib.load(f)["models"]
    ex, sp = man["expression"], man["speech"]
    z = np.load(os.path.join(a.runs, "fer", "val_logits_best.npz"))
    fl = (z["plain"] + z["flip"]) / 2 if ex.get("tta_hflip") else z["plain"]
    pf, yf = softmax(fl.astype(np.float64), ex.get("temperature", 1.0)), z["y"]
    sl, sy = [], []
    for f in sorted(glob.glob(os.path.join(a.runs, "speech", "fold*.npz"))):
        s = np.load(f)
        sl.append(s["logits"])
        sy.append(s["y"])
    ps8 = softmax(np.concatenate(sl).astype(np.float64), sp.get("temperature", 1.0))
    ys8 = np.concatenate(sy)
    labels = sp["labels"]
    neutral, calm = labels.index("neutral"), labels.index("calm")
    ps = ps8[:, :7].copy()
    ps[:, neutral] += ps8[:, calm]
    ys = np.where(ys8 == calm, neutral, ys8)
    print(f"{len(yf)} validation faces, {len(ys)} out-of-fold voice clips")
    grid = [round(0.1 * i, 1) for i in range(1, 31)]
    acc = {w: [] for w in grid}
    single = {"face": [], "voice": [], "mode": []}
    for seed in range(a.seeds):
        rng = np.random.default_rng(seed)
        idx = np.array([rng.choice(np.flatnonzero(yf == c)) for c in ys])
        f, v = pf[idx], ps
        single["face"].append((f.argmax(1) == ys).mean())
        single["voice"].append((v.argmax(1) == ys).mean())
        fa, va = f.argmax(1), v.argmax(1)
        mode = np.where(fa == va, fa, np.where(f.max(1) >= v.max(1), fa, va))
        single["mode"].append((mode == ys).mean())
        lf, lv = np.log(np.maximum(f, FLOOR)), np.log(np.maximum(v, FLOOR))
        for w in grid:
            acc[w].append(((lf + w * lv).argmax(1) == ys).mean())
    for k, v in single.items():
        print(f"{k:>6} only: {np.mean(v):.4f}")
    best = max(grid, key=lambda w: (round(np.mean(acc[w]), 6), -abs(w - 1)))
    for w in grid:
        print(f"voice weight {w:.1f}: fused {np.mean(acc[w]):.4f}" + ("  <- best" if w == best else ""))
    print(f"BEST face_weight = 1.0, voice_weight = {best}")


if __name__ == "__main__":
    main()
