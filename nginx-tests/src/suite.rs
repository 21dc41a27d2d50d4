//! Runs the cases on both sides in one test bed and collects the report.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::bed::{Bed, READY};
use crate::cases::{self, Ctx, Files};
use crate::nginx::{wait_until, Nginx, Side};
use crate::report::{Report, Row};

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The namespaces' prefix (`PREFIX-peer`, `-mid`, `-dut`).
    pub prefix: String,
    /// Only the cases whose names contain one of these (all when empty).
    pub only: Vec<String>,
    /// Keep the scratch directory (nginx's logs) after the run.
    pub keep_dir: bool,
}

/// The report and what went wrong outside the cases (nginx or the daemon
/// ending badly).
pub struct Run {
    pub report: Report,
    pub problems: Vec<String>,
    pub took: Duration,
}

/// Builds the bed, starts both nginx, runs every case on the kernel then
/// on Sluice, and tears everything down.
pub fn run(options: &Options) -> Run {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("sluice-nginx-tests-{}-{}", options.prefix, std::process::id()));
    let mut bed = Bed::up(&options.prefix, &dir);
    bed.keep_dir = options.keep_dir;
    let files = Files::write(&dir.join("www"));
    let kernel = Nginx::start(&bed, Side::Kernel, &dir.join("kernel"), &files.www);
    let sluice = Nginx::start(&bed, Side::Sluice, &dir.join("sluice"), &files.www);
    let mut problems = Vec::new();
    for nginx in [&kernel, &sluice] {
        let ctx = Ctx { bed: &bed, side: nginx.side, nginx, files: &files };
        if !wait_until(READY, || ctx.get("/hello", &[])["status"] == 200) {
            problems.push(format!("{} nginx never answered: {}", nginx.side, nginx.error_log_tail(10)));
        }
    }
    let mut report = Report::default();
    let selected = cases::all()
        .into_iter()
        .filter(|c| options.only.is_empty() || options.only.iter().any(|o| c.name.contains(o.as_str())));
    for case in selected {
        let kernel_outcome = (case.run)(&Ctx { bed: &bed, side: Side::Kernel, nginx: &kernel, files: &files });
        let sluice_outcome = (case.run)(&Ctx { bed: &bed, side: Side::Sluice, nginx: &sluice, files: &files });
        report.rows.push(Row { case: case.name, kernel: kernel_outcome, sluice: sluice_outcome });
    }
    problems.extend(protocol_faults(&bed));
    for nginx in [&kernel, &sluice] {
        // What is still running after the cases quits now (and must).
        if nginx.master().is_some() && !nginx.quit() {
            problems.push(format!("{} nginx did not quit", nginx.side));
        }
    }
    let crit: Vec<String> =
        [&kernel, &sluice].iter().map(|n| critical_lines(&n.dir)).filter(|s| !s.is_empty()).collect();
    problems.extend(crit);
    drop((kernel, sluice));
    if let Err(e) = bed.finish() {
        problems.push(e);
    }
    Run { report, problems, took: started.elapsed() }
}

/// Apps that sent the daemon a request it could not serve or broke the
/// shared-memory protocol (`sluice stats`: bad requests, violations).
fn protocol_faults(bed: &Bed) -> Vec<String> {
    let Some(stats) = bed.stats() else { return vec!["the daemon did not answer sluice stats".into()] };
    let workers = stats["workers"].as_array().cloned().unwrap_or_default();
    let apps = workers.iter().flat_map(|w| w["apps"].as_array().cloned().unwrap_or_default());
    apps.filter(|a| a["bad_requests"].as_u64() != Some(0) || a["violations"].as_u64() != Some(0))
        .map(|a| {
            format!(
                "app {} (pid {}): bad requests {}, violations {}",
                a["id"], a["pid"], a["bad_requests"], a["violations"]
            )
        })
        .collect()
}

/// nginx's `[alert]` and `[emerg]` lines: never expected.
fn critical_lines(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("[alert]") || l.contains("[emerg]")).collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!("{}: {}", dir.display(), lines.join("\n"))
    }
}
