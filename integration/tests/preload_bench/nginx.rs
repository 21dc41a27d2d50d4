//! nginx under the preload: its configuration, its processes (from its pid
//! file and `/proc`), its access log by worker, and its command line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::Bench;
use crate::daemon_support::READY;

/// Debian's nginx.
pub const NGINX: &str = "/usr/sbin/nginx";

/// nginx's configuration for `dir`: master and two workers, daemonizing.
pub fn nginx_conf(dir: &Path, www: &Path, port: u16) -> PathBuf {
    nginx_conf_with(dir, www, port, "")
}

/// [`nginx_conf`] with `extra` added to its `http` block (more servers,
/// upstreams, log formats). Room for a thousand connections per worker: one
/// fd each, plus the file a request sends.
pub fn nginx_conf_with(dir: &Path, www: &Path, port: u16, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon on;\nmaster_process on;\nworker_processes 2;\nworker_rlimit_nofile 8192;\n\
             error_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\nhttp {{\n  log_format bypid '$pid $status';\n\
             access_log {d}/access.log bypid;\n\
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
             uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_timeout 30;\n\
             server {{ listen {port}; root {}; }}\n{extra}}}\n",
            www.display()
        ),
    )
    .unwrap();
    conf
}

/// Process ids and parents, from `/proc` (zombies left out: they are gone
/// but for their parent's `wait`).
pub fn live_processes() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so from the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" {
            out.push((pid, ppid));
        }
    }
    out
}

/// nginx's master (from its pid file) and its children, those alive.
pub fn nginx_family(dir: &Path) -> Vec<u32> {
    let Some(master) = std::fs::read_to_string(dir.join("nginx.pid")).ok().and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return Vec::new();
    };
    let procs = live_processes();
    let mut family: Vec<u32> = procs.iter().filter(|&&(_, ppid)| ppid == master).map(|&(pid, _)| pid).collect();
    if procs.iter().any(|&(pid, _)| pid == master) {
        family.push(master);
    }
    family
}

/// The pids in the access log (`$pid` first on each line), with counts.
pub fn access_by_pid(dir: &Path) -> std::collections::HashMap<u32, usize> {
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    let mut counts = std::collections::HashMap::new();
    for pid in log.lines().filter_map(|l| l.split_whitespace().next()?.parse::<u32>().ok()) {
        *counts.entry(pid).or_default() += 1;
    }
    counts
}

/// Kills what is left of nginx after a failed run (the master named by its
/// pid file and its children only).
pub struct NginxGuard(pub PathBuf);

impl Drop for NginxGuard {
    fn drop(&mut self) {
        for pid in nginx_family(&self.0) {
            // SAFETY: kill(2) of this test's nginx processes.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// `sluice run -- nginx -p DIR -c CONF ARGS` to completion.
pub fn nginx_cmd(bench: &Bench, dir: &Path, conf: &Path, args: &[&str]) {
    // By its absolute path: a binary upgrade (`kill -USR2`) execs argv[0].
    nginx_cmd_in(bench.run(NGINX), dir, conf, args)
}

/// `nginx` started by `nginx` (a command naming the binary: under `sluice
/// run`, or in a namespace on the kernel) with `-p DIR -c CONF ARGS`, to
/// completion. Its output goes to files: with `daemon on` the master keeps
/// stderr until it redirects it to the error log, so a pipe would not end
/// with the command.
pub fn nginx_cmd_in(mut nginx: Command, dir: &Path, conf: &Path, args: &[&str]) {
    let out = std::fs::File::create(dir.join("cmd.out")).expect("create cmd.out");
    let err = out.try_clone().expect("dup cmd.out");
    nginx.arg("-p").arg(dir).arg("-c").arg(conf).args(args);
    nginx.stdin(std::process::Stdio::null()).stdout(out).stderr(err);
    let mut child = nginx.spawn().expect("spawn nginx (scripts/install-deps.sh installs it)");
    let deadline = Instant::now() + READY;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for nginx") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nginx {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(dir.join("cmd.out")).unwrap_or_default();
    assert!(status.success(), "nginx {args:?}: {status}\n{output}");
}

