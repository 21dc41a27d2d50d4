//! What the AF_XDP device needs to know about its interface: index, MAC
//! address and MTU, asked of the kernel with `ioctl`s (netdevice(7)).
//!
//! The `ioctl`s answer for the network namespace of the calling *thread*,
//! which is the namespace the AF_XDP socket is created in. `/sys/class/net`
//! would not do: it shows the namespace of whoever mounted sysfs, so a thread
//! that entered another namespace with `setns(2)` finds nothing there.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Interface name, checked against the kernel's limits (`IFNAMSIZ`).
#[derive(Clone, Debug)]
pub(super) struct IfaceName {
    c: CString,
}

impl IfaceName {
    pub(super) fn new(name: &str) -> Result<IfaceName, String> {
        if name.is_empty() {
            return Err("the interface name is empty".to_string());
        }
        // IFNAMSIZ counts the terminating NUL.
        if name.len() >= libc::IFNAMSIZ {
            return Err(format!("interface name {name:?} is longer than {} bytes", libc::IFNAMSIZ - 1));
        }
        let c = CString::new(name).map_err(|_| format!("interface name {name:?} contains a NUL byte"))?;
        Ok(IfaceName { c })
    }

    fn ifreq(&self) -> libc::ifreq {
        // Why this is sound: ifreq is a plain C struct (a name array and a union of
        // integers, sockaddrs and a pointer) for which all-zero bytes is a
        // valid value.
        // SAFETY: all-zero bytes are a valid ifreq.
        let mut req: libc::ifreq = unsafe { mem::zeroed() };
        for (dst, &src) in req.ifr_name.iter_mut().zip(self.c.as_bytes()) {
            *dst = src as libc::c_char;
        }
        req
    }
}

/// The interface index (`if_nametoindex(3)`).
pub(super) fn ifindex(name: &IfaceName) -> io::Result<u32> {
    // SAFETY: the argument is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// The interface's hardware address (`SIOCGIFHWADDR`). Errors unless the
/// interface is Ethernet (ARPHRD_ETHER): Sluice frames are Ethernet frames.
pub(super) fn mac_address(name: &IfaceName) -> io::Result<[u8; 6]> {
    let mut req = name.ifreq();
    ioctl(libc::SIOCGIFHWADDR, &mut req)?;
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member of the union.
    let hwaddr = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hwaddr.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("not an Ethernet interface (hardware type {})", hwaddr.sa_family),
        ));
    }
    let mut mac = [0u8; 6];
    for (dst, &src) in mac.iter_mut().zip(hwaddr.sa_data.iter()) {
        *dst = src as u8;
    }
    Ok(mac)
}

/// The interface's MTU (`SIOCGIFMTU`): the largest IP packet it carries.
pub(super) fn mtu(name: &IfaceName) -> io::Result<u32> {
    let mut req = name.ifreq();
    ioctl(libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU filled the ifru_mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("negative MTU {mtu}")))
}

/// One interface `ioctl` on a throw-away datagram socket (netdevice(7):
/// "any socket's file descriptor ... regardless of the family or type").
fn ioctl(request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: plain socket(2) call; the returned descriptor is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `req` is a valid, exclusively borrowed ifreq, the structure these SIOCGIF* requests read the name from and write the answer to.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kernel_cannot_hold_are_refused() {
        assert!(IfaceName::new("").is_err());
        assert!(IfaceName::new("a\0b").is_err());
        assert!(IfaceName::new("sixteen-chars-xx").is_err());
        assert!(IfaceName::new("fifteen-chars-x").is_ok());
    }

    #[test]
    fn loopback_has_an_index_and_an_mtu_but_is_not_ethernet() {
        let lo = IfaceName::new("lo").unwrap();
        assert!(ifindex(&lo).unwrap() > 0);
        assert!(mtu(&lo).unwrap() >= 1280);
        let err = mac_address(&lo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    }

    #[test]
    fn a_missing_interface_is_an_error() {
        let name = IfaceName::new("sx-no-such-if").unwrap();
        assert!(ifindex(&name).is_err());
        assert!(mtu(&name).is_err());
    }
}
