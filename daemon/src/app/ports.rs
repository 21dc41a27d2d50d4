//! The privileged-port rule (`ip(7)`): binding a port below
//! `net.ipv4.ip_unprivileged_port_start` needs `CAP_NET_BIND_SERVICE`. The
//! daemon binds for the app, so it checks the app's credentials instead of
//! its own, at bind time: uid 0, or the capability in the effective set of
//! the app process (`CapEff` in `/proc/<pid>/status`, `proc(5)`).

use super::AppIdentity;

/// `CAP_NET_BIND_SERVICE` (`capabilities(7)`, `linux/capability.h`).
const CAP_NET_BIND_SERVICE: u32 = 10;

/// Whether the app may bind `port`. Port 0 (any port) is never privileged:
/// the daemon picks an ephemeral one.
pub(super) fn may_bind(identity: &AppIdentity, port: u16, unprivileged_port_start: u16) -> bool {
    port == 0
        || port >= unprivileged_port_start
        || identity.uid == 0
        || has_capability(identity.pid, CAP_NET_BIND_SERVICE)
}

/// Whether process `pid` has capability number `cap` in its effective set.
/// A process that is gone, or whose status cannot be read, has none.
pub(crate) fn has_capability(pid: i32, cap: u32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => effective_capabilities(&status).is_some_and(|caps| caps & (1u64 << cap) != 0),
        Err(e) => {
            log::debug!("cannot read the capabilities of pid {pid}: {e}");
            false
        }
    }
}

/// The `CapEff:` mask of a `/proc/<pid>/status` text (hexadecimal).
fn effective_capabilities(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppId;

    fn identity(pid: i32, uid: u32) -> AppIdentity {
        AppIdentity { id: AppId(1), pid, uid, gid: uid }
    }

    #[test]
    fn cap_eff_is_parsed_from_status_text() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000000400\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(effective_capabilities(status), Some(0x400));
        assert_eq!(effective_capabilities("Name:\tx\n"), None);
        assert_eq!(effective_capabilities("CapEff:\tzz\n"), None);
    }

    #[test]
    fn unprivileged_ports_and_root_always_pass() {
        let nobody = identity(i32::MAX, 65534);
        assert!(may_bind(&nobody, 0, 1024));
        assert!(may_bind(&nobody, 1024, 1024));
        assert!(may_bind(&nobody, 80, 80), "the start itself is unprivileged");
        assert!(may_bind(&identity(i32::MAX, 0), 80, 1024));
    }

    #[test]
    fn a_process_that_does_not_exist_has_no_capability() {
        // pid_max is at most 2^22, so this pid never exists.
        assert!(!may_bind(&identity(i32::MAX, 1000), 80, 1024));
        assert!(!may_bind(&identity(-1, 1000), 80, 1024));
    }

    #[test]
    fn this_process_is_judged_by_its_own_cap_eff() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let expected = effective_capabilities(&status).unwrap() & (1 << CAP_NET_BIND_SERVICE) != 0;
        assert_eq!(may_bind(&identity(std::process::id() as i32, 1000), 80, 1024), expected);
    }
}
