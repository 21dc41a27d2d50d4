//! Real HTTP load tools in the peer namespace, `wrk` and ApacheBench (`ab`),
//! and what their reports say: requests, errors, requests/s, latencies.

use std::process::Command;

use super::{run_done, Bench};
use sluice_integration::netns::{Finished, Process};

/// What one `wrk --latency` run reported.
#[derive(Debug)]
pub struct Wrk {
    pub requests: u64,
    /// "Socket errors: connect C, read R, write W, timeout T" summed, 0 when
    /// the line is absent (wrk prints it only when there was one).
    pub socket_errors: u64,
    /// "Non-2xx or 3xx responses: N", 0 when absent.
    pub non_2xx: u64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub report: String,
}

/// What one `ab` run reported.
#[derive(Debug)]
pub struct Ab {
    pub complete: u64,
    pub failed: u64,
    /// "Non-2xx responses: N", 0 when absent.
    pub non_2xx: u64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub report: String,
}

/// `wrk -t THREADS -c CONNECTIONS -d SECONDS --latency URL` from the peer
/// namespace (keep-alive connections, HTTP/1.1). Its timeout is 30 s, not
/// 2 s: on a loaded two-core machine a slow answer is not a failed one.
pub fn wrk(bench: &Bench, url: &str, threads: u32, connections: u32, seconds: u32) -> Wrk {
    let line = format!("wrk -t {threads} -c {connections} -d {seconds}s --timeout 30s --latency {url}");
    let finished = run_done(peer_shell(bench, &line), "wrk");
    parse_wrk(&finished).unwrap_or_else(|| panic!("wrk {url}: no report\n{finished:#?}"))
}

/// `ab -n REQUESTS -c CONCURRENCY URL` from the peer namespace, started
/// and left running: one connection per request (no `-k`).
pub fn ab_spawn(bench: &Bench, url: &str, requests: u32, concurrency: u32) -> Process {
    Process::spawn(peer_shell(bench, &format!("ab -q -n {requests} -c {concurrency} {url}"))).expect("spawn ab")
}

/// The report of an `ab` run; `None` if it printed none (it aborted).
pub fn ab_report(finished: &Finished) -> Option<Ab> {
    let report = &finished.stdout;
    let field = |name: &str| -> Option<f64> {
        let line = report.lines().find_map(|l| l.trim().strip_prefix(name))?;
        line.trim_start_matches(':').split_whitespace().next()?.parse().ok()
    };
    let percentile = |p: &str| -> Option<f64> {
        report.lines().find_map(|l| l.trim().strip_prefix(p)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some(Ab {
        complete: field("Complete requests")? as u64,
        failed: field("Failed requests")? as u64,
        non_2xx: field("Non-2xx responses").unwrap_or(0.0) as u64,
        requests_per_sec: field("Requests per second")?,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        report: report.clone(),
    })
}

/// `ab` to completion; every request must have been answered with a 2xx.
pub fn ab(bench: &Bench, url: &str, requests: u32, concurrency: u32) -> Ab {
    let finished = ab_spawn(bench, url, requests, concurrency).wait(super::STEP);
    let report = ab_report(&finished).unwrap_or_else(|| panic!("ab {url}: no report\n{finished:#?}"));
    assert_clean_ab(&report, requests, &format!("ab {url}"));
    report
}

/// An `ab` report with every one of `requests` complete, none failed, all 2xx.
pub fn assert_clean_ab(report: &Ab, requests: u32, what: &str) {
    assert!(
        report.complete == u64::from(requests) && report.failed == 0 && report.non_2xx == 0,
        "{what}: {} complete, {} failed, {} non-2xx of {requests}\n{}",
        report.complete,
        report.failed,
        report.non_2xx,
        report.report
    );
}

/// A `wrk` report with requests, no socket error and no non-2xx response.
pub fn assert_clean_wrk(report: &Wrk, what: &str) {
    assert!(
        report.requests > 0 && report.socket_errors == 0 && report.non_2xx == 0,
        "{what}: {} requests, {} socket errors, {} non-2xx\n{}",
        report.requests,
        report.socket_errors,
        report.non_2xx,
        report.report
    );
}

/// A command line (words without quoting) in the peer namespace.
fn peer_shell(bench: &Bench, line: &str) -> Command {
    let mut words = line.split_whitespace();
    let mut cmd = bench.peer(words.next().expect("a program"));
    cmd.args(words);
    cmd
}

fn parse_wrk(finished: &Finished) -> Option<Wrk> {
    let report = &finished.stdout;
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    // "12345 requests in 5.00s, 200.00MB read"
    let requests = lines.iter().find(|l| l.contains(" requests in "))?.split_whitespace().next()?.parse().ok()?;
    let socket_errors = lines
        .iter()
        .find_map(|l| l.strip_prefix("Socket errors:"))
        .map(|rest| rest.split(',').filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    let non_2xx = lines
        .iter()
        .find_map(|l| l.strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let requests_per_sec = lines.iter().find_map(|l| l.strip_prefix("Requests/sec:"))?.trim().parse().ok()?;
    // The "Latency Distribution" block: "50%    9.00ms".
    let percentile = |p: &str| lines.iter().find_map(|l| l.strip_prefix(p)).and_then(|v| duration_ms(v.trim()));
    Some(Wrk {
        requests,
        socket_errors,
        non_2xx,
        requests_per_sec,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        report: report.clone(),
    })
}

/// wrk's durations: "812.00us", "9.00ms", "1.20s", "2.00m".
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let scale = match &text[split..] {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(value * scale)
}
