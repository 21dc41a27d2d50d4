//! `SET_OPTION`: socket options that take effect in the engine, mapped onto
//! the connection's `TcpConfig` (`tcp(7)`, `socket(7)`). Options set on a
//! listener are kept and applied to every connection it accepts later.

use sluice_shm::protocol::SockOption;
use sluice_shm::SessionHandle;
use sluice_stack::config::{KeepaliveConfig, TcpConfig};
use sluice_stack::{ConnId, Duration};

use super::errno::errno;
use super::session::Role;
use super::state::{App, Ctx};

/// Linux's upper bounds (`MAX_TCP_KEEPIDLE`, `MAX_TCP_KEEPINTVL`,
/// `MAX_TCP_KEEPCNT` in `include/net/tcp.h`); below 1 is EINVAL too.
const MAX_KEEP_SECONDS: u64 = 32_767;
const MAX_KEEP_COUNT: u64 = 127;

impl App {
    /// Sets `option` on the session; replies 0 or an errno.
    pub(super) fn set_option(
        &mut self,
        ctx: &mut Ctx<'_>,
        handle: SessionHandle,
        option: SockOption,
        value: u64,
    ) -> Result<u64, i32> {
        let session = self.sessions.get_mut(handle).ok_or(libc::EBADF)?;
        match &mut session.role {
            Role::Conn(conn) => {
                let id = conn.id;
                self.apply_option(ctx, id, option, value)?;
            }
            Role::Listener(listener) => {
                // Checked now, so a bad value fails the call, not a later accept.
                apply(&mut TcpConfig::default(), option, value)?;
                listener.inherit(option, value);
            }
            Role::Cut(end) => {
                // Checked as for an engine connection, then kept by the end.
                apply(&mut TcpConfig::default(), option, value)?;
                end.set_option(option, value);
            }
        }
        Ok(0)
    }

    /// Applies one option to engine connection `conn`.
    pub(super) fn apply_option(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: ConnId,
        option: SockOption,
        value: u64,
    ) -> Result<(), i32> {
        let mut config = ctx.stack.tcp_config(conn).map_err(errno)?;
        apply(&mut config, option, value)?;
        ctx.stack.tcp_set_config(ctx.now, conn, config).map_err(errno)
    }
}

/// `option = value` on `config`; EINVAL for a value out of the kernel's range.
/// Boolean options take any non-zero value as on, as `setsockopt(2)` does.
fn apply(config: &mut TcpConfig, option: SockOption, value: u64) -> Result<(), i32> {
    let seconds = |v: u64| (1..=MAX_KEEP_SECONDS).contains(&v).then(|| Duration::from_secs(v)).ok_or(libc::EINVAL);
    match option {
        SockOption::NoDelay => config.nodelay = value != 0,
        SockOption::Cork => config.cork = value != 0,
        SockOption::KeepAlive => {
            config.keepalive = (value != 0).then(|| config.keepalive.unwrap_or(config.keepalive_defaults))
        }
        SockOption::KeepIdle => {
            let idle = seconds(value)?;
            set_keepalive(config, |k| k.idle = idle);
        }
        SockOption::KeepInterval => {
            let interval = seconds(value)?;
            set_keepalive(config, |k| k.interval = interval);
        }
        SockOption::KeepCount => {
            if !(1..=MAX_KEEP_COUNT).contains(&value) {
                return Err(libc::EINVAL);
            }
            set_keepalive(config, |k| k.probes = value as u32);
        }
        SockOption::LingerZero => config.linger_zero = value != 0,
    }
    Ok(())
}

/// Keepalive parameters apply to the running keepalive, and to the one
/// `SO_KEEPALIVE` starts later.
fn set_keepalive(config: &mut TcpConfig, set: impl Fn(&mut KeepaliveConfig)) {
    set(&mut config.keepalive_defaults);
    if let Some(running) = config.keepalive.as_mut() {
        set(running);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_parameters_reach_the_running_and_the_future_keepalive() {
        let mut c = TcpConfig::default();
        apply(&mut c, SockOption::KeepIdle, 30).unwrap();
        assert_eq!(c.keepalive, None, "setting the idle time does not switch keepalive on");
        apply(&mut c, SockOption::KeepAlive, 1).unwrap();
        assert_eq!(c.keepalive.unwrap().idle, Duration::from_secs(30));
        apply(&mut c, SockOption::KeepInterval, 5).unwrap();
        apply(&mut c, SockOption::KeepCount, 3).unwrap();
        let k = c.keepalive.unwrap();
        assert_eq!((k.interval, k.probes), (Duration::from_secs(5), 3));
        apply(&mut c, SockOption::KeepAlive, 0).unwrap();
        assert_eq!(c.keepalive, None);
        assert_eq!(c.keepalive_defaults.probes, 3);
    }

    #[test]
    fn out_of_range_values_are_einval_and_change_nothing() {
        let mut c = TcpConfig::default();
        let before = c;
        for (option, value) in [
            (SockOption::KeepIdle, 0),
            (SockOption::KeepIdle, MAX_KEEP_SECONDS + 1),
            (SockOption::KeepInterval, u64::MAX),
            (SockOption::KeepCount, 0),
            (SockOption::KeepCount, 128),
        ] {
            assert_eq!(apply(&mut c, option, value), Err(libc::EINVAL), "{option:?} = {value}");
        }
        assert_eq!(c, before);
    }

    #[test]
    fn boolean_options_take_any_non_zero_value() {
        let mut c = TcpConfig::default();
        apply(&mut c, SockOption::NoDelay, 7).unwrap();
        apply(&mut c, SockOption::LingerZero, 1).unwrap();
        apply(&mut c, SockOption::Cork, 2).unwrap();
        assert!(c.nodelay && c.linger_zero && c.cork);
        apply(&mut c, SockOption::NoDelay, 0).unwrap();
        apply(&mut c, SockOption::Cork, 0).unwrap();
        assert!(!c.nodelay && !c.cork);
    }
}
