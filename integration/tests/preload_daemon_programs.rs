//! Unmodified programs under the preload on the Sluice daemon (issue 4):
//! the daemon on TAP in its namespace (`scripts/netns-daemon.sh`), programs
//! started with `sluice run` in the test's own namespace (they reach the
//! daemon through its control socket only, so every TCP/IPv4 socket they
//! open is a Sluice session), and kernel peers in the peer namespace.
//!
//! * `python3 -m http.server` and single-process `nginx` (`sendfile on`)
//!   serve files to `curl`, checked by hash;
//! * an edge-triggered epoll echo server in C serves hundreds of concurrent
//!   connections of `scripts/load-client.py`, every byte checked;
//! * `socat` connects out to a kernel echo server and moves a file;
//! * `remote_mix.c` (epoll LT/ET/ONESHOT/RDHUP/EXCLUSIVE, poll and select
//!   over a session mixed with a pipe and an eventfd, timeouts, EINTR) prints
//!   exactly what it prints on the kernel;
//! * `epoll_before_connect.c` (sockets added to an epoll set before their
//!   connect, as nginx's upstream connections) prints what it prints on the
//!   kernel, and its sockets are sessions;
//! * a forked child's use and close of an inherited connection leave the
//!   parent's connection working;
//! * `sluice run` without a daemon fails with a clear message.
//!
//! Needs root (namespaces, TAP). Every process runs under a deadline; the
//! topology is removed when a test ends, also by panic.

mod daemon_support;
mod preload_bench;
mod preload_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use preload_bench::*;
use sluice_integration::netns::Process;

const PEER_IP: &str = "10.79.0.1";

#[test]
fn python_http_server_and_nginx_serve_curl_under_the_preload() {
    let bench = Bench::up("pdh");
    let www = bench.tmp.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let big = random_file(&www, "1m.bin", 1 << 20, 11);
    let odd = random_file(&www, "odd.bin", 3_000_017, 12);
    let before = bench.opened();

    // Python's socketserver: poll() on a Sluice listener, blocking accept,
    // sendall of a 3 MB file.
    let mut py = bench.run("python3");
    py.args(["-u", "-m", "http.server", "8080", "--bind", "0.0.0.0", "--directory"]).arg(&www);
    let py = Process::spawn(py).expect("spawn python http.server");
    wait_http(&bench, &format!("http://{SLUICE_IP}:8080/"));
    for (name, sha) in [("1m.bin", &big), ("odd.bin", &odd)] {
        let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8080/{name}"));
        assert_eq!(got.as_deref(), Some(sha.as_str()), "python http.server /{name}");
    }
    stopped_by_us(&py.terminate(Duration::from_secs(10)), "python3 -m http.server");
    assert!(bench.opened() > before, "the daemon opened no connection: python used the kernel");

    // nginx in one process (epoll, accept4, sendfile, writev, TCP_NODELAY).
    let conf_dir = bench.tmp.0.join("nginx");
    std::fs::create_dir_all(conf_dir.join("tmp")).unwrap();
    let conf = conf_dir.join("nginx.conf");
    let d = conf_dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n  access_log {d}/access.log;\n\
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
             uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_timeout 30;\n\
             server {{ listen 8081; root {}; }}\n}}\n",
            www.display()
        ),
    )
    .unwrap();
    let mut nginx = bench.run("nginx");
    nginx.arg("-p").arg(&conf_dir).arg("-c").arg(&conf);
    let nginx = Process::spawn(nginx).expect("spawn nginx (scripts/install-deps.sh installs it)");
    wait_http(&bench, &format!("http://{SLUICE_IP}:8081/1m.bin"));
    for _ in 0..3 {
        let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8081/1m.bin"));
        assert_eq!(got.as_deref(), Some(big.as_str()), "nginx /1m.bin");
    }
    let got = curl_sha(&bench, &format!("http://{SLUICE_IP}:8081/odd.bin"));
    assert_eq!(got.as_deref(), Some(odd.as_str()), "nginx /odd.bin");
    // Many concurrent keep-alive clients, every body checked.
    let small = random_file(&www, "16k.bin", 16 << 10, 13);
    http_load(&bench, 8081, "/16k.bin", &small, 16 << 10, 400, 3);
    http_load(&bench, 8081, "/1m.bin", &big, 1 << 20, 40, 2);
    let finished = nginx.terminate(Duration::from_secs(10));
    stopped_by_us(&finished, "nginx");
    bench.finish();
}

#[test]
fn epoll_echo_server_in_c_serves_hundreds_of_connections_under_the_preload() {
    let bench = Bench::up("pde");
    let mut server = Process::spawn({
        let mut cmd = bench.run(preload_support::c_program("epoll_echo"));
        cmd.arg("7007");
        cmd
    })
    .expect("spawn epoll_echo");
    assert!(server.wait_for_line("ready", READY).is_some(), "epoll_echo never listened");
    for (loss, connections, bytes) in [(0u8, 400u32, 64u32 << 10), (0, 50, 1 << 20), (5, 30, 256 << 10)] {
        bench.topo.set_loss(loss);
        let args: Vec<String> = vec![
            "echo".into(),
            SLUICE_IP.into(),
            "7007".into(),
            "--connections".into(),
            connections.to_string(),
            "--bytes".into(),
            bytes.to_string(),
        ];
        let (finished, result) = load_client(&bench.topo, &args);
        assert!(
            !finished.killed && finished.status.success() && result["ok"] == result["expected"],
            "echo {connections}x{bytes} at {loss}% loss: {result}\n{}\n{}",
            finished.stdout,
            finished.stderr
        );
        assert_eq!(result["ok"], connections, "{result}");
    }
    bench.topo.set_loss(0);
    stopped_by_us(&server.terminate(Duration::from_secs(10)), "epoll_echo");
    bench.finish();
}

#[test]
fn socat_client_and_mixed_readiness_under_the_preload_match_the_kernel() {
    let bench = Bench::up("pdm");
    // A kernel echo server in the peer namespace (one `cat` per connection,
    // which closes after the client's FIN).
    let mut echo = bench.peer("socat");
    echo.args(["TCP-LISTEN:9001,reuseaddr,fork", "EXEC:cat"]);
    let echo = Process::spawn(echo).expect("spawn socat (scripts/install-deps.sh installs it)");
    wait_peer_listening(&bench, 9001);

    // socat as a client, connecting out through the daemon.
    let input = bench.tmp.0.join("in.bin");
    let sha = random_file(&bench.tmp.0, "in.bin", 777_777, 21);
    let before = bench.opened();
    let mut client = bench.run("sh");
    client.arg("-c").arg(format!("socat -t 10 -T 30 - TCP:{PEER_IP}:9001 < {} | sha256sum", input.display()));
    let finished = run_done(client, "socat client").expect_success("socat client under the preload");
    assert_eq!(finished.stdout.split_whitespace().next(), Some(sha.as_str()), "socat's echo differs");
    assert!(bench.opened() > before, "socat's connection did not go through the daemon");

    // The same readiness program on the kernel (in the peer namespace, to
    // the same server) and under the preload: identical output.
    let program = preload_support::c_program("remote_mix");
    let mut kernel = bench.peer(program.to_str().expect("utf-8 path"));
    kernel.args([PEER_IP, "9001"]);
    let kernel = run_done(kernel, "remote_mix on the kernel").expect_success("remote_mix on the kernel");
    let mut sluice = bench.run(&program);
    sluice.args([PEER_IP, "9001"]);
    let sluice = run_done(sluice, "remote_mix under the preload").expect_success("remote_mix under the preload");
    assert!(kernel.stdout.contains("done"), "{kernel:#?}");
    assert_eq!(sluice.stdout, kernel.stdout, "remote_mix differs from the kernel\n--- stderr\n{}", sluice.stderr);

    // Sockets added to an epoll set before their connect (nginx's upstream
    // connections): the registration follows them to Sluice.
    let program = preload_support::c_program("epoll_before_connect");
    let mut kernel = bench.peer(program.to_str().expect("utf-8 path"));
    kernel.args([PEER_IP, "9001"]);
    let kernel = run_done(kernel, "epoll_before_connect on the kernel").expect_success("epoll_before_connect");
    let before = bench.opened();
    let mut sluice = bench.run(&program);
    sluice.args([PEER_IP, "9001"]);
    let sluice = run_done(sluice, "epoll_before_connect under the preload").expect_success("epoll_before_connect");
    assert!(kernel.stdout.contains("done"), "{kernel:#?}");
    assert_eq!(sluice.stdout, kernel.stdout, "epoll_before_connect differs from the kernel\n{}", sluice.stderr);
    assert!(bench.opened() >= before + 2, "epoll_before_connect's sockets did not go through the daemon");

    // A forked child cannot use its parent's connection (it stays the
    // parent's; vcl's fork support): it fails cleanly with ENOTCONN, and the
    // child's close leaves the parent's connection working.
    let mut fork = bench.run(preload_support::c_program("fork_remote"));
    fork.args([PEER_IP, "9001"]);
    let fork = run_done(fork, "fork_remote").expect_success("fork_remote under the preload");
    assert_eq!(
        fork.stdout,
        "parent before fork: one\nchild send: ENOTCONN\nchild close: 0\nchild exit: 0\nparent after child: two\ndone\n",
        "{fork:#?}"
    );

    echo.terminate(Duration::from_secs(10));
    bench.finish();
}

#[test]
fn sluice_run_without_a_daemon_says_so() {
    preload_support::preload_lib();
    let dir = TempDir::new("pdn");
    let missing = dir.0.join("nobody.sock");
    let out = Command::new(sluice_binary())
        .args(["run", "--control-socket"])
        .arg(&missing)
        .args(["--", "true"])
        .output()
        .expect("run sluice run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not answer") && stderr.contains(&*missing.to_string_lossy()), "{stderr}");
    assert!(Path::new(sluice_binary()).exists());
}
