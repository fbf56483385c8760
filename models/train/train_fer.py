"""Train the EMO expression model on FER-2013 train (10% stratified validation carved out).

    python3 models/train/train_fer.py --data ../shared/datasets/fer2013/train --out models/train/runs/fer

Resumes automatically from <out>/last.pt. Writes <out>/best.pt (best validation accuracy with hflip
TTA), <out>/log.jsonl, <out>/val_logits_best.npz (plain and flipped validation logits of best.pt) and,
with --ema, <out>/ema.pt (the exponential moving average of the weights when training ends; decide
before training which of last.pt and ema.pt to export, not by comparing their validation scores).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fer_data import LABELS, load_fer, split_indices  # noqa: E402
from fer_model import build, n_params  # noqa: E402


def seed_all(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def normalise(x_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,48,48] -> float [B,1,48,48], pixel/255 then (x-0.5)/0.5 (the shipped contract)."""
    return (x_u8.float().unsqueeze(1) / 255.0 - 0.5) / 0.5


def augment(x: torch.Tensor, g: torch.Generator, a) -> torch.Tensor:
    """Batched augmentation on normalised images [B,1,48,48] in [-1,1]."""
    B = x.shape[0]
    dev = x.device
    u = lambda lo, hi: torch.rand(B, generator=g) * (hi - lo) + lo  # noqa: E731
    ang = u(-a.rot, a.rot) * math.pi / 180
    sc = u(1 - a.scale, 1 + a.scale)
    tx, ty = u(-a.shift, a.shift), u(-a.shift, a.shift)
    flip = torch.where(torch.rand(B, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    ).to(dev)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # brightness / contrast (in [0,1] space equivalent)
    c = u(1 - a.contrast, 1 + a.contrast).view(B, 1, 1, 1)
    b = u(-a.bright, a.bright).view(B, 1, 1, 1) * 2
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - m) * c + m + b).clamp(-1, 1)
    # random erasing (one rectangle, probability p), filled with uniform noise
    if a.erase_p > 0:
        H = W = x.shape[-1]
        area = u(0.02, 0.25) * H * W
        logr = u(math.log(0.3), math.log(3.3))
        r = torch.exp(logr)
        h = torch.sqrt(area * r).clamp(1, H).floor()
        w = torch.sqrt(area / r).clamp(1, W).floor()
        y0 = (torch.rand(B, generator=g) * (H - h + 1)).floor()
        x0 = (torch.rand(B, generator=g) * (W - w + 1)).floor()
        on = (torch.rand(B, generator=g) < a.erase_p).float()
        ar = torch.arange(H).float()
        my = (ar.view(1, H) >= y0.view(B, 1)) & (ar.view(1, H) < (y0 + h).view(B, 1))
        mx = (ar.view(1, W) >= x0.view(B, 1)) & (ar.view(1, W) < (x0 + w).view(B, 1))
        mask = (my.view(B, H, 1) & mx.view(B, 1, W)).float() * on.view(B, 1, 1)
        mask = mask.unsqueeze(1)
        noise = torch.rand(x.shape, generator=g) * 2 - 1
        x = x * (1 - mask) + noise * mask
    return x


def mix_batch(x: torch.Tensor, target: torch.Tensor, kind: str, alpha: float, g: torch.Generator):
    """Mix each image with a random partner (mixup: blend; cutmix: paste a box), targets likewise.

    One weight per batch, drawn from Beta(alpha, alpha); for cutmix it is recomputed from the box
    actually pasted (clipped at the border), so the target matches the pixels.
    """
    B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    perm = torch.randperm(B, generator=g)
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    if kind == "mixup":
        return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]
    cut = math.sqrt(1 - lam)
    h, w = int(H * cut), int(W * cut)
    cy, cx = int(torch.randint(H, (1,), generator=g)), int(torch.randint(W, (1,), generator=g))
    y0, y1 = max(cy - h // 2, 0), min(cy + h // 2, H)
    x0, x1 = max(cx - w // 2, 0), min(cx + w // 2, W)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (H * W)
    return x, lam * target + (1 - lam) * target[perm]


@torch.no_grad()
def predict(model, x_u8: torch.Tensor, bs=512):
    """Return (plain logits, hflip logits) as float32 numpy."""
    model.eval()
    outs, outs_f = [], []
    for i in range(0, len(x_u8), bs):
        xb = normalise(x_u8[i : i + bs])
        outs.append(model(xb).float())
        outs_f.append(model(torch.flip(xb, dims=[3])).float())
    return torch.cat(outs).numpy(), torch.cat(outs_f).numpy()


def onnx_float_tensors(path):
    """Name -> float32 array of every weight in an exported model, fp32 or int8 (QDQ).

    In a quantized model the weights are produced by DequantizeLinear nodes; they are dequantized
    here ((q - zero_point) * scale, per channel along the node's axis), which is what ONNX Runtime
    multiplies with, so a quantized shipped model can still seed --init_onnx or teach --kd_onnx.
    """
    import onnx
    from onnx import helper, numpy_helper

    g = onnx.load(path).graph
    t = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in t:
            q = t[n.input[0]].astype(np.float32)
            sc = t[n.input[1]].astype(np.float32)
            zp = t[n.input[2]].astype(np.float32) if len(n.input) > 2 and n.input[2] else np.float32(0)
            axis = next((helper.get_attribute_value(at) for at in n.attribute if at.name == "axis"), 1)
            if sc.ndim == 1 and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                sc, zp = sc.reshape(shape), np.reshape(zp, shape) if np.ndim(zp) else zp
            t[n.output[0]] = (q - zp) * sc
    return g, t


def load_fused_onnx(model, path):
    """Load an exported VGGNet whose BatchNorms were folded into the convolutions.

    Each conv gets the folded weight; its BatchNorm becomes the identity (mean 0, var 1-eps, gamma 1)
    plus the folded bias as beta, so model.eval() computes exactly the ONNX function (for an int8
    model: the function with dequantized weights and float activations).
    """
    g, init = onnx_float_tensors(path)
    convs = [n for n in g.node if n.op_type == "Conv"]
    gemm = [n for n in g.node if n.op_type == "Gemm"]
    conv_bn = []
    mods = list(model.modules())
    for i, m in enumerate(mods):
        if isinstance(m, torch.nn.Conv2d):
            bn = mods[i + 1]
            assert isinstance(bn, torch.nn.BatchNorm2d), "expected conv -> BN"
            conv_bn.append((m, bn))
    assert len(conv_bn) == len(convs) and len(gemm) == 1, (len(conv_bn), len(convs))
    with torch.no_grad():
        for (conv, bn), node in zip(conv_bn, convs):
            w, b = init[node.input[1]], init[node.input[2]]
            assert tuple(conv.weight.shape) == w.shape, (conv.weight.shape, w.shape)
            conv.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32)))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float32)))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        model.fc.weight.copy_(torch.from_numpy(np.array(init[gemm[0].input[1]], dtype=np.float32)))
        model.fc.bias.copy_(torch.from_numpy(np.array(init[gemm[0].input[2]], dtype=np.float32)))


@torch.no_grad()
def unfold_bn(model, x_u8: torch.Tensor, n=4096, bs=512):
    """Turn the identity BatchNorms left by `load_fused_onnx` back into trainable ones, exactly.

    For each conv output z (no bias) with folded bias b, set running mean/var to the statistics of z
    on `n` training images, gamma = sqrt(var + eps) and beta = mean + b: in eval mode the layer still
    computes z + b, and in train mode batch statistics give nearly the same function, so the network
    can be fine-tuned with ordinary BatchNorm (and a normal learning rate) instead of --freeze_bn.
    Layers are done in order, because each one's statistics depend on the layers before it.
    """
    model.eval()
    mods = list(model.modules())
    pairs = [(m, mods[i + 1]) for i, m in enumerate(mods) if isinstance(m, torch.nn.Conv2d)]
    xs = x_u8[torch.randperm(len(x_u8), generator=torch.Generator().manual_seed(0))[:n]]
    for conv, bn in pairs:
        s1 = s2 = None
        cnt = 0

        def hook(_m, _i, out):
            nonlocal s1, s2, cnt
            z = out.double()
            s1 = z.sum((0, 2, 3)) if s1 is None else s1 + z.sum((0, 2, 3))
            s2 = (z * z).sum((0, 2, 3)) if s2 is None else s2 + (z * z).sum((0, 2, 3))
            cnt += z.shape[0] * z.shape[2] * z.shape[3]

        h = conv.register_forward_hook(hook)
        for i in range(0, len(xs), bs):
            model(normalise(xs[i : i + bs]))
        h.remove()
        mean = s1 / cnt
        var = (s2 / cnt - mean * mean).clamp_min(1e-8)
        b = bn.bias.double().clone()
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_(var.float())
        bn.weight.copy_(torch.sqrt(var + bn.eps).float())
        bn.bias.copy_((mean + b).float())


def save_last(model, ema, opt, ep, best, a, used_s, ck):
    """Atomically write the resumable checkpoint (a crash mid-write leaves the previous one)."""
    tmp = ck.with_suffix(".pt.tmp")
    torch.save({"model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                "opt": opt.state_dict(), "epoch": ep, "best": best,
                "torch_rng": torch.get_rng_state(), "arch": a.arch, "used_s": used_s}, tmp)
    os.replace(tmp, ck)


@torch.no_grad()
def ema_update(ema, model, decay):
    """Weights and BatchNorm statistics of `ema` move towards `model` (timm's ModelEmaV2 rule).

    Averaging the late, noisy SGD iterates is a free ensemble: the exported network has the same
    shape and cost, unlike test-time augmentation.
    """
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.mul_(decay).add_(m.detach(), alpha=1 - decay)
        else:
            e.copy_(m)


def lr_at(step, total, warm, peak, final_frac=0.0):
    if step < warm:
        return peak * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return peak * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "runs" / "fer"))
    ap.add_argument("--arch", default="vgg_s2233")
    ap.add_argument("--epochs", type=int, default=26)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--warmup_epochs", type=float, default=1.0)
    ap.add_argument("--label_smoothing", type=float, default=0.1)
    ap.add_argument("--rot", type=float, default=12.0)
    ap.add_argument("--scale", type=float, default=0.12)
    ap.add_argument("--shift", type=float, default=0.12)
    ap.add_argument("--contrast", type=float, default=0.3)
    ap.add_argument("--bright", type=float, default=0.1)
    ap.add_argument("--erase_p", type=float, default=0.5)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (slower on CPUs without avx512_bf16/AMX)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time_budget_min", type=float, default=0,
                    help="if >0: the LR schedule follows elapsed wall time (warmup+cosine over the budget) and "
                         "training stops when the budget is used; --epochs is then only an upper bound")
    ap.add_argument("--eval_every", type=int, default=1,
                    help="validate every N epochs until the last quarter of the schedule, then every epoch "
                         "(validation costs about a fifth of an epoch on 2 cores)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="if >0: keep an exponential moving average of the weights with this per-step decay "
                         "(0.999 = a horizon of about five epochs) and write it to <out>/ema.pt")
    ap.add_argument("--channels_last", action="store_true", help="NHWC activations (faster oneDNN convs on some CPUs)")
    ap.add_argument("--bench_seconds", type=float, default=0, help="only measure training throughput")
    ap.add_argument("--init_onnx", default="",
                    help="start from an exported model (e.g. models/expression.onnx of the same --arch): "
                         "fine-tuning a shipped model when its checkpoint is gone")
    ap.add_argument("--freeze_bn", action="store_true",
                    help="keep BatchNorm layers in eval mode (needed after --init_onnx: the export folded "
                         "BN into the convolutions, so batch statistics would change the function)")
    ap.add_argument("--unfold_bn", action="store_true",
                    help="after --init_onnx: rebuild trainable BatchNorms that compute the same function "
                         "(see unfold_bn) instead of freezing them")
    ap.add_argument("--kd_onnx", nargs="+", default=[],
                    help="distil from these exported models of the same --arch (e.g. the shipped "
                         "models/expression.onnx); with several, the teacher is their ensemble (mean logits). "
                         "The teachers see the same augmented batch as the student")
    ap.add_argument("--kd_tta", action="store_true",
                    help="the teacher's logits are the mean over the image and its mirror image")
    ap.add_argument("--kd_alpha", type=float, default=0.7, help="weight of the distillation term (rest: labels)")
    ap.add_argument("--kd_T", type=float, default=2.0, help="softmax temperature of the distillation term")
    ap.add_argument("--mix", choices=["none", "mixup", "cutmix"], default="none",
                    help="mix pairs of augmented images (teachers, if any, see the mixed image: "
                         "'consistent teaching'); the label term uses the mixed one-hot targets")
    ap.add_argument("--mix_p", type=float, default=0.5, help="fraction of batches that are mixed")
    ap.add_argument("--mix_alpha", type=float, default=1.0, help="Beta(alpha, alpha) of the mixing weight")
    a = ap.parse_args()
    if a.unfold_bn and not a.init_onnx:
        ap.error("--unfold_bn only applies to a model loaded with --init_onnx")
    if a.unfold_bn and a.freeze_bn:
        ap.error("--unfold_bn and --freeze_bn exclude each other (trainable vs frozen BatchNorms)")
    if (a.kd_tta or any(x.startswith(("--kd_alpha", "--kd_T")) for x in sys.argv[1:])) and not a.kd_onnx:
        ap.error("--kd_tta/--kd_alpha/--kd_T need a teacher: --kd_onnx FILE")
    for opt, files in (("init_onnx", [a.init_onnx]), ("kd_onnx", a.kd_onnx)):
        for f in files:
            if f and not Path(f).is_file():
                ap.error(f"--{opt} {f}: no such file")
    if not 0 <= a.mix_p <= 1 or a.mix_alpha <= 0:
        ap.error("--mix_p must be in [0, 1] and --mix_alpha > 0")

    torch.set_num_threads(a.threads)
    seed_all(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    x, y, _ = load_fer(a.data)
    tr, va = split_indices(y)
    xtr, ytr = torch.from_numpy(x[tr]), torch.from_numpy(y[tr])
    xva, yva = torch.from_numpy(x[va]), y[va]

    model = build(a.arch)
    if a.init_onnx and not (Path(a.out) / "last.pt").exists():
        load_fused_onnx(model, a.init_onnx)
        print(f"initialised from {a.init_onnx} (BN folded into the convolutions)", flush=True)
        if a.unfold_bn:
            before = predict(model, xva[:512])[0]
            unfold_bn(model, xtr)
            diff = float(np.abs(predict(model, xva[:512])[0] - before).max())
            print(f"BatchNorm unfolded; eval-mode logits moved by at most {diff:.2e}", flush=True)
    mfmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=mfmt)
    teachers = []
    if a.kd_onnx:
        ens_p = ens_f = 0
        for f in a.kd_onnx:
            t_ = build(a.arch)
            load_fused_onnx(t_, f)
            t_ = t_.to(memory_format=mfmt).eval()
            for p_ in t_.parameters():
                p_.requires_grad_(False)
            tp, tf = predict(t_, xva)
            ens_p, ens_f = ens_p + tp, ens_f + tf
            print(f"teacher {f}: val acc {(tp.argmax(1) == yva).mean():.4f}, "
                  f"with hflip {((tp + tf).argmax(1) == yva).mean():.4f}", flush=True)
            teachers.append(t_)
        if len(teachers) > 1:
            print(f"teacher ensemble: val acc {(ens_p.argmax(1) == yva).mean():.4f}, "
                  f"with hflip {((ens_p + ens_f).argmax(1) == yva).mean():.4f}", flush=True)
    ema = None
    if a.ema > 0:
        import copy

        ema = copy.deepcopy(model).eval()
        for p_ in ema.parameters():
            p_.requires_grad_(False)
    decay, no_decay = [], []
    for n_, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = len(tr) // a.bs
    total = steps_per_epoch * a.epochs
    warm = int(a.warmup_epochs * steps_per_epoch)
    start_epoch, best, used_s = 0, -1.0, 0.0
    ck = out / "last.pt"
    if ck.exists() and not a.bench_seconds:
        s = torch.load(ck, map_location="cpu", weights_only=False)
        model.load_state_dict(s["model"])
        if ema is not None:  # a checkpoint from a run without --ema starts the average at its weights
            ema.load_state_dict(s["ema"] if s.get("ema") is not None else s["model"])
        opt.load_state_dict(s["opt"])
        start_epoch, best, used_s = s["epoch"] + 1, s["best"], s.get("used_s", 0.0)
        torch.set_rng_state(s["torch_rng"])
        print(f"resumed from {ck} at epoch {start_epoch}, best {best:.4f}", flush=True)
    print(f"arch {a.arch} params {n_params(model)} train {len(tr)} val {len(va)} epochs {a.epochs}", flush=True)
    (out / "args.json").write_text(json.dumps(vars(a), indent=1))

    t_start = time.time()
    budget_s = a.time_budget_min * 60
    stop = False
    last_ep = start_epoch - 1
    for ep in range(start_epoch, a.epochs):
        if stop:
            break
        last_ep = ep
        model.train()
        if a.freeze_bn:
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()
        g = torch.Generator().manual_seed(a.seed * 1000 + ep)
        perm = torch.randperm(len(tr), generator=g)
        t0 = time.time()
        tl, tc, tn = 0.0, 0, 0
        for i in range(steps_per_epoch):
            step = ep * steps_per_epoch + i
            if budget_s > 0:
                p = (used_s + time.time() - t_start) / budget_s
                if p >= 1.0:
                    stop = True
                    break
                lr = lr_at(int(p * 100000), 100000, int(a.warmup_epochs * 100000 / a.epochs), a.lr)
            else:
                lr = lr_at(step, total, warm, a.lr)
            for pg in opt.param_groups:
                pg["lr"] = lr
            idx = perm[i * a.bs : (i + 1) * a.bs]
            xb = augment(normalise(xtr[idx]), g, a).contiguous(memory_format=mfmt)
            yb = ytr[idx]
            target = F.one_hot(yb, len(LABELS)).float()
            if a.mix != "none" and torch.rand(1, generator=g).item() < a.mix_p:
                xb, target = mix_batch(xb, target, a.mix, a.mix_alpha, g)
                xb = xb.contiguous(memory_format=mfmt)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=a.label_smoothing)
            if teachers:
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                    tin = torch.cat([xb, torch.flip(xb, dims=[3])]) if a.kd_tta else xb
                    tout = sum(t_(tin).float() for t_ in teachers) / len(teachers)
                    tlog = 0.5 * (tout[: len(xb)] + tout[len(xb) :]) if a.kd_tta else tout
                kd = F.kl_div(F.log_softmax(logits.float() / a.kd_T, 1), F.log_softmax(tlog / a.kd_T, 1),
                              reduction="batchmean", log_target=True) * a.kd_T**2
                loss = (1 - a.kd_alpha) * loss + a.kd_alpha * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema_update(ema, model, min(a.ema, (1 + step) / (10 + step)))
            tl += loss.item() * len(yb)
            tc += (logits.argmax(1) == yb).sum().item()  # on a mixed batch: against the first image's label
            tn += len(yb)
            if a.bench_seconds and time.time() - t0 > a.bench_seconds:
                print(f"bench: {tn / (time.time() - t0):.1f} img/s ({tn} imgs)", flush=True)
                return
        ttrain = time.time() - t0
        rec = {"epoch": ep, "lr": opt.param_groups[0]["lr"], "steps": tn // a.bs, "partial": stop}
        if tn:  # a budget that runs out at an epoch boundary leaves a last "epoch" with no steps
            rec.update(train_loss=tl / tn, train_acc=tc / tn, train_s=round(ttrain, 1), img_s=round(tn / ttrain, 1))
        progress = (used_s + time.time() - t_start) / budget_s if budget_s > 0 else (ep + 1) / a.epochs
        validate = stop or (ep + 1) % a.eval_every == 0 or progress >= 0.75 or ep + 1 >= a.epochs
        if validate:
            lp, lf = predict(model, xva)
            acc = float((lp.argmax(1) == yva).mean())
            acc_tta = float(((lp + lf).argmax(1) == yva).mean())
            if ema is not None:
                ep_, ef = predict(ema, xva)
                rec.update(ema_val_acc=float((ep_.argmax(1) == yva).mean()),
                           ema_val_acc_tta=float(((ep_ + ef).argmax(1) == yva).mean()))
            rec.update(val_acc=acc, val_acc_tta=acc_tta, eval_s=round(time.time() - t0 - ttrain, 1))
        rec["utc"] = time.strftime("%H:%M:%S", time.gmtime())
        print(json.dumps(rec), flush=True)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        if validate and acc_tta > best:
            best = acc_tta
            torch.save({"model": model.state_dict(), "arch": a.arch, "epoch": ep, "val_acc": acc,
                        "val_acc_tta": acc_tta}, out / "best.pt")
            np.savez(out / "val_logits_best.npz", plain=lp, flip=lf, y=yva, val_idx=va)
        save_last(model, ema, opt, ep, best, a, used_s + time.time() - t_start, ck)
    if ema is not None and not a.bench_seconds:
        torch.save({"model": ema.state_dict(), "arch": a.arch, "epoch": last_ep, "ema_decay": a.ema}, out / "ema.pt")
    print(f"done; best val acc (tta) {best:.4f}", flush=True)


if __name__ == "__main__":
    main()
