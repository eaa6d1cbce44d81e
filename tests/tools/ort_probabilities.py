"""Runs ONNX files in onnxruntime (CPU) on the tensors `ismf dataset` wrote and prints one JSON
object: {file: [[p_SCN, ...], ...]} with a row per study. Used by tests/it/export_onnx.rs.

    python ort_probabilities.py DATASET_DIR MODEL.onnx [MODEL.onnx ...]
"""
import json
import sys

import numpy as np
import onnxruntime as ort

NAMES = ["sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w", "clinical"]


def main():
    data, models = sys.argv[1], sys.argv[2:]
    arrays = {n: np.load(f"{data}/{n}.npy") for n in NAMES}
    options = ort.SessionOptions()
    options.log_severity_level = 3  # fp16 graphs log a warning per op without a CPU fp16 kernel
    out = {}
    for path in models:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        rows = []
        for i in range(arrays["clinical"].shape[0]):
            feed = {n: arrays[n][i:i + 1].astype(np.float32) for n in NAMES}
            rows.append(session.run(None, feed)[0][0].astype(float).tolist())
        out[path] = rows
    print(json.dumps(out))


if __name__ == "__main__":
    main()
