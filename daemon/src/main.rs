//! `sluice`: the daemon and its admin commands.
//!
//! Exit codes: 0 success; 1 the daemon failed, or an admin command could
//! not get an answer; 2 a usage or configuration error (clap exits with 2
//! on bad arguments itself).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use sluice_daemon::cli::{self, Command};
use sluice_daemon::{admin, capture_client, config, daemon, run};
use sluice_shm::control::AdminCommand;

const FAILED: u8 = 1;
const BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    match cli::parse() {
        Command::Daemon(args) => {
            let config = match config::load(&args) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("sluice: error: {e}");
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            match daemon::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluice: error: {e}");
                    ExitCode::from(FAILED)
                }
            }
        }
        Command::Stats { json, socket } => admin_command(AdminCommand::Stats, json, socket),
        Command::Sessions { json, socket } => admin_command(AdminCommand::Sessions, json, socket),
        Command::Capture { output, count, socket } => {
            let path = config::control_socket_path(socket.as_deref());
            match capture_client::run(&path, &output, count) {
                Ok(frames) => {
                    eprintln!("sluice: {frames} frames written to {}", output.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sluice: error: {e}");
                    ExitCode::from(FAILED)
                }
            }
        }
        Command::Run { socket, command } => {
            // Returns only when the program could not be started.
            eprintln!("sluice: error: {}", run::run(socket.as_deref(), &command));
            ExitCode::from(FAILED)
        }
    }
}

fn admin_command(command: AdminCommand, json: bool, socket: Option<PathBuf>) -> ExitCode {
    let path = config::control_socket_path(socket.as_deref());
    match admin::request(&path, command, json) {
        Ok(text) => {
            // A closed stdout (`sluice stats | head -1`) is not an error.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice: error: {e}");
            ExitCode::from(FAILED)
        }
    }
}
