//! `splice` with a session on one end: a bounce through a 64 KiB buffer
//! (design §5.3), written so that no byte is lost when the other side takes
//! less than was fetched.
//!
//! * session → pipe: peek from the session, write the bytes into a private
//!   pipe and `splice` them on into the target (which honours
//!   `SPLICE_F_NONBLOCK`), then consume exactly what the target took
//!   (`vmsplice` would not do: it maps the buffer's pages into the pipe
//!   instead of copying them);
//! * pipe → session: `tee` the pipe into a private pipe (a copy that leaves
//!   the source untouched), send, then consume exactly what was sent.
//!
//! As for the kernel, one end must be a pipe (else `EINVAL`) and a pipe end
//! takes no offset (else `ESPIPE`). A candidate on either end converts.

use std::io::{IoSlice, IoSliceMut};

use libc::{c_int, c_uint, loff_t, size_t, ssize_t};

use super::{backend, ssize, untracked};
use crate::backend::SessionRef;
use crate::decide;
use crate::errno::{check, Errno};
use crate::fdtable::{Entry, FDS};
use crate::hook::Outcome;
use crate::real;

const BOUNCE: usize = 64 * 1024;

crate::hook! {
    fn splice(fd_in: c_int, off_in: *mut loff_t, fd_out: c_int, off_out: *mut loff_t, len: size_t, flags: c_uint)
        -> ssize_t;
    kernel_if untracked(fd_in) && untracked(fd_out);
    {
        for fd in [fd_in, fd_out] {
            if let Entry::Candidate(_) = FDS.get(fd) {
                decide::commit_to_kernel(fd)?;
            }
        }
        match (FDS.get(fd_in), FDS.get(fd_out)) {
            (Entry::Session(_), Entry::Session(_)) => Err(Errno::EINVAL),
            (Entry::Session(s), _) => session_to_pipe(s, fd_out, off_out, len, flags).map(Outcome::Done),
            (_, Entry::Session(s)) => pipe_to_session(fd_in, off_in, s, len, flags).map(Outcome::Done),
            _ => Ok(Outcome::Real),
        }
    }
}

/// Checks that `fd` is a pipe given without an offset.
fn check_pipe_end(fd: c_int, offset: *mut loff_t) -> Result<(), Errno> {
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: fstat64 into a local.
    check(unsafe { real::fstat64(fd, &mut st) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(Errno::EINVAL);
    }
    if !offset.is_null() {
        return Err(Errno(libc::ESPIPE));
    }
    Ok(())
}

fn dontwait(flags: c_uint) -> c_int {
    if flags & libc::SPLICE_F_NONBLOCK != 0 {
        libc::MSG_DONTWAIT
    } else {
        0
    }
}

fn session_to_pipe(
    s: SessionRef,
    pipe: c_int,
    offset: *mut loff_t,
    len: size_t,
    flags: c_uint,
) -> Result<ssize_t, Errno> {
    check_pipe_end(pipe, offset)?;
    let backend = backend()?;
    let mut buf = vec![0u8; len.min(BOUNCE)];
    let peeked = backend.recv(s, &mut [IoSliceMut::new(&mut buf)], libc::MSG_PEEK | dontwait(flags))?;
    if peeked == 0 {
        return Ok(0);
    }
    let private = PrivatePipe::new()?;
    let mut written = 0;
    while written < peeked {
        // SAFETY: writing the peeked part of a live buffer. A fresh pipe holds 64 KiB, the most a bounce carries, so this never blocks.
        let n = unsafe { real::write(private.write_end(), buf[written..peeked].as_ptr().cast(), peeked - written) };
        written += check(n)? as usize;
    }
    let (from, no_offset) = (private.read_end(), std::ptr::null_mut());
    // SAFETY: two pipe descriptors, no offsets.
    let moved = unsafe { libc::splice(from, no_offset, pipe, no_offset, peeked, flags) };
    let moved = check(moved)? as usize;
    // The peeked bytes are still first in the session: consume what the
    // target took.
    let consumed = backend.recv(s, &mut [IoSliceMut::new(&mut buf[..moved])], libc::MSG_DONTWAIT)?;
    debug_assert_eq!(consumed, moved);
    Ok(ssize(moved))
}

/// A close-on-exec pipe of the interposer's own, closed on drop.
struct PrivatePipe([c_int; 2]);

impl PrivatePipe {
    fn new() -> Result<PrivatePipe, Errno> {
        let mut fds = [0 as c_int; 2];
        // SAFETY: room for two descriptors.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
        Ok(PrivatePipe(fds))
    }

    fn read_end(&self) -> c_int {
        self.0[0]
    }

    fn write_end(&self) -> c_int {
        self.0[1]
    }
}

impl Drop for PrivatePipe {
    fn drop(&mut self) {
        // SAFETY: closing the two descriptors this value owns.
        unsafe {
            real::close(self.0[0]);
            real::close(self.0[1]);
        }
    }
}

fn pipe_to_session(
    pipe: c_int,
    offset: *mut loff_t,
    s: SessionRef,
    len: size_t,
    flags: c_uint,
) -> Result<ssize_t, Errno> {
    check_pipe_end(pipe, offset)?;
    let private = PrivatePipe::new()?;
    // SAFETY: two pipes; tee duplicates without consuming the source.
    let copied = unsafe { libc::tee(pipe, private.write_end(), len.min(BOUNCE), flags & libc::SPLICE_F_NONBLOCK) };
    let mut buf = vec![0u8; check(copied)? as usize];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: reading into the unfilled tail of a live buffer.
        let n = unsafe { real::read(private.read_end(), buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
        filled += check(n)? as usize;
    }
    drop(private);
    if buf.is_empty() {
        return Ok(0);
    }
    let mut send_flags = dontwait(flags);
    if flags & libc::SPLICE_F_MORE != 0 {
        send_flags |= libc::MSG_MORE;
    }
    let sent = backend()?.send(s, &[IoSlice::new(&buf)], send_flags)?;
    // Consume exactly the bytes sent; they are first in the pipe.
    let mut scratch = vec![0u8; sent];
    let mut drained = 0;
    while drained < sent {
        // SAFETY: reading into the unfilled tail of a live buffer.
        let n = unsafe { real::read(pipe, scratch[drained..].as_mut_ptr().cast(), sent - drained) };
        match check(n) {
            Ok(0) => break,
            Ok(n) => drained += n as usize,
            Err(Errno(libc::EINTR)) => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(ssize(sent))
}
