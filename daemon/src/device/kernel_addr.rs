//! Whether the kernel itself has an IPv4 address on an interface. An AF_XDP
//! daemon takes every frame on its queues, so a kernel address there would
//! half-work (design §3.1): the daemon refuses to start unless told
//! `--allow-kernel-addr`.

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;

/// The IPv4 addresses the kernel has on `iface` (in this network namespace).
pub fn ipv4_addresses(iface: &str) -> io::Result<Vec<Ipv4Addr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let entry = unsafe { &*cur };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) };
        if name.to_bytes() == iface.as_bytes() && !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of at least its family's size.
            let family = unsafe { (*entry.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in>() };
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        cur = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once; no reference into it survives.
    unsafe { libc::freeifaddrs(list) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_its_address_and_unknown_interfaces_none() {
        assert!(ipv4_addresses("lo").unwrap().contains(&Ipv4Addr::LOCALHOST));
        assert!(ipv4_addresses("no-such-if0").unwrap().is_empty());
    }
}
