"""Pseudo-sessions: the fusion evaluation that looks like a real session (issue 26).

A pseudo-session is one speaker's clips (all of them, every emotion, in a seeded shuffled order),
each paired with a FER-2013 validation face of the same label, in sequence: so a speaker's bias
lasts the whole session, as in real life (label-matched random pairs make voice errors independent,
which no real session does). One window per clip (its centre 3 s). With speaker normalisation
the voice of window i is normalised by the profile of windows 0..i (causal, as live).

Voices are always scored by models that never heard the speaker:
* `v5-loco`: the speaker-normalised recipe trained on RAVDESS only (`loco_r2e_last.pt`) on EmoDB
  speakers (leave-one-corpus-out);
* `v5-oof`: fold k's model (`foldK_last.pt`, trained on both corpora without fold k's speakers) on
  RAVDESS actors 4k+1..4k+4 and EmoDB pair k;
* `v4`: the previous shipped file (`--v4` ONNX, RAVDESS only) on EmoDB, and its recipes' out-of-fold
  logits (`metrics/speech_v{1,3}_recipe_cv_logits.npz`, mean of the two) on RAVDESS.

Fusion is emo-inference/src/fusion.rs: `pool` = the robust log-linear pool (floor 0.1, voice weight
`--voice_weight`, default 0.5, capped when the inputs disagree), `loglin` = the log-linear rule it
replaced (voice 0.75, inputs shrunk by trust), `linear` = the trust-weighted linear pool; trust = reliability.rs (FER crops: face trust 1; voice min(1, conf / max(0.5, abstain)) x
domain trust). Temperature and abstain threshold of v5 are fitted on its pooled out-of-fold logits.

    python3 models/train/pseudo_sessions.py --fer ../shared/datasets/fer2013/train \
        --ravdess ../shared/datasets/ravdess16k --emodb ../shared/datasets/emodb \
        --run models/train/runs/speech_v5 --v4 /tmp/speech_v4.onnx --seeds 5 --json models/metrics/pseudo_sessions.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import features as FT  # noqa: E402
import fusion_pairs as FP  # noqa: E402
import speaker_norm as SN  # noqa: E402

MODELS = HERE.parent
FACE_TEMPER = 1.0
FUSED_T = 1.0
GRID_ON = False


def load_model(path):
    import torch

    from speech_model import build

    s = torch.load(path, map_location="cpu", weights_only=False)
    args = s.get("args")
    if args is None:  # a <run>_last.pt checkpoint: the run's args are in its log line
        args = json.loads((Path(path).parent / "args.json").read_text())
    m = build(args)
    m.load_state_dict(s["model"])
    m.eval()
    return m


def logits_causal(model, feats, order, prior, prior_frames):
    """Logits of windows fed in `order`, each normalised by the profile of the windows before it and
    itself (as live)."""
    import torch

    s, n = np.zeros(feats.shape[1]), 0.0
    xs = []
    for i in order:
        ds, dn = SN.stats_np(feats[i])
        s, n = s + ds, n + dn
        xs.append(SN.apply_np(feats[i], SN.profile_np(s, n, prior, prior_frames)))
    with torch.no_grad():
        out = model(torch.from_numpy(np.stack(xs)[:, None].astype(np.float32))).numpy()
    res = np.zeros((len(feats), out.shape[1]))
    res[np.array(order)] = out
    return res


def softmax(l, t=1.0):
    return FP.softmax(np.asarray(l, np.float64), t)


def to7(p8):
    return FP.to7(p8)


def linear(f, v, rv, w):
    """fusion.rs `linear_pool` (face trust 1)."""
    a_v = w * rv[:, None]
    return (f + a_v * v) / (1 + a_v)


def pool(f, v, rv, w, eps=0.1, t=1.0):
    """fusion.rs `pool` (face trust 1): robust log-linear pool with a uniform floor, temperature, and
    the cap that keeps disagreeing inputs from making a surer estimate than the surer of them."""
    fl = (1 - eps) * f + eps / 7
    vs = rv[:, None] * v + (1 - rv[:, None]) / 7
    vl = (1 - eps) * vs + eps / 7
    p = softmax((np.log(fl) + w * np.log(vl)) / t)
    lin = linear(f, v, rv, w)
    cap = np.maximum(f.max(1), v.max(1))
    top, lt = p.max(1), lin.max(1)
    lam = np.where((f.argmax(1) != v.argmax(1)) & (top > cap), np.clip((top - cap) / np.maximum(top - lt, 1e-12), 0, 1), 0)
    return (1 - lam[:, None]) * p + lam[:, None] * lin


def loglin(f, v, rv, w=0.75):
    v = rv[:, None] * v + (1 - rv[:, None]) / 7
    return softmax(np.log(np.maximum(f, 1e-6)) + w * np.log(np.maximum(v, 1e-6)))


def floored(f, v, rv, eps, w):
    """fusion.rs `robust_pool`: log-linear pooling of inputs mixed with a uniform floor eps (and the
    voice also shrunk by its trust)."""
    f = (1 - eps) * f + eps / 7
    v = (rv[:, None] * (1 - eps)) * v + (1 - rv[:, None] * (1 - eps)) / 7
    return softmax(np.log(f) + w * np.log(v))


GRID = [(e, w) for e in (0.1, 0.2, 0.3, 0.5) for w in (0.5, 0.75, 1.0)]


def session_weights(f, v, rv, w0, w_hi, n0, face_floor):
    """emo-inference/src/session_trust.rs: the voice's weight for each window of one session from
    how often its top class has agreed with the face's in the windows before (causal). With the
    face's accuracy a_f taken as its mean confidence (calibrated), never below face_floor (the
    expression model's validation accuracy), and errors spread over the other classes, agreement
    P = a_f a_v + (1 - a_f)(1 - a_v)/(K - 1) gives the voice's accuracy a_v in this session; its
    weight is w_hi x (a_v - 1/K) / (a_f - 1/K), clipped to [0, w_hi]. n0 pseudo-windows at the
    weight w0 hold it there until the session has spoken. Windows count by the voice's trust rv
    (FER faces: trust 1)."""
    K = 7
    out = np.empty(len(f))
    agree = n = face_conf = 0.0
    for i in range(len(f)):
        a_f = max(face_conf / n if n > 0 else face_floor, face_floor, 1 / K + 1e-3)
        c = (1 - a_f) / (K - 1)
        a_v0 = 1 / K + (w0 / w_hi) * (a_f - 1 / K)
        p0 = a_f * a_v0 + c * (1 - a_v0)
        ph = (agree + n0 * p0) / (n + n0)
        a_v = (ph - c) / max(a_f - c, 1e-6)
        out[i] = w_hi * np.clip((a_v - 1 / K) / max(a_f - 1 / K, 1e-6), 0, 1)
        r = rv[i]
        agree += r * float(f[i].argmax() == v[i].argmax())
        face_conf += r * float(f[i].max())
        n += r
    return out


SESSION_DEFAULT = (1.0, 10.0, 0.70)  # session_trust.rs defaults: (w_hi, n0, face floor)
SESSION = SESSION_DEFAULT  # None = fixed weight


def session_figures(f, v7, conf, rd, y, full, w):
    if FACE_TEMPER != 1.0:
        f = f ** FACE_TEMPER; f = f / f.sum(1, keepdims=True)
    rv = np.clip(conf / full, 0, 1) * rd
    p_fixed = pool(f, v7, rv, w, t=FUSED_T)
    if SESSION is not None:
        w = session_weights(f, v7, rv, w, *SESSION)[:, None]
    p, q, li = pool(f, v7, rv, w, t=FUSED_T), loglin(f, v7, rv), linear(f, v7, rv, w)
    acc = lambda x: float((x.argmax(1) == y).mean())
    out = {"face": acc(f), "voice": acc(v7), "fused": acc(p), "fused_fixed": acc(p_fixed), "fused_loglinear": acc(q), "fused_linear": acc(li),
           "rows": (p, q, f, v7, y)}
    if GRID_ON:
        grid = {g: floored(f, v7, rv, *g) for g in GRID}
        out.update({"grid": {g: acc(x) for g, x in grid.items()}, "grid_rows": grid})
    return out


def summarise(name, per_session):
    """Mean and worst over sessions; ECE over all windows."""
    keys = ["face", "voice", "fused", "fused_fixed", "fused_loglinear", "fused_linear"]
    m = {k: float(np.mean([s[k] for s in per_session])) for k in keys}
    better = [max(s["face"], s["voice"]) for s in per_session]
    margins = [s["fused"] - b for s, b in zip(per_session, better)]
    margins_fixed = [s["fused_fixed"] - b for s, b in zip(per_session, better)]
    rows = [s["rows"] for s in per_session]
    cat = lambda j: np.concatenate([r[j] for r in rows])
    y = cat(4)
    out = {"name": name, "sessions": len(per_session), "windows": int(len(y)), **{k: round(v, 4) for k, v in m.items()},
           "better_single_mean": round(float(np.mean(better)), 4),
           "fused_minus_better_mean": round(float(m["fused"] - np.mean(better)), 4),
           "fused_minus_better_worst_session": round(float(min(margins)), 4),
           "sessions_fused_below_better": int(sum(x < -1e-9 for x in margins)),
           "fixed_weight_minus_better_worst_session": round(float(min(margins_fixed)), 4),
           "sessions_fixed_weight_below_better": int(sum(x < -1e-9 for x in margins_fixed)),
           "worst_session_fused": round(float(min(s["fused"] for s in per_session)), 4),
           "ece_fused": round(FP.ece(cat(0), y), 4), "ece_fused_loglinear": round(FP.ece(cat(1), y), 4),
           "ece_face": round(FP.ece(cat(2), y), 4), "ece_voice": round(FP.ece(cat(3), y), 4)}
    if "grid" in per_session[0]:
        for g in GRID:
            acc = [s["grid"][g] for s in per_session]
            mg = min(a - b for a, b in zip(acc, better))
            e = FP.ece(np.concatenate([s["grid_rows"][g] for s in per_session]), y)
            below = sum(a - b < -1e-9 for a, b in zip(acc, better))
            print(f"   floor {g[0]:.1f} voice weight {g[1]:.2f}: fused {np.mean(acc):.4f} (-better {np.mean(acc) - np.mean(better):+.4f}, "
                  f"worst {mg:+.4f}, {below} below) ECE {e:.4f}")
    print(f"{name}: {out['sessions']} sessions, {out['windows']} windows | face {m['face']:.4f} voice {m['voice']:.4f} "
          f"fused {m['fused']:.4f} (fixed weight {m['fused_fixed']:.4f}: worst {out['fixed_weight_minus_better_worst_session']:+.4f}, "
          f"{out['sessions_fixed_weight_below_better']} below; log-linear {m['fused_loglinear']:.4f}, linear {m['fused_linear']:.4f}) | better single {out['better_single_mean']:.4f}, "
          f"fused - better: mean {out['fused_minus_better_mean']:+.4f}, worst session {out['fused_minus_better_worst_session']:+.4f}, "
          f"{out['sessions_fused_below_better']} sessions below | ECE fused {out['ece_fused']:.4f} (log-linear "
          f"{out['ece_fused_loglinear']:.4f}, face {out['ece_face']:.4f}, voice {out['ece_voice']:.4f})", flush=True)
    return out


def face_for(yv, pf, yf, rng):
    by = {k: rng.permutation(np.where(yf == k)[0]) for k in range(7)}
    cur = dict.fromkeys(range(7), 0)
    idx = []
    for y in yv:
        idx.append(by[y][cur[y] % len(by[y])])
        cur[y] += 1
    return pf[np.array(idx)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fer", required=True)
    ap.add_argument("--ravdess", required=True)
    ap.add_argument("--emodb", required=True)
    ap.add_argument("--run", help="train_speech_multicorpus.py --speaker_norm output folder (v5 rows; without it only v4's)")
    ap.add_argument("--cache", default="/tmp", help="where the FER validation faces' probabilities are cached without --run")
    ap.add_argument("--session_trust", nargs=3, type=float, metavar=("W_HI", "N0", "FACE_FLOOR"), default=list(SESSION_DEFAULT),
                    help="how the voice weight adapts per session to its agreement with the face (session_trust.rs; default its defaults)")
    ap.add_argument("--fixed_weight", action="store_true", help="no session trust: the voice weight is fixed all session")
    ap.add_argument("--v4", help="the previous speech.onnx (baseline)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--voice_weight", type=float, default=0.5)
    ap.add_argument("--json")
    ap.add_argument("--fused_temperature", type=float, default=1.0)
    ap.add_argument("--grid", action="store_true", help="also print the floor x voice-weight grid the defaults were chosen on")
    ap.add_argument("--face_temper", type=float, default=1.0,
                    help="raise face probabilities to this power (< 1 flattens: a stress test for less sure faces)")
    a = ap.parse_args()
    global FACE_TEMPER, FUSED_T, GRID_ON, SESSION
    FACE_TEMPER, FUSED_T, GRID_ON = a.face_temper, a.fused_temperature, a.grid
    SESSION = None if a.fixed_weight else tuple(a.session_trust)
    sys.path.insert(0, str(HERE))
    from train_speech import load_emodb, load_ravdess

    import export as EX

    man = tomllib.loads((MODELS / "manifest.toml").read_text())["models"]
    run = Path(a.run or a.cache)
    cache = run / "fer_val_faces.npz"  # the expression model's FER validation probabilities
    if cache.exists() and str(np.load(cache)["sha"]) == man["expression"]["sha256"]:
        pf, yf = np.load(cache)["pf"], np.load(cache)["yf"]
    else:
        pf, yf = FP.faces(a.fer, man)
        np.savez(cache, pf=pf, yf=yf, sha=man["expression"]["sha256"])
    if a.run:
        args = json.loads([ln for ln in (run / "log.txt").read_text().splitlines() if " args " in ln][-1].split(" args ", 1)[1])
        (run / "args.json").write_text(json.dumps(args))
        n0 = args["prior_frames"]
    rw, ry, ra, _ = load_ravdess(a.ravdess)
    ew, ey, en = load_emodb(a.emodb)
    rspk = np.array([f"r{x:02d}" for x in ra])
    espk = np.array([f"e{n[:2]}" for n in en])
    ry7, ey7 = np.where(ry == 7, 6, ry), ey
    rfeat = np.stack([FT.logmel64_v1(w) for w in rw])
    efeat = np.stack([FT.logmel64_v1(w) for w in ew])

    # v5 temperature and abstain threshold from its pooled out-of-fold (session-profile) logits
    folds = [np.load(run / f"fold{k}.npz") for k in range(5) if a.run and (run / f"fold{k}.npz").exists()]
    if folds:
        L = np.concatenate([z["logits_session"] for z in folds]); Y = np.concatenate([z["y"] for z in folds])
        T = EX.fit_temperature(L, Y)
        thr = EX.abstain_threshold(L, Y, T)
    else:
        T, thr = 1.0, 0.4
    full5 = max(0.5, thr)
    print(f"v5: T {T:.4f}, abstain_below {thr:.3f} from {len(folds)} folds' out-of-fold logits")
    v4_abstain = man["speech"].get("abstain_below", 0.408)
    results = []
    jobs = []  # (name, model path, prior, clip sets [(feats, y7, y8, spk)])
    if a.run and (run / "loco_r2e_last.pt").exists():
        jobs.append(("v5-loco EmoDB speakers (trained on RAVDESS only)", run / "loco_r2e_last.pt",
                     np.load(run / "loco_r2e.npz")["prior"], [(efeat, ey7, espk)]))
    for k, z in enumerate(folds):
        held_r = np.isin(ra, range(4 * k + 1, 4 * k + 5))
        pair = {f"e{s}" for s in [("03", "08"), ("09", "10"), ("11", "12"), ("13", "14"), ("15", "16")][k]}
        held_e = np.isin(espk, list(pair))
        jobs.append((f"v5-oof fold {k}", run / f"fold{k}_last.pt", z["prior"],
                     [(rfeat[held_r], ry7[held_r], rspk[held_r]), (efeat[held_e], ey7[held_e], espk[held_e])]))
    per = {}
    for name, path, prior, sets in jobs:
        model = load_model(path)
        for feats, y7, spk in sets:
            corpus = "RAVDESS" if spk[0].startswith("r") else "EmoDB"
            key = ("v5-loco" if "loco" in name else "v5-oof") + " " + corpus
            for s in np.unique(spk):
                m = spk == s
                f_s, y_s = feats[m], y7[m]
                for seed in range(a.seeds):
                    rng = np.random.RandomState(1000 * seed + int(s[1:]))
                    order = list(rng.permutation(len(y_s)))
                    p8 = softmax(logits_causal(model, f_s, order, prior, n0), T)
                    face = face_for(y_s[order], pf, yf, rng)
                    o = np.array(order)
                    fig = session_figures(face, to7(p8)[o], p8.max(1)[o], np.ones(len(o)), y_s[o], full5, a.voice_weight)
                    per.setdefault(key, []).append(fig)
    if a.v4:
        sess = EX.ort_session(a.v4)
        e8 = softmax(EX.ort_run(sess, efeat[:, None].astype(np.float32)), man["speech"]["temperature"])
        v1 = np.load(MODELS / "metrics" / "speech_v1_recipe_cv_logits.npz")
        v3 = np.load(MODELS / "metrics" / "speech_v3_recipe_cv_logits.npz")
        assert (v1["oof_idx"] == v3["oof_idx"]).all()
        r8 = np.zeros((len(ry), 8))
        r8[v1["oof_idx"]] = softmax((v1["oof_logits"] + v3["oof_logits"]) / 2, man["speech"]["temperature"])
        for key, p8all, y7, spk in [("v4 EmoDB", e8, ey7, espk), ("v4-oof RAVDESS", r8, ry7, rspk)]:
            for s in np.unique(spk):
                m = np.where(spk == s)[0]
                for seed in range(a.seeds):
                    rng = np.random.RandomState(1000 * seed + int(s[1:]))
                    o = m[rng.permutation(len(m))]
                    face = face_for(y7[o], pf, yf, rng)
                    p8 = p8all[o]
                    per.setdefault(key, []).append(
                        session_figures(face, to7(p8), p8.max(1), np.ones(len(o)), y7[o], max(0.5, v4_abstain), a.voice_weight))
    for key, sess_list in per.items():
        results.append(summarise(f"{key} (seeds {a.seeds})", sess_list))
    if a.json:
        Path(a.json).write_text(json.dumps({"voice_weight": a.voice_weight, "v5_temperature": T, "v5_abstain_below": thr,
                                            "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
