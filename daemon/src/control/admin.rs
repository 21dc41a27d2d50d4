//! Admin commands on the control socket (design §3.8): the control thread
//! asks every worker for a snapshot and answers with text or JSON.

use std::time::Duration;

use sluice_shm::control::AdminCommand;

use crate::stats::{self, DaemonStats, SessionList};
use crate::worker::WorkerLink;

/// How long a worker may take to answer (it answers within one iteration;
/// this only bounds a wedged one).
pub const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Daemon-wide facts the stats header shows.
#[derive(Clone, Debug)]
pub struct DaemonInfo {
    /// `ADDR/PREFIX`.
    pub address: String,
    pub mtu: u32,
}

/// The answer to `command`, or why there is none.
pub fn respond(
    command: AdminCommand,
    json: bool,
    workers: &[WorkerLink],
    info: &DaemonInfo,
    apps_attached: u32,
) -> Result<String, String> {
    match command {
        AdminCommand::Stats => {
            let mut snapshot =
                DaemonStats { address: info.address.clone(), mtu: info.mtu, apps_attached, workers: Vec::new() };
            for w in workers {
                snapshot.workers.push(w.snapshot(WORKER_REPLY_TIMEOUT).map_err(|e| e.to_string())?);
            }
            Ok(if json { stats::to_json(&snapshot) } else { stats::render_stats(&snapshot) })
        }
        AdminCommand::Sessions => {
            let mut list = SessionList::default();
            for w in workers {
                list.sessions.extend(w.sessions(WORKER_REPLY_TIMEOUT).map_err(|e| e.to_string())?);
            }
            Ok(if json { stats::to_json(&list) } else { stats::render_sessions(&list.sessions) })
        }
        // A stream, not one answer: the server turns the client into a
        // capture client before it gets here.
        AdminCommand::Capture => Err("capture is a stream, not a reply".into()),
    }
}
