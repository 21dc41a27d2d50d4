//! Test server for fork support (design §3.5, §4.5): a listener made before
//! `fork`, served by forked workers through `vcl`.
//!
//! ```text
//! sluice-fork-server prefork|chain|bgsave --port PORT [--workers N] [--control-socket PATH]
//! ```
//! * `prefork`: listens, forks N workers that re-create the inherited
//!   listener and accept; the parent never accepts (nginx's master).
//! * `chain`: nginx's `daemon()` chain: P0 listens, forks P1 and exits; P1
//!   forks N workers that accept, and never accepts itself.
//! * `bgsave`: listens, forks a child that closes its inherited listener and
//!   exits (redis's BGSAVE child); then the parent accepts.
//!
//! Every connection gets one line back: the pid of the process that
//! accepted it. Prints `holder PID`, `worker PID` (when forked),
//! `listening PID` (when a worker's listener is re-created), `ready`.
//! Workers die with their parent (`PR_SET_PDEATHSIG`).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use sluice_vcl::fork::{self, Forked};
use sluice_vcl::{Socket, Vcl};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Prefork,
    Chain,
    Bgsave,
}

#[derive(Parser, Debug)]
#[command(name = "sluice-fork-server", about = "Forking test server on Sluice (vcl)")]
struct Args {
    mode: Mode,
    #[arg(long)]
    port: u16,
    #[arg(long, default_value_t = 3)]
    workers: u32,
    /// The daemon's control socket (else vcl's default).
    #[arg(long)]
    control_socket: Option<PathBuf>,
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    // Flushed before any fork, so no buffered line is printed twice.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    if let Some(path) = &args.control_socket {
        std::env::set_var(sluice_vcl::CONTROL_SOCKET_ENV, path);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-fork-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let vcl = Vcl::global()?;
    let listener = vcl.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, args.port), 128)?;
    match args.mode {
        Mode::Prefork => {
            spawn_workers(&listener, args.workers)?;
            say("ready".into());
            reap_forever();
        }
        Mode::Chain => match fork::fork()? {
            // P0 exits at once; its listener closes, P1 still holds the port.
            Forked::Parent(p1) => say(format!("holder {p1}")),
            Forked::Child => {
                spawn_workers(&listener, args.workers)?;
                say("ready".into());
                reap_forever();
            }
        },
        Mode::Bgsave => {
            match fork::fork()? {
                Forked::Child => {
                    // Only closes what it inherited: no daemon traffic.
                    drop(listener);
                    std::process::exit(0);
                }
                Forked::Parent(child) => wait_child(child),
            }
            say("ready".into());
            serve(&listener)?;
        }
    }
    Ok(())
}

/// Forks `n` workers that re-create `listener` and serve it.
fn spawn_workers(listener: &Socket, n: u32) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..n {
        match fork::fork()? {
            Forked::Parent(pid) => say(format!("worker {pid}")),
            Forked::Child => {
                die_with_parent();
                let result = listener.recreate_inherited().map_err(Box::<dyn std::error::Error>::from).and_then(|l| {
                    say(format!("listening {}", std::process::id()));
                    serve(&l)
                });
                if let Err(e) = result {
                    eprintln!("worker {}: {e}", std::process::id());
                }
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// Accepts forever; each connection gets this process's pid.
fn serve(listener: &Socket) -> Result<(), Box<dyn std::error::Error>> {
    let reply = format!("{}\n", std::process::id());
    loop {
        let (conn, _) = listener.accept()?;
        let mut buf = [0u8; 256];
        let mut line = Vec::new();
        while !line.contains(&b'\n') {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => line.extend_from_slice(&buf[..n]),
            }
        }
        let _ = conn.write(reply.as_bytes());
        let _ = conn.close();
    }
}

fn reap_forever() -> ! {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer; -1 waits for any child.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            // No children left: keep holding the listener until killed.
            // SAFETY: pause(2) has no arguments; it returns on a signal.
            unsafe { libc::pause() };
        }
    }
}

fn wait_child(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid for our own child with a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
}
