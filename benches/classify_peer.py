"""The Python peer of `ismf classify`, for benchmarks: pydicom + numpy + scipy + onnxruntime doing
the same steps on one study folder — read every file's header, group the series, take the four
sequences, decode and resample them (benches/preprocess_peer.py), build the clinical vector, run
the ONNX model — and print the probabilities.

Usage: python classify_peer.py MODEL.onnx STUDY_DIR INSPECT_JSON [THREADS]

Sequence identification is not re-implemented: the peer reads every header (the cost of a scan)
but takes the chosen series from `ismf inspect --json` output, which favours the peer slightly.
Also prints `peak_rss_mib` (ru_maxrss) and the model load time on stderr.
"""
import json
import os
import resource
import sys
import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pydicom  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from preprocess_peer import GRIDS, load, stack  # noqa: E402

REGIONS = {"CSPINE": 0, "TSPINE": 1, "LSPINE": 2}


def clinical(ds):
    v = np.zeros(9, np.float32)
    age = str(getattr(ds, "PatientAge", "") or "")
    if age[:-1].isdigit() and age.endswith("Y"):
        v[0] = int(age[:-1]) / 100.0
    else:
        v[0], v[1] = 0.5, 1.0
    sex = str(getattr(ds, "PatientSex", "") or "")
    v[2 if sex == "M" else 3 if sex == "F" else 4] = 1.0
    region = REGIONS.get(str(getattr(ds, "BodyPartExamined", "") or "").upper())
    v[5 + region if region is not None else 8] = 1.0
    return v


def main():
    model, study_dir, inspect_json = sys.argv[1:4]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    headers = {}
    for root, _, names in os.walk(study_dir):
        for n in names:
            p = os.path.join(root, n)
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True)
            except Exception:
                continue
            headers.setdefault(ds.SeriesInstanceUID, []).append(p)
    study = json.load(open(inspect_json))["studies"][0]
    feeds = {}
    for key in ["sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w"]:
        files = headers[study["sequences"][key]["series_instance_uid"]]
        grid = GRIDS["axial" if key == "ax_t2w" else "sagittal"]
        feeds[key] = stack(load(files), grid)[None].astype(np.float32)
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    feeds["clinical"] = clinical(first)[None]
    t = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t) * 1e3
    probs = session.run(None, feeds)[0][0]
    print(json.dumps({"probabilities": [float(p) for p in probs]}))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": round(rss, 1), "load_ms": round(load_ms, 1),
                      "in_process_s": round(time.perf_counter() - t0, 3)}), file=sys.stderr)


main()
