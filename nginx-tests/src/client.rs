//! The clients: `clients/http_client.py` run by python3 in the peer
//! namespace (kernel TCP), one JSON object per run.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_integration::netns::Process;

use crate::bed::Bed;
use crate::binaries::http_client_script;
use crate::nginx::Side;

/// How long one client run may take.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

/// `http_client.py ADDR PORT MODE ARGS...` for `side`, not yet started.
pub fn command(bed: &Bed, side: Side, port: u16, mode: &str, args: &[&str]) -> Command {
    let mut cmd = bed.peer("python3");
    cmd.arg(http_client_script()).args([side.addr(), &port.to_string(), mode]).args(args);
    cmd
}

/// Runs the client to completion: its JSON, or `{"error": ...}` when it
/// overran its time or printed none.
pub fn run(bed: &Bed, side: Side, port: u16, mode: &str, args: &[&str]) -> Value {
    let process = Process::spawn(command(bed, side, port, mode, args)).expect("spawn python3");
    result(process)
}

/// The JSON a started client prints when it ends.
pub fn result(process: Process) -> Value {
    let finished = process.wait(CLIENT_DEADLINE);
    if finished.killed {
        return json!({"error": "deadline", "detail": finished.stderr});
    }
    let line = finished.last_line_with("{").unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| json!({"error": "no result", "detail": finished.stderr}))
}
