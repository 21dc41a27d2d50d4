//! Engine benchmark: Sluice vs smoltcp through one harness over an in-memory
//! wire. Prints a Markdown table; `--out [PATH]` also writes it (default
//! `bench/results/engine.md`). Exits non-zero if any transfer fails to complete
//! or delivers wrong data; never on the numbers themselves.
//!
//! Usage: sluice-bench [--quick] [--reps N] [--stack both|sluice|smoltcp]
//!                     [--workload all|bulk|rr|state] [--state-conns N] [--smoltcp-state-conns N] [--seed N] [--out [PATH]]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_integration::bench::report::markdown;
use sluice_integration::bench::suite::{self, Options, StackChoice, WorkloadChoice};

/// The system allocator, counting live heap bytes for the state measurement.
struct CountingAlloc;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s guarantees hold; the counter is only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (so by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

fn heap_in_use() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

struct Args {
    options: Options,
    quick: bool,
    out: Option<PathBuf>,
}

fn default_out() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("bench").join("results").join("engine.md")
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let quick = raw.iter().any(|a| a == "--quick");
    let mut options = if quick { Options::quick() } else { Options::full() };
    let mut out = None;
    let mut i = 0;
    let number = |i: usize| -> Result<u64, String> {
        let v = raw.get(i + 1).ok_or_else(|| format!("{} needs a value", raw[i]))?;
        v.parse().map_err(|_| format!("{} needs a number, got {v}", raw[i]))
    };
    while i < raw.len() {
        match raw[i].as_str() {
            "--quick" => {}
            "--reps" => {
                options.reps = number(i)? as usize;
                i += 1;
            }
            "--state-conns" => {
                options.state_conns = number(i)? as usize;
                i += 1;
            }
            "--smoltcp-state-conns" => {
                options.smoltcp_state_conns = number(i)? as usize;
                i += 1;
            }
            "--seed" => {
                options.seed = number(i)?;
                i += 1;
            }
            "--stack" => {
                options.stacks = match raw.get(i + 1).map(String::as_str) {
                    Some("both") => StackChoice::Both,
                    Some("sluice") => StackChoice::Sluice,
                    Some("smoltcp") => StackChoice::Smoltcp,
                    other => return Err(format!("--stack takes both|sluice|smoltcp, got {other:?}")),
                };
                i += 1;
            }
            "--workload" => {
                options.workloads = match raw.get(i + 1).map(String::as_str) {
                    Some("all") => WorkloadChoice::All,
                    Some("bulk") => WorkloadChoice::Bulk,
                    Some("rr") => WorkloadChoice::RequestResponse,
                    Some("state") => WorkloadChoice::State,
                    other => return Err(format!("--workload takes all|bulk|rr|state, got {other:?}")),
                };
                i += 1;
            }
            "--out" => match raw.get(i + 1) {
                Some(path) if !path.starts_with("--") => {
                    out = Some(PathBuf::from(path));
                    i += 1;
                }
                _ => out = Some(default_out()),
            },
            "-h" | "--help" => {
                return Err("usage: sluice-bench [--quick] [--reps N] [--stack both|sluice|smoltcp] [--workload all|bulk|rr|state] [--state-conns N] \
                            [--smoltcp-state-conns N] [--seed N] [--out [PATH]]"
                    .into())
            }
            other => return Err(format!("unknown argument {other}")),
        }
        i += 1;
    }
    Ok(Args { options, quick, out })
}

/// Pin glibc's mmap threshold. By default it rises after large blocks are
/// freed, after which smoltcp's 256 KiB socket buffers would come from the brk
/// heap and be zeroed page by page: 10,000 idle connections would then touch
/// gigabytes. A fixed threshold keeps every large buffer a fresh (untouched)
/// mapping for both stacks, whatever ran before.
fn pin_mmap_threshold() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only changes allocator tuning; it is called before any other thread exists, with a valid parameter and value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

fn main() -> ExitCode {
    pin_mmap_threshold();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; numbers are meaningless (use --release)");
    }
    let outcome = suite::run(&args.options, &heap_in_use);
    let title = if args.quick { "Engine benchmark (quick)" } else { "Engine benchmark" };
    let table = markdown(&outcome, title);
    println!("{table}");
    if let Some(path) = args.out {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, &table) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} measurement(s) failed", outcome.failures.len());
        ExitCode::FAILURE
    }
}
