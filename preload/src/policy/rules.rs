//! `SLUICE_RULES`: which TCP/IPv4 sockets go to Sluice and which to the
//! kernel (design §5.4).
//!
//! A comma-separated list, first match wins, e.g.
//! `kernel:10.0.0.0/8,kernel:*:22,sluice:*`. Each rule is `VERDICT:MATCH`:
//!
//! * `VERDICT` is `kernel` or `sluice`;
//! * `MATCH` is `*` (everything), `ADDR[/LEN]` (any port), or
//!   `ADDR[/LEN]:PORTS` / `*:PORTS`, where `PORTS` is `*`, `N` or `N-M`.
//!
//! The address matched is the remote one for `connect` and the local one for
//! `bind`/`listen` (`0.0.0.0` for a wildcard bind). Spaces around rules are
//! allowed. No rule matching means Sluice.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Where a socket goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Kernel,
    Sluice,
}

/// One parsed rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub verdict: Verdict,
    network: Ipv4Addr,
    /// Prefix length, 0 (any address) to 32.
    prefix: u8,
    ports: (u16, u16),
}

impl Rule {
    /// `VERDICT:*`.
    pub const fn any(verdict: Verdict) -> Rule {
        Rule { verdict, network: Ipv4Addr::UNSPECIFIED, prefix: 0, ports: (0, u16::MAX) }
    }

    /// `VERDICT:NETWORK/PREFIX`, any port.
    pub const fn network(verdict: Verdict, network: Ipv4Addr, prefix: u8) -> Rule {
        Rule { verdict, network, prefix, ports: (0, u16::MAX) }
    }

    /// Whether the rule matches every address and port.
    pub fn matches_everything(&self) -> bool {
        self.prefix == 0 && self.ports == (0, u16::MAX)
    }

    pub fn matches(&self, addr: SocketAddrV4) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
        let in_network = u32::from(*addr.ip()) & mask == u32::from(self.network) & mask;
        in_network && (self.ports.0..=self.ports.1).contains(&addr.port())
    }
}

/// A rule that does not parse, with the offending text.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRule {
    pub text: String,
    pub reason: &'static str,
}

impl fmt::Display for BadRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad rule \"{}\": {}", self.text, self.reason)
    }
}

/// Parses a whole `SLUICE_RULES` value.
pub fn parse(text: &str) -> Result<Vec<Rule>, BadRule> {
    text.split(',').map(str::trim).map(parse_rule).collect()
}

/// The verdict of the first rule matching `addr`; Sluice if none does.
pub fn first_match(rules: &[Rule], addr: SocketAddrV4) -> Verdict {
    rules.iter().find(|rule| rule.matches(addr)).map_or(Verdict::Sluice, |rule| rule.verdict)
}

fn parse_rule(text: &str) -> Result<Rule, BadRule> {
    let bad = |reason| BadRule { text: text.to_string(), reason };
    let (verdict, spec) = text.split_once(':').ok_or_else(|| bad("expected VERDICT:MATCH"))?;
    let verdict = match verdict {
        "kernel" => Verdict::Kernel,
        "sluice" => Verdict::Sluice,
        _ => return Err(bad("the verdict must be \"kernel\" or \"sluice\"")),
    };
    let (addr, ports) = match spec.split_once(':') {
        Some((addr, ports)) => (addr, Some(ports)),
        None => (spec, None),
    };
    let (network, prefix) = parse_network(addr).ok_or_else(|| bad("expected *, ADDR or ADDR/LEN before the port"))?;
    let ports = match ports {
        None => (0, u16::MAX),
        Some(ports) => parse_ports(ports).ok_or_else(|| bad("expected the port as *, N or N-M (N <= M <= 65535)"))?,
    };
    Ok(Rule { verdict, network, prefix, ports })
}

fn parse_network(text: &str) -> Option<(Ipv4Addr, u8)> {
    if text == "*" {
        return Some((Ipv4Addr::UNSPECIFIED, 0));
    }
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, len)) => (addr, len.parse::<u8>().ok().filter(|len| *len <= 32)?),
        None => (text, 32),
    };
    Some((addr.parse().ok()?, prefix))
}

fn parse_ports(text: &str) -> Option<(u16, u16)> {
    if text == "*" {
        return Some((0, u16::MAX));
    }
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.parse().ok()?, high.parse().ok()?),
        None => {
            let port = text.parse().ok()?;
            (port, port)
        }
    };
    (low <= high).then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: &str) -> SocketAddrV4 {
        addr.parse().unwrap()
    }

    #[test]
    fn the_design_example() {
        let rules = parse("kernel:10.0.0.0/8,kernel:*:22,sluice:*").unwrap();
        assert_eq!(first_match(&rules, at("10.1.2.3:80")), Verdict::Kernel);
        assert_eq!(first_match(&rules, at("192.168.0.1:22")), Verdict::Kernel);
        assert_eq!(first_match(&rules, at("192.168.0.1:80")), Verdict::Sluice);
        assert_eq!(first_match(&rules, at("11.0.0.1:80")), Verdict::Sluice);
    }

    #[test]
    fn first_match_wins_and_no_match_is_sluice() {
        let rules = parse("sluice:10.0.0.1, kernel:10.0.0.0/24:1000-2000").unwrap();
        assert_eq!(first_match(&rules, at("10.0.0.1:1500")), Verdict::Sluice);
        assert_eq!(first_match(&rules, at("10.0.0.2:1500")), Verdict::Kernel);
        assert_eq!(first_match(&rules, at("10.0.0.2:2001")), Verdict::Sluice);
        assert_eq!(first_match(&[], at("1.2.3.4:5")), Verdict::Sluice);
    }

    #[test]
    fn prefixes() {
        let rule = Rule::network(Verdict::Kernel, Ipv4Addr::new(127, 0, 0, 0), 8);
        assert!(rule.matches(at("127.200.0.1:1")));
        assert!(!rule.matches(at("128.0.0.1:1")));
        let everything = parse("kernel:0.0.0.0/0").unwrap();
        assert_eq!(first_match(&everything, at("8.8.8.8:53")), Verdict::Kernel);
    }

    #[test]
    fn bad_rules_name_the_text() {
        for text in ["kernel", "both:*", "kernel:10.0.0.0/33", "kernel:*:70000", "kernel:*:9-1", "kernel:1.2.3:80", ""]
        {
            let err = parse(text).unwrap_err();
            assert_eq!(err.text, text.trim(), "{text}");
        }
        let err = parse("sluice:*,kernal:*").unwrap_err();
        assert_eq!(err.to_string(), "bad rule \"kernal:*\": the verdict must be \"kernel\" or \"sluice\"");
    }
}
