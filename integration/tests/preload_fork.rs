//! fork under the preload on the Sluice daemon (issue 4): programs whose
//! children serve the listeners their parent opened.
//!
//! * `prefork_server.c`: the parent listens and forks two workers that each
//!   epoll on the inherited listener and accept; the load client in the peer
//!   namespace gets every request answered and both workers get a share.
//! * `bgsave_server.c`: a child forked after every response (as redis's
//!   BGSAVE) finds its inherited connection unusable and closes everything
//!   it inherited; the parent's connections and listener keep working.
//! * `listener_handoff.c`: a child that closes its copy of the listener with
//!   a connection waiting leaves it to the parent (kernel vs preload).
//!
//! nginx's master and workers (its daemonizing fork, then the master's forks
//! of its workers) are in `preload_nginx.rs`.
//!
//! Same topology as `preload_daemon_programs.rs` (daemon on TAP in its
//! namespace, programs under `sluice run`, kernel peers), with its own
//! namespace prefixes. Needs root.

mod daemon_support;
mod preload_bench;
mod preload_support;

use std::time::Duration;

use daemon_support::*;
use preload_bench::*;
use sluice_integration::netns::Process;

/// `prefork_server` with two workers waiting with `wait` ("epoll" or
/// "poll") on the listener their parent opened.
fn prefork_serves(prefix: &str, wait: &str) {
    let bench = Bench::up(prefix);
    let sha = random_file(&bench.tmp.0, "body.bin", 64 << 10, 31);
    let before = bench.opened();
    let mut server = Process::spawn({
        let mut cmd = bench.run(preload_support::c_program("prefork_server"));
        cmd.arg("7080").arg(bench.tmp.0.join("body.bin")).arg("2").arg(wait);
        cmd
    })
    .expect("spawn prefork_server");
    for n in 0..2 {
        if server.wait_for_line("worker ready", READY).is_none() {
            let finished = server.terminate(Duration::from_secs(10));
            panic!("worker {n} never waited on the listener: {finished:#?}");
        }
    }
    http_load(&bench, 7080, "/", &sha, 64 << 10, 60, 4);
    assert!(bench.opened() >= before + 60, "the connections did not go through the daemon");

    let finished = server.terminate(Duration::from_secs(20));
    assert!(!finished.killed && finished.status.success(), "prefork_server: {finished:#?}");
    let served: Vec<u64> = finished
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("served "))
        .map(|n| n.parse().expect("a count"))
        .collect();
    assert_eq!(served.len(), 2, "{finished:#?}");
    assert_eq!(served.iter().sum::<u64>(), 60, "every connection served once: {served:?}");
    assert!(served.iter().all(|&n| n > 0), "a worker got no connection: {served:?}");
    assert!(finished.stdout.contains("done"), "{finished:#?}");
    // The parent's and the workers' listeners all closed: the group is gone.
    assert!(refused(&bench, 7080), "port 7080 still accepts after the server ended");
    bench.finish();
}

#[test]
fn prefork_server_workers_share_an_inherited_listener_under_the_preload() {
    prefork_serves("pfp", "epoll");
}

#[test]
fn prefork_server_workers_polling_an_inherited_listener_under_the_preload() {
    prefork_serves("pfq", "poll");
}

/// A redis-BGSAVE-like child after every response: it finds its inherited
/// connection unusable (ENOTCONN), closes it, the listener and the epoll
/// descriptor, and the parent serves on, on the same connections.
#[test]
fn bgsave_like_children_close_what_they_inherited_and_the_parent_serves_on() {
    let bench = Bench::up("pfb");
    let sha = random_file(&bench.tmp.0, "body.bin", 32 << 10, 51);
    let mut server = Process::spawn({
        let mut cmd = bench.run(preload_support::c_program("bgsave_server"));
        cmd.arg("7090").arg(bench.tmp.0.join("body.bin"));
        cmd
    })
    .expect("spawn bgsave_server");
    if server.wait_for_line("ready", READY).is_none() {
        let finished = server.terminate(Duration::from_secs(10));
        panic!("bgsave_server never listened: {finished:#?}");
    }
    http_load(&bench, 7090, "/", &sha, 32 << 10, 10, 5);
    http_load(&bench, 7090, "/", &sha, 32 << 10, 5, 2);
    let finished = server.terminate(Duration::from_secs(20));
    assert!(!finished.killed && finished.status.success(), "bgsave_server: {finished:#?}");
    assert!(finished.stdout.contains("forks 60\nchild-send ENOTCONN: 60\nbad-children 0\ndone"), "{finished:#?}");
    assert!(refused(&bench, 7090), "port 7090 still accepts after the server ended");

    // A child that closes its listener with a connection waiting leaves it
    // to the parent, as the kernel's shared socket does.
    let program = preload_support::c_program("listener_handoff");
    let kernel = handoff(bench.peer(program.to_str().expect("utf-8 path")), &bench, "127.0.0.1");
    let sluice = handoff(bench.run(&program), &bench, SLUICE_IP);
    assert!(kernel.stdout.contains("done"), "listener_handoff on the kernel: {kernel:#?}");
    assert_eq!(sluice.stdout, kernel.stdout, "listener_handoff differs from the kernel\n{}", sluice.stderr);
    bench.finish();
}

/// Runs `listener_handoff 7091` from `cmd` and one client from the peer
/// namespace to `ip:7091`, which must be answered.
fn handoff(mut cmd: std::process::Command, bench: &Bench, ip: &str) -> sluice_integration::netns::Finished {
    cmd.arg("7091");
    let mut server = Process::spawn(cmd).expect("spawn listener_handoff");
    if server.wait_for_line("ready", READY).is_none() {
        panic!("listener_handoff never listened: {:#?}", server.terminate(Duration::from_secs(10)));
    }
    let mut client = bench.peer("bash");
    client.arg("-c").arg(format!("printf 'hello\\n' | socat -t 30 - TCP:{ip}:7091"));
    let answer = run_done(client, "listener_handoff's client");
    let finished = server.wait(Duration::from_secs(60));
    assert!(answer.stdout == "served\n", "the client to {ip} got {answer:#?}\nserver: {finished:#?}");
    finished
}
