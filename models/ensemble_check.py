"""One-off analysis (issue #4 note, model 1.2.0): does the fusion model use what the four
sequences carry? Compares each single-sequence model and the full model with a plain ensemble of
the four single-sequence models (sum of their log-probabilities) on the internal and external
tests. Needs runs/only_*.pt, runs/full.pt and the datasets from train.sh. Simulated studies only.

Usage (from models/): ../models/.venv/bin/python ensemble_check.py
"""
import sys

import numpy as np
import torch

sys.path.insert(0, ".")
from train import load, splits, predict  # noqa: E402
from ismf_net import IsmfNet  # noqa: E402

torch.set_num_threads(1)
arrays, labels = load("data/internal")
ext, ext_labels = load("data/external")
parts = splits(len(labels))
SINGLES = ["only_sag_t1w", "only_sag_t2w", "only_sag_t2fs", "only_ax_t2w"]


def model(name):
    ck = torch.load(f"runs/{name}.pt", map_location="cpu")
    m = IsmfNet(use_sequences=ck["sequences"], use_clinical=ck["clinical"])
    m.load_state_dict(ck["state_dict"])
    return m.eval()


models = {n: model(n) for n in SINGLES + ["full"]}
for split, arr, lab, idx in [("internal_test", arrays, labels, parts["internal_test"]),
                             ("external_test", ext, ext_labels, np.arange(len(ext_labels)))]:
    y = lab[idx]
    probs = {n: predict(m, arr, idx) for n, m in models.items()}
    acc = {n: round(float((p.argmax(1) == y).mean()), 4) for n, p in probs.items()}
    ensemble = sum(np.log(probs[n] + 1e-9) for n in SINGLES)
    print(split, acc, "ensemble of the singles", round(float((ensemble.argmax(1) == y).mean()), 4))
