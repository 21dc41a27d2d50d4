//! Connections and processes ending: a client aborting mid-response, a
//! reload (SIGHUP) and a graceful quit (SIGQUIT) under load.

use serde_json::json;
use sluice_integration::netns::Process;

use super::{expect_body, sha, Case, Ctx};
use crate::bed::READY;
use crate::client;
use crate::nginx::{wait_until, HTTP_PORT};
use crate::report::Outcome;

pub fn cases() -> Vec<Case> {
    vec![
        Case { name: "client abort mid-response", run: client_abort },
        Case { name: "reload under load", run: reload_under_load },
        Case { name: "graceful quit under load", run: graceful_quit },
    ]
}

/// The client reads 100 KiB of the 10 MiB file and closes with data
/// unread (a reset): nginx logs the request as incomplete, having sent
/// less than the file, and serves the next connection.
fn client_abort(ctx: &Ctx) -> Outcome {
    let r = ctx.client(HTTP_PORT, "abort", &["/huge.bin", "--after", "102400", "--then", "/small.txt"]);
    let huge = ctx.files.huge_len;
    let mut logged = String::new();
    let incomplete = wait_until(READY, || {
        let lines = ctx.nginx.access_log();
        logged = lines.iter().rev().find(|l| l.contains("GET /huge.bin")).cloned().unwrap_or_default();
        // "$pid $status $body_bytes_sent "$request_completion" "$request""
        let fields: Vec<&str> = logged.split_whitespace().collect();
        let sent = fields.get(2).and_then(|b| b.parse::<usize>().ok());
        fields.get(3) == Some(&"\"\"") && sent.is_some_and(|b| b < huge)
    });
    let mut out = Outcome::new(json!({"abort": r, "logged_incomplete": incomplete}));
    out.expect(r["aborted_status"] == 200, format!("the aborted request: {r}"));
    expect_body(&mut out, "the next request", &r["next"], 200, &ctx.files.small);
    out.expect(incomplete, format!("access log of the aborted request: {logged:?}"));
    out
}

/// How many access-log lines to wait for between the steps of a reload.
const SERVED_BETWEEN: usize = 50;

/// Connection-per-request load (4 clients) while nginx reloads twice:
/// each time both workers are replaced, and no request fails.
fn reload_under_load(ctx: &Ctx) -> Outcome {
    let nginx = ctx.nginx;
    let stop = nginx.dir.join("stop-load");
    let _ = std::fs::remove_file(&stop);
    let small = sha(&ctx.files.small);
    let stop_arg = stop.to_str().expect("utf-8 path");
    let args = ["/small.txt", "--sha256", &small, "--threads", "4", "--stop-file", stop_arg];
    let mut load = Process::spawn(client::command(ctx.bed, ctx.side, HTTP_PORT, "load", &args)).expect("spawn load");
    let started = load.wait_for_line("started", READY).is_some();
    let served = |from: usize| wait_until(READY, || nginx.access_log().len() >= from + SERVED_BETWEEN);
    let mut steps = vec![served(nginx.access_log().len())];
    let mut renewed = 0;
    for _ in 0..2 {
        let old = nginx.workers();
        nginx.signal(libc::SIGHUP);
        let replaced = wait_until(READY, || {
            let now = nginx.workers();
            now.len() == 2 && now.iter().all(|p| !old.contains(p))
        });
        renewed += usize::from(replaced);
        steps.push(served(nginx.access_log().len()));
    }
    std::fs::write(&stop, b"").expect("write the stop file");
    let tally = client::result(load);
    let kept_serving = steps.iter().all(|&s| s);
    let mut out = Outcome::new(json!({"failed": tally["failed"], "reloads": renewed, "kept_serving": kept_serving}));
    out.expect(started && tally["ok"].as_u64().is_some_and(|n| n > 0), format!("the load: {tally}"));
    out.expect(tally["failed"] == 0, format!("failed requests: {tally}"));
    out.expect(renewed == 2, format!("{renewed} of 2 reloads replaced both workers"));
    out.expect(kept_serving, format!("served between the reloads: {steps:?}"));
    out
}

/// Three rate-limited downloads in flight when nginx gets SIGQUIT: each
/// completes, then every nginx process exits and the port refuses.
fn graceful_quit(ctx: &Ctx) -> Outcome {
    let args = ["/limited/file.bin", "--announce"];
    let mut downloads: Vec<Process> = (0..3)
        .map(|_| Process::spawn(client::command(ctx.bed, ctx.side, HTTP_PORT, "get", &args)).expect("spawn get"))
        .collect();
    let in_flight = downloads.iter_mut().all(|d| d.wait_for_line("head", READY).is_some());
    let exited = ctx.nginx.quit();
    let results: Vec<_> = downloads.into_iter().map(client::result).collect();
    let refused = ctx.client(HTTP_PORT, "get", &["/hello"]);
    let completed =
        results.iter().filter(|r| r["status"] == 200 && r["sha256"] == sha(&ctx.files.limited).as_str()).count();
    let record = json!({"in_flight": in_flight, "completed": completed, "exited": exited, "after": refused["error"]});
    let mut out = Outcome::new(record);
    out.expect(in_flight, "the downloads never got their heads");
    out.expect(completed == 3, format!("{completed} of 3 downloads completed: {results:?}"));
    out.expect(exited, "nginx did not exit after SIGQUIT");
    out.expect(refused["error"] == "ConnectionRefusedError", format!("after the quit: {refused}"));
    out
}
