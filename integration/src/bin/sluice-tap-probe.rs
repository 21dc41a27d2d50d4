//! Engine-free TAP plumbing check: answer ARP for `--ip` as `--mac` and count
//! the ICMP echo requests and TCP segments that arrive, until
//! `--echo-requests N` and `--tcp-segments M` were seen or `--duration` passes. Prints {"event":"ready"} and a final {"event":"done"}.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sluice_integration::peer::json::JsonObject;
use sluice_integration::tap::{TapDevice, MAX_FRAME};
use sluice_integration::tap_probe::{Probe, ARP_FRAME_LEN};
use sluice_stack::wire::{EthernetAddress, Ipv4Addr};

const USAGE: &str = "usage: sluice-tap-probe --tap NAME --mac MAC --ip ADDR [--echo-requests N] [--tcp-segments M] [--duration SECS]";

struct Args {
    tap: String,
    mac: EthernetAddress,
    ip: Ipv4Addr,
    echo_requests: u64,
    tcp_segments: u64,
    duration: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut tap, mut mac, mut ip) = (None, None, None);
    let mut echo_requests = 3;
    let mut tcp_segments = 0;
    let mut duration = Duration::from_secs(10);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--tap" => tap = Some(value),
            "--mac" => {
                let mut octets = [0u8; 6];
                let parts: Vec<&str> = value.split(':').collect();
                if parts.len() != 6 {
                    return Err(format!("--mac: expected 6 octets in {value:?}"));
                }
                for (octet, part) in octets.iter_mut().zip(parts) {
                    *octet = u8::from_str_radix(part, 16).map_err(|_| format!("--mac: bad octet {part:?}"))?;
                }
                mac = Some(EthernetAddress(octets));
            }
            "--ip" => ip = Some(value.parse().map_err(|_| format!("--ip: cannot parse {value:?}"))?),
            "--echo-requests" => echo_requests = value.parse().map_err(|_| format!("--echo-requests: {value:?}"))?,
            "--tcp-segments" => tcp_segments = value.parse().map_err(|_| format!("--tcp-segments: {value:?}"))?,
            "--duration" => {
                duration = Duration::from_secs(value.parse().map_err(|_| format!("--duration: {value:?}"))?)
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Args {
        tap: tap.ok_or("--tap is required")?,
        mac: mac.ok_or("--mac is required")?,
        ip: ip.ok_or("--ip is required")?,
        echo_requests,
        tcp_segments,
        duration,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("sluice-tap-probe: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sluice-tap-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> std::io::Result<bool> {
    let tap = TapDevice::open(&args.tap)?;
    println!("{}", JsonObject::new().str("event", "ready").str("tap", tap.name()).finish());
    let deadline = Instant::now() + args.duration;
    let mut probe = Probe::new(args.mac, args.ip);
    let mut frame = vec![0u8; MAX_FRAME];
    let mut reply = [0u8; ARP_FRAME_LEN];
    let reached = |p: &Probe| {
        p.counters.echo_requests_for_us >= args.echo_requests && p.counters.tcp_segments_for_us >= args.tcp_segments
    };
    while !reached(&probe) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tap.wait(false, Some(left))?;
        while let Some(len) = tap.recv(&mut frame)? {
            if let Some(reply_len) = probe.handle(&frame[..len], &mut reply) {
                // A refused reply is like a lost one: the kernel asks again.
                tap.send(&reply[..reply_len])?;
            }
        }
    }
    let c = probe.counters;
    let reached = reached(&probe);
    println!(
        "{}",
        JsonObject::new()
            .str("event", "done")
            .bool("ok", reached)
            .num("frames", c.frames)
            .num("arp_requests_for_us", c.arp_requests_for_us)
            .num("arp_replies_sent", c.arp_replies_sent)
            .num("echo_requests_for_us", c.echo_requests_for_us)
            .num("tcp_segments_for_us", c.tcp_segments_for_us)
            .num("tcp_bad_checksum", c.tcp_bad_checksum)
            .num("malformed_for_us", c.malformed_for_us)
            .finish()
    );
    Ok(reached)
}
