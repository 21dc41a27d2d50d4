//! redis under the preload: its configuration, the server as a child
//! process, `redis-cli` and `redis-benchmark` in the peer namespace, its
//! `INFO` fields, and values checked by hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{wait_until, Bench};
use crate::daemon_support::{random_file, READY};
use sluice_integration::netns::{Finished, Process};

/// How long one `redis-cli` call may take.
const CLI_DEADLINE: Duration = Duration::from_secs(30);
/// How long one `redis-benchmark` run may take.
pub const BENCHMARK_DEADLINE: Duration = Duration::from_secs(120);

/// A redis configuration in `dir`, listening on every address at `port`,
/// with both kinds of persistence on: RDB snapshots (`save`, `BGSAVE`) and
/// the append-only file (`appendonly yes`, `BGREWRITEAOF`), both written by
/// forked children. The automatic snapshot is an hour away, so every
/// `BGSAVE` in a test is the test's own (`ERR Background save already in
/// progress` otherwise). `extra` lines are appended. The log goes to stdout.
pub fn redis_conf(dir: &Path, port: u16, extra: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the redis dir");
    let conf = dir.join("redis.conf");
    let mut text = format!(
        "port {port}\nbind 0.0.0.0\nprotected-mode no\ndaemonize no\ndir {}\nlogfile \"\"\n\
         save 3600 1\nappendonly yes\nappendfsync everysec\n",
        dir.display()
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&conf, text).expect("write redis.conf");
    conf
}

/// A running redis-server reached from the peer namespace at `host:port`;
/// killed on drop unless it was shut down.
pub struct Redis<'b> {
    bench: &'b Bench,
    pub host: &'static str,
    pub port: u16,
    pub dir: PathBuf,
    server: Option<Process>,
}

impl<'b> Redis<'b> {
    /// Spawns `server` (a `redis-server CONF` command) and waits until it
    /// answers `PING` from the peer namespace.
    pub fn start(bench: &'b Bench, server: Command, host: &'static str, port: u16, dir: &Path) -> Redis<'b> {
        let process = Process::spawn(server).expect("spawn redis-server (scripts/install-deps.sh installs it)");
        let redis = Redis { bench, host, port, dir: dir.to_path_buf(), server: Some(process) };
        if !wait_until(READY, || redis.try_cli(&["ping"]).is_some_and(|out| out.trim() == "PONG")) {
            let finished = redis.stop(Duration::from_secs(5));
            panic!("redis-server never answered PING at {host}:{port}: {finished:#?}");
        }
        redis
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.as_ref().expect("redis is running").pid()
    }

    fn cli_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.bench.peer("redis-cli");
        cmd.args(["-h", self.host, "-p", &self.port.to_string()]).args(args);
        cmd
    }

    /// `redis-cli ARGS`' stdout, or `None` if it failed or overran.
    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let finished = Process::spawn(self.cli_cmd(args)).ok()?.wait(CLI_DEADLINE);
        (!finished.killed && finished.status.success()).then_some(finished.stdout)
    }

    /// `redis-cli ARGS`' reply (stdout, trimmed). An error reply (which
    /// redis-cli prints but exits 0 on) fails the test.
    pub fn cli(&self, args: &[&str]) -> String {
        let finished = Process::spawn(self.cli_cmd(args)).expect("spawn redis-cli").wait(CLI_DEADLINE);
        let reply = finished.stdout.trim().to_string();
        let error = ["ERR", "WRONGTYPE", "Error", "Could not connect"].iter().any(|e| reply.starts_with(e));
        assert!(!finished.killed && finished.status.success() && !error, "redis-cli {args:?}: {finished:#?}");
        reply
    }

    /// An integer reply.
    pub fn cli_int(&self, args: &[&str]) -> i64 {
        let reply = self.cli(args);
        reply.parse().unwrap_or_else(|_| panic!("redis-cli {args:?}: not an integer: {reply:?}"))
    }

    /// `INFO section` as field -> value.
    pub fn info(&self, section: &str) -> HashMap<String, String> {
        self.cli(&["info", section])
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `SET key <the bytes of file>` (`redis-cli -x` reads the value from
    /// stdin, binary-safe).
    pub fn set_file(&self, key: &str, file: &Path) {
        let mut cmd = self.bench.peer("bash");
        cmd.arg("-c").arg(format!("redis-cli -h {} -p {} -x set {key} < {}", self.host, self.port, file.display()));
        let finished = Process::spawn(cmd).expect("spawn redis-cli -x").wait(CLI_DEADLINE);
        assert!(!finished.killed && finished.stdout.trim() == "OK", "SET {key} from {}: {finished:#?}", file.display());
    }

    /// `GET key`'s bytes exactly (`--raw` prints the value and one newline;
    /// the value goes to a file because it is binary).
    pub fn get_bytes(&self, key: &str) -> Vec<u8> {
        let out = self.dir.join(format!("get-{key}.out"));
        let mut cmd = self.bench.peer("bash");
        cmd.arg("-c").arg(format!("redis-cli -h {} -p {} --raw get {key} > {}", self.host, self.port, out.display()));
        let finished = Process::spawn(cmd).expect("spawn redis-cli get").wait(CLI_DEADLINE);
        assert!(!finished.killed && finished.status.success(), "GET {key}: {finished:#?}");
        let mut bytes = std::fs::read(&out).expect("read the GET output");
        let _ = std::fs::remove_file(&out);
        assert_eq!(bytes.pop(), Some(b'\n'), "GET {key}: redis-cli --raw ends its output with a newline");
        bytes
    }

    /// `redis-benchmark -h HOST -p PORT --csv ARGS` in the peer namespace,
    /// running; see [`benchmark_result`].
    pub fn benchmark(&self, args: &[&str]) -> Process {
        let mut cmd = self.bench.peer("redis-benchmark");
        cmd.args(["-h", self.host, "-p", &self.port.to_string(), "--csv"]).args(args);
        Process::spawn(cmd).expect("spawn redis-benchmark")
    }

    /// Runs `redis-benchmark` to completion; its result by test.
    pub fn benchmark_done(&self, args: &[&str]) -> Vec<BenchmarkLine> {
        benchmark_result(self.benchmark(args).wait(BENCHMARK_DEADLINE), args)
    }

    /// Waits until no `BGSAVE` or AOF rewrite runs or waits to run, then
    /// checks that the last ones succeeded.
    pub fn wait_persistence_idle(&self) {
        let idle = |info: &HashMap<String, String>| {
            ["rdb_bgsave_in_progress", "aof_rewrite_in_progress", "aof_rewrite_scheduled"]
                .iter()
                .all(|k| info.get(*k).map(String::as_str) == Some("0"))
        };
        let mut info = HashMap::new();
        let done = wait_until(READY, || {
            info = self.info("persistence");
            idle(&info)
        });
        assert!(done, "a background save never finished: {info:?}");
        for status in ["rdb_last_bgsave_status", "aof_last_bgrewrite_status", "aof_last_write_status"] {
            assert_eq!(info.get(status).map(String::as_str), Some("ok"), "{status}: {info:?}");
        }
    }

    /// `INFO stats`' `total_forks`: the children redis forked so far.
    pub fn forks(&self) -> u64 {
        self.info("stats").get("total_forks").and_then(|v| v.parse().ok()).expect("INFO stats has total_forks")
    }

    /// `SHUTDOWN` (which saves a final snapshot) and the server's exit.
    pub fn shutdown(mut self) -> Finished {
        // The connection closes without a reply: redis-cli's exit status says
        // nothing; the server's own exit does.
        let _ = self.try_cli(&["shutdown"]);
        self.server.take().expect("redis is running").wait(READY)
    }

    /// SIGTERM (redis saves and exits as for SHUTDOWN) and the server's exit.
    pub fn stop(mut self, within: Duration) -> Finished {
        self.server.take().expect("redis is running").terminate(within)
    }
}

/// One `redis-benchmark --csv` line: the test and its requests per second.
#[derive(Debug, Clone)]
pub struct BenchmarkLine {
    pub test: String,
    pub rps: f64,
    pub p50_ms: f64,
}

/// A finished `redis-benchmark --csv` run's lines. It must have exited 0
/// (it exits 1 on any error reply or lost connection) with nothing on
/// stderr (where it reports them) and only its CSV on stdout.
pub fn benchmark_result(finished: Finished, args: &[&str]) -> Vec<BenchmarkLine> {
    assert!(
        !finished.killed && finished.status.success() && finished.stderr.trim().is_empty(),
        "redis-benchmark {args:?}: {finished:#?}"
    );
    let mut lines = Vec::new();
    for line in finished.stdout.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("\"test\",") {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        let parsed = match fields.as_slice() {
            [test, rps, _avg, _min, p50, ..] => rps
                .parse()
                .ok()
                .zip(p50.parse().ok())
                .map(|(rps, p50_ms)| BenchmarkLine { test: test.to_string(), rps, p50_ms }),
            _ => None,
        };
        lines.push(parsed.unwrap_or_else(|| panic!("redis-benchmark {args:?}: unexpected line {line:?}")));
    }
    assert!(!lines.is_empty(), "redis-benchmark {args:?} reported no test: {finished:#?}");
    lines
}

/// Processes still attached to the bench's daemon through `sluice run`'s
/// environment (`SLUICE_CONTROL_SOCKET` names this bench's socket, made
/// canonical by `sluice run`): every one the test started and every child
/// they forked.
pub fn processes_of(bench: &Bench) -> Vec<u32> {
    let socket = std::fs::canonicalize(&bench.control).unwrap_or_else(|_| bench.control.clone());
    let needle = format!("SLUICE_CONTROL_SOCKET={}", socket.display()).into_bytes();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let alive = std::fs::read_to_string(entry.path().join("stat"))
            .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')));
        if alive && environ.split(|&b| b == 0).any(|var| var == needle.as_slice()) {
            pids.push(pid);
        }
    }
    pids
}

/// The key `redis-benchmark -t incr` increments (`-r` is not used).
pub const COUNTER: &str = "counter:__rand_int__";
/// The list `redis-benchmark -t lpush,lpop` pushes to and pops from.
pub const LIST: &str = "mylist";
/// The key `redis-benchmark -t set` writes (3 random bytes each time).
pub const KEY: &str = "key:__rand_int__";

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Keys and the SHA-256 of their values.
pub type Values = Vec<(String, String)>;

/// Writes values of 1 B to 1 MiB (random bytes, any of them possibly a CR,
/// LF or NUL) with `redis-cli -x`.
pub fn write_values(redis: &Redis, files: &Path) -> Values {
    let mut values = Vec::new();
    for (n, len) in [1usize, 1000, 64 << 10, 1 << 20].into_iter().enumerate() {
        let key = format!("value:{len}");
        let sha = random_file(files, &key, len, 70 + n as u64);
        redis.set_file(&key, &files.join(&key));
        values.push((key, sha));
    }
    values
}

/// Every value reads back with its hash.
pub fn check_values(redis: &Redis, values: &Values) {
    for (key, sha) in values {
        assert_eq!(&sha256_hex(&redis.get_bytes(key)), sha, "GET {key} from {}:{}", redis.host, redis.port);
    }
}

pub fn counter(redis: &Redis) -> i64 {
    redis.cli(&["get", COUNTER]).parse().unwrap_or(0)
}

/// `redis-benchmark -c clients -n requests -P pipeline` over SET, GET,
/// INCR, LPUSH and LPOP on fresh keys; every INCR counted once, every
/// LPUSH popped once, every SET stored.
pub fn serve(redis: &Redis, clients: u32, requests: u32, pipeline: u32) -> Vec<BenchmarkLine> {
    redis.cli(&["del", COUNTER, LIST, KEY]);
    let (c, n, p) = (clients.to_string(), requests.to_string(), pipeline.to_string());
    let lines = redis.benchmark_done(&["-c", &c, "-n", &n, "-P", &p, "-t", "set,get,incr,lpush,lpop"]);
    let tests: Vec<&str> = lines.iter().map(|l| l.test.as_str()).collect();
    assert_eq!(tests, ["SET", "GET", "INCR", "LPUSH", "LPOP"], "{lines:?}");
    assert_eq!(counter(redis), i64::from(requests), "INCR lost or repeated requests ({clients}x, -P {pipeline})");
    assert_eq!(redis.cli_int(&["llen", LIST]), 0, "LPUSH/LPOP lost or repeated requests (-P {pipeline})");
    assert_eq!(redis.cli_int(&["strlen", KEY]), 3, "SET's value");
    lines
}
