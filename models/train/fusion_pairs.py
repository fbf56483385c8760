"""Fusion on label-matched face/voice pairs, as models/README.md ("Fusion") reports it.

Faces: the FER-2013 validation split (fer_data.split_indices) through the shipped expression model
with mirror TTA. Voices: EmoDB (6 shared classes, through the shipped speech model; validation
only, never trained on) or RAVDESS out-of-fold logits (`foldK.npz` written by
`train_speech.py --skip_final`: each clip scored by a model that never heard its actor; the shipped
model trained on all 20 actors, so RAVDESS through it is in-sample and meaningless here).
Each voice clip is paired with a random validation face of its class (one pairing per seed).
The reliability fusion is the formula of emo-inference/src/fusion.rs (`log_linear`):
r = min(1, conf_v / full); v' = r v + (1 - r) / 7; p ∝ exp((ln f + w ln v') / T).
`--tune` grids (w, full) on even seeds and reports odd seeds.

  python fusion_pairs.py --fer ../shared/datasets/fer2013/train --emodb ../shared/datasets/emodb
  python fusion_pairs.py --fer ... --ravdess_oof models/train/runs/speech   # folder of foldK.npz
"""
import argparse
import glob
import itertools
import math
import os
import sys
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODELS = HERE.parent
EMODB = {"W": 0, "E": 1, "A": 2, "F": 3, "T": 4, "N": 6}


def softmax(l, t):
    z = l / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def to7(p8):
    p = p8[:, :7].copy()
    p[:, 6] += p8[:, 7]
    return p


def session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def faces(fer, man):
    from fer_data import load_fer, split_indices

    x, y, _ = load_fer(fer)
    _, va = split_indices(y)
    xv = ((x[va].astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]
    s = session(MODELS / man["expression"]["file"])
    run = lambda a: np.concatenate([s.run(None, {"input": a[i : i + 256]})[0] for i in range(0, len(a), 256)])
    lo = (run(xv) + run(np.ascontiguousarray(xv[:, :, :, ::-1]))) / 2
    return softmax(lo.astype(np.float64), man["expression"]["temperature"]), y[va]


def emodb_voices(root, man):
    import scipy.signal as ss
    import soundfile as sf

    import features as ft

    feats, ys = [], []
    for p in sorted(glob.glob(os.path.join(root, "*.wav"))):
        k = EMODB.get(Path(p).stem[5])
        if k is None:
            continue
        w, sr = sf.read(p, dtype="float64")
        if w.ndim > 1:
            w = w.mean(1)
        if sr != ft.SAMPLE_RATE:
            g = math.gcd(sr, ft.SAMPLE_RATE)
            w = ss.resample_poly(w, ft.SAMPLE_RATE // g, sr // g)
        feats.append(ft.logmel64_v1(w))
        ys.append(k)
    f = np.stack(feats)[:, None]
    s = session(MODELS / man["speech"]["file"])
    lo = np.concatenate([s.run(None, {"input": f[i : i + 64]})[0] for i in range(0, len(f), 64)])
    return to7(softmax(lo.astype(np.float64), man["speech"]["temperature"])), np.array(ys)


def oof_voices(folder, man):
    ls, ys = [], []
    for f in sorted(glob.glob(os.path.join(folder, "fold*.npz"))):
        z = np.load(f)
        ls.append(z["logits"])
        ys.append(z["y"])
    y = np.concatenate(ys)
    return to7(softmax(np.concatenate(ls).astype(np.float64), man["speech"]["temperature"])), np.where(y == 7, 6, y)


def pairs(pf, yf, pv, yv, seed):
    rng = np.random.RandomState(seed)
    by = {k: rng.permutation(np.where(yf == k)[0]) for k in range(7)}
    cur = dict.fromkeys(range(7), 0)
    idx = []
    for y in yv:
        idx.append(by[y][cur[y] % len(by[y])])
        cur[y] += 1
    return pf[np.array(idx)], pv, yv


def fuse(f, v, w, full, t):
    r = np.clip(v.max(1) / full, 0, 1)[:, None]
    v = r * v + (1 - r) / 7
    l = (np.log(np.maximum(f, 1e-6)) + w * np.log(np.maximum(v, 1e-6))) / t
    return softmax(l, 1.0)


def ece(p, y, bins=15):
    c, pr, e = p.max(1), p.argmax(1), 0.0
    for i in range(bins):
        m = (c > i / bins) & (c <= (i + 1) / bins)
        if m.any():
            e += m.mean() * abs((pr[m] == y[m]).mean() - c[m].mean())
    return e


def report(name, sets, w, full, t):
    r = []
    for f, v, y in sets:
        p = fuse(f, v, w, full, t)
        vote = np.where(f.max(1) >= v.max(1), f.argmax(1), v.argmax(1))
        r.append([(f.argmax(1) == y).mean(), (v.argmax(1) == y).mean(), (p.argmax(1) == y).mean(),
                  (vote == y).mean(), ece(p, y), ece(f, y)])
    r = np.mean(r, 0)
    print(f"{name}: face {r[0]:.4f} voice {r[1]:.4f} fused {r[2]:.4f} mode {r[3]:.4f} fused ECE {r[4]:.4f} (face {r[5]:.4f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fer", required=True)
    ap.add_argument("--emodb")
    ap.add_argument("--ravdess_oof")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--tune", action="store_true")
    a = ap.parse_args()
    man = tomllib.loads((MODELS / "manifest.toml").read_text())["models"]
    pf, yf = faces(a.fer, man)
    pv, yv = emodb_voices(a.emodb, man) if a.emodb else oof_voices(a.ravdess_oof, man)
    sets = [pairs(pf, yf, pv, yv, s) for s in range(a.seeds)]
    w, full, t = 0.75, 0.5, 1.0
    if a.tune:
        even, odd = sets[0::2], sets[1::2]
        acc = lambda w, full: np.mean([(fuse(f, v, w, full, 1.0).argmax(1) == y).mean() for f, v, y in even])
        w, full = max(itertools.product([0.5, 0.75, 1.0, 1.25, 1.5], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
                      key=lambda p: acc(*p))
        nll = lambda t: np.mean([-np.log(np.maximum(fuse(f, v, w, full, t)[np.arange(len(y)), y], 1e-12)).mean()
                                 for f, v, y in even])
        t = min([0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4], key=nll)
        print(f"chosen on even seeds: weight {w}, full trust from {full}, temperature {t}")
        sets = odd
    report(f"{len(sets)} seeds, {len(yv)} clips", sets, w, full, t)


if __name__ == "__main__":
    main()
