"""Reads DICOM files with pydicom (a peer implementation) and prints, per file, what the Rust
tests compare against: path, SOP Instance UID, rows, columns, and the sum and maximum of the
decoded pixel array. The only argument names a file listing the DICOM paths, one per line."""
import sys

import pydicom

for line in open(sys.argv[1], encoding="utf-8"):
    path = line.strip()
    if not path:
        continue
    ds = pydicom.dcmread(path)
    px = ds.pixel_array
    print(f"{path}\t{ds.SOPInstanceUID}\t{ds.Rows}\t{ds.Columns}\t{int(px.astype('int64').sum())}\t{int(px.max())}")
