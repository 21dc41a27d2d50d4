//! fork under the preload on the Sluice daemon (issue 4): programs whose
//! children serve the listeners their parent opened.
//!
//! * `prefork_server.c`: the parent listens and forks two workers that each
//!   epoll on the inherited listener and accept; the load client in the peer
//!   namespace gets every request answered and both workers get a share.
//! * `bgsave_server.c`: a child forked after every response (as redis's
//!   BGSAVE) finds its inherited connection unusable and closes everything
//!   it inherited; the parent's connections and listener keep working.
//! * nginx with `master_process on; worker_processes 2; daemon on;` (the
//!   daemonizing fork, then the master's forks of its workers) serves a
//!   1 MiB file to `curl` and the load client, checked by hash; `nginx -s
//!   reload` under load fails no request; `nginx -s quit` leaves no process.
//!
//! Same topology as `preload_daemon_programs.rs` (daemon on TAP in its
//! namespace, programs under `sluice run`, kernel peers), with its own
//! namespace prefixes. Needs root.

mod daemon_support;
mod preload_bench;
mod preload_support;

use std::time::Duration;

use daemon_support::*;
use preload_bench::nginx::*;
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
    bench.finish();
}

#[test]
fn nginx_master_and_workers_serve_reload_and_quit_under_the_preload() {
    let bench = Bench::up("pfn");
    let www = bench.tmp.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let big = random_file(&www, "1m.bin", 1 << 20, 41);
    let small = random_file(&www, "16k.bin", 16 << 10, 42);
    let dir = bench.tmp.0.join("nginx");
    let conf = nginx_conf(&dir, &www, 8090);
    let guard = NginxGuard(dir.clone());

    // `daemon on`: the started process forks the master and exits; the
    // master forks two workers, which inherit the listener twice over.
    nginx_cmd(&bench, &dir, &conf, &[]);
    wait_http(&bench, &format!("http://{SLUICE_IP}:8090/16k.bin"));
    let family = nginx_family(&dir);
    assert_eq!(family.len(), 3, "a master and two workers expected: {family:?}");
    let before = bench.opened();
    for _ in 0..3 {
        let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8090/1m.bin"));
        assert_eq!(got.as_deref(), Some(big.as_str()), "nginx /1m.bin");
    }
    http_load(&bench, 8090, "/1m.bin", &big, 1 << 20, 20, 2);
    http_load(&bench, 8090, "/16k.bin", &small, 16 << 10, 200, 3);
    assert!(bench.opened() >= before + 223, "nginx's connections did not go through the daemon");
    let by_pid = access_by_pid(&dir);
    assert!(by_pid.len() == 2 && by_pid.values().all(|&n| n > 0), "both workers must serve a share: {by_pid:?}");

    // Reload under load: the new workers inherit the listener from the
    // master and join its group; the old ones finish what they accepted.
    // One request per connection: an idle keep-alive connection is closed by
    // a gracefully exiting worker also on the kernel (nginx's
    // `ngx_close_idle_connections`), which a client without retries counts
    // as failed.
    let lines = || access_by_pid(&dir).values().sum::<usize>();
    let served_before = lines();
    std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            (0..3)
                .map(|_| load_client(&bench.topo, &http_args(8090, "/16k.bin", &small, 16 << 10, 400, 1)))
                .collect::<Vec<_>>()
        });
        assert!(wait_until(READY, || lines() >= served_before + 100), "the load before the reload never got going");
        nginx_cmd(&bench, &dir, &conf, &["-s", "reload"]);
        for (finished, result) in load.join().expect("load thread") {
            assert!(
                !finished.killed && finished.status.success() && result["ok"] == 400,
                "load across the reload: {result}\n{}\n{}",
                finished.stdout,
                finished.stderr
            );
        }
    });
    // The new generation serves.
    let old_workers: Vec<u32> = by_pid.keys().copied().collect();
    assert!(
        wait_until(READY, || nginx_family(&dir).iter().all(|p| !old_workers.contains(p))),
        "the old workers never left: {:?}",
        nginx_family(&dir)
    );
    http_load(&bench, 8090, "/1m.bin", &big, 1 << 20, 10, 2);
    let new_pids: Vec<u32> = access_by_pid(&dir).keys().copied().filter(|p| !old_workers.contains(p)).collect();
    assert!(!new_pids.is_empty(), "no request served by the new workers");

    nginx_cmd(&bench, &dir, &conf, &["-s", "quit"]);
    assert!(wait_until(Duration::from_secs(30), || nginx_family(&dir).is_empty()), "nginx left processes after quit");
    assert!(refused(&bench, 8090), "port 8090 still accepts after nginx quit");
    let errors = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(!errors.contains("[alert]") && !errors.contains("[emerg]"), "nginx error log:\n{errors}");
    drop(guard);
    bench.finish();
}
