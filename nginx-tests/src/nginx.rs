//! One nginx per side: the same configuration but for the listen address
//! (master + 2 workers, daemonizing), started on the kernel of the dut
//! namespace or under `sluice run`, and its processes (from its pid file and
//! `/proc`), signals and access log.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_integration::netns::in_namespace;

use crate::bed::{allow_all, Bed, KERNEL_IP, READY, SLUICE_IP};
use crate::binaries::sluice;

/// Debian's nginx, by its absolute path (a binary upgrade execs argv[0]).
pub const NGINX: &str = "/usr/sbin/nginx";
/// Debian's stream module (package libnginx-mod-stream).
pub const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";
/// The HTTP server the clients use, the upstream it proxies to (on
/// 127.0.0.1: a cut-through session under Sluice) and the TCP proxy in
/// front of the upstream.
pub const HTTP_PORT: u16 = 18080;
pub const UPSTREAM_PORT: u16 = 18081;
pub const STREAM_PORT: u16 = 18082;
/// `limit_rate` of `/limited/`, bytes per second.
pub const LIMIT_RATE: u64 = 100 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Kernel,
    Sluice,
}

impl Side {
    /// The address nginx listens on and the clients connect to.
    pub fn addr(self) -> &'static str {
        match self {
            Side::Kernel => KERNEL_IP,
            Side::Sluice => SLUICE_IP,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Kernel => "kernel",
            Side::Sluice => "sluice",
        })
    }
}

/// nginx's configuration: `www` is served by both the front server and the
/// upstream; the upstream's `/dav/` takes PUTs into `dir/dav/`. The
/// upstream listens on the wildcard address, reached through 127.0.0.1:
/// the daemon refuses a listener on 127.0.0.1 (`EADDRNOTAVAIL`: its
/// engine listens on its own address or the wildcard only) and its
/// cut-through finds wildcard listeners.
pub fn conf(dir: &Path, www: &Path, addr: &str) -> String {
    let (d, w) = (dir.display(), www.display());
    format!(
        "load_module {STREAM_MODULE};
daemon on;
master_process on;
worker_processes 2;
error_log {d}/error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  log_format cases '$pid $status $body_bytes_sent \"$request_completion\" \"$request\"';
  access_log {d}/access.log cases;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 30; keepalive_requests 1000;
  large_client_header_buffers 4 16k;
  client_max_body_size 16m;
  default_type application/octet-stream;
  types {{ text/plain txt; }}
  upstream backend {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 8; }}
  server {{
    listen {addr}:{HTTP_PORT};
    root {w};
    location /gz/ {{ gzip on; gzip_min_length 1; gzip_types text/plain; }}
    location /limited/ {{ limit_rate {LIMIT_RATE}; }}
    location = /moved {{ return 301 /small.txt; }}
    location = /hello {{ return 200 \"hello from nginx\\n\"; }}
    location /up/ {{
      proxy_pass http://backend/; proxy_http_version 1.1; proxy_set_header Connection \"\";
    }}
    location /put/ {{
      proxy_pass http://backend/dav/; proxy_http_version 1.1; proxy_set_header Connection \"\";
    }}
  }}
  server {{
    listen {UPSTREAM_PORT};
    root {w};
    location /gz/ {{ gzip on; gzip_min_length 1; gzip_types text/plain; }}
    location /dav/ {{ root {d}; dav_methods PUT; create_full_put_path on; dav_access all:r; }}
  }}
}}
stream {{
  server {{ listen {addr}:{STREAM_PORT}; proxy_pass 127.0.0.1:{UPSTREAM_PORT}; }}
}}
"
    )
}

/// A running nginx; killed (master and children) on drop if still alive.
pub struct Nginx {
    pub side: Side,
    pub dir: PathBuf,
}

impl Nginx {
    /// Writes the suite's configuration into `dir` and starts nginx for
    /// `side`; returns once the master and both workers run.
    pub fn start(bed: &Bed, side: Side, dir: &Path, www: &Path) -> Nginx {
        Nginx::try_start(bed, side, dir, &conf(dir, www, side.addr())).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts nginx for `side` with the configuration `text` (written into
    /// `dir`); once the master and both workers run, or what nginx said.
    pub fn try_start(bed: &Bed, side: Side, dir: &Path, text: &str) -> Result<Nginx, String> {
        for sub in ["tmp", "dav"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create nginx's directories");
            allow_all(&dir.join(sub));
        }
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, text).expect("write nginx.conf");
        let mut cmd = match side {
            Side::Kernel => in_namespace(&bed.dut_ns(), NGINX),
            Side::Sluice => {
                let mut cmd = Command::new(sluice());
                cmd.arg("run").arg("--control-socket").arg(&bed.control).args(["--", NGINX]);
                cmd.env_remove("LD_PRELOAD").env("SLUICE_LOG", "warn").env("SLUICE_LOOPBACK", "on");
                cmd
            }
        };
        cmd.arg("-p").arg(dir).arg("-c").arg(&conf_path);
        let nginx = Nginx { side, dir: dir.into() };
        // To a file: with `daemon on` the master keeps stderr until it
        // switches to the error log, so a pipe would not end with the command.
        let out = std::fs::File::create(dir.join("start.out")).expect("create start.out");
        let err = out.try_clone().expect("dup start.out");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let mut child = cmd.spawn().expect("spawn nginx (scripts/install-deps.sh installs it)");
        let deadline = Instant::now() + READY;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for nginx") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{side} nginx did not daemonize"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let said = std::fs::read_to_string(dir.join("start.out")).unwrap_or_default();
        if !status.success() {
            return Err(format!("{side} nginx: {status}: {}", said.trim()));
        }
        if !wait_until(READY, || nginx.workers().len() == 2) {
            return Err(format!("{side} nginx: no 2 workers"));
        }
        Ok(nginx)
    }

    /// The master's pid, while it lives.
    pub fn master(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.dir.join("nginx.pid")).ok()?.trim().parse().ok()?;
        live_processes().iter().any(|&(p, _)| p == pid).then_some(pid)
    }

    /// The master's live children (workers, and old workers shutting down).
    pub fn workers(&self) -> Vec<u32> {
        let Some(master) = self.master() else { return Vec::new() };
        live_processes().into_iter().filter(|&(_, ppid)| ppid == master).map(|(pid, _)| pid).collect()
    }

    /// Sends `signal` to the master (`nginx -s` does the same).
    pub fn signal(&self, signal: libc::c_int) -> bool {
        let Some(master) = self.master() else { return false };
        // SAFETY: kill(2) of this nginx's master, alive a moment ago.
        unsafe { libc::kill(master as libc::pid_t, signal) == 0 }
    }

    /// The access log's lines so far.
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default().lines().map(String::from).collect()
    }

    /// The error log (for reports of failures).
    pub fn error_log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Graceful quit (SIGQUIT); true if every process was gone in time.
    pub fn quit(&self) -> bool {
        let family = self.family();
        self.signal(libc::SIGQUIT);
        wait_until(READY, || family.iter().all(|pid| !alive(*pid)))
    }

    fn family(&self) -> Vec<u32> {
        let mut family = self.workers();
        family.extend(self.master());
        family
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        for pid in self.family() {
            // SAFETY: kill(2) of this nginx's own processes.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

fn alive(pid: u32) -> bool {
    live_processes().iter().any(|&(p, _)| p == pid)
}

/// Process ids and their parents from `/proc`, zombies left out.
fn live_processes() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so from the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" {
            out.push((pid, ppid));
        }
    }
    out
}

/// Polls `cond` until it holds or `within` has passed.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
