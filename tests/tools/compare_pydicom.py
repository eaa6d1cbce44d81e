"""Compares `ismf decode` output with pydicom (a peer decoder).

Arguments: pairs of DICOM_FILE NPY_FILE [REFERENCE_DICOM]. For each pair prints one line:
`path<TAB>max_abs_difference<TAB>how`, where `how` says whether pydicom decoded the file itself or,
when this pydicom lacks the codec (JPEG-LS, JPEG 2000 without plugins), the uncompressed reference
file the compressed one was made from. The modality LUT is applied on the pydicom side too."""
import sys

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut


def pixels(path):
    ds = pydicom.dcmread(path)
    arr = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    return arr.reshape(frames, ds.Rows, ds.Columns)


args = sys.argv[1:]
for dicom_path, npy_path, ref in zip(args[0::3], args[1::3], args[2::3]):
    ours = np.load(npy_path).astype(np.float64)
    try:
        theirs, how = pixels(dicom_path), "pydicom"
    except Exception as e:  # codec not available in this pydicom
        theirs, how = pixels(ref), f"reference ({type(e).__name__})"
    diff = float(np.max(np.abs(ours - theirs))) if ours.shape == theirs.shape else float("inf")
    print(f"{dicom_path}\t{diff}\t{how}")
