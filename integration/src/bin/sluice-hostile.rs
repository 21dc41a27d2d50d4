//! A hostile app for the daemon's robustness test (issue 3): it attaches like
//! any app, then for `--seconds` writes random bytes over everything it can
//! write in shared memory (its up segment's header, request rings, session
//! words and fifo data), pushes garbage and forged requests, and rings the
//! daemon's doorbell as fast as it can. It never reads its events.
//!
//! ```text
//! sluice-hostile --control-socket PATH [--seconds N] [--seed S]
//! ```
//! Prints one JSON line: what it did and whether the daemon cut it off.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, RngCore, SeedableRng};
use sluice_shm::control::{Message, Role, MAX_MESSAGE};
use sluice_shm::layout::UpSegment;
use sluice_shm::os::{Access, EventFd, Mapping};
use sluice_shm::request_ring::REQUEST_BODY_SIZE;
use sluice_shm::{unix_socket, Region, RequestProducer};

#[derive(Parser, Debug)]
#[command(name = "sluice-hostile", about = "Scribbles over its own shared memory to test the daemon's robustness")]
struct Args {
    #[arg(long)]
    control_socket: PathBuf,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Bytes of the up segment scribbled over: the header, rings and session
/// words, and the first fifo areas (the rest is sparse and stays untouched,
/// so the run does not allocate gigabytes).
const SCRIBBLE_SPAN: usize = 32 << 20;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-hostile: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<String, String> {
    let sock = unix_socket::connect(&args.control_socket).map_err(|e| format!("connect: {e}"))?;
    let hello = Message::Hello { pid: std::process::id(), role: Role::App };
    unix_socket::send(sock.as_fd(), &hello.encode(1), &[]).map_err(|e| format!("hello: {e}"))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, fds) = unix_socket::recv(sock.as_fd(), &mut buf, 0).map_err(|e| format!("attach reply: {e}"))?;
    let (_, message) = Message::decode(&buf[..n]).map_err(|e| format!("attach reply: {e}"))?;
    let Message::AttachOk { geometry, .. } = message else {
        return Err(format!("expected AttachOk, got {message:?}"));
    };
    let mut fds = fds.into_iter();
    let (_down_fd, up_fd) = (fds.next().ok_or("no down memfd")?, fds.next().ok_or("no up memfd")?);
    let _wake = fds.next().ok_or("no wake fd")?;
    let doorbell = EventFd::from_fd(fds.next().ok_or("no doorbell")?);
    let up_map = Mapping::map(up_fd.as_fd(), geometry.up_len(), Access::ReadWrite).map_err(|e| format!("map: {e}"))?;
    let region = Region::new(Arc::new(up_map));
    let up = UpSegment::new(region.clone(), geometry).map_err(|e| format!("segment: {e}"))?;
    let ring = RequestProducer::new(up.request_ring(0).ok_or("no request ring")?).map_err(|e| format!("ring: {e}"))?;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let span = SCRIBBLE_SPAN.min(region.len());
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let (mut scribbles, mut requests, mut rings, mut full) = (0u64, 0u64, 0u64, 0u64);
    let mut chunk = [0u8; 256];
    // First garbage requests through an intact ring (so the daemon's decoder
    // and handle checks see them), then scribbling: once the ring's words
    // are garbage a push could spin forever on them (the hostile app hangs
    // only itself), so no more pushes after that.
    let pushing_until = Instant::now() + Duration::from_secs(args.seconds / 3);
    while Instant::now() < pushing_until {
        for _ in 0..16 {
            let mut body = [0u8; REQUEST_BODY_SIZE];
            rng.fill_bytes(&mut body);
            // Half the time a known opcode with a forged handle, so the
            // decoder's later checks (handle, generation, arguments) run too.
            if rng.gen_bool(0.5) {
                body[0] = rng.gen_range(1..=9);
                body[1] = 0;
            }
            match ring.push(&body) {
                Ok(()) => requests += 1,
                Err(_) => full += 1,
            }
        }
        if doorbell.notify().is_ok() {
            rings += 1;
        }
    }
    while Instant::now() < deadline {
        for _ in 0..64 {
            let len = rng.gen_range(1..=chunk.len());
            rng.fill_bytes(&mut chunk[..len]);
            let offset = rng.gen_range(0..span - len);
            if region.write_at(offset, &chunk[..len]).is_ok() {
                scribbles += 1;
            }
        }
        if doorbell.notify().is_ok() {
            rings += 1;
        }
    }
    // Whether the daemon closed our control connection (it kills an app
    // worker that keeps violating the protocol).
    let mut probe = [0u8; 64];
    let cut_off = match unix_socket::recv(sock.as_fd(), &mut probe, libc::MSG_DONTWAIT) {
        Ok((0, _)) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    Ok(format!(
        "{{\"scribbles\":{scribbles},\"requests\":{requests},\"ring_full\":{full},\"doorbells\":{rings},\"cut_off\":{cut_off}}}"
    ))
}
