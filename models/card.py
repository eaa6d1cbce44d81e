"""Writes models/model-card.json and the evaluation tables of models/README.md.

Usage: python card.py [--variants runs/variants.json]

Reads what the other steps left: runs/export.json (files, hashes, ops), runs/<name>.json (training
and evaluation of the full model and the ablations), data/internal/dataset.json and
data/external/dataset.json (preprocessing, simulator version, seeds), and — once the Rust example
has run the card's files through tract — runs/variants.json. The card is the contract the
appliance checks (src/model/card.rs); the README tables are generated so they cannot drift from it.
"""

import argparse
import json
import os

from ismf_net import CLASSES, SEQUENCES

HERE = os.path.dirname(os.path.abspath(__file__))
ABLATIONS = [("full", "all four sequences + clinical"), ("no_clinical", "four sequences, no clinical data")] + [
    (f"only_{k}", f"{k} alone + clinical") for k in SEQUENCES] + [("clinical_only", "clinical data alone")]
SPLITS = [("validation", "validation"), ("internal_test", "internal test"), ("external_test", "external test")]
NOTICE = ("Research software. Trained and evaluated on simulated studies only; NOT FOR DIAGNOSTIC USE. "
          "Its accuracy on patients is unknown.")


def read(path):
    with open(os.path.join(HERE, path)) as f:
        return json.load(f)


def runs():
    out = {}
    for name, _ in ABLATIONS:
        path = os.path.join(HERE, "runs", f"{name}.json")
        if os.path.exists(path):
            out[name] = read(path)
    return out


def card(variants):
    export = read("runs/export.json")
    internal = read("data/internal/dataset.json")
    external = read("data/external/dataset.json")
    results = runs()
    full = results["full"]
    pre = internal["preprocess"]
    norm = (f"resampled to the grid, intensities clipped to percentiles {pre['clip_percentiles']} of the stack, "
            "then z-scored over the stack (crate::preprocess)")
    def grid(k):
        return pre["axial" if k == "ax_t2w" else "sagittal"]

    inputs = [{"name": k, "sequence": k, "shape": [1, grid(k)["slices"], grid(k)["size"], grid(k)["size"]],
               "dtype": "float32", "grid": grid(k), "normalisation": norm} for k in SEQUENCES]
    inputs.append({"name": "clinical", "clinical": True, "shape": [1, len(internal["clinical_layout"])],
                   "dtype": "float32", "layout": internal["clinical_layout"],
                   "normalisation": f"age in years / {pre['age_scale_years']}; one-hot sex and region with "
                                    f"missing indicators; missing age → {pre['default_age_years']} years"})
    files = [
        {"path": export["f32"]["path"], "sha256": export["f32"]["sha256"], "precision": "f32"},
        {"path": export["int8"]["path"], "sha256": export["int8"]["sha256"], "precision": "int8"},
        {"path": export["f32"]["path"], "sha256": export["f32"]["sha256"], "precision": "f16",
         "transform": "f32_to_f16"},
    ]
    evaluation = {
        "note": "simulated studies only; not clinical accuracy",
        "full_model": full["evaluation"],
        "ablations": {name: {split: r["evaluation"][split]["micro_accuracy"] for split, _ in SPLITS}
                      | {f"{split}_ci95": r["evaluation"][split]["ci95"] for split, _ in SPLITS}
                      for name, r in results.items()},
    }
    if variants:
        evaluation["variants_through_tract"] = variants
    return {
        "schema_version": 1,
        "name": "ismf-net-sim",
        "version": "1.2.0",
        "notice": NOTICE,
        "intended_use": ("Reference model for the ISMF Edge appliance: exercises the pipeline from DICOM to "
                         "prediction and shows the card contract that real ISMF-Net weights must honour. "
                         "Not a medical device; not for diagnosis, triage or any clinical decision."),
        "files": files,
        "inputs": inputs,
        "outputs": [{"name": "probabilities", "shape": [1, len(CLASSES)], "dtype": "float32",
                     "meaning": "softmax class probabilities in `classes` order"}],
        "classes": list(CLASSES),
        "preprocessing": pre,
        "architecture": {
            "summary": ("ISMF-Net re-implementation: per-sequence CNN encoder (five 3x3 stride-2 conv+BN+ReLU "
                        "stages 16-32-64-128-128, global mean and max pool, linear to 128) for each of the four "
                        "sequences, an MLP clinical encoder, 2 pre-norm transformer layers (dim 128, 4 heads) "
                        "over the five tokens (modality dropout 0.15 in training), mean pool, LayerNorm + linear "
                        "head, plus a linear map of the clinical vector added to the logits, softmax; training "
                        "adds a linear head per sequence token with its own loss (weight 1.0 on their mean), not "
                        "part of the exported graph"),
            "parameters": full["parameters"], "macs": full["macs"], "opset": export["opset"],
            "onnx_ops": {"f32": export["f32"]["ops"], "int8": export["int8"]["ops"]},
            "int8": ("onnxruntime quantize_static, QOperator, Conv and MatMul only (QLinearConv, QLinearMatMul), "
                     f"uint8 activations, int8 per-tensor weights, {export['int8']['calibration_studies']} "
                     "training studies for calibration"),
            "exported_with": {"torch": export["torch"], "onnx": export["onnx"], "onnxruntime": export["onnxruntime"]},
        },
        "training_data": {
            "kind": "synthetic: ISMF Edge spine-MRI simulator (no patient data)",
            "simulator_version": internal["simulator_version"],
            "internal": {"site": internal["site"], "seed": internal["seed"], "studies": internal["studies"],
                         "command": f"ismf dataset --studies {internal['studies']} --seed {internal['seed']} --site internal"},
            "external": {"site": external["site"], "seed": external["seed"], "studies": external["studies"],
                         "command": f"ismf dataset --studies {external['studies']} --seed {external['seed']} --site external"},
            "split": full["split"],
            "recipe": {k: full[k] for k in ("epochs", "amp", "batch", "lr", "seed")}
                      | {"optimiser": "AdamW (weight decay 0.05), one-cycle LR, label smoothing 0.05",
                         "augmentation": "shifts ±8 px, gain 0.9-1.1, offset ±0.1, left-right mirroring",
                         "selection": "best validation accuracy"},
            "reproduce": "bash models/train.sh",
        },
        "evaluation": evaluation,
        "limitations": [
            "Trained and tested only on simulated studies; simulator accuracy says nothing about patients.",
            "Five classes only: any other lesion (or none) is forced into one of them.",
            "Expects the four sequences as the appliance identifies them; other protocols are out of scope.",
            "Probabilities are not calibrated on real data.",
        ],
    }


def pct(x):
    return f"{100 * x:.1f}"


def tables(c, results):
    lines = ["All numbers are on **simulated** studies (the ISMF Edge simulator), never clinical accuracy.", ""]
    ev = c["evaluation"]["full_model"]
    lines += ["### Full model", "", "| split | n | micro-accuracy (95 % CI) | " + " | ".join(f"F1 {k}" for k in CLASSES) + " |",
              "|---|---|---|" + "---|" * len(CLASSES)]
    for split, label in SPLITS:
        m = ev[split]
        lines.append(f"| {label} | {m['n']} | {pct(m['micro_accuracy'])} % ({pct(m['ci95'][0])}–{pct(m['ci95'][1])}) | "
                     + " | ".join(f"{m['per_class'][k]['f1']:.3f}" for k in CLASSES) + " |")
    lines += ["", "Per-class precision / recall (support):", "",
              "| split | " + " | ".join(CLASSES) + " |", "|---|" + "---|" * len(CLASSES)]
    for split, label in SPLITS:
        pc = ev[split]["per_class"]
        lines.append(f"| {label} | " + " | ".join(
            f"{pc[k]['precision']:.2f} / {pc[k]['recall']:.2f} ({pc[k]['support']})" for k in CLASSES) + " |")
    for split, label in SPLITS:
        conf = ev[split]["confusion"]
        lines += ["", f"Confusion, {label} (rows true, columns predicted):", "",
                  "| | " + " | ".join(CLASSES) + " |", "|---|" + "---|" * len(CLASSES)]
        lines += [f"| **{CLASSES[i]}** | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(conf)]
    lines += ["", "### Ablations (same recipe, same splits)", "",
              "| model | validation | internal test (95 % CI) | external test (95 % CI) |", "|---|---|---|---|"]
    for name, label in ABLATIONS:
        if name not in results:
            continue
        e = results[name]["evaluation"]
        lines.append(f"| {label} | {pct(e['validation']['micro_accuracy'])} | "
                     f"{pct(e['internal_test']['micro_accuracy'])} ({pct(e['internal_test']['ci95'][0])}–{pct(e['internal_test']['ci95'][1])}) | "
                     f"{pct(e['external_test']['micro_accuracy'])} ({pct(e['external_test']['ci95'][0])}–{pct(e['external_test']['ci95'][1])}) |")
    v = c["evaluation"].get("variants_through_tract")
    if v:
        lines += ["", f"### Variants through tract ({v['split'].replace('_', ' ')}, n = {v['variants']['f32']['n']})", "",
                  "| precision | accuracy | top-1 agreement with f32 | max / mean probability difference |", "|---|---|---|---|"]
        for p, r in v["variants"].items():
            label = p if r["n"] == v["variants"]["f32"]["n"] else f"{p} (first {r['n']} studies)"
            lines.append(f"| {label} | {pct(r['accuracy'])} % | {pct(r['top1_agreement_with_f32'])} % | "
                         f"{r['max_probability_difference']:.2e} / {r['mean_probability_difference']:.2e} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", help="runs/variants.json from the variant_agreement example")
    args = ap.parse_args()
    variants = read(args.variants) if args.variants else None
    c = card(variants)
    with open(os.path.join(HERE, "model-card.json"), "w") as f:
        json.dump(c, f, indent=1)
        f.write("\n")
    readme = os.path.join(HERE, "README.md")
    with open(readme) as f:
        text = f.read()
    start, end = "<!-- evaluation:start (generated by card.py) -->", "<!-- evaluation:end -->"
    if start in text and end in text:
        text = text[:text.index(start) + len(start)] + "\n" + tables(c, runs()) + "\n" + text[text.index(end):]
        with open(readme, "w") as f:
            f.write(text)
    print(json.dumps({"card": "model-card.json", "files": c["files"]}))


if __name__ == "__main__":
    main()
