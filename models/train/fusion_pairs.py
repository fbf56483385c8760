"""Fusion on label-matched face/voice pairs, as models/README.md ("Fusion") reports it.

Faces: the FER-2013 validation split (fer_data.split_indices) through the shipped expression model
with mirror TTA. Voices: EmoDB (6 shared classes, through the shipped speech model; validation
only, never trained on) or RAVDESS out-of-fold logits (`foldK.npz` written by
`train_speech.py --skip_final`: each clip scored by a model that never heard its actor; the shipped
model trained on all 20 actors, so RAVDESS through it is in-sample and meaningless here).
Each voice clip is paired with a random validation face of its class (one pairing per seed).
The reliability fusion is the formula of emo-inference/src/fusion.rs (`log_linear`) with the
rules of emo-inference/src/reliability.rs: r_v = min(1, conf_v / full) * r_domain,
r_domain = 1 - ramp(d, ok, far) (d: the out-of-domain distance of emo-inference/src/voice_domain.rs);
v' = r_v v + (1 - r_v) / 7; p ∝ exp((ln f + w ln v') / T). FER-2013 validation faces are 48-px
crops (face reliability 1). `--tune` grids (w, full) on even seeds and reports odd seeds.

`--domain RAVDESS_DIR` fits the out-of-domain statistics: the standardised spectral envelope of
each clip (band means of the normalised log-mel over the louder half of its frames), principal
components on RAVDESS actors 01-20 (the manifest's [models.speech.domain] table, written to
models/metrics/speech_domain.toml, which export.py manifest appends), and
reports how well the distance separates held-out RAVDESS actors (leave-4-actors-out, stats
refitted without them) from EmoDB clips (AUROC), with `ok` = the 95th percentile of the
held-out distances.

  python fusion_pairs.py --fer ../shared/datasets/fer2013/train --emodb ../shared/datasets/emodb
  python fusion_pairs.py --fer ... --ravdess_oof models/train/runs/speech_v1cv --ravdess ../shared/datasets/ravdess16k
  python fusion_pairs.py --domain ../shared/datasets/ravdess16k --emodb ../shared/datasets/emodb
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


def read16k(p):
    import scipy.signal as ss
    import soundfile as sf

    import features as ft

    w, sr = sf.read(p, dtype="float64")
    if w.ndim > 1:
        w = w.mean(1)
    if sr != ft.SAMPLE_RATE:
        g = math.gcd(sr, ft.SAMPLE_RATE)
        w = ss.resample_poly(w, ft.SAMPLE_RATE // g, sr // g)
    return w


def envelope(f):
    """voice_domain.rs `envelope`: band means over the louder half of the frames, standardised."""
    e = f.mean(0)
    m = f[:, e >= np.median(e)].mean(1).astype(np.float64)
    return (m - m.mean()) / (m.std() + 1e-6)


def fit_domain(env, k=16):
    mu = env.mean(0)
    w, v = np.linalg.eigh(np.cov((env - mu).T))
    w, v = w[::-1], v[:, ::-1]
    return mu, v[:, :k].T, w[:k], w[k:].mean()


def domain_distance(env, st):
    mu, comps, var, res = st
    y = env - mu
    p = y @ comps.T
    r = y - p @ comps
    return np.sqrt(((p ** 2 / var).sum(1) + (r ** 2).sum(1) / res) / env.shape[1])


def emodb_voices(root, man, with_env=False):
    import features as ft

    feats, ys = [], []
    for p in sorted(glob.glob(os.path.join(root, "*.wav"))):
        k = EMODB.get(Path(p).stem[5])
        if k is None:
            continue
        feats.append(ft.logmel64_v1(read16k(p)))
        ys.append(k)
    f = np.stack(feats)[:, None]
    s = session(MODELS / man["speech"]["file"])
    lo = np.concatenate([s.run(None, {"input": f[i : i + 64]})[0] for i in range(0, len(f), 64)])
    p8 = softmax(lo.astype(np.float64), man["speech"]["temperature"])
    if with_env:
        return to7(p8), np.array(ys), p8.max(1), np.stack([envelope(x[0]) for x in f])
    return to7(p8), np.array(ys), p8.max(1)


def ravdess_paths(root):
    """train_speech.load_ravdess's clip order (actors 01-20), which foldK.npz `idx` indexes."""
    paths = sorted(glob.glob(os.path.join(root, "Actor_*", "*.wav")))
    return [p for p in paths if 1 <= int(Path(p).stem.split("-")[6]) <= 20]


def oof_voices(folder, man, rav_dir=None):
    """Out-of-fold voices; with `rav_dir`, also each clip's out-of-domain trust from statistics
    refitted without its fold's actors (the held-out actors are unseen by both)."""
    import features as ft

    ls, ys, idx, folds = [], [], [], []
    for f in sorted(glob.glob(os.path.join(folder, "fold*.npz"))):
        z = np.load(f)
        ls.append(z["logits"])
        ys.append(z["y"])
        idx.append(z["idx"])
        folds.append(np.full(len(z["y"]), int(Path(f).stem[4:])))
    y, idx, folds = np.concatenate(ys), np.concatenate(idx), np.concatenate(folds)
    p8 = softmax(np.concatenate(ls).astype(np.float64), man["speech"]["temperature"])
    rd = np.ones(len(y))
    d = man["speech"].get("domain")
    if rav_dir and d:
        paths = ravdess_paths(rav_dir)
        actor = np.array([int(Path(p).stem.split("-")[6]) for p in paths])
        env = np.stack([envelope(ft.logmel64_v1(read16k(p))) for p in paths])
        dist = np.zeros(len(y))
        for k in np.unique(folds):
            held = np.isin(actor, range(4 * k + 1, 4 * k + 5))
            m = folds == k
            assert held[idx[m]].all(), "fold npz and clip order disagree"
            dist[m] = domain_distance(env[idx[m]], fit_domain(env[~held]))
        rd = 1 - np.clip((dist - d["ok"]) / (d["far"] - d["ok"]), 0, 1)
        print(f"RAVDESS out-of-fold domain distance: median {np.median(dist):.3f}, beyond ok {(dist > d['ok']).mean():.3f}, "
              f"mean domain trust {rd.mean():.3f}")
    return to7(p8), np.where(y == 7, 6, y), p8.max(1), rd


def pairs(pf, yf, voices, seed):
    """`voices` = (7-class probabilities, labels, 8-class confidence): one face of the same class
    per clip, drawn without replacement in a seeded order."""
    pv, yv, conf = voices
    rng = np.random.RandomState(seed)
    by = {k: rng.permutation(np.where(yf == k)[0]) for k in range(7)}
    cur = dict.fromkeys(range(7), 0)
    idx = []
    for y in yv:
        idx.append(by[y][cur[y] % len(by[y])])
        cur[y] += 1
    return pf[np.array(idx)], pv, yv, conf


def voice_trust(conf, full, rd):
    """reliability.rs `voice`: min(1, confidence / full) × domain trust (confidence: 8-class max)."""
    return np.clip(conf / full, 0, 1) * rd


def fuse(f, v, conf, w, full, t, rd=1.0):
    r = voice_trust(conf, full, rd)[:, None]
    v = r * v + (1 - r) / 7
    l = (np.log(np.maximum(f, 1e-6)) + w * np.log(np.maximum(v, 1e-6))) / t
    return softmax(l, 1.0)


def mode(f, v, conf, full, rd, abstain):
    """fusion.rs `mode` on a pair: one vote each (FER crops: full face trust); the voice votes only
    when it does not abstain and has trust, and the 1-1 tie goes to the larger confidence × trust."""
    r = voice_trust(conf, full, rd)
    votes = (conf >= abstain) & (r > 0) & (v.max(1) * r > f.max(1))
    return np.where(votes, v.argmax(1), f.argmax(1))


def ece(p, y, bins=15):
    c, pr, e = p.max(1), p.argmax(1), 0.0
    for i in range(bins):
        m = (c > i / bins) & (c <= (i + 1) / bins)
        if m.any():
            e += m.mean() * abs((pr[m] == y[m]).mean() - c[m].mean())
    return e


def report(name, sets, w, full, t, rd=1.0, abstain=0.0):
    r = []
    for f, v, y, conf in sets:
        p = fuse(f, v, conf, w, full, t, rd)
        vote = mode(f, v, conf, full, rd, abstain)
        r.append([(f.argmax(1) == y).mean(), (v.argmax(1) == y).mean(), (p.argmax(1) == y).mean(),
                  (vote == y).mean(), ece(p, y), ece(f, y), (conf < abstain).mean()])
    r = np.array(r)
    margin = (r[:, 2] - np.maximum(r[:, 0], r[:, 1])).min()
    r = r.mean(0)
    print(f"{name}: face {r[0]:.4f} voice {r[1]:.4f} fused {r[2]:.4f} mode {r[3]:.4f} fused ECE {r[4]:.4f} "
          f"(face {r[5]:.4f}); voice abstains on {r[6]:.3f}; fused minus the better single input, worst seed {margin:+.4f}")


def auroc(neg, pos):
    s = np.concatenate([neg, pos])
    rank = s.argsort().argsort() + 1
    return (rank[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2) / (len(neg) * len(pos))


def domain(rav_dir, emodb_dir, man):
    """Fit [models.speech.domain] on RAVDESS; held-out-actor AUROC against EmoDB."""
    import features as ft

    paths = sorted(glob.glob(os.path.join(rav_dir, "Actor_*", "*.wav")))
    actor = np.array([int(Path(p).stem.split("-")[-1]) for p in paths])
    env = np.stack([envelope(ft.logmel64_v1(read16k(p))) for p in paths])
    pv, yv, env_e = emodb_voices(emodb_dir, man, with_env=True)
    held, aucs = [], []
    for k in range(5):
        test = np.isin(actor, range(4 * k + 1, 4 * k + 5))
        st = fit_domain(env[~test])
        dt, de = domain_distance(env[test], st), domain_distance(env_e, st)
        held.append(dt)
        aucs.append(auroc(dt, de))
        print(f"fold {k}: AUROC held-out RAVDESS vs EmoDB {aucs[-1]:.3f}")
    held = np.concatenate(held)
    ok = float(np.percentile(held, 95))
    st = fit_domain(env)
    de = domain_distance(env_e, st)
    right = pv.argmax(1) == yv
    print(f"AUROC mean {np.mean(aucs):.3f}; ok (held-out p95) {ok:.3f}; far = 2 ok = {2 * ok:.3f}")
    print(f"EmoDB with the shipped stats: median distance {np.median(de):.3f}, beyond ok {(de > ok).mean():.3f}, "
          f"voice accuracy within ok {right[de <= ok].mean():.3f} / beyond {right[de > ok].mean():.3f}")
    f4 = lambda a: ", ".join(f"{x:.5g}" for x in a)
    table = ("# Out-of-domain statistics of the voice (emo-inference/src/voice_domain.rs), fitted on RAVDESS actors 01-20 by\n"
             "# models/train/fusion_pairs.py --domain; ok = 95th percentile of held-out actors, far = 2 ok "
             '(models/README.md, "Fusion").\n'
             f'[models.speech.domain]\nkind = "logmel_envelope_pca_v1"\nok = {ok:.3f}\nfar = {2 * ok:.3f}\n'
             f"residual_variance = {st[3]:.6g}\nvariances = [{f4(st[2])}]\nmean = [{f4(st[0])}]\ncomponents = [\n"
             + "".join(f"  [{f4(c)}],\n" for c in st[1]) + "]\n")
    out = MODELS / "metrics" / "speech_domain.toml"
    out.write_text(table)
    print(f"\n{table}\nwritten to {out} (export.py manifest appends it to the manifest)")
    return st, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fer", help="FER-2013 train dir (faces; not needed with --domain)")
    ap.add_argument("--emodb")
    ap.add_argument("--ravdess_oof", help="folder of foldK.npz (out-of-fold voice logits)")
    ap.add_argument("--ravdess", help="RAVDESS dir: with --ravdess_oof, apply the out-of-domain term too")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--domain", help="RAVDESS dir: fit and measure the out-of-domain score")
    a = ap.parse_args()
    man = tomllib.loads((MODELS / "manifest.toml").read_text())["models"]
    if a.domain:
        domain(a.domain, a.emodb, man)
        return
    pf, yf = faces(a.fer, man)
    abstain = man["speech"].get("abstain_below", 0.0)
    w, full, t = 0.75, max(0.5, abstain), 1.0
    if a.emodb:
        pv, yv, conf, env = emodb_voices(a.emodb, man, with_env=True)
        rd = np.ones(len(yv))
        d = man["speech"].get("domain")
        if d:
            st = (np.array(d["mean"]), np.array(d["components"]), np.array(d["variances"]), d["residual_variance"])
            rd = 1 - np.clip((domain_distance(env, st) - d["ok"]) / (d["far"] - d["ok"]), 0, 1)
    else:
        pv, yv, conf, rd = oof_voices(a.ravdess_oof, man, a.ravdess)
    sets = [pairs(pf, yf, (pv, yv, conf), s) for s in range(a.seeds)]
    report("voice confidence only (previous rule)", sets, w, full, t, 1.0, abstain)
    if a.tune:
        even, odd = sets[0::2], sets[1::2]
        acc = lambda w, full: np.mean([(fuse(f, v, c, w, full, 1.0, rd).argmax(1) == y).mean() for f, v, y, c in even])
        w, full = max(itertools.product([0.5, 0.75, 1.0, 1.25, 1.5], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
                      key=lambda p: acc(*p))
        nll = lambda t: np.mean([-np.log(np.maximum(fuse(f, v, c, w, full, t, rd)[np.arange(len(y)), y], 1e-12)).mean()
                                 for f, v, y, c in even])
        t = min([0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4], key=nll)
        print(f"chosen on even seeds: weight {w}, full trust from {full}, temperature {t}")
        sets = odd
    report(f"shipped rules, {len(sets)} seeds, {len(yv)} clips", sets, w, full, t, rd, abstain)


if __name__ == "__main__":
    main()
