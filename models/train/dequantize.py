"""Turn a statically quantized (QDQ) ONNX model back into a plain fp32 graph.

Why: the shipped expression model is int8 (QDQ). Its integer kernels pay off on CPUs with VNNI
(AVX-512 VNNI or AVX-VNNI) but on AVX2-only CPUs they can be slower than fp32 convolutions
(issue 16, measured 4.5-6 ms per face there). The daemon therefore ships both precisions and picks
the faster one at load time (emo-inference `precision.rs`). The fp32 file is derived from the int8
file, not from a separate training run, so both carry the same learnt weights:

- every DequantizeLinear whose input is an initializer (a quantized weight or bias) becomes a float
  initializer holding (q - zero_point) * scale, per channel where the scale is per channel;
- every QuantizeLinear -> DequantizeLinear pair on an activation becomes a Clip to the range the
  pair can represent: activations are no longer rounded to uint8 but still saturate where the int8
  graph saturates (the quantizer folded every ReLU into a zero point of 0, so this Clip is also
  the network's ReLU).

The weights are therefore bit-identical in value to what the int8 kernels use; only the activation
rounding differs, which is why the two files can disagree on a few borderline images. The
accuracy of each is measured on the same validation split (`check` below) and written to
models/metrics/expression_precisions.json.

Usage:
  python dequantize.py convert models/expression.onnx models/expression_fp32.onnx
  python dequantize.py check --data ../shared/datasets/fer2013 models/expression.onnx models/expression_fp32.onnx
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def convert(src, dst):
    m = onnx.load(str(src))
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    consts = {name: numpy_helper.to_array(t) for name, t in inits.items()}
    rename = {}  # tensor name -> name that replaces it
    keep = []
    new_inits = {}
    producers = {o: n for n in g.node for o in n.output}

    def axis_of(node):
        for a in node.attribute:
            if a.name == "axis":
                return a.i
        return 1

    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in consts:
            q = consts[n.input[0]].astype(np.float32)
            scale = consts[n.input[1]].astype(np.float32)
            zp = consts[n.input[2]].astype(np.float32) if len(n.input) > 2 and n.input[2] else np.zeros_like(scale)
            if scale.ndim == 1 and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis_of(n)] = -1
                scale, zp = scale.reshape(shape), zp.reshape(shape)
            new_inits[n.output[0]] = numpy_helper.from_array(((q - zp) * scale).astype(np.float32), n.output[0])
            continue
        if n.op_type == "DequantizeLinear":
            qnode = producers.get(n.input[0])
            if qnode is None or qnode.op_type != "QuantizeLinear":
                sys.exit(f"{src}: DequantizeLinear {n.name} is not fed by a QuantizeLinear")
            # The pair also saturates: uint8 with zero point 0 is how the quantizer folded each
            # ReLU away (the graph has no Relu nodes left). Keep that as a float Clip to the
            # pair's representable range, so only the rounding is dropped.
            scale = float(consts[qnode.input[1]])
            zp_t = consts[qnode.input[2]]
            info = np.iinfo(zp_t.dtype)
            zp = float(zp_t)
            lo_name, hi_name = n.output[0] + "_clip_min", n.output[0] + "_clip_max"
            new_inits[lo_name] = numpy_helper.from_array(np.array((info.min - zp) * scale, np.float32), lo_name)
            new_inits[hi_name] = numpy_helper.from_array(np.array((info.max - zp) * scale, np.float32), hi_name)
            keep.append(helper.make_node("Clip", [qnode.input[0], lo_name, hi_name], [n.output[0]], name=n.name + "_clip"))
            continue
        if n.op_type == "QuantizeLinear":
            continue
        keep.append(n)

    def resolve(name):
        while name in rename:
            name = rename[name]
        return name

    for n in keep:
        for i, name in enumerate(n.input):
            n.input[i] = resolve(name)
    for o in g.output:
        o.name = resolve(o.name)
    used = {i for n in keep for i in n.input}
    floats = [t for name, t in new_inits.items() if name in used]
    others = [t for name, t in inits.items() if name in used and name not in new_inits]
    graph = helper.make_graph(keep, g.name, list(g.input), list(g.output), others + floats)
    out = helper.make_model(graph, opset_imports=[o for o in m.opset_import if o.domain in ("", "ai.onnx")])
    out.ir_version = m.ir_version
    onnx.checker.check_model(out)
    onnx.save(out, str(dst))
    print(f"{dst}: {len(keep)} nodes, {len(floats)} float weights, sha256 {sha256(dst)}")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check(a):
    """Validation accuracy (plain and hflip TTA) of each file on the project's FER split, their top-1
    agreement, and single-thread latency of the TTA pair, interleaved so load skews both alike."""
    import onnxruntime as ort

    sys.path.insert(0, str(Path(__file__).parent))
    from fer_data import load_fer, split_indices

    x, y, _ = load_fer(a.data)
    _, va = split_indices(y)
    xv = ((x[va].astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]
    yv = y[va]
    res = {"split": "fer2013/train stratified 10%, seed 20261124", "n": int(len(yv))}
    preds = {}
    sessions = {}
    for path in a.models:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        sessions[path] = s
        lo = np.concatenate([s.run(None, {"input": xv[i : i + 256]})[0] for i in range(0, len(xv), 256)])
        lf = np.concatenate([s.run(None, {"input": xv[i : i + 256, :, :, ::-1].copy()})[0] for i in range(0, len(xv), 256)])
        preds[path] = (lo + lf).argmax(1)
        res[Path(path).name] = {
            "sha256": sha256(path),
            "accuracy_plain": round(float((lo.argmax(1) == yv).mean()), 4),
            "accuracy_tta": round(float(((lo + lf).argmax(1) == yv).mean()), 4),
        }
    names = list(a.models)
    if len(names) == 2:
        res["tta_top1_agreement"] = round(float((preds[names[0]] == preds[names[1]]).mean()), 4)
    pair = np.ascontiguousarray(np.concatenate([xv[:1], xv[:1, :, :, ::-1]]))
    lat = {p: [] for p in names}
    for _ in range(5):
        for p in names:
            s = sessions[p]
            for _ in range(20):
                s.run(None, {"input": pair})
            t = time.perf_counter()
            for _ in range(200):
                s.run(None, {"input": pair})
            lat[p].append((time.perf_counter() - t) / 200 * 1000)
    for p in names:
        res[Path(p).name]["tta_pair_ms_median"] = round(float(np.median(lat[p])), 3)
    res["cpu"] = cpu_name()
    res["onnxruntime"] = ort.__version__
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("convert")
    p.add_argument("src")
    p.add_argument("dst")
    p = sp.add_parser("check")
    p.add_argument("--data", required=True)
    p.add_argument("--out")
    p.add_argument("models", nargs="+")
    a = ap.parse_args()
    if a.cmd == "convert":
        convert(a.src, a.dst)
    else:
        check(a)


if __name__ == "__main__":
    main()
