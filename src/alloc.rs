//! The process allocator: mimalloc, refusing any single allocation above [`MAX_ALLOCATION`].
//!
//! dicom-rs sizes buffers from lengths declared in the file before reading them. It asks with
//! `try_reserve`, so a refused allocation becomes a read error for that file — but only if the
//! allocator refuses: on Linux a 3 GB request normally succeeds and is then zero-filled, which is
//! how fuzzing exhausted memory with 10 KB inputs. `dicom_guard` checks declared lengths against
//! the file size first; this bound is the backstop for any path the guard does not model. Nothing
//! legitimate here comes near it: the largest buffer is a decoded volume, limited by
//! `pixels::DEFAULT_MAX_VOXELS` to 256 MiB as f32.
//!
//! mimalloc rather than glibc malloc: glibc's mmap threshold made every decoded buffer fresh pages
//! to fault in and zero, a third of decode + preprocess time (BENCHMARKS.md).

use std::alloc::{GlobalAlloc, Layout};

/// Largest single allocation granted: 1 GiB.
pub const MAX_ALLOCATION: usize = 1 << 30;

/// mimalloc with a ceiling on single allocations.
pub struct BoundedAllocator;

// SAFETY: every method forwards to mimalloc unchanged or returns null, which GlobalAlloc allows
// for a failed allocation; `dealloc` only ever sees pointers mimalloc handed out.
unsafe impl GlobalAlloc for BoundedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_above_the_ceiling_and_serves_below() {
        let big = Layout::from_size_align(MAX_ALLOCATION + 1, 8).expect("layout");
        // SAFETY: a null result is checked; nothing is written.
        assert!(unsafe { BoundedAllocator.alloc(big) }.is_null());
        let small = Layout::from_size_align(4096, 8).expect("layout");
        // SAFETY: the pointer is checked, used within its layout, and freed with the same layout.
        unsafe {
            let p = BoundedAllocator.alloc_zeroed(small);
            assert!(!p.is_null());
            assert_eq!(*p.add(4095), 0);
            let q = BoundedAllocator.realloc(p, small, MAX_ALLOCATION + 1);
            assert!(
                q.is_null(),
                "growing past the ceiling fails and keeps the block"
            );
            BoundedAllocator.dealloc(p, small);
        }
    }
}
