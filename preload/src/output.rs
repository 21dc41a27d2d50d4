//! Writing finished lines to stderr or to a file with the real `write`,
//! without allocating and without disturbing the caller's `errno`.

use std::ffi::CStr;

use crate::errno::Errno;
use crate::real;

/// Where trace or log lines go.
#[derive(Clone, Copy)]
pub enum Sink {
    Stderr,
    /// A file opened for each line (`O_APPEND`), so the interposer holds no
    /// descriptor of its own: the program's fd numbering and its "close every
    /// descriptor" loops are unaffected, and forked children and exec'd images
    /// keep appending to the same file.
    File(&'static CStr),
}

/// Appends `line` to `sink`. Failures are ignored: there is nowhere left to
/// report them.
pub fn emit(sink: Sink, line: &[u8]) {
    let saved = Errno::last();
    match sink {
        Sink::Stderr => write_all(libc::STDERR_FILENO, line),
        Sink::File(path) => {
            let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC;
            // SAFETY: `path` is NUL-terminated; `open` is not hooked.
            let fd = unsafe { libc::open(path.as_ptr(), flags, 0o644 as libc::c_uint) };
            if fd >= 0 {
                write_all(fd, line);
                // SAFETY: closing the descriptor opened just above.
                unsafe { real::close(fd) };
            }
        }
    }
    saved.set();
}

fn write_all(fd: libc::c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice of the given length.
        let n = unsafe { real::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n == 0 || Errno::last() != Errno(libc::EINTR) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sink_appends_and_keeps_errno() {
        let dir = std::env::temp_dir().join(format!("sluice-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lines");
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let cpath: &'static CStr = Box::leak(cpath.into_boxed_c_str());
        Errno(libc::EAGAIN).set();
        emit(Sink::File(cpath), b"one\n");
        emit(Sink::File(cpath), b"two\n");
        assert_eq!(Errno::last(), Errno(libc::EAGAIN));
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
