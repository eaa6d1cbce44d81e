//! A declared-length guard run before dicom-rs reads a file.
//!
//! dicom-rs sizes a value's buffer from its declared length before reading it (`try_reserve`,
//! then zero-fill), so one forged length of 4 GiB costs 4 GiB of memory — fuzzing found this in
//! the first minutes (`fuzz/`). The guard walks the element headers of the file meta group and of
//! the whole data set (dicom-rs reads into an encapsulated Pixel Data sequence even when asked to
//! stop at Pixel Data, and reads elements after it on a full read), and refuses any defined length larger than the file, before a
//! single value of that size is allocated. Malformed structure is left to the real reader to
//! report; the guard only bounds memory.

use dicom_core::dictionary::DataDictionary;
use dicom_core::Tag;
use dicom_encoding::TransferSyntaxIndex;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// VRs whose explicit-VR header has a 2-byte length (PS3.5 7.1.2). Every other VR — unknown
/// ones too, which dicom-rs reads as UN — has two reserved bytes and a 4-byte length; the guard
/// must read headers exactly as dicom-rs does or it checks a different stream.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

/// Refuses files whose element headers declare more bytes than the file holds. `Ok` also for
/// files the guard cannot walk (not Part-10, unknown or deflated transfer syntax): the real
/// reader decides about those.
pub fn check(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 132];
    let n = read_up_to(&mut f, &mut head).map_err(|e| e.to_string())?;
    let start = if n >= 132 && &head[128..132] == b"DICM" {
        132
    } else if n >= 4 && &head[..4] == b"DICM" {
        4
    } else {
        return Ok(());
    };
    f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    // File meta group: always explicit VR little endian.
    let mut ts = String::new();
    let mut pos = start;
    // End of the meta group from its group length (0002,0000), as dicom-rs reads it.
    let mut meta_end: Option<u64> = None;
    loop {
        if meta_end.is_some_and(|end| pos >= end) {
            break;
        }
        let mut h = [0u8; 8];
        if read_up_to(&mut f, &mut h).map_err(|e| e.to_string())? < 8 {
            return Ok(());
        }
        let group = u16::from_le_bytes([h[0], h[1]]);
        if group != 0x0002 {
            if meta_end.is_some() {
                // The group length promised more meta elements than there are.
                return Err(
                    "the file meta group is corrupt (its group length disagrees with its elements)"
                        .into(),
                );
            }
            break;
        }
        let element = u16::from_le_bytes([h[2], h[3]]);
        let vr = [h[4], h[5]];
        let (len, header_len) = if !SHORT_VRS.contains(&&vr) {
            let mut l = [0u8; 4];
            if read_up_to(&mut f, &mut l).map_err(|e| e.to_string())? < 4 {
                return Ok(());
            }
            (u32::from_le_bytes(l) as u64, 12)
        } else {
            (u16::from_le_bytes([h[6], h[7]]) as u64, 8)
        };
        if len > size.saturating_sub(pos + header_len) {
            return Err(format!(
                "meta element (0002,{element:04X}) declares {len} bytes, more than the file holds"
            ));
        }
        let mut v = vec![0u8; len as usize];
        f.read_exact(&mut v).map_err(|e| e.to_string())?;
        if element == 0x0000 && len == 4 {
            meta_end =
                Some(pos + header_len + 4 + u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as u64);
        } else if element == 0x0010 {
            ts = String::from_utf8_lossy(&v)
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        pos += header_len + len;
    }
    if ts.is_empty() {
        return Err("the file meta group has no Transfer Syntax UID".into());
    }
    f.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
    // Deflated data sets inflate to more than the file size; the guard does not bound them.
    let (explicit, big_endian) = match ts.as_str() {
        "1.2.840.10008.1.2" => (false, false),
        "1.2.840.10008.1.2.2" => (true, true),
        "1.2.840.10008.1.2.1.99" => return Ok(()),
        _ => match dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(&ts) {
            Some(_) => (true, false),
            None => return Ok(()),
        },
    };
    walk(
        &mut std::io::BufReader::new(f),
        pos,
        size,
        explicit,
        big_endian,
    )
}

/// Walks element headers from `pos` to the end of the file, descending into
/// sequences and items instead of skipping them, so that every declared length is checked
/// against the bytes that remain.
fn walk(
    f: &mut std::io::BufReader<std::fs::File>,
    mut pos: u64,
    size: u64,
    explicit: bool,
    big_endian: bool,
) -> Result<(), String> {
    const UNDEFINED: u32 = 0xFFFF_FFFF;
    /// An open sequence-like element: encapsulated Pixel Data or anything else with items.
    struct Container {
        pixel_data: bool,
        end: Option<u64>,
    }
    let mut containers: Vec<Container> = Vec::new();
    let u16_at = |b: &[u8]| {
        if big_endian {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        }
    };
    let u32_at = |b: &[u8]| {
        if big_endian {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }
    };
    loop {
        let mut h = [0u8; 8];
        if read_up_to(f, &mut h).map_err(|e| e.to_string())? < 8 {
            return Ok(());
        }
        let tag = Tag(u16_at(&h[0..2]), u16_at(&h[2..4]));
        let (len, header_len, vr) = if tag.group() == 0xFFFE {
            // Item, item delimiter, sequence delimiter: always a 4-byte length, no VR.
            (u32_at(&h[4..8]), 8u64, *b"  ")
        } else if explicit {
            let vr = [h[4], h[5]];
            if !SHORT_VRS.contains(&&vr) {
                let mut l = [0u8; 4];
                if read_up_to(f, &mut l).map_err(|e| e.to_string())? < 4 {
                    return Ok(());
                }
                (u32_at(&l), 12, vr)
            } else {
                (u16_at(&h[6..8]) as u32, 8, vr)
            }
        } else {
            let is_sq = dicom_dictionary_std::StandardDataDictionary
                .by_tag(tag)
                .is_some_and(|e| {
                    matches!(
                        e.vr,
                        dicom_core::dictionary::VirtualVr::Exact(dicom_core::VR::SQ)
                    )
                });
            (u32_at(&h[4..8]), 8, if is_sq { *b"SQ" } else { *b"  " })
        };
        pos += header_len;
        tracing::trace!(%tag, vr = %String::from_utf8_lossy(&vr), len, pos, "guard: element header");
        // Containers are entered, not skipped: sequences, items, undefined-length values
        // (encapsulated pixel data, UN sequences), so nested lengths are checked too.
        while containers
            .last()
            .is_some_and(|c| c.end.is_some_and(|end| pos >= end))
        {
            containers.pop();
        }
        let container = tag.group() == 0xFFFE || &vr == b"SQ" || len == UNDEFINED;
        if container {
            let is_delimiter = tag == Tag(0xFFFE, 0xE00D) || tag == Tag(0xFFFE, 0xE0DD);
            if len != UNDEFINED && !is_delimiter && len as u64 > size.saturating_sub(pos) {
                return Err(format!(
                    "element {tag} declares {len} bytes, more than the file holds ({size})"
                ));
            }
            if tag == Tag(0xFFFE, 0xE0DD) {
                containers.pop();
            } else if tag == Tag(0xFFFE, 0xE000) {
                // Items of encapsulated Pixel Data are raw fragments; items anywhere else are
                // data sets, as dicom-rs reads them.
                if containers.last().is_some_and(|c| c.pixel_data) {
                    f.seek_relative(len as i64).map_err(|e| e.to_string())?;
                    pos += len as u64;
                }
            } else if !is_delimiter {
                let end = (len != UNDEFINED).then(|| pos + len as u64);
                containers.push(Container {
                    pixel_data: tag == Tag(0x7FE0, 0x0010),
                    end,
                });
            }
            continue;
        }
        if len as u64 > size.saturating_sub(pos) {
            return Err(format!(
                "element {tag} declares {len} bytes, more than the file holds ({size})"
            ));
        }
        f.seek(SeekFrom::Current(len as i64))
            .map_err(|e| e.to_string())?;
        pos += len as u64;
    }
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_lengths_are_refused_and_real_files_pass() {
        let src = Path::new("/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm");
        let Ok(bytes) = std::fs::read(src) else {
            panic!("{} missing: apt-get install python3-pydicom", src.display());
        };
        assert_eq!(check(src), Ok(()));
        let dir = tempfile::tempdir().expect("dir");
        // PatientName (0010,0010) PN in explicit VR LE: claim 0xFFFF bytes, and a 4 GiB OB.
        let i = bytes
            .windows(6)
            .position(|w| w == [0x10, 0x00, 0x10, 0x00, b'P', b'N'])
            .expect("PatientName");
        let mut forged = bytes.clone();
        forged[i + 6] = 0xFF;
        forged[i + 7] = 0xFF;
        let p = dir.path().join("forged.dcm");
        std::fs::write(&p, &forged).expect("write");
        assert!(check(&p).is_err());
        let mut huge = bytes[..i].to_vec();
        huge.extend_from_slice(&[
            0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF,
        ]);
        huge.extend_from_slice(&[0u8; 64]);
        let p = dir.path().join("huge.dcm");
        std::fs::write(&p, &huge).expect("write");
        assert!(check(&p).unwrap_err().contains("declares"));
        // An oversized element after Pixel Data is seen too.
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(&[
            0xF1, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF, 1, 2,
        ]);
        let p = dir.path().join("trailing.dcm");
        std::fs::write(&p, &trailing).expect("write");
        assert!(check(&p).is_err());
    }
}
