"""Exports the trained ISMF-Net to ONNX (f32 and int8 QOperator) and writes reference outputs.

Usage:
  python export.py --run runs/full.pt --data data/internal --reference data/reference --out-dir .

- `ismf-net-f32.onnx`: eval-mode model + softmax, batch 1, static shapes, opset 17, batch norm
  folded into the convolutions (checked: the graph must hold no BatchNormalization node).
- `ismf-net-int8.onnx`: onnxruntime's static quantization in QOperator form, restricted to Conv and
  MatMul (QLinearConv / QLinearMatMul, uint8 activations, int8 per-tensor weights), calibrated on
  training studies. Not QDQ, and not the other QLinear* contrib ops: tract computes QDQ
  convolutions in float (and got them wrong in PROBES.md) and refuses
  QLinearGlobalAveragePool / QLinearConcat.
- `reference-outputs.json`: onnxruntime's probabilities for both files on the studies of
  `--reference` (made by `ismf dataset`, so the Rust test can regenerate the very same inputs from
  the simulator), with per-input sums so the test can tell if its inputs drifted.
"""

import argparse
import hashlib
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from ismf_net import CLASSES, CLINICAL, GRID, PLANES, SEQUENCES, Exported, IsmfNet
from train import load, splits

INPUTS = SEQUENCES + ("clinical",)
OPSET = 17


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def feeds(arrays, i):
    return {k: np.ascontiguousarray(arrays[k][i:i + 1]).astype(np.float32) for k in INPUTS}


def session(path, threads=2):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


class Calibration(CalibrationDataReader):
    def __init__(self, arrays, indices):
        self.items = iter([feeds(arrays, int(i)) for i in indices])

    def get_next(self):
        return next(self.items, None)


def export_f32(run, path):
    ckpt = torch.load(run, map_location="cpu")
    if tuple(ckpt["sequences"]) != SEQUENCES or not ckpt["clinical"]:
        raise SystemExit(f"{run}: not a full model (sequences {ckpt['sequences']}, clinical {ckpt['clinical']})")
    model = IsmfNet()
    model.load_state_dict(ckpt["state_dict"])
    wrapped = Exported(model).eval()
    x = torch.zeros(1, PLANES, GRID, GRID)
    torch.onnx.export(wrapped, (x, x, x, x, torch.zeros(1, CLINICAL)), path, input_names=list(INPUTS),
                      output_names=["probabilities"], opset_version=OPSET, do_constant_folding=True, dynamo=False)
    graph = onnx.load(path)
    onnx.checker.check_model(graph, full_check=True)
    ops = {n.op_type for n in graph.graph.node}
    if "BatchNormalization" in ops:
        raise SystemExit(f"{path}: batch norm was not folded")
    return wrapped, sorted(ops)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True, help="internal dataset (calibration from its training split)")
    ap.add_argument("--reference", required=True, help="small dataset whose outputs the Rust test checks")
    ap.add_argument("--out-dir", default=".")
    ap.add_argument("--calibration", type=int, default=256)
    args = ap.parse_args()
    torch.manual_seed(0)
    f32 = os.path.join(args.out_dir, "ismf-net-f32.onnx")
    int8 = os.path.join(args.out_dir, "ismf-net-int8.onnx")
    wrapped, ops = export_f32(args.run, f32)

    arrays, labels = load(args.data)
    train = splits(len(labels))["train"]
    calib = np.random.default_rng(0).choice(train, min(args.calibration, len(train)), replace=False)
    quantize_static(f32, int8, Calibration(arrays, np.sort(calib)), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "MatMul"], per_channel=False, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    int8_ops = sorted({n.op_type for n in onnx.load(int8).graph.node})

    # The exported graph must be the trained model: compare with PyTorch on a few real inputs.
    sess = {"f32": session(f32), "int8": session(int8)}
    with torch.no_grad():
        for i in range(3):
            fd = feeds(arrays, int(train[i]))
            want = wrapped(*[torch.from_numpy(fd[k]) for k in INPUTS]).numpy()
            got = sess["f32"].run(None, fd)[0]
            if np.abs(want - got).max() > 1e-4:
                raise SystemExit(f"onnxruntime and PyTorch differ by {np.abs(want - got).max()}")

    ref_arrays, ref_labels = load(args.reference)
    with open(os.path.join(args.reference, "dataset.json")) as f:
        ref_meta = json.load(f)
    reference = {
        "dataset": {"command": f"ismf dataset --studies {len(ref_labels)} --seed {ref_meta['seed']} --site {ref_meta['site']}",
                    "seed": ref_meta["seed"], "site": ref_meta["site"], "studies": int(len(ref_labels))},
        "classes": list(CLASSES),
        "input_sums": [{k: float(np.asarray(ref_arrays[k][i], np.float64).sum()) for k in INPUTS}
                       for i in range(len(ref_labels))],
        "onnxruntime_version": ort.__version__,
        "onnxruntime": {p: [s.run(None, feeds(ref_arrays, i))[0][0].tolist() for i in range(len(ref_labels))]
                        for p, s in sess.items()},
    }
    with open(os.path.join(args.out_dir, "reference-outputs.json"), "w") as f:
        json.dump(reference, f, indent=1)
    summary = {"f32": {"path": os.path.basename(f32), "bytes": os.path.getsize(f32), "sha256": sha256(f32), "ops": ops},
               "int8": {"path": os.path.basename(int8), "bytes": os.path.getsize(int8), "sha256": sha256(int8),
                        "ops": int8_ops, "calibration_studies": int(len(calib))},
               "opset": OPSET, "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__}
    with open(os.path.join(args.out_dir, "runs", "export.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
