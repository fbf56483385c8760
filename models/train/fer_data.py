"""FER-2013 loading and the fixed stratified validation split.

Images are decoded once into a uint8 array and cached under models/train/cache/ (gitignored).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SPLIT_SEED = 20261124
VAL_FRACTION = 0.10
HERE = Path(__file__).resolve().parent


def load_fer(root: str | os.PathLike, cache_dir: str | os.PathLike = HERE / "cache"):
    """Return (images uint8 [N,48,48], labels int64 [N], names list[str]), sorted by class then file name."""
    root = Path(root)
    cache = Path(cache_dir) / "fer2013_train_u8.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return z["x"], z["y"], list(z["names"])
    from PIL import Image

    xs, ys, names = [], [], []
    for ci, c in enumerate(LABELS):
        for f in sorted((root / c).glob("*.jpg")):
            im = Image.open(f).convert("L")
            if im.size != (48, 48):
                im = im.resize((48, 48), Image.BILINEAR)
            xs.append(np.asarray(im, dtype=np.uint8))
            ys.append(ci)
            names.append(f"{c}/{f.name}")
    x = np.stack(xs)
    y = np.asarray(ys, dtype=np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, y=y, names=np.asarray(names))
    return x, y, names


def split_indices(y: np.ndarray, seed: int = SPLIT_SEED, frac: float = VAL_FRACTION):
    """Stratified 10% validation split with a fixed seed. Returns (train_idx, val_idx)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, va = train_test_split(idx, test_size=frac, random_state=seed, stratify=y, shuffle=True)
    return np.sort(tr), np.sort(va)


def link_validation(root, out_dir) -> int:
    """Symlink the validation split's images into OUT/<class>/ so that the Rust side
    (`emod eval faces|fusion --faces OUT`) reads exactly the split the cards report. Links, not
    copies: dataset files never enter the repository (../shared/datasets/README.md)."""
    root, out = Path(root).resolve(), Path(out_dir)
    _, y, names = load_fer(root)
    _, va = split_indices(y)
    for i in va:
        dst = out / names[i]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(root / names[i])
    return len(va)


if __name__ == "__main__":
    import sys

    # fer_data.py [FER_TRAIN_DIR] [--link-validation OUT_DIR]
    args = [a for a in sys.argv[1:] if a != "--link-validation"]
    root = args[0] if args else HERE / "../../../shared/datasets/fer2013/train"
    if "--link-validation" in sys.argv:
        print(link_validation(root, args[1]), "validation images linked into", args[1])
    else:
        x, y, n = load_fer(root)
        tr, va = split_indices(y)
        print(x.shape, np.bincount(y), len(tr), len(va), np.bincount(y[va]))
