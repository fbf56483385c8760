"""Train the speech model on RAVDESS and EmoDB, optionally with speaker normalisation (issue 26).

    python3 models/train/train_speech_multicorpus.py --ravdess ../shared/datasets/ravdess16k \
        --emodb ../shared/datasets/emodb --speaker_norm --runs fold0,fold1,loco_r2e,final \
        --out models/train/runs/speech_v5 [the recipe options of train_speech.py]

Runs (each kept as <out>/<run>.npz and skipped on restart; an interrupted epoch loop resumes):

* `foldK` (K = 0..4): speaker-independent inside each corpus at once: holds out RAVDESS actors
  4K+1..4K+4 **and** EmoDB speaker pair K (03+08, 09+10, 11+12, 13+14, 15+16), trains on the rest of
  both corpora (the corpora named by `--corpora`).
* `loco_r2e`: leave-one-corpus-out, trained on all 20 RAVDESS actors, tested on all of EmoDB (6 classes).
* `loco_e2r`: trained on all of EmoDB, tested on RAVDESS actors 01-20 (the clips of the 6 shared classes).
* `final`: every clip of the corpora in `--corpora`: the shipped model (`<out>/final.pt`).

Scoring (last epoch, no selection on held-out speakers): each held-out clip twice when `--speaker_norm`
is on: `session` (the profile of all the held-out speaker's clips, as at the end of a live session) and
`cold` (the clip alone, as `emod analyze` of one short file). RAVDESS clips are scored on 8 classes,
EmoDB clips (and loco_e2r's RAVDESS clips) on the 6 shared classes (`emodb_scores`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import features as FT  # noqa: E402
import speaker_norm as SN  # noqa: E402
from speech_model import build, n_params  # noqa: E402
from train_speech import (SHARED6, arg_parser, emodb_scores, eval_features, load_emodb,  # noqa: E402
                          load_ravdess, predict, train_run, voiced_bounds)

EMODB_PAIRS = [("03", "08"), ("09", "10"), ("11", "12"), ("13", "14"), ("15", "16")]
EMODB_MALE = {"03", "10", "11", "12", "15"}


class Corpus:
    """Both corpora as one list of clips with speaker ids ("r01".."r20", "e03".."e16")."""

    def __init__(self, ravdess, emodb, fx):
        rw, ry, ra, rn = load_ravdess(ravdess)
        ew, ey, en = load_emodb(emodb)
        self.waves = list(rw) + list(ew)
        self.ys = np.concatenate([ry, ey]).astype(np.int64)
        self.spk = np.array([f"r{a:02d}" for a in ra] + [f"e{n[:2]}" for n in en])
        self.corpus = np.array(["ravdess"] * len(rw) + ["emodb"] * len(ew))
        self.gender = np.array([int(a % 2 == 1) for a in ra] + [int(n[:2] in EMODB_MALE) for n in en], np.int64)
        self.names = list(rn) + list(en)
        self.bounds = [voiced_bounds(w) for w in self.waves]
        self.feats = eval_features(self.waves, fx)[:, 0]            # [N, 64, 297] centre windows
        self.sums, self.counts = SN.stats_t(self.feats)              # clean per-clip contributions

    def idx(self, corpora=None, speakers=None, exclude=None):
        m = np.ones(len(self.ys), bool)
        if corpora is not None:
            m &= np.isin(self.corpus, corpora)
        if speakers is not None:
            m &= np.isin(self.spk, speakers)
        if exclude is not None:
            m &= ~np.isin(self.spk, exclude)
        return np.where(m)[0]


def split(run, C, corpora):
    """(train indices, test indices, scoring) of a run."""
    if run.startswith("fold"):
        k = int(run[4:])
        held = [f"r{a:02d}" for a in range(4 * k + 1, 4 * k + 5)] + [f"e{s}" for s in EMODB_PAIRS[k]]
        return C.idx(corpora, exclude=held), C.idx(corpora, speakers=held), "both"
    if run == "loco_r2e":
        return C.idx(["ravdess"]), C.idx(["emodb"]), "both"
    if run == "loco_e2r":
        te = C.idx(["ravdess"])
        return C.idx(["emodb"]), te[np.isin(C.ys[te], SHARED6)], "six"
    if run == "final":
        return C.idx(corpora), np.array([], np.int64), "both"
    raise SystemExit(f"unknown run {run}")


def make_hook(C, tr, prior, a):
    """Training-time speaker normalisation: each clip's profile pools a random number (0..ctx_max) of
    its speaker's other training clips (clean) with the augmented clip itself and the prior."""
    by_spk = {s: tr[C.spk[tr] == s] for s in np.unique(C.spk[tr])}
    prior_t = torch.from_numpy(prior)

    def hook(f, bi, rng):
        s_self, n_self = SN.stats_t(f)
        prof = []
        for j, i in enumerate(bi):
            cand = by_spk[C.spk[i]]
            cand = cand[cand != i]
            k = int(rng.integers(0, min(a.ctx_max, len(cand)) + 1))
            pick = rng.choice(cand, size=k, replace=False) if k else cand[:0]
            s = C.sums[pick].sum(0) + s_self[j] + a.prior_frames * prior_t
            n = C.counts[pick].sum() + n_self[j] + a.prior_frames
            prof.append(s / n)
        return SN.apply_t(f, torch.stack(prof), a.norm_bands)

    return hook


def normalised(C, te, prior, a, mode):
    """Held-out features normalised with `session` (all the speaker's held-out clips) or `cold`
    (the clip alone) profiles."""
    f = C.feats[te]
    if mode == "cold":
        s, n = C.sums[te], C.counts[te]
    else:
        s = torch.stack([C.sums[te][C.spk[te] == C.spk[i]].sum(0) for i in te])
        n = torch.stack([C.counts[te][C.spk[te] == C.spk[i]].sum() for i in te])
    prof = (s + a.prior_frames * torch.from_numpy(prior)) / (n[:, None] + a.prior_frames)
    return SN.apply_t(f, prof, a.norm_bands).unsqueeze(1)


def score(logits, y, corpus, scoring):
    r = {}
    rv = corpus == "ravdess"
    if rv.any() and scoring == "both":
        r["ravdess_acc8"] = round(float((logits[rv].argmax(1) == y[rv]).mean()), 4)
        r["ravdess_n"] = int(rv.sum())
    if rv.any() and scoring == "six":
        r["ravdess6"] = emodb_scores(logits[rv], y[rv])
    if (~rv).any():
        r["emodb6"] = emodb_scores(logits[~rv], y[~rv])
    return r


def main():
    ap = arg_parser()
    ap.add_argument("--ravdess", required=True)
    ap.add_argument("--corpora", default="ravdess,emodb", help="what fold and final runs train on")
    ap.add_argument("--runs", default="fold0,fold1,fold2,fold3,fold4,loco_r2e,loco_e2r,final")
    ap.add_argument("--speaker_norm", action="store_true")
    ap.add_argument("--prior_frames", type=float, default=600.0)
    ap.add_argument("--ctx_max", type=int, default=24)
    ap.add_argument("--norm_bands", type=int, default=64,
                    help="subtract the speaker profile from the lowest N mel bands only (64 = all)")
    a = ap.parse_args()
    assert a.emodb, "--emodb is required"
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "log.txt", "a")

    def log(s):
        print(s, flush=True); logf.write(s + "\n"); logf.flush()

    fx = FT.LogMel64Torch()
    C = Corpus(a.ravdess, a.emodb, fx)
    corpora = a.corpora.split(",")
    log(f"{len(C.ys)} clips, params {n_params(build(vars(a)))}, args {json.dumps(vars(a))}")
    for run in [r for r in a.runs.split(",") if r]:
        res = out / f"{run}.npz"
        if res.exists():
            log(f"{run}: done already"); continue
        tr, te, scoring = split(run, C, corpora)
        prior = (C.sums[tr].sum(0) / C.counts[tr].sum()).numpy()
        hook = make_hook(C, tr, prior, a) if a.speaker_norm else None
        model, secs = train_run(run, tr, C.waves, C.ys, a, out, fx, log, C.gender, C.bounds, hook)
        if run == "final":
            torch.save({"model": model.state_dict(), "secs": secs, "args": vars(a), "prior": prior,
                        "train_speakers": sorted(set(C.spk[tr]))}, out / "final.pt")
            log(json.dumps({"run": run, "n_train": int(len(tr)), "secs": round(secs)}))
            continue
        rec = {"run": run, "n_train": int(len(tr)), "n_test": int(len(te)), "secs": round(secs)}
        saved = {"y": C.ys[te], "idx": te, "spk": C.spk[te], "corpus": C.corpus[te], "prior": prior}
        modes = ["session", "cold"] if a.speaker_norm else ["plain"]
        for mode in modes:
            x = C.feats[te].unsqueeze(1) if mode == "plain" else normalised(C, te, prior, a, mode)
            lg = predict(model, x)
            saved[f"logits_{mode}"] = lg
            rec[mode] = score(lg, C.ys[te], C.corpus[te], scoring)
        np.savez(res, secs=secs, **saved)
        log(json.dumps(rec))


if __name__ == "__main__":
    main()
