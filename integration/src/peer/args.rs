//! Command line of `sluice-peer`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use sluice_stack::wire::EthernetAddress;
use sluice_stack::CongestionAlgorithm;

pub const USAGE: &str = "\
usage: sluice-peer --tap NAME --mac MAC --ip ADDR/PREFIX [options] MODE ARGS...

Runs one Sluice engine on the TAP device NAME (which must exist in the current
network namespace, or is created for the run) and one test application on it.

modes:
  serve-echo PORT              echo every byte back; close after the peer's FIN
  serve-bulk PORT BYTES        send BYTES of the test pattern per connection, then
                               FIN; read and hash what the client sends
  serve-sink PORT              read until the peer's FIN, hash, close
  connect-bulk ADDR:PORT BYTES connect, send BYTES of the pattern, FIN, read and
                               hash everything until the peer's FIN

options:
  --gateway ADDR       default gateway
  --mtu N              IP MTU (default 1500)
  --cc cubic|newreno   congestion control (default cubic)
  --exit-after N       exit once N connections finished (connect-bulk: 1)
  --duration SECS      give up after SECS seconds (default 60); exit status 1
                       if --exit-after was not reached by then
  --linger-ms MS       keep running this long after the last connection was
                       acknowledged and closed, to re-ACK a repeated FIN
                       (default 500)

stdout: one JSON line {\"event\":\"ready\",...} once listening or connecting, and
one {\"event\":\"done\",...} line with per-connection results and engine stats.";

/// What the test application does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    ServeEcho { port: u16 },
    ServeBulk { port: u16, bytes: u64 },
    ServeSink { port: u16 },
    ConnectBulk { remote: SocketAddrV4, bytes: u64 },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::ServeEcho { .. } => "serve-echo",
            Mode::ServeBulk { .. } => "serve-bulk",
            Mode::ServeSink { .. } => "serve-sink",
            Mode::ConnectBulk { .. } => "connect-bulk",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub tap: String,
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: usize,
    pub congestion: CongestionAlgorithm,
    pub exit_after: Option<usize>,
    pub duration: Duration,
    pub linger: Duration,
    pub mode: Mode,
}

impl Options {
    /// Parse the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Options, String> {
        let mut args = args.into_iter();
        let mut tap = None;
        let mut mac = None;
        let mut ip = None;
        let mut gateway = None;
        let mut mtu = 1500;
        let mut congestion = CongestionAlgorithm::Cubic;
        let mut exit_after = None;
        let mut duration = Duration::from_secs(60);
        let mut linger = Duration::from_millis(500);
        let mut positional = Vec::new();

        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--tap" => tap = Some(value("--tap")?),
                "--mac" => mac = Some(parse_mac(&value("--mac")?)?),
                "--ip" => ip = Some(parse_cidr(&value("--ip")?)?),
                "--gateway" => gateway = Some(parse(&value("--gateway")?, "--gateway")?),
                "--mtu" => mtu = parse(&value("--mtu")?, "--mtu")?,
                "--cc" => {
                    congestion = match value("--cc")?.as_str() {
                        "cubic" => CongestionAlgorithm::Cubic,
                        "newreno" => CongestionAlgorithm::NewReno,
                        other => return Err(format!("--cc: unknown algorithm {other:?}")),
                    }
                }
                "--exit-after" => exit_after = Some(parse(&value("--exit-after")?, "--exit-after")?),
                "--duration" => {
                    let secs: f64 = parse(&value("--duration")?, "--duration")?;
                    if !(secs > 0.0 && secs < 1e9) {
                        return Err("--duration must be a positive number of seconds".into());
                    }
                    duration = Duration::from_secs_f64(secs);
                }
                "--linger-ms" => linger = Duration::from_millis(parse(&value("--linger-ms")?, "--linger-ms")?),
                "-h" | "--help" => return Err(USAGE.into()),
                flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
                _ => positional.push(arg),
            }
        }

        let (ip, prefix_len) = ip.ok_or("--ip is required")?;
        let mode = parse_mode(&positional)?;
        if matches!(mode, Mode::ConnectBulk { .. }) && exit_after.is_none() {
            exit_after = Some(1);
        }
        Ok(Options {
            tap: tap.ok_or("--tap is required")?,
            mac: mac.ok_or("--mac is required")?,
            ip,
            prefix_len,
            gateway,
            mtu,
            congestion,
            exit_after,
            duration,
            linger,
            mode,
        })
    }
}

fn parse_mode(positional: &[String]) -> Result<Mode, String> {
    let words: Vec<&str> = positional.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["serve-echo", port] => Ok(Mode::ServeEcho { port: parse(port, "PORT")? }),
        ["serve-bulk", port, bytes] => Ok(Mode::ServeBulk { port: parse(port, "PORT")?, bytes: parse(bytes, "BYTES")? }),
        ["serve-sink", port] => Ok(Mode::ServeSink { port: parse(port, "PORT")? }),
        ["connect-bulk", remote, bytes] => {
            Ok(Mode::ConnectBulk { remote: parse(remote, "ADDR:PORT")?, bytes: parse(bytes, "BYTES")? })
        }
        [] => Err("a mode is required".into()),
        other => Err(format!("cannot parse mode {other:?}")),
    }
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{what}: cannot parse {text:?}"))
}

fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, prefix) = text.split_once('/').ok_or_else(|| format!("--ip: expected ADDR/PREFIX, got {text:?}"))?;
    let prefix: u8 = parse(prefix, "--ip prefix")?;
    if prefix > 32 {
        return Err(format!("--ip: prefix {prefix} is longer than 32"));
    }
    Ok((parse(addr, "--ip")?, prefix))
}

fn parse_mac(text: &str) -> Result<EthernetAddress, String> {
    let mut octets = [0u8; 6];
    let mut parts = text.split(':');
    for octet in &mut octets {
        let part = parts.next().ok_or_else(|| format!("--mac: expected 6 octets in {text:?}"))?;
        *octet = u8::from_str_radix(part, 16).map_err(|_| format!("--mac: bad octet {part:?}"))?;
    }
    if parts.next().is_some() {
        return Err(format!("--mac: expected 6 octets in {text:?}"));
    }
    let mac = EthernetAddress(octets);
    if !mac.is_unicast() {
        return Err(format!("--mac: {text} is a multicast address"));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_a_full_command_line() {
        let o = Options::parse(args(
            "--tap sltap0 --mac 02:00:00:77:00:02 --ip 10.77.0.2/24 --exit-after 3 --duration 2.5 connect-bulk 10.77.0.1:5001 8388608",
        ))
        .unwrap();
        assert_eq!(o.tap, "sltap0");
        assert_eq!(o.mac, EthernetAddress([2, 0, 0, 0x77, 0, 2]));
        assert_eq!((o.ip, o.prefix_len), (Ipv4Addr::new(10, 77, 0, 2), 24));
        assert_eq!(o.exit_after, Some(3));
        assert_eq!(o.duration, Duration::from_millis(2500));
        assert_eq!(o.mode, Mode::ConnectBulk { remote: "10.77.0.1:5001".parse().unwrap(), bytes: 8 << 20 });
    }

    #[test]
    fn connect_mode_exits_after_its_one_connection_by_default() {
        let o = Options::parse(args("--tap t --mac 02:00:00:00:00:01 --ip 10.0.0.1/8 connect-bulk 10.0.0.2:1 0")).unwrap();
        assert_eq!(o.exit_after, Some(1));
        let o = Options::parse(args("--tap t --mac 02:00:00:00:00:01 --ip 10.0.0.1/8 serve-echo 7")).unwrap();
        assert_eq!(o.exit_after, None);
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        let base = "--tap t --mac 02:00:00:00:00:01 --ip 10.0.0.1/24";
        assert!(Options::parse(args(&format!("{base} serve-echo"))).unwrap_err().contains("mode"));
        assert!(Options::parse(args(&format!("{base} serve-echo 70000"))).unwrap_err().contains("PORT"));
        assert!(Options::parse(args("--tap t --mac 01:00:00:00:00:01 --ip 10.0.0.1/24 serve-sink 1")).unwrap_err().contains("multicast"));
        assert!(Options::parse(args("--tap t --mac 02:00:00:00:00 --ip 10.0.0.1/24 serve-sink 1")).unwrap_err().contains("6 octets"));
        assert!(Options::parse(args("--tap t --mac 02:00:00:00:00:01 --ip 10.0.0.1/33 serve-sink 1")).unwrap_err().contains("33"));
        assert!(Options::parse(args(&format!("{base} --bogus serve-sink 1"))).unwrap_err().contains("--bogus"));
        assert!(Options::parse(args(&format!("{base} --duration 0 serve-sink 1"))).unwrap_err().contains("positive"));
    }
}
