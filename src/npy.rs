//! NumPy `.npy` files (format 1.0), written as a stream: the header carries the final shape, the
//! values follow in C order. Used by `ismf decode` and `ismf dataset`; training reads them with
//! `numpy.load(…, mmap_mode="r")`. [`NpyArray`] reads them back row by row (model benchmarks and
//! agreement checks on stored training tensors, which are too large to load whole).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The header bytes for an array of `descr` (e.g. `<f4`, `<i8`) and `shape`.
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = Vec::with_capacity(10 + h.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// A `.npy` file written value by value; `finish` checks that exactly the announced number of
/// values arrived.
pub struct NpyWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    expected: usize,
    written: usize,
}

impl NpyWriter {
    pub fn create(path: &Path, descr: &str, shape: &[usize]) -> std::io::Result<Self> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        file.write_all(&header(descr, shape))?;
        Ok(NpyWriter {
            path: path.to_path_buf(),
            file,
            expected: shape.iter().product(),
            written: 0,
        })
    }

    pub fn write_f32(&mut self, values: &[f32]) -> std::io::Result<()> {
        for v in values {
            self.file.write_all(&v.to_le_bytes())?;
        }
        self.written += values.len();
        Ok(())
    }

    pub fn write_i64(&mut self, values: &[i64]) -> std::io::Result<()> {
        for v in values {
            self.file.write_all(&v.to_le_bytes())?;
        }
        self.written += values.len();
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.written != self.expected {
            return Err(std::io::Error::other(format!(
                "{}: {} values written, header announced {}",
                self.path.display(),
                self.written,
                self.expected
            )));
        }
        Ok(())
    }
}

/// A little-endian, C-order `.npy` file opened for reading rows (first-axis slices).
#[derive(Clone, Debug)]
pub struct NpyArray {
    path: PathBuf,
    /// `<f4`, `<i8`, …
    pub descr: String,
    pub shape: Vec<usize>,
    data_offset: u64,
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: not a readable .npy file: {why}", path.display()),
    )
}

impl NpyArray {
    /// Reads and checks the header (versions 1–3, C order, little-endian `<f4` or `<i8`).
    pub fn open(path: &Path) -> std::io::Result<NpyArray> {
        let mut f = std::fs::File::open(path)?;
        let mut magic = [0u8; 8];
        f.read_exact(&mut magic)?;
        if &magic[..6] != b"\x93NUMPY" {
            return Err(invalid(path, "no NUMPY magic"));
        }
        let len = if magic[6] == 1 {
            let mut b = [0u8; 2];
            f.read_exact(&mut b)?;
            u16::from_le_bytes(b) as usize
        } else {
            let mut b = [0u8; 4];
            f.read_exact(&mut b)?;
            u32::from_le_bytes(b) as usize
        };
        if len > 1 << 20 {
            return Err(invalid(path, "header longer than 1 MiB"));
        }
        let mut text = vec![0u8; len];
        f.read_exact(&mut text)?;
        let text = String::from_utf8_lossy(&text);
        // The value of `key` in the header dict, between its `open` and `close` delimiters.
        let value = |key: &str, open: char, close: char| -> Option<&str> {
            let rest = text[text.find(&format!("'{key}':"))? + key.len() + 3..].trim_start();
            rest.strip_prefix(open)?.split(close).next()
        };
        let descr = value("descr", '\'', '\'')
            .ok_or_else(|| invalid(path, "no descr"))?
            .to_string();
        if !matches!(descr.as_str(), "<f4" | "<i8") {
            return Err(invalid(
                path,
                format!("dtype {descr} (only <f4 and <i8 are read)"),
            ));
        }
        if !text.contains("'fortran_order': False") {
            return Err(invalid(path, "Fortran order"));
        }
        let shape = value("shape", '(', ')')
            .ok_or_else(|| invalid(path, "no shape"))?
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse::<usize>()
                    .map_err(|e| invalid(path, format!("shape: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let data_offset = f.stream_position()?;
        let array = NpyArray {
            path: path.to_path_buf(),
            descr,
            shape,
            data_offset,
        };
        let need = data_offset + (array.rows() * array.row_len() * array.width()) as u64;
        if f.metadata()?.len() < need {
            return Err(invalid(
                path,
                format!("file shorter than its shape needs ({need} bytes)"),
            ));
        }
        Ok(array)
    }

    /// Rows along the first axis.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Bytes per value.
    fn width(&self) -> usize {
        if self.descr == "<i8" {
            8
        } else {
            4
        }
    }

    fn read_bytes(&self, row: usize, count: usize) -> std::io::Result<Vec<u8>> {
        let width = self.width();
        if row + count > self.rows() {
            return Err(invalid(
                &self.path,
                format!("rows {row}..{} of {}", row + count, self.rows()),
            ));
        }
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(
            self.data_offset + (row * self.row_len() * width) as u64,
        ))?;
        let mut bytes = vec![0u8; count * self.row_len() * width];
        f.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    /// `count` rows from `row` of a `<f4` array.
    pub fn read_f32(&self, row: usize, count: usize) -> std::io::Result<Vec<f32>> {
        if self.descr != "<f4" {
            return Err(invalid(
                &self.path,
                format!("{} read as float32", self.descr),
            ));
        }
        let bytes = self.read_bytes(row, count)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The whole of a `<i8` array.
    pub fn read_all_i64(&self) -> std::io::Result<Vec<i64>> {
        if self.descr != "<i8" {
            return Err(invalid(&self.path, format!("{} read as int64", self.descr)));
        }
        let bytes = self.read_bytes(0, self.rows())?;
        Ok(bytes
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_arrays_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("f.npy");
        let mut w = NpyWriter::create(&p, "<f4", &[3, 2, 2]).expect("create");
        let values: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect();
        w.write_f32(&values).expect("write");
        w.finish().expect("finish");
        let a = NpyArray::open(&p).expect("open");
        assert_eq!(
            (a.shape.clone(), a.rows(), a.row_len()),
            (vec![3, 2, 2], 3, 4)
        );
        assert_eq!(a.read_f32(1, 2).expect("rows"), values[4..].to_vec());
        assert!(a.read_f32(2, 2).is_err(), "rows past the end");
        assert!(a.read_all_i64().is_err(), "wrong dtype");
        let q = dir.path().join("i.npy");
        let mut w = NpyWriter::create(&q, "<i8", &[3]).expect("create");
        w.write_i64(&[4, -1, 7]).expect("write");
        w.finish().expect("finish");
        assert_eq!(
            NpyArray::open(&q)
                .expect("open")
                .read_all_i64()
                .expect("read"),
            vec![4, -1, 7]
        );
        std::fs::write(
            dir.path().join("bad.npy"),
            b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'",
        )
        .expect("w");
        assert!(NpyArray::open(&dir.path().join("bad.npy")).is_err());
    }

    #[test]
    fn header_is_aligned_and_values_counted() {
        let h = header("<f4", &[2, 3, 4]);
        assert_eq!(h.len() % 64, 0);
        assert!(String::from_utf8_lossy(&h).contains("'shape': (2, 3, 4)"));
        assert!(String::from_utf8_lossy(&header("<i8", &[7])).contains("'shape': (7,)"));
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("a.npy");
        let mut w = NpyWriter::create(&p, "<f4", &[2, 2]).expect("create");
        w.write_f32(&[1.0, 2.0, 3.0]).expect("write");
        assert!(w.finish().is_err(), "three of four values is an error");
    }
}
