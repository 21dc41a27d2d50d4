//! Test server: echo or HTTP/1.1 static files, on Sluice (through `vcl`,
//! attached to a running `sluice daemon`) or, with `--kernel`, on kernel
//! sockets with the same event loop.
//!
//! ```text
//! sluice-server echo|http --listen ADDR:PORT [--root DIR] [--kernel]
//!               [--control-socket PATH] [--backlog N]
//! ```
//! Prints `ready ADDR:PORT` once listening, serves until SIGINT/SIGTERM, then
//! prints one JSON line of counters.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use sluice_integration::apps::echo::EchoConnection;
use sluice_integration::apps::http::HttpConnection;
use sluice_integration::apps::serve_vcl::ServeStats;
use sluice_integration::apps::{serve_kernel, serve_vcl};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Echo,
    Http,
}

#[derive(Parser, Debug)]
#[command(name = "sluice-server", about = "Echo or HTTP/1.1 file server on Sluice (vcl) or kernel sockets")]
struct Args {
    kind: Kind,
    /// Address and port to listen on.
    #[arg(long)]
    listen: SocketAddrV4,
    /// Directory served by `http`.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Use kernel sockets instead of Sluice.
    #[arg(long)]
    kernel: bool,
    /// The daemon's control socket (default: SLUICE_CONTROL_SOCKET, then the daemon's default).
    #[arg(long)]
    control_socket: Option<PathBuf>,
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("sluice-server: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let ready = |addr: &dyn std::fmt::Display| println!("ready {addr}");
    let root = args.root.clone();
    let result: Result<ServeStats, String> = if args.kernel {
        let addr = SocketAddr::V4(args.listen);
        match args.kind {
            Kind::Echo => serve_kernel::serve(addr, EchoConnection::default, &stop, |a| ready(&a)),
            Kind::Http => serve_kernel::serve(addr, || HttpConnection::new(&root), &stop, |a| ready(&a)),
        }
        .map_err(|e| e.to_string())
    } else {
        let vcl = match &args.control_socket {
            Some(path) => sluice_vcl::Vcl::attach(path),
            None => sluice_vcl::Vcl::global(),
        };
        let vcl = match vcl {
            Ok(vcl) => vcl,
            Err(e) => {
                eprintln!("sluice-server: cannot attach to the Sluice daemon: {e}");
                return ExitCode::FAILURE;
            }
        };
        match args.kind {
            Kind::Echo => serve_vcl::serve(&vcl, args.listen, args.backlog, EchoConnection::default, &stop, |a| ready(&a)),
            Kind::Http => {
                serve_vcl::serve(&vcl, args.listen, args.backlog, || HttpConnection::new(&root), &stop, |a| ready(&a))
            }
        }
        .map_err(|e| e.to_string())
    };
    match result {
        Ok(stats) => {
            println!(
                "{{\"accepted\":{},\"closed\":{},\"errors\":{}}}",
                stats.accepted, stats.closed, stats.errors
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-server: {e}");
            ExitCode::FAILURE
        }
    }
}
