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


if __name__ == "__main__":
    import sys

    x, y, n = load_fer(sys.argv[1] if len(sys.argv) > 1 else HERE / "../../../shared/datasets/fer2013/train")
    tr, va = split_indices(y)
    print(x.shape, np.bincount(y), len(tr), len(va), np.bincount(y[va]))
