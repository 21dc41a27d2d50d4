//! Sluice sockets across `execve` under the preload on the Sluice daemon
//! (issue 4: "sockets survive `execve` or fail cleanly").
//!
//! * `exec_inherit.c` on the kernel (in the peer namespace) and under the
//!   preload print the same transcript: the exec'd image finds its listener
//!   (and a `dup` of it), with its port, options and `O_NONBLOCK`, a bound
//!   socket it then listens on, and accepts a client forked before the
//!   exec on both. The inherited connection is the documented difference:
//!   it works on the kernel, it gives `ENOTCONN` under Sluice.
//! * `exec_server.c` execs itself three times while the load client in the
//!   peer namespace keeps connecting: connections queued during an exec
//!   and those made while it is in progress are all served by the next
//!   generation, none refused or lost; once the last generation ends, the
//!   port is free (the daemon kept it only across the execs).
//!
//! * nginx's binary upgrade (`kill -USR2` of the master: it forks and execs
//!   the binary again, passing its listeners in the `NGINX` variable; then
//!   `kill -QUIT` of the old master), all under load: no failed request,
//!   the new master's workers serve, and after `nginx -s quit` the port is
//!   free. The configuration passes `LD_PRELOAD` and `SLUICE_*` on with
//!   `env` directives (nginx clears the environment of the binary it execs;
//!   without the preload the new binary would find plain eventfds).
//!
//! Same topology as `preload_daemon_programs.rs`. Needs root.

mod daemon_support;
mod preload_bench;
mod preload_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use daemon_support::*;
use preload_bench::nginx::*;
use preload_bench::*;
use sluice_integration::netns::Process;

/// The peer namespace's address (`scripts/netns-daemon.sh`).
const PEER_IP: &str = "10.79.0.1";

/// The lines about the inherited connection, which differ by design.
fn split_conn(transcript: &str) -> (Vec<&str>, Vec<&str>) {
    transcript.lines().partition(|l| !l.starts_with("conn "))
}

#[test]
fn an_exec_d_image_gets_its_listeners_back_as_on_the_kernel() {
    let bench = Bench::up("pex");
    let program = preload_support::c_program("exec_inherit");
    let mut kernel = bench.peer(program.to_str().expect("utf-8 path"));
    kernel.args([PEER_IP, "7200"]);
    let kernel = run_done(kernel, "exec_inherit on the kernel").expect_success("exec_inherit on the kernel");
    let mut sluice = bench.run(&program);
    sluice.args([SLUICE_IP, "7200"]);
    let sluice = run_done(sluice, "exec_inherit under the preload");
    assert!(sluice.status.success() && !sluice.killed, "exec_inherit under the preload: {sluice:#?}");
    assert!(kernel.stdout.contains("client exit 0\n") && kernel.stdout.ends_with("done\n"), "{kernel:#?}");

    let (kernel_same, kernel_conn) = split_conn(&kernel.stdout);
    let (sluice_same, sluice_conn) = split_conn(&sluice.stdout);
    assert_eq!(sluice_same, kernel_same, "exec_inherit differs from the kernel\n--- stderr\n{}", sluice.stderr);
    assert_eq!(
        kernel_conn,
        ["conn recv = -1 EAGAIN", "conn send = 1 0"],
        "the kernel keeps the connection"
    );
    assert_eq!(
        sluice_conn,
        ["conn recv = -1 ENOTCONN", "conn send = -1 ENOTCONN"],
        "under Sluice the connection fails cleanly"
    );
    // The program's sockets were Sluice sessions: it bound the daemon's
    // address, which no kernel interface of this namespace has, and its
    // client reached it through the daemon (a cut-through connection).
    assert!(refused(&bench, 7200), "port 7200 still accepts after the program ended");
    nginx_binary_upgrade_under_load(&bench);
    bench.finish();
}

fn master_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) of this test's nginx master.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// nginx's binary upgrade under load (see the module docs).
fn nginx_binary_upgrade_under_load(bench: &Bench) {
    let www = bench.tmp.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let small = random_file(&www, "16k.bin", 16 << 10, 71);
    let dir = bench.tmp.0.join("nginx");
    let conf = nginx_conf(&dir, &www, 8100);
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("env LD_PRELOAD;\nenv SLUICE_CONTROL_SOCKET;\nenv SLUICE_LOG;\n{text}")).unwrap();
    let guard = NginxGuard(dir.clone());
    nginx_cmd(bench, &dir, &conf, &[]);
    wait_http(bench, &format!("http://{SLUICE_IP}:8100/16k.bin"));
    let old_master = master_pid(&dir.join("nginx.pid")).expect("nginx.pid");
    let old_family = nginx_family(&dir);
    assert_eq!(old_family.len(), 3, "a master and two workers expected: {old_family:?}");

    // One request per connection (an idle keep-alive connection is closed
    // by a gracefully exiting worker also on the kernel).
    let lines = || access_by_pid(&dir).values().sum::<usize>();
    let served_before = lines();
    let topo = &bench.topo;
    let stop = AtomicBool::new(false);
    let new_master = std::thread::scope(|scope| {
        // Two clients, each opening rounds of 100 connections until told to
        // stop, so that connections are always being made.
        let loads: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut rounds = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        rounds.push(load_client(topo, &http_args(8100, "/16k.bin", &small, 16 << 10, 100, 1)));
                    }
                    rounds
                })
            })
            .collect();
        assert!(wait_until(READY, || lines() >= served_before + 100), "the load never got going");
        let at_upgrade = lines();
        signal(old_master, libc::SIGUSR2);
        // The new master writes nginx.pid once it runs, and forks its workers.
        let new_master = wait_until(READY, || {
            master_pid(&dir.join("nginx.pid")).is_some_and(|p| p != old_master) && nginx_family(&dir).len() == 3
        });
        let errors = || std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        assert!(new_master, "the new binary never started its workers:\n{}", errors());
        let new_master = master_pid(&dir.join("nginx.pid")).expect("nginx.pid");
        assert!(dir.join("nginx.pid.oldbin").exists(), "the old master's pid file was not renamed");
        // Both generations serve; then the old one quits.
        assert!(wait_until(READY, || lines() >= at_upgrade + 200), "no load while both generations ran");
        signal(old_master, libc::SIGQUIT);
        assert!(
            wait_until(Duration::from_secs(30), || !live_processes().iter().any(|&(p, _)| p == old_master as u32)),
            "the old master never quit"
        );
        let at_quit = lines();
        assert!(wait_until(READY, || lines() >= at_quit + 200), "no load after the old master quit");
        stop.store(true, Ordering::Relaxed);
        for (finished, result) in loads.into_iter().flat_map(|l| l.join().expect("load thread")) {
            assert!(
                !finished.killed && finished.status.success() && result["ok"] == 100,
                "load across the binary upgrade: {result}\n{}\n{}",
                finished.stdout,
                finished.stderr
            );
        }
        new_master
    });
    assert!(old_family.iter().all(|p| !live_processes().iter().any(|&(q, _)| q == *p)), "an old process stayed");
    // The new generation alone serves now.
    let before = access_by_pid(&dir);
    http_load(bench, 8100, "/16k.bin", &small, 16 << 10, 50, 2);
    let after = access_by_pid(&dir);
    let new_workers: Vec<u32> = nginx_family(&dir).into_iter().filter(|&p| p != new_master as u32).collect();
    let served_by_new: usize =
        new_workers.iter().map(|p| after.get(p).unwrap_or(&0) - before.get(p).unwrap_or(&0)).sum();
    assert_eq!(served_by_new, 100, "the new workers serve everything: {new_workers:?} {after:?}");

    nginx_cmd(bench, &dir, &conf, &["-s", "quit"]);
    assert!(wait_until(Duration::from_secs(30), || nginx_family(&dir).is_empty()), "nginx left processes after quit");
    assert!(refused(bench, 8100), "port 8100 still accepts after nginx quit");
    let errors = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(!errors.contains("[alert]") && !errors.contains("[emerg]"), "nginx error log:\n{errors}");
    drop(guard);
}

#[test]
fn a_server_that_execs_itself_under_load_loses_no_connection() {
    let bench = Bench::up("pey");
    let sha = random_file(&bench.tmp.0, "body.bin", 16 << 10, 61);
    let before = bench.opened();
    let mut server = Process::spawn({
        let mut cmd = bench.run(preload_support::c_program("exec_server"));
        // Four generations (three execs), fifteen connections each but the last.
        cmd.arg("7300").arg(bench.tmp.0.join("body.bin")).arg("3").arg("15");
        cmd
    })
    .expect("spawn exec_server");
    if server.wait_for_line("generation 3 listening", READY).is_none() {
        panic!("exec_server never listened: {:#?}", server.terminate(Duration::from_secs(10)));
    }
    std::thread::scope(|scope| {
        // 40 connections queued at once (most of them wait through one or
        // more execs), while a second client keeps opening new ones (some
        // of them while an exec is in progress).
        let queued = scope.spawn(|| load_client(&bench.topo, &http_args(7300, "/", &sha, 16 << 10, 40, 2)));
        for round in 0..10 {
            let (finished, result) = load_client(&bench.topo, &http_args(7300, "/", &sha, 16 << 10, 2, 1));
            assert!(
                !finished.killed && finished.status.success() && result["ok"] == 2,
                "round {round} of new connections across the execs: {result}\n{}\n{}",
                finished.stdout,
                finished.stderr
            );
        }
        let (finished, result) = queued.join().expect("load thread");
        assert!(
            !finished.killed && finished.status.success() && result["ok"] == 80,
            "queued connections across the execs: {result}\n{}\n{}",
            finished.stdout,
            finished.stderr
        );
    });
    assert!(bench.opened() >= before + 60, "the connections did not go through the daemon");
    if server.wait_for_line("generation 0 listening", READY).is_none() {
        panic!("exec_server never reached its last generation: {:#?}", server.terminate(Duration::from_secs(10)));
    }
    let finished = server.terminate(Duration::from_secs(20));
    assert!(!finished.killed && finished.status.success(), "exec_server: {finished:#?}");
    let served: Vec<(u32, u64)> = finished
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("generation ")?.split_once(" served "))
        .map(|(g, n)| (g.parse().expect("a generation"), n.parse().expect("a count")))
        .collect();
    assert_eq!(served.iter().map(|&(g, _)| g).collect::<Vec<_>>(), [3, 2, 1, 0], "{finished:#?}");
    assert!(served[..3].iter().all(|&(_, n)| n == 15), "{served:?}");
    assert_eq!(served.iter().map(|&(_, n)| n).sum::<u64>(), 60, "every connection served once: {served:?}");
    assert!(finished.stdout.ends_with("done\n"), "{finished:#?}");
    assert!(refused(&bench, 7300), "port 7300 still accepts after the server ended");
    bench.finish();
}
