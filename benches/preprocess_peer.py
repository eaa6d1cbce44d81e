"""The Python peer of ISMF Edge's decode + preprocess, for benchmarks: pydicom + numpy + scipy
doing the same steps as src/preprocess.rs on the four selected series of one study.

Usage: python3 preprocess_peer.py INSPECT_JSON REPEAT
INSPECT_JSON is `ismf inspect --json STUDY_DIR` output; the first study is processed REPEAT
times and the per-run seconds are printed, one per line. Needs python3-pydicom, python3-numpy,
python3-scipy (Debian)."""
import json
import sys
import time

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut
from scipy.ndimage import map_coordinates

GRIDS = {"sagittal": (5, 3.5, 160, 1.75), "axial": (5, 4.0, 160, 1.25)}


def load(files):
    planes = []
    for f in files:
        ds = pydicom.dcmread(f)
        px = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        planes.append((np.array(ds.ImagePositionPatient, dtype=float), iop, np.array(ds.PixelSpacing, dtype=float), px))
    return planes


def stack(planes, grid):
    slices, spacing, size, pixel = grid
    iop = planes[0][1]
    row, col = iop[:3], iop[3:]
    n = np.cross(row, col)
    planes.sort(key=lambda p: float(np.dot(p[0], n)))
    depth = np.array([np.dot(p[0], n) for p in planes])
    volume = np.stack([p[3] for p in planes])  # [k, rows, cols]
    mid = planes[len(planes) // 2]
    rows, cols = mid[3].shape
    centre = mid[0] + 0.5 * (cols - 1) * mid[2][1] * row + 0.5 * (rows - 1) * mid[2][0] * col
    centre = centre + (0.5 * (depth[0] + depth[-1]) - np.dot(mid[0], n)) * n
    offs = (np.arange(size) - 0.5 * (size - 1)) * pixel
    u, v = np.meshgrid(offs, offs)  # u along columns, v along rows
    out = np.empty((slices, size, size), dtype=np.float32)
    for s in range(slices):
        off = (s - 0.5 * (slices - 1)) * spacing
        p = centre[None, None, :] + u[..., None] * row + v[..., None] * col + off * n
        rel = p - planes[0][0]
        r = rel @ col / mid[2][0]
        c = rel @ row / mid[2][1]
        k = np.interp(np.dot(p.reshape(-1, 3), n), depth, np.arange(len(depth))).reshape(size, size)
        out[s] = map_coordinates(volume, [k, r, c], order=1, mode="constant", cval=0.0)
    lo, hi = np.percentile(out, [0.5, 99.5])
    out = np.clip(out, lo, hi)
    return (out - out.mean()) / max(out.std(), 1e-6)


def main():
    report = json.load(open(sys.argv[1]))
    repeat = int(sys.argv[2])
    study = report["studies"][0]
    for _ in range(repeat):
        t = time.perf_counter()
        for key in ["sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w"]:
            grid = GRIDS["axial" if key == "ax_t2w" else "sagittal"]
            stack(load(study["sequences"][key]["files"]), grid)
        print(f"{time.perf_counter() - t:.4f}")


if __name__ == "__main__":
    main()
