"""Trains ISMF-Net on tensors written by `ismf dataset` (simulated studies only).

Usage: python train.py DATASET_DIR [--epochs N] [--batch B] [--seed S] [--out FILE.pt]

Splits the internal-site dataset 7:1:2 (train / validation / internal test) with a fixed seed,
trains with AdamW, keeps the weights with the best validation accuracy, and prints per-epoch
loss and validation accuracy, then the internal-test accuracy and confusion matrix. Every number
it prints is a simulator number, not a clinical one.
"""

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from ismf_net import CLASSES, SEQUENCES, IsmfNet


def load(directory):
    arrays = {k: np.load(f"{directory}/{k}.npy", mmap_mode="r") for k in SEQUENCES}
    arrays["clinical"] = np.load(f"{directory}/clinical.npy")
    labels = np.load(f"{directory}/labels.npy")
    return arrays, labels


def batch(arrays, labels, idx):
    xs = {k: torch.from_numpy(np.ascontiguousarray(arrays[k][idx])) for k in SEQUENCES}
    xs["clinical"] = torch.from_numpy(arrays["clinical"][idx])
    return xs, torch.from_numpy(labels[idx])


@torch.no_grad()
def evaluate(model, arrays, labels, idx, size=32):
    model.eval()
    preds = []
    for i in range(0, len(idx), size):
        xs, _ = batch(arrays, labels, idx[i:i + size])
        preds.append(model(**xs).argmax(1).numpy())
    pred = np.concatenate(preds) if preds else np.array([], dtype=int)
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    for t, p in zip(labels[idx], pred):
        confusion[t, p] += 1
    return float((pred == labels[idx]).mean()) if len(idx) else float("nan"), confusion


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="ismf-net.pt")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    arrays, labels = load(args.dataset)
    n = len(labels)
    order = np.random.default_rng(args.seed).permutation(n)
    train, val, test = np.split(order, [int(0.7 * n), int(0.8 * n)])
    model = IsmfNet()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=args.epochs * ((len(train) + args.batch - 1) // args.batch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    best, best_state = -1.0, None
    rng = np.random.default_rng(args.seed + 1)
    for epoch in range(args.epochs):
        model.train()
        t, total, seen = time.time(), 0.0, 0
        rng.shuffle(train)
        for i in range(0, len(train), args.batch):
            # Sorted indices read the memory-mapped arrays in file order.
            idx = np.sort(train[i:i + args.batch])
            xs, y = batch(arrays, labels, idx)
            loss = loss_fn(model(**xs), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        acc, _ = evaluate(model, arrays, labels, val)
        print(json.dumps({"epoch": epoch + 1, "train_loss": round(total / seen, 4), "val_accuracy": round(acc, 4), "seconds": round(time.time() - t, 1)}), flush=True)
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    acc, confusion = evaluate(model, arrays, labels, test)
    print(json.dumps({"split": {"train": len(train), "val": len(val), "test": len(test)}, "best_val_accuracy": round(best, 4),
                      "internal_test_accuracy": round(acc, 4), "confusion_rows_true_cols_pred": confusion.tolist(), "classes": CLASSES}))
    torch.save(model.state_dict(), args.out)


if __name__ == "__main__":
    main()
