//! Reading and writing the caller's `struct sockaddr` for IPv4, with the
//! kernel's length rules (`move_addr_to_user`: copy at most the caller's
//! length, always report the full length).

use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4};

use libc::{sa_family_t, sockaddr, sockaddr_in, socklen_t};

use crate::errno::Errno;

const SIN_LEN: usize = size_of::<sockaddr_in>();

/// The IPv4 address at `addr`, if `addr` is non-NULL, `len` covers a
/// `sockaddr_in` and the family is `AF_INET`; `None` for anything the kernel
/// should judge itself.
///
/// # Safety
/// `addr` is NULL or readable for `len` bytes.
pub unsafe fn read_v4(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddrV4> {
    if addr.is_null() || (len as usize) < SIN_LEN {
        return None;
    }
    // Read unaligned: callers' buffers need not be aligned.
    // SAFETY: non-NULL and readable for a sockaddr_in (contract, length check).
    let sin = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
    if sin.sin_family != libc::AF_INET as sa_family_t {
        return None;
    }
    Some(SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
}

/// Stores `value` for a `getsockname`-style call as the kernel's
/// `move_addr_to_user` does: `*len` bytes at most are copied, `*len` becomes
/// the full size; a NULL `len` is `EFAULT`, a negative one `EINVAL`, a NULL
/// `addr` with room to copy into `EFAULT`.
///
/// # Safety
/// `len` is NULL or a valid `socklen_t`; `addr` is NULL or writable for
/// `*len` bytes.
pub unsafe fn write_v4(value: SocketAddrV4, addr: *mut sockaddr, len: *mut socklen_t) -> Result<(), Errno> {
    if len.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: non-NULL and valid per the caller's contract.
    let room = unsafe { *len } as i32;
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let take = (room as usize).min(SIN_LEN);
    if take > 0 {
        if addr.is_null() {
            return Err(Errno::EFAULT);
        }
        let sin = to_sockaddr_in(value);
        // SAFETY: `addr` is writable for `room >= take` bytes; `sin` is a local of SIN_LEN >= take bytes; the regions cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping((&sin as *const sockaddr_in).cast::<u8>(), addr.cast::<u8>(), take) };
    }
    // SAFETY: as above.
    unsafe { *len = SIN_LEN as socklen_t };
    Ok(())
}

/// Stores "no address" for a `recvfrom` on a stream socket: TCP reports a
/// zero-length address.
///
/// # Safety
/// `len` is NULL or a valid `socklen_t`.
pub unsafe fn write_none(addr: *mut sockaddr, len: *mut socklen_t) {
    if !addr.is_null() && !len.is_null() {
        // SAFETY: non-NULL and valid per the caller's contract.
        unsafe { *len = 0 };
    }
}

pub fn to_sockaddr_in(value: SocketAddrV4) -> sockaddr_in {
    sockaddr_in {
        sin_family: libc::AF_INET as sa_family_t,
        sin_port: value.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*value.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_buffers() {
        let value: SocketAddrV4 = "10.1.2.3:8080".parse().unwrap();
        let sin = to_sockaddr_in(value);
        // SAFETY: a live sockaddr_in of the stated size.
        let back = unsafe { read_v4((&sin as *const sockaddr_in).cast(), SIN_LEN as socklen_t) };
        assert_eq!(back, Some(value));
        // SAFETY: as above, with a length too short to hold it.
        assert_eq!(unsafe { read_v4((&sin as *const sockaddr_in).cast(), 8) }, None);

        let mut out = [0xAAu8; 32];
        let mut len: socklen_t = 4;
        // SAFETY: `out` has room for `len` bytes.
        unsafe { write_v4(value, out.as_mut_ptr().cast(), &mut len) }.unwrap();
        assert_eq!(len as usize, SIN_LEN, "the full length is reported");
        assert_eq!(out[4], 0xAA, "nothing past the caller's length is written");
        assert_eq!(u16::from_ne_bytes([out[0], out[1]]), libc::AF_INET as u16);

        let mut len: socklen_t = 16;
        // SAFETY: NULL address with a valid length: the kernel's EFAULT.
        assert_eq!(unsafe { write_v4(value, std::ptr::null_mut(), &mut len) }, Err(Errno::EFAULT));
        let mut len: socklen_t = 0;
        // SAFETY: nothing is copied for a zero length.
        assert_eq!(unsafe { write_v4(value, std::ptr::null_mut(), &mut len) }, Ok(()));
        assert_eq!(len as usize, SIN_LEN);
    }

    #[test]
    fn other_families_are_left_to_the_kernel() {
        let mut sin = to_sockaddr_in("1.2.3.4:5".parse().unwrap());
        sin.sin_family = libc::AF_INET6 as sa_family_t;
        // SAFETY: a live sockaddr_in of the stated size.
        assert_eq!(unsafe { read_v4((&sin as *const sockaddr_in).cast(), SIN_LEN as socklen_t) }, None);
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { read_v4(std::ptr::null(), 16) }, None);
    }
}
