"""onnxruntime on the same stored inputs as `ismf bench`: model-only latency.

Usage: python ort_peer.py MODEL.onnx DATASET_DIR THREADS RUNS
DATASET_DIR is `ismf dataset --studies 1 --seed 77` output (row 0 = the study `ismf bench` runs).
Prints one JSON line: median and p90 ms after a warm-up run, session load ms, probabilities.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, data, threads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
feeds = {k: np.load(f"{data}/{k}.npy")[:1] for k in ["sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w", "clinical"]}
t = time.perf_counter()
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
load_ms = (time.perf_counter() - t) * 1e3
probs = session.run(None, feeds)[0][0]
times = []
for _ in range(runs):
    t = time.perf_counter()
    session.run(None, feeds)
    times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({"median_ms": times[len(times) // 2], "p90_ms": times[int(0.9 * (len(times) - 1) + 0.5)],
                  "load_ms": load_ms, "probabilities": [float(p) for p in probs]}))
