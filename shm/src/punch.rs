//! Returning a freed session's fifo pages to the kernel (design §2.2).
//!
//! Segments are sparse memfds sized for the maximum: a fifo's pages are
//! allocated when first touched and stay allocated after its session is
//! freed. Punching a hole (`fallocate(2)` with `FALLOC_FL_PUNCH_HOLE |
//! FALLOC_FL_KEEP_SIZE`) frees them again without changing the file's size,
//! which the segment seals forbid; every mapping then reads zeros there.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Frees the pages of `len` bytes at `offset` in the memfd `fd`, keeping
/// its size. Partial pages at either end are zeroed rather than freed, as
/// `fallocate(2)` documents.
pub fn punch_hole(fd: BorrowedFd<'_>, offset: usize, len: usize) -> io::Result<()> {
    let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
    let offset = libc::off_t::try_from(offset).map_err(|_| invalid())?;
    let len = libc::off_t::try_from(len).map_err(|_| invalid())?;
    if len == 0 {
        return Ok(());
    }
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: plain integer arguments on a live descriptor; no memory is passed to the kernel.
    let res = unsafe { libc::fallocate(fd.as_raw_fd(), mode, offset, len) };
    if res == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::{memfd_create, Access, Mapping};
    use crate::region::Region;
    use std::os::fd::AsFd;
    use std::sync::Arc;

    #[test]
    fn punched_pages_read_zero_and_the_size_stays() {
        let fd = memfd_create("sluice-punch", 3 * 4096).unwrap();
        let region = Region::new(Arc::new(Mapping::map(fd.as_fd(), 3 * 4096, Access::ReadWrite).unwrap()));
        region.write_at(0, &[1; 3 * 4096]).unwrap();
        punch_hole(fd.as_fd(), 4096, 4096).unwrap();
        assert_eq!(crate::os::file_size(fd.as_fd()).unwrap(), 3 * 4096);
        let mut page = [0xffu8; 4096];
        region.read_at(4096, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0), "the punched page reads zeros");
        region.read_at(0, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 1), "the page before is untouched");
        region.read_at(2 * 4096, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 1), "the page after is untouched");
    }

    #[test]
    fn a_sealed_segment_can_still_be_punched() {
        let fd = memfd_create("sluice-punch-sealed", 2 * 4096).unwrap();
        crate::os::add_seals(fd.as_fd(), crate::os::SEGMENT_SEALS).unwrap();
        punch_hole(fd.as_fd(), 0, 4096).unwrap();
        assert_eq!(crate::os::file_size(fd.as_fd()).unwrap(), 2 * 4096);
    }

    #[test]
    fn offsets_beyond_off_t_are_refused() {
        let fd = memfd_create("sluice-punch-range", 4096).unwrap();
        assert_eq!(punch_hole(fd.as_fd(), usize::MAX, 4096).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
