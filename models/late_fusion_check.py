"""One-off analysis (issue #4 note): does the clinical vector add information the fusion model
misses? Combines the no-clinical image model with the clinical-only model as a product of experts
(p_img * p_clin / prior) and prints micro-accuracy next to each alone. Needs runs/no_clinical.pt,
runs/clinical_only.pt and the datasets from train.sh. Simulated studies only.

Usage (from models/): ../models/.venv/bin/python late_fusion_check.py
"""
import sys, json, numpy as np, torch
sys.path.insert(0, '.')
from train import load, splits, predict
from ismf_net import IsmfNet
torch.set_num_threads(1)
arrays, labels = load('data/internal'); ext, ext_labels = load('data/external')
parts = splits(len(labels))
def model(name):
    ck = torch.load(f'runs/{name}.pt', map_location='cpu')
    m = IsmfNet(use_sequences=ck['sequences'], use_clinical=ck['clinical']); m.load_state_dict(ck['state_dict']); return m
img, clin = model('no_clinical'), model('clinical_only')
prior = np.bincount(labels[parts['train']], minlength=5) / len(parts['train'])
for split, arr, lab, idx in [('internal_test', arrays, labels, parts['internal_test']), ('external_test', ext, ext_labels, np.arange(len(ext_labels)))]:
    pi, pc = predict(img, arr, idx), predict(clin, arr, idx)
    late = pi * pc / prior
    y = lab[idx]
    print(split, 'images', round(float((pi.argmax(1) == y).mean()), 4), 'clinical', round(float((pc.argmax(1) == y).mean()), 4), 'late fusion', round(float((late.argmax(1) == y).mean()), 4))
