#!/usr/bin/env python3
"""Time librosa.feature.mfcc on a WAV with EMO's feature parameters (the reference `emod bench`
compares its Rust MFCC against). Prints JSON: {"seconds": median per run, "runs": [seconds of each
timed run], "audio_seconds": …}.

    python3 librosa_mfcc.py FILE.wav [REPEATS]
"""
import json
import os
import sys
import time

# One core, like `emod bench` (numpy/scipy would otherwise use every core for the FFTs).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import librosa
import numpy as np
import soundfile as sf

path = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
y, sr = sf.read(path, dtype="float32")
kw = dict(sr=sr, n_mfcc=40, n_fft=512, hop_length=160, win_length=400, window="hann", center=False,
          power=2.0, n_mels=64, fmin=50.0, fmax=8000.0)
librosa.feature.mfcc(y=y, **kw)  # warm-up (filterbank cache, FFT plans)
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    librosa.feature.mfcc(y=y, **kw)
    times.append(time.perf_counter() - t0)
print(json.dumps({"seconds": float(np.median(times)), "runs": times, "audio_seconds": len(y) / sr}))
