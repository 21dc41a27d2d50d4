//! libbpf's and libxdp's messages (program loading, the bpffs fallback) go
//! to the `log` crate, targets "libbpf" and "libxdp", instead of straight to
//! stderr: they then carry the daemon's timestamps and obey its filter.
//! Warnings stay warnings; the libraries' info becomes debug (libbpf reports
//! every ELF section it skips) and their debug becomes trace.
//!
//! The callbacks receive a C `va_list`, formatted with `vsnprintf(3)`; the
//! bindings give its x86-64 shape only, so elsewhere the libraries keep
//! printing to stderr.

use std::sync::Once;

/// Installs the callbacks once per process.
pub(super) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(bridge::install);
}

#[cfg(target_arch = "x86_64")]
mod bridge {
    use std::ffi::{c_char, c_int, c_void, CStr};

    extern "C" {
        /// On x86-64 a `va_list` parameter is a pointer to the
        /// `__va_list_tag` the caller holds, so `*mut c_void` passes it as is.
        fn vsnprintf(buf: *mut c_char, size: usize, format: *const c_char, args: *mut c_void) -> c_int;
    }

    pub(super) fn install() {
        // SAFETY: installs a function with the signature libbpf declares; it only formats into its own buffer and logs.
        unsafe { libbpf_sys::libbpf_set_print(Some(print_libbpf)) };
        // SAFETY: as above, for libxdp.
        unsafe { libxdp_sys::libxdp_set_print(Some(print_libxdp)) };
    }

    unsafe extern "C" fn print_libbpf(
        level: libbpf_sys::libbpf_print_level,
        format: *const c_char,
        args: *mut libbpf_sys::__va_list_tag,
    ) -> c_int {
        let level = match level {
            libbpf_sys::LIBBPF_WARN => log::Level::Warn,
            libbpf_sys::LIBBPF_INFO => log::Level::Debug,
            _ => log::Level::Trace,
        };
        // SAFETY: libbpf passes a valid format string and the matching arguments.
        unsafe { forward("libbpf", level, format, args.cast()) }
    }

    unsafe extern "C" fn print_libxdp(
        level: libxdp_sys::libxdp_print_level,
        format: *const c_char,
        args: *mut libxdp_sys::__va_list_tag,
    ) -> c_int {
        let level = match level {
            libxdp_sys::libxdp_print_level_LIBXDP_WARN => log::Level::Warn,
            libxdp_sys::libxdp_print_level_LIBXDP_INFO => log::Level::Debug,
            _ => log::Level::Trace,
        };
        // SAFETY: libxdp passes a valid format string and the matching arguments.
        unsafe { forward("libxdp", level, format, args.cast()) }
    }

    /// # Safety
    /// `format` and `args` must be a printf format and its unread `va_list`.
    unsafe fn forward(target: &str, level: log::Level, format: *const c_char, args: *mut c_void) -> c_int {
        if !log::log_enabled!(target: target, level) {
            return 0;
        }
        // Longer messages are cut (vsnprintf always terminates the buffer).
        let mut buf = [0u8; 1024];
        // SAFETY: `buf` is valid for writes of its length; the caller vouches for `format` and `args`.
        let written = unsafe { vsnprintf(buf.as_mut_ptr().cast(), buf.len(), format, args) };
        if written < 0 {
            return written;
        }
        let text = CStr::from_bytes_until_nul(&buf).map(CStr::to_string_lossy).unwrap_or_default();
        // The libraries start each message with their own name, which the target already says.
        let text = text.trim_end();
        let text = text.strip_prefix(target).and_then(|t| t.strip_prefix(": ")).unwrap_or(text);
        log::log!(target: target, level, "{text}");
        written
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod bridge {
    pub(super) fn install() {}
}
