//! Address settings: the stack's ADDR/PREFIX, its gateway and its MAC.
//! Messages quote the value as written (`shown`).

use std::net::Ipv4Addr;

/// Why `addr` cannot be a host's own address or a gateway, if it cannot.
fn not_unicast(addr: Ipv4Addr) -> Option<&'static str> {
    let first = addr.octets()[0];
    if first == 0 {
        // RFC 1122 §3.2.1.3 (a): "this host on this network", never a host's
        // configured address.
        Some("is in 0.0.0.0/8, which no host may use (RFC 1122 3.2.1.3)")
    } else if addr.is_loopback() {
        Some("is a loopback address (127.0.0.0/8)")
    } else if addr.is_multicast() {
        Some("is a multicast address (224.0.0.0/4)")
    } else if addr.is_broadcast() {
        Some("is the limited broadcast address")
    } else if first >= 240 {
        // RFC 1112 §4: class E is reserved.
        Some("is in the reserved 240.0.0.0/4")
    } else {
        None
    }
}

/// The mask of a /`prefix` (1..=32).
fn mask(prefix: u8) -> u32 {
    u32::MAX << (32 - u32::from(prefix))
}

/// Why `addr` cannot be a host in `addr`/`prefix`, if it cannot: on subnets
/// of /30 or wider the all-zeros and all-ones host parts are the network and
/// the directed broadcast (RFC 922 §7); /31 (RFC 3021) and /32 have neither.
fn not_host_in_subnet(addr: Ipv4Addr, prefix: u8) -> Option<String> {
    if prefix > 30 {
        return None;
    }
    let host = u32::from(addr) & !mask(prefix);
    if host == 0 {
        Some(format!("is the network address of its /{prefix}"))
    } else if host == !mask(prefix) {
        Some(format!("is the broadcast address of its /{prefix}"))
    } else {
        None
    }
}

/// `ADDR/PREFIX`: prefix 1..=32, a unicast host address.
pub fn ip_prefix(text: &str, shown: &str) -> Result<(Ipv4Addr, u8), String> {
    let Some((addr, prefix)) = text.split_once('/') else {
        return Err(format!("{shown} lacks a /prefix"));
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{shown}: {addr:?} is not an IPv4 address"))?;
    let prefix = super::number::decimal(prefix)
        .filter(|p| (1..=32).contains(p))
        .ok_or_else(|| format!("{shown}: the prefix must be 1..=32"))? as u8;
    if let Some(why) = not_unicast(addr).map(str::to_owned).or_else(|| not_host_in_subnet(addr, prefix)) {
        return Err(format!("{shown}: {addr} {why}"));
    }
    Ok((addr, prefix))
}

/// A gateway: a unicast host address inside `ip`/`prefix`, not `ip` itself.
pub fn gateway(text: &str, shown: &str, ip: Ipv4Addr, prefix: u8) -> Result<Ipv4Addr, String> {
    let gateway: Ipv4Addr = text.parse().map_err(|_| format!("{shown} is not an IPv4 address"))?;
    if let Some(why) = not_unicast(gateway) {
        return Err(format!("{shown} {why}"));
    }
    let network = Ipv4Addr::from(u32::from(ip) & mask(prefix));
    if u32::from(gateway) & mask(prefix) != u32::from(network) {
        // A gateway must be reachable on the link (RFC 1122 §3.3.1.1).
        return Err(format!("{shown} is outside the ip's subnet {network}/{prefix}"));
    }
    if gateway == ip {
        return Err(format!("{shown} is the ip itself"));
    }
    if let Some(why) = not_host_in_subnet(gateway, prefix) {
        return Err(format!("{shown} {why}"));
    }
    Ok(gateway)
}

/// A MAC written as six two-digit hex octets separated by `:` (or `-`),
/// unicast (I/G bit clear, IEEE 802 §8.2) and not all zeros.
pub fn mac(text: &str, shown: &str) -> Result<[u8; 6], String> {
    let separator = if text.contains('-') { '-' } else { ':' };
    let mut octets = [0u8; 6];
    let mut parts = text.split(separator);
    for octet in octets.iter_mut() {
        let part = parts.next().filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        *octet = part
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| format!("{shown} is not a MAC address like 02:00:00:00:00:01"))?;
    }
    if parts.next().is_some() {
        return Err(format!("{shown} is not a MAC address like 02:00:00:00:00:01"));
    }
    if octets[0] & 1 != 0 {
        return Err(format!("{shown} is a multicast MAC (the low bit of the first octet is set)"));
    }
    if octets == [0; 6] {
        return Err(format!("{shown} is the all-zeros MAC"));
    }
    Ok(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Result<(Ipv4Addr, u8), String> {
        ip_prefix(text, &format!("{text:?}"))
    }

    #[test]
    fn host_addresses() {
        assert_eq!(ip("10.0.0.1/24"), Ok((Ipv4Addr::new(10, 0, 0, 1), 24)));
        assert_eq!(ip("10.0.0.0/31"), Ok((Ipv4Addr::new(10, 0, 0, 0), 31)));
        assert_eq!(ip("10.0.0.255/32"), Ok((Ipv4Addr::new(10, 0, 0, 255), 32)));
        assert_eq!(ip("10.0.0.1").unwrap_err(), "\"10.0.0.1\" lacks a /prefix");
        for bad in ["10.0.0.0/24", "10.0.0.255/24", "127.0.0.1/8", "224.0.0.1/4", "0.1.2.3/8", "250.0.0.1/8"] {
            assert!(ip(bad).is_err(), "{bad}");
        }
        for bad in ["10.0.0.1/0", "10.0.0.1/33", "10.0.0.1/", "10.0.0/24", "10.0.0.1/+8"] {
            assert!(ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateways() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(gateway("10.0.0.1", "", ip, 24), Ok(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(gateway("10.0.1.1", "", ip, 24).unwrap_err().contains("outside"));
        assert!(gateway("10.0.0.2", "", ip, 24).unwrap_err().contains("itself"));
        assert!(gateway("10.0.0.255", "", ip, 24).unwrap_err().contains("broadcast"));
    }

    #[test]
    fn macs() {
        assert_eq!(mac("02:00:00:77:00:02", ""), Ok([2, 0, 0, 0x77, 0, 2]));
        assert_eq!(mac("02-AA-00-77-00-02", ""), Ok([2, 0xaa, 0, 0x77, 0, 2]));
        for bad in ["01:00:5e:00:00:01", "00:00:00:00:00:00", "02:00:00:77:00", "02:00:00:77:00:02:03", "2:0:0:0:0:1"] {
            assert!(mac(bad, "").is_err(), "{bad}");
        }
    }
}
