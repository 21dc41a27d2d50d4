//! The per-process policy, from `SLUICE_*` variables (design §5.4), parsed on
//! the first socket decision (no constructor: the order in which shared
//! objects initialise does not matter, and programs that never make a TCP
//! socket never parse it).
//!
//! | variable | values | default |
//! |---|---|---|
//! | `SLUICE_RULES` | see [`rules`] | `sluice:*` |
//! | `SLUICE_LOOPBACK` | `on`/`off`: may 127.0.0.0/8 go to Sluice? | `off` |
//! | `SLUICE_FALLBACK` | `kernel`/`fail`: what a Sluice verdict does when the backend is unreachable | `fail` |
//! | `SLUICE_UDP` | `on`/`off`: UDP sockets as candidates | `off` |
//! | `SLUICE_BACKEND` | `vcl` (the daemon) or `kernel-proxy` (see [`crate::backend`]) | `vcl` |
//! | `SLUICE_PANIC` | `eio`/`abort`: an interposer panic fails the call with `EIO`, or aborts | `eio` |
//! | `SLUICE_LOG`, `SLUICE_TRACE` | see [`crate::logger`], [`crate::trace`] | |
//!
//! A bad value prints one line naming the variable and the default used
//! instead; the program always runs on.
//!
//! `SLUICE_LOOPBACK=off` acts as a leading `kernel:127.0.0.0/8` rule (and, for
//! `connect`, `0.0.0.0`, which Linux treats as the local host).
//!
//! A socket is decided once, by the first of `bind`, `connect` and `listen`:
//! a client that binds before connecting is decided by its local address.

pub mod rules;

use std::net::SocketAddrV4;
use std::sync::OnceLock;

use crate::backend::{self, Backend, Unreachable};
use rules::Rule;
pub use rules::Verdict;

/// What a Sluice verdict does when the backend cannot take the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The socket goes to the kernel (after one stderr line).
    Kernel,
    /// The deciding call fails with `ENETUNREACH` (after one stderr line).
    Fail,
}

/// The call a decision is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// `bind`/`listen`: the local address.
    Local,
    /// `connect`: the remote address.
    Remote,
}

pub struct Policy {
    rules: Vec<Rule>,
    loopback: bool,
    pub fallback: Fallback,
    pub backend: Result<&'static dyn Backend, Unreachable>,
    pub panic_abort: bool,
}

impl Policy {
    /// Where a socket whose deciding address is `addr` goes.
    pub fn verdict(&self, decision: Decision, addr: SocketAddrV4) -> Verdict {
        let ip = *addr.ip();
        let local_host = ip.is_loopback() || (decision == Decision::Remote && ip.is_unspecified());
        if local_host && !self.loopback {
            return Verdict::Kernel;
        }
        rules::first_match(&self.rules, addr)
    }

    /// Whether every TCP socket goes to the kernel whatever its address (the
    /// first rule is `kernel:*`): then `socket()` need not make candidates.
    pub fn all_kernel(&self) -> bool {
        self.rules.first().is_some_and(|rule| rule.verdict == Verdict::Kernel && rule.matches_everything())
    }
}

static POLICY: OnceLock<Policy> = OnceLock::new();

/// The policy if some call already parsed it.
pub fn get_if_parsed() -> Option<&'static Policy> {
    POLICY.get()
}

/// The process's policy; the first call parses the environment and reports
/// bad values on stderr.
pub fn get() -> &'static Policy {
    POLICY.get_or_init(|| {
        crate::logger::init();
        let (policy, problems) = parse(|name| std::env::var(name).ok());
        for problem in problems {
            log::error!("{problem}");
        }
        policy
    })
}

/// Parses the policy from `lookup` (a variable's value, if set); returns it
/// with one message per bad value.
pub fn parse(lookup: impl Fn(&str) -> Option<String>) -> (Policy, Vec<String>) {
    let mut problems = Vec::new();
    let default_rules = vec![Rule::any(Verdict::Sluice)];
    let rules = match lookup("SLUICE_RULES") {
        None => default_rules,
        Some(text) => rules::parse(&text).unwrap_or_else(|bad| {
            problems.push(format!("SLUICE_RULES: {bad}; using the default rules (sluice:*)"));
            default_rules
        }),
    };
    let loopback = flag(&lookup, "SLUICE_LOOPBACK", false, &mut problems);
    let udp = flag(&lookup, "SLUICE_UDP", false, &mut problems);
    let fallback = match lookup("SLUICE_FALLBACK").as_deref() {
        None | Some("fail") => Fallback::Fail,
        Some("kernel") => Fallback::Kernel,
        Some(other) => {
            problems.push(format!("SLUICE_FALLBACK: unknown value \"{other}\" (expected kernel or fail); using fail"));
            Fallback::Fail
        }
    };
    let panic_abort = match lookup("SLUICE_PANIC").as_deref() {
        None | Some("eio") => false,
        Some("abort") => true,
        Some(other) => {
            problems.push(format!("SLUICE_PANIC: unknown value \"{other}\" (expected eio or abort); using eio"));
            false
        }
    };
    let backend_name = lookup("SLUICE_BACKEND").unwrap_or_default();
    let backend = backend::select(&backend_name);
    if backend.is_err() && !backend_name.is_empty() {
        problems.push(format!(
            "SLUICE_BACKEND: unknown backend \"{backend_name}\" (expected vcl or kernel-proxy); Sluice sockets are unreachable"
        ));
    }
    if udp {
        problems.push(
            "SLUICE_UDP: no backend in this build carries UDP sessions yet; UDP sockets stay on the kernel".to_string(),
        );
    }
    (Policy { rules, loopback, fallback, backend, panic_abort }, problems)
}

fn flag(lookup: &impl Fn(&str) -> Option<String>, name: &str, default: bool, problems: &mut Vec<String>) -> bool {
    match lookup(name).as_deref() {
        None => default,
        Some("on" | "1" | "yes" | "true") => true,
        Some("off" | "0" | "no" | "false") => false,
        Some(other) => {
            let shown = if default { "on" } else { "off" };
            problems.push(format!("{name}: unknown value \"{other}\" (expected on or off); using {shown}"));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_env(vars: &[(&str, &str)]) -> (Policy, Vec<String>) {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(|name| map.get(name).cloned())
    }

    fn at(addr: &str) -> SocketAddrV4 {
        addr.parse().unwrap()
    }

    #[test]
    fn defaults() {
        let (policy, problems) = parse_env(&[]);
        assert!(problems.is_empty());
        assert_eq!(policy.fallback, Fallback::Fail);
        assert!(!policy.panic_abort);
        assert_eq!(policy.backend.as_ref().map(|b| b.name()).ok(), Some("vcl"));
        assert_eq!(policy.verdict(Decision::Local, at("0.0.0.0:80")), Verdict::Sluice);
        assert_eq!(policy.verdict(Decision::Remote, at("10.0.0.1:80")), Verdict::Sluice);
        assert_eq!(policy.verdict(Decision::Remote, at("127.0.0.1:80")), Verdict::Kernel);
        assert_eq!(policy.verdict(Decision::Remote, at("0.0.0.0:80")), Verdict::Kernel);
        assert_eq!(policy.verdict(Decision::Local, at("127.1.2.3:80")), Verdict::Kernel);
    }

    #[test]
    fn loopback_on_lets_rules_decide() {
        let (policy, problems) = parse_env(&[("SLUICE_LOOPBACK", "on"), ("SLUICE_RULES", "kernel:*:22")]);
        assert!(problems.is_empty());
        assert_eq!(policy.verdict(Decision::Remote, at("127.0.0.1:80")), Verdict::Sluice);
        assert_eq!(policy.verdict(Decision::Remote, at("127.0.0.1:22")), Verdict::Kernel);
    }

    #[test]
    fn bad_values_name_the_variable_and_fall_back_to_defaults() {
        let (policy, problems) = parse_env(&[
            ("SLUICE_RULES", "kernel:10.0.0.0/8,sluice:nowhere"),
            ("SLUICE_LOOPBACK", "maybe"),
            ("SLUICE_FALLBACK", "retry"),
            ("SLUICE_PANIC", "explode"),
            ("SLUICE_BACKEND", "dpdk"),
        ]);
        assert_eq!(problems.len(), 5, "{problems:?}");
        for (problem, var) in problems.iter().zip([
            "SLUICE_RULES",
            "SLUICE_LOOPBACK",
            "SLUICE_FALLBACK",
            "SLUICE_PANIC",
            "SLUICE_BACKEND",
        ]) {
            assert!(problem.starts_with(&format!("{var}: ")), "{problem}");
        }
        assert!(problems[0].contains("sluice:nowhere"));
        // The whole rule list is replaced by the default, not half-applied.
        assert_eq!(policy.verdict(Decision::Remote, at("10.0.0.1:80")), Verdict::Sluice);
        assert_eq!(policy.fallback, Fallback::Fail);
        assert!(!policy.panic_abort);
    }

    #[test]
    fn all_kernel_only_when_the_first_rule_takes_everything() {
        assert!(parse_env(&[("SLUICE_RULES", "kernel:*")]).0.all_kernel());
        assert!(parse_env(&[("SLUICE_RULES", "kernel:0.0.0.0/0:*,sluice:*")]).0.all_kernel());
        assert!(!parse_env(&[("SLUICE_RULES", "kernel:*:22,kernel:*")]).0.all_kernel());
        assert!(!parse_env(&[]).0.all_kernel());
    }

    #[test]
    fn kernel_fallback_and_proxy_backend() {
        let (policy, problems) = parse_env(&[("SLUICE_FALLBACK", "kernel"), ("SLUICE_BACKEND", "kernel-proxy")]);
        assert!(problems.is_empty());
        assert_eq!(policy.fallback, Fallback::Kernel);
        assert_eq!(policy.backend.map(|b| b.name()).ok(), Some("kernel-proxy"));
    }
}
