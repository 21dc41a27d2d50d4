//! The XDP program on the interface, through libxdp (the library xsk-rs
//! links): which mode it runs in, and removing libxdp's AF_XDP redirect
//! program when a process that died left it behind.
//!
//! libxdp attaches its program (`xsk_def_prog`) with the first socket on an
//! interface and counts the sockets using it in a BPF map; the last socket's
//! delete detaches it. A process that dies skips the delete, so the program
//! stays, counting sockets that no longer exist, and would never be detached
//! again: `open` removes it first (see [`super::XdpDevice::open`]).

use std::ffi::CStr;
use std::io;
use std::ptr::NonNull;

use libxdp_sys as xdp;

/// Name of libxdp's default AF_XDP program (xsk_def_xdp_prog.c), the one
/// xsk-rs attaches.
const XSK_PROGRAM_NAME: &CStr = c"xsk_def_prog";

/// How an XDP program runs on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AttachMode {
    /// In the driver (XDP_FLAGS_DRV_MODE).
    Native,
    /// On the generic path after the skb is built (XDP_FLAGS_SKB_MODE).
    Skb,
    /// Offloaded to the NIC.
    Hardware,
}

impl AttachMode {
    pub(super) fn label(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Skb => "skb",
            AttachMode::Hardware => "hw",
        }
    }
}

/// What is attached to an interface, as libxdp loads it (a legacy single
/// program, or libxdp's dispatcher with its component programs). Closed on drop.
struct Attached(NonNull<xdp::xdp_multiprog>);

impl Attached {
    /// `None` when no XDP program is attached.
    fn get(ifindex: u32) -> io::Result<Option<Attached>> {
        let ifindex = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range"))?;
        // SAFETY: takes an integer; returns an owned handle, an error pointer (libxdp's non-strict mode encodes errors in the pointer) or NULL.
        let mp = unsafe { xdp::xdp_multiprog__get_from_ifindex(ifindex) };
        // NULL comes only with no error: libxdp found no program.
        let Some(mp) = NonNull::new(mp) else { return Ok(None) };
        // SAFETY: only inspects the pointer value (error pointers are small negative numbers).
        let err = unsafe { xdp::libxdp_get_error(mp.as_ptr().cast()) };
        if err == 0 {
            return Ok(Some(Attached(mp)));
        }
        let code = i32::try_from(-err).unwrap_or(libc::EINVAL);
        if code == libc::ENOENT {
            Ok(None)
        } else {
            Err(io::Error::from_raw_os_error(code))
        }
    }

    fn mode(&self) -> Option<AttachMode> {
        // SAFETY: self.0 is a live handle from xdp_multiprog__get_from_ifindex.
        let mode = unsafe { xdp::xdp_multiprog__attach_mode(self.0.as_ptr()) };
        match mode {
            xdp::xdp_attach_mode_XDP_MODE_NATIVE => Some(AttachMode::Native),
            xdp::xdp_attach_mode_XDP_MODE_SKB => Some(AttachMode::Skb),
            xdp::xdp_attach_mode_XDP_MODE_HW => Some(AttachMode::Hardware),
            _ => None,
        }
    }

    fn is_legacy(&self) -> bool {
        // SAFETY: self.0 is a live handle.
        unsafe { xdp::xdp_multiprog__is_legacy(self.0.as_ptr()) }
    }

    /// libxdp's AF_XDP program, if it is the attached one (legacy) or one of
    /// the dispatcher's. Borrowed from `self`.
    fn xsk_program(&self) -> Option<NonNull<xdp::xdp_program>> {
        let mp = self.0.as_ptr();
        if self.is_legacy() {
            // SAFETY: mp is a live handle; the program it returns is owned by it.
            let main = NonNull::new(unsafe { xdp::xdp_multiprog__main_prog(mp) })?;
            return is_xsk_program(main).then_some(main);
        }
        let mut prev: *mut xdp::xdp_program = std::ptr::null_mut();
        loop {
            // SAFETY: mp is a live handle and prev NULL or a program it returned.
            let next = NonNull::new(unsafe { xdp::xdp_multiprog__next_prog(prev, mp) })?;
            if is_xsk_program(next) {
                return Some(next);
            }
            prev = next.as_ptr();
        }
    }

    fn program_count(&self) -> libc::c_int {
        // SAFETY: self.0 is a live handle.
        unsafe { xdp::xdp_multiprog__program_count(self.0.as_ptr()) }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: self.0 is a live handle, closed exactly once, here.
        unsafe { xdp::xdp_multiprog__close(self.0.as_ptr()) }
    }
}

fn is_xsk_program(prog: NonNull<xdp::xdp_program>) -> bool {
    // SAFETY: prog is a live program of a live handle.
    let name = unsafe { xdp::xdp_program__name(prog.as_ptr()) };
    if name.is_null() {
        return false;
    }
    // SAFETY: libxdp returns a NUL-terminated name owned by the program, which outlives this comparison.
    unsafe { CStr::from_ptr(name) == XSK_PROGRAM_NAME }
}

/// The mode of the XDP program attached to the interface; `None` when there is none.
pub(super) fn attached_mode(ifindex: u32) -> io::Result<Option<AttachMode>> {
    Ok(Attached::get(ifindex)?.and_then(|attached| attached.mode()))
}

/// Whether libxdp's AF_XDP program is attached to the interface.
pub(super) fn has_xsk_program(ifindex: u32) -> io::Result<bool> {
    Ok(Attached::get(ifindex)?.is_some_and(|attached| attached.xsk_program().is_some()))
}

/// Detaches libxdp's AF_XDP program from the interface, leaving any other
/// program of libxdp's dispatcher in place. Returns whether there was one.
/// The caller has made sure no socket uses it.
pub(super) fn detach_xsk_program(ifindex: u32) -> io::Result<bool> {
    let Some(attached) = Attached::get(ifindex)? else { return Ok(false) };
    let Some(prog) = attached.xsk_program() else { return Ok(false) };
    let rc = if attached.is_legacy() || attached.program_count() <= 1 {
        // SAFETY: attached.0 is a live handle; detaching removes what it describes.
        unsafe { xdp::xdp_multiprog__detach(attached.0.as_ptr()) }
    } else {
        let mode = attached.mode().map_or(xdp::xdp_attach_mode_XDP_MODE_UNSPEC, |mode| match mode {
            AttachMode::Native => xdp::xdp_attach_mode_XDP_MODE_NATIVE,
            AttachMode::Skb => xdp::xdp_attach_mode_XDP_MODE_SKB,
            AttachMode::Hardware => xdp::xdp_attach_mode_XDP_MODE_HW,
        });
        // In range: Attached::get converted it already.
        let ifindex = ifindex as libc::c_int;
        // SAFETY: prog is a live program of the live handle `attached`, which libxdp uses to find it among the dispatcher's programs.
        unsafe { xdp::xdp_program__detach(prog.as_ptr(), ifindex, mode, 0) }
    };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc));
    }
    Ok(true)
}
