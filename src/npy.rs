//! NumPy `.npy` files (format 1.0), written as a stream: the header carries the final shape, the
//! values follow in C order. Used by `ismf decode` and `ismf dataset`; training reads them with
//! `numpy.load(…, mmap_mode="r")`.

use std::io::Write;
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

#[cfg(test)]
mod tests {
    use super::*;

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
