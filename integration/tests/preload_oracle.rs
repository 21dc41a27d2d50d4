//! The preload against the kernel as the oracle (issue 4, design §6 P1/P2):
//! each C program of `integration/c/` runs on the kernel, under the preload
//! (sockets decided by the policy and converted to kernel sockets), and under
//! the preload with the kernel-proxy backend (its loopback sockets are
//! sessions behind placeholders), and all three runs must print the same
//! transcript and exit the same way.
//!
//! Also here: `SLUICE_TRACE` writes one line per intercepted call, bad
//! `SLUICE_*` values print one line and change nothing else, and
//! `SLUICE_FALLBACK=fail` fails exactly the calls the policy sends to an
//! unreachable Sluice.

mod preload_support;

use preload_support::{c_program, command, run, Mode, Run};

/// Runs `program` in every mode and checks the runs agree with the kernel's.
fn oracle(program: &str) {
    let exe = c_program(program);
    let kernel = run(command(&exe, Mode::Kernel));
    assert_eq!(kernel.code, Some(0), "{program} fails on the kernel itself:\n{}{}", kernel.stdout, kernel.stderr);
    assert!(!kernel.stdout.contains("FATAL"), "{program} on the kernel:\n{}", kernel.stdout);
    for mode in [Mode::Preload, Mode::Proxy] {
        let under = run(command(&exe, mode));
        if under.stdout != kernel.stdout || under.code != kernel.code {
            panic!(
                "{program} under {mode:?} differs from the kernel (exit {:?} vs {:?}):\n{}\nstderr:\n{}",
                under.code,
                kernel.code,
                first_difference(&kernel.stdout, &under.stdout),
                under.stderr
            );
        }
        check_quiet(program, mode, &under);
    }
}

/// The interposer may only have printed the one-time notice that no Sluice
/// backend is reachable (and only in `Preload` mode, where that is the truth).
fn check_quiet(program: &str, mode: Mode, under: &Run) {
    for line in under.sluice_lines() {
        let notice =
            mode == Mode::Preload && line.contains("is unreachable") && line.contains("SLUICE_FALLBACK=kernel");
        assert!(notice, "{program} under {mode:?}: unexpected interposer output: {line}\n{}", under.stderr);
    }
}

fn first_difference(expected: &str, actual: &str) -> String {
    let mut report = String::new();
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            report += &format!("line {}:\n  kernel: {e}\n  here:   {a}\n", i + 1);
            break;
        }
    }
    let (e, a) = (expected.lines().count(), actual.lines().count());
    if report.is_empty() && e != a {
        report += &format!("the kernel printed {e} lines, this run {a}\n");
    }
    report + "--- kernel ---\n" + expected + "--- this run ---\n" + actual
}

macro_rules! oracle_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                oracle(stringify!($name));
            }
        )*
    };
}

oracle_tests!(
    connect_loopback,
    fd_numbering,
    sockopt_fresh,
    fcntl_flags,
    cloexec_exec,
    exec_inherit,
    fork_socket,
    epoll_mix,
    poll_select,
    eintr_accept,
    sendfile_file,
    io_calls,
    threads,
    daemon_listen,
);

/// `SLUICE_RULES=kernel:*` sends every socket to the kernel from `socket()`
/// on (no candidates at all), silently; and a policy that sends loopback to
/// the kernel-proxy backend explicitly by rule agrees with the kernel too.
#[test]
fn rules_choose_kernel_or_sessions() {
    let exe = c_program("connect_loopback");
    let kernel = run(command(&exe, Mode::Kernel));
    let mut all_kernel = command(&exe, Mode::Preload);
    all_kernel.env("SLUICE_RULES", "kernel:*");
    let mut by_rule = command(&exe, Mode::Proxy);
    by_rule.env("SLUICE_LOOPBACK", "on").env("SLUICE_RULES", "kernel:*:22,sluice:127.0.0.0/8,kernel:*");
    for (what, cmd) in [("kernel:*", all_kernel), ("sluice:127.0.0.0/8", by_rule)] {
        let under = run(cmd);
        assert_eq!(under.stdout, kernel.stdout, "{what}:\n{}", first_difference(&kernel.stdout, &under.stdout));
        assert!(under.sluice_lines().is_empty(), "{what}: {}", under.stderr);
    }
}

/// With `SLUICE_FALLBACK=kernel`, a policy that sends sockets to an
/// unreachable Sluice behaves as the kernel, after one notice.
#[test]
fn fallback_kernel_is_the_kernel() {
    let exe = c_program("fallback_fail");
    let kernel = run(command(&exe, Mode::Kernel));
    let under = run(command(&exe, Mode::Preload));
    assert_eq!(under.stdout, kernel.stdout, "{}", first_difference(&kernel.stdout, &under.stdout));
    let lines = under.sluice_lines();
    assert_eq!(lines.len(), 1, "exactly one notice: {lines:?}");
    assert!(lines[0].contains("SLUICE_FALLBACK=kernel"), "{}", lines[0]);
}

/// `SLUICE_FALLBACK=fail` (the default): binding the wildcard address and
/// connecting to a remote one (Sluice by the default rules) fail with
/// `ENETUNREACH` after one stderr line; loopback (the kernel's by default)
/// still works on the same socket.
#[test]
fn fallback_fail_fails_only_sluice_sockets() {
    let exe = c_program("fallback_fail");
    let mut cmd = command(&exe, Mode::Preload);
    cmd.env_remove("SLUICE_FALLBACK");
    let under = run(cmd);
    assert_eq!(under.code, Some(0), "{}{}", under.stdout, under.stderr);
    let expected = [
        "socket(AF_INET, SOCK_STREAM, 0) = 3",
        "bind(a, SA(any), sizeof any) = -1 ENETUNREACH",
        "listen(a, 1) = -1 ENETUNREACH",
        "connect(a, SA(far), sizeof far) = -1 ENETUNREACH",
        "bind(a, SA(lo), sizeof lo) = 0",
        "listen(a, 1) = 0",
        "SO_ACCEPTCONN 1",
        "close(a) = 0",
    ];
    assert_eq!(under.stdout.lines().collect::<Vec<_>>(), expected);
    let lines = under.sluice_lines();
    assert_eq!(lines.len(), 1, "one line for all three failures: {lines:?}");
    assert!(lines[0].contains("is unreachable") && lines[0].contains("SLUICE_FALLBACK=fail"), "{}", lines[0]);
}

/// A bad `SLUICE_*` value prints one line naming the variable; the program
/// runs exactly as on the kernel.
#[test]
fn bad_settings_print_one_line_each_and_change_nothing() {
    let exe = c_program("connect_loopback");
    let kernel = run(command(&exe, Mode::Kernel));
    // (variable, value, what the line must quote)
    for (variable, value, quoted) in [
        ("SLUICE_RULES", "kernel:10.0.0.0/8,sluice:nowhere:80", "\"sluice:nowhere:80\""),
        ("SLUICE_RULES", "garbage", "\"garbage\""),
        ("SLUICE_LOOPBACK", "sometimes", "\"sometimes\""),
        ("SLUICE_LOG", "loud", "\"loud\""),
        ("SLUICE_BACKEND", "dpdk", "\"dpdk\""),
    ] {
        let mut cmd = command(&exe, Mode::Preload);
        cmd.env(variable, value);
        let under = run(cmd);
        assert_eq!(under.code, Some(0), "{variable}={value}: {}", under.stderr);
        assert_eq!(
            under.stdout,
            kernel.stdout,
            "{variable}={value}:\n{}",
            first_difference(&kernel.stdout, &under.stdout)
        );
        let lines = under.sluice_lines();
        let naming: Vec<_> = lines.iter().filter(|line| line.contains(&format!("{variable}: "))).collect();
        assert_eq!(naming.len(), 1, "{variable}={value}: one line naming it, got {lines:?}");
        assert!(naming[0].contains(quoted), "{variable}={value}: the line quotes {quoted}: {}", naming[0]);
        assert!(
            lines.iter().all(|line| line.contains(variable) || line.contains("is unreachable")),
            "{variable}={value}: other output {lines:?}"
        );
    }
}

/// `SLUICE_TRACE=<file>`: one line per intercepted call, in order, with the
/// arguments, the result and the errno of failures.
#[test]
fn trace_writes_one_line_per_call() {
    let exe = c_program("trace_calls");
    let dir = tempdir("trace");
    let path = dir.join("trace.log");
    let mut cmd = command(&exe, Mode::Preload);
    cmd.env("SLUICE_TRACE", &path);
    let under = run(cmd);
    assert_eq!(under.code, Some(0), "{}", under.stderr);
    assert_eq!(under.stdout, "x");
    let trace = std::fs::read_to_string(&path).expect("the trace file");
    let calls: Vec<(String, String)> = trace
        .lines()
        .map(|line| {
            assert!(line.starts_with("sluice["), "{line}");
            let call = line.split_once("] ").expect("sluice[PID] call").1;
            let name = call.split('(').next().unwrap_or_default().to_string();
            let result = call.rsplit_once(") = ").expect("call = result").1.to_string();
            (name, result)
        })
        .collect();
    let expected = [
        ("socket", "3"),
        ("setsockopt", "0"),
        ("dup", "4"),
        ("close", "0"),
        ("bind", "0"),
        ("listen", "0"),
        ("write", "1"),
        ("close", "0"),
        ("close", "-1 EBADF"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(n, r)| (n.to_string(), r.to_string())).collect();
    assert_eq!(calls, expected, "trace:\n{trace}");
    assert!(trace.contains("socket(2, 1, 0) = 3"), "{trace}");
    assert!(trace.contains("listen(4, 1) = 0"), "{trace}");
    std::fs::remove_dir_all(&dir).expect("removing the test directory");

    // SLUICE_TRACE=1 writes the same lines to stderr.
    let mut cmd = command(&exe, Mode::Preload);
    cmd.env("SLUICE_TRACE", "1");
    let under = run(cmd);
    let names: Vec<&str> =
        under.sluice_lines().iter().map(|l| l.split_once("] ").unwrap().1.split('(').next().unwrap()).collect();
    assert_eq!(names, ["socket", "setsockopt", "dup", "close", "bind", "listen", "write", "close", "close"]);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("preload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a test directory");
    dir
}
