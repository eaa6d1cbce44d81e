"""Trains ISMF-Net (or one ablation) on tensors written by `ismf dataset`, and evaluates it.

Usage:
  python train.py --data INTERNAL_DIR --external EXTERNAL_DIR --out RUN.pt
                  [--epochs N] [--batch B] [--seed S] [--sequences sag_t1w,...] [--no-clinical]

The internal-site dataset is split 7:1:2 (train / validation / internal test) with a fixed seed,
as in the paper; the external-site dataset (other simulator seeds, other site) is the external
test. Training uses AdamW with a one-cycle schedule, label smoothing and augmentations that a
real scanner could produce (small shifts, intensity gain and offset, left-right mirroring); the
weights with the best validation accuracy are kept. Writes RUN.pt (state dict and options) and
RUN.json (per-epoch log, evaluation of validation / internal test / external test).

Every number it prints is a simulator number, never a clinical one.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

from ismf_net import CLASSES, SEQUENCES, IsmfNet, count_macs

SPLIT_SEED = 7  # the 7:1:2 split is the same for every run, so ablations share test studies


def load(directory):
    arrays = {k: np.load(os.path.join(directory, f"{k}.npy"), mmap_mode="r") for k in SEQUENCES}
    arrays["clinical"] = np.load(os.path.join(directory, "clinical.npy"))
    return arrays, np.load(os.path.join(directory, "labels.npy"))


def splits(n):
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    train, val, test = np.split(order, [int(0.7 * n), int(0.8 * n)])
    return {"train": np.sort(train), "validation": np.sort(val), "internal_test": np.sort(test)}


def batch(arrays, idx, sequences=SEQUENCES):
    """Inputs of rows `idx`; sequences a model does not use are zeros (never read from disk)."""
    xs = {k: torch.from_numpy(np.ascontiguousarray(arrays[k][idx])) if k in sequences
          else torch.zeros((len(idx),) + arrays[k].shape[1:]) for k in SEQUENCES}
    xs["clinical"] = torch.from_numpy(np.ascontiguousarray(arrays["clinical"][idx]))
    return xs


def augment(xs, rng, sequences=SEQUENCES, shift=8):
    """Shifts of up to ±8 pixels (one shift for the three sagittal series, which share a geometry,
    another for the axial; edges are zero-filled), per-series gain 0.9–1.1 and offset ±0.1 on the
    z-scored intensities, and left-right mirroring (the sagittal plane order and the axial columns
    together). Vectorised over the batch: a per-sample Python loop cost more than the model."""
    n, _, h, w = xs["sag_t1w"].shape
    shifts = {"sag": rng.integers(-shift, shift + 1, (n, 2)), "ax": rng.integers(-shift, shift + 1, (n, 2))}
    mirror = rng.random(n) < 0.5
    for k in sequences:
        x = xs[k].numpy()
        padded = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
        s = shifts["ax" if k == "ax_t2w" else "sag"]
        out = np.stack([padded[i, :, shift + dy:shift + dy + h, shift + dx:shift + dx + w] for i, (dy, dx) in enumerate(s)])
        if k == "ax_t2w":
            out[mirror] = out[mirror][:, :, :, ::-1]
        else:
            out[mirror] = out[mirror][:, ::-1]
        gain = rng.uniform(0.9, 1.1, (n, 1, 1, 1)).astype(np.float32)
        offset = rng.uniform(-0.1, 0.1, (n, 1, 1, 1)).astype(np.float32)
        xs[k] = torch.from_numpy(np.ascontiguousarray(out * gain + offset))
    return xs


def to(xs, device):
    return {k: v.to(device, non_blocking=True) for k, v in xs.items()}


@torch.no_grad()
def predict(model, arrays, idx, size=64):
    model.eval()
    device = next(model.parameters()).device
    out = [torch.softmax(model(**to(batch(arrays, idx[i:i + size], model.use_sequences), device)).float(), 1).cpu().numpy()
           for i in range(0, len(idx), size)]
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def metrics(labels, probs, seed=0, resamples=2000):
    """Micro-accuracy with a 95 % percentile-bootstrap CI, per-class precision / recall / F1,
    and the confusion matrix (rows true, columns predicted)."""
    pred = probs.argmax(1)
    correct = pred == labels
    rng = np.random.default_rng(seed)
    boot = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(resamples)]
    k = len(CLASSES)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for c, name in enumerate(CLASSES):
        tp = confusion[c, c]
        p = tp / confusion[:, c].sum() if confusion[:, c].sum() else 0.0
        r = tp / confusion[c].sum() if confusion[c].sum() else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class[name] = {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f1), 4),
                           "support": int(confusion[c].sum())}
    return {"n": int(len(labels)), "micro_accuracy": round(float(correct.mean()), 4),
            "ci95": [round(float(np.percentile(boot, 2.5)), 4), round(float(np.percentile(boot, 97.5)), 4)],
            "per_class": per_class, "confusion": confusion.tolist()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="internal-site dataset (ismf dataset --site internal)")
    ap.add_argument("--external", required=True, help="external-site dataset (ismf dataset --site external)")
    ap.add_argument("--out", required=True, help="RUN.pt; RUN.json is written beside it")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sequences", default=",".join(SEQUENCES))
    ap.add_argument("--no-clinical", action="store_true")
    ap.add_argument("--aux-weight", type=float, default=1.0,
                    help="weight of the per-sequence heads' mean loss (multi-sequence models only)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--amp", choices=["bf16", "none"], default="bf16",
                    help="bfloat16 autocast for training steps (2x faster on CPUs with AVX512-BF16; "
                         "weights, evaluation and export stay float32)")
    ap.add_argument("--device", default="cpu",
                    help="cpu (the documented path) or cuda (a lent GPU machine: models/device-train.sh)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    sequences = tuple(s for s in args.sequences.split(",") if s)
    unknown = set(sequences) - set(SEQUENCES)
    if unknown:
        raise SystemExit(f"unknown sequence(s) {sorted(unknown)}; known: {SEQUENCES}")

    arrays, labels = load(args.data)
    parts = splits(len(labels))
    train = parts["train"].copy()
    with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "splits.json"), "w") as f:
        json.dump({k: v.tolist() for k, v in parts.items()}, f)
    model = IsmfNet(use_sequences=sequences, use_clinical=not args.no_clinical).to(device)
    # What ships: the training-only per-sequence heads are not in the exported graph.
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux_heads."))
    steps = args.epochs * ((len(train) + args.batch - 1) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    best, best_state, log = (-1.0, 0.0), None, []
    started = time.time()
    for epoch in range(args.epochs):
        model.train()
        t, total = time.time(), 0.0
        rng.shuffle(train)
        for i in range(0, len(train), args.batch):
            idx = np.sort(train[i:i + args.batch])
            xs = to(augment(batch(arrays, idx, sequences), rng, sequences), device)
            y = torch.from_numpy(labels[idx]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                logits, aux = model(**xs, with_aux=True)
            loss = loss_fn(logits.float(), y)
            if aux:
                # Each sequence head's loss, averaged, beside the fused loss (see IsmfNet.aux_heads).
                loss = loss + args.aux_weight * sum(loss_fn(a.float(), y) for a in aux) / len(aux)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        probs = predict(model, arrays, parts["validation"])
        val_labels = labels[parts["validation"]]
        acc = float((probs.argmax(1) == val_labels).mean())
        nll = float(-np.log(probs[np.arange(len(val_labels)), val_labels] + 1e-9).mean())
        entry = {"epoch": epoch + 1, "train_loss": round(total / len(train), 4), "val_accuracy": round(acc, 4),
                 "val_nll": round(nll, 4), "seconds": round(time.time() - t, 1)}
        log.append(entry)
        print(json.dumps(entry), flush=True)
        if (acc, -nll) > best:
            best, best_state = (acc, -nll), {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    ext_arrays, ext_labels = load(args.external)  # read last: it may still be being written
    result = {
        "sequences": list(sequences), "clinical": not args.no_clinical, "parameters": params,
        "macs": count_macs(model), "epochs": args.epochs, "aux_weight": args.aux_weight, "amp": args.amp, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        "train_seconds": round(time.time() - started, 1), "torch_threads": args.threads,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "split": {k: int(len(v)) for k, v in parts.items()} | {"external_test": int(len(ext_labels))},
        "log": log,
        "evaluation": {
            "validation": metrics(labels[parts["validation"]], predict(model, arrays, parts["validation"])),
            "internal_test": metrics(labels[parts["internal_test"]], predict(model, arrays, parts["internal_test"])),
            "external_test": metrics(ext_labels, predict(model, ext_arrays, np.arange(len(ext_labels)))),
        },
        "note": "simulated studies only; not clinical accuracy",
    }
    print(json.dumps({k: v["micro_accuracy"] for k, v in result["evaluation"].items()}))
    torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "sequences": sequences, "clinical": not args.no_clinical},
               args.out)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
