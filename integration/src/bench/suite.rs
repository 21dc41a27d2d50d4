//! Runs every workload for each selected stack and collects the table rows.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::bulk::{run_bulk, BulkResult};
use super::conn_state::{run_conn_state, StateResult};
use super::endpoint::{Endpoint, StackError};
use super::request_response::{run_request_response, RrResult, MESSAGE_LEN};
use super::sluice_endpoint::SluiceEndpoint;
use super::smoltcp_endpoint::SmoltcpEndpoint;
use super::{sluice_factory, smoltcp_factory, StackFactory, BUFFER, MTU};

const MIB: u64 = 1024 * 1024;

/// Which stacks to measure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StackChoice {
    Both,
    Sluice,
    Smoltcp,
}

impl StackChoice {
    fn sluice(self) -> bool {
        self != StackChoice::Smoltcp
    }
    fn smoltcp(self) -> bool {
        self != StackChoice::Sluice
    }
}

/// Which workloads to run (all by default; one alone is handy under a profiler).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WorkloadChoice {
    All,
    Bulk,
    RequestResponse,
    State,
}

/// Workload sizes and repetitions.
#[derive(Clone, Debug)]
pub struct Options {
    pub stacks: StackChoice,
    pub workloads: WorkloadChoice,
    pub reps: usize,
    pub bulk_bytes_lossless: u64,
    pub bulk_bytes_lossy: u64,
    pub rr_conns: usize,
    pub rr_per_conn_lossless: u64,
    pub rr_per_conn_lossy: u64,
    pub state_conns: usize,
    /// smoltcp scans every socket per packet, so its count may be set lower.
    pub smoltcp_state_conns: usize,
    pub seed: u64,
}

impl Options {
    pub fn full() -> Options {
        Options {
            stacks: StackChoice::Both,
            workloads: WorkloadChoice::All,
            reps: 3,
            bulk_bytes_lossless: 256 * MIB,
            bulk_bytes_lossy: 64 * MIB,
            rr_conns: 16,
            rr_per_conn_lossless: 20_000,
            rr_per_conn_lossy: 5_000,
            state_conns: 10_000,
            smoltcp_state_conns: 10_000,
            seed: 0x51u64 << 32 | 0xce,
        }
    }

    /// Small sizes for a CI smoke run: still checks every byte.
    pub fn quick() -> Options {
        Options {
            reps: 1,
            bulk_bytes_lossless: 8 * MIB,
            bulk_bytes_lossy: 2 * MIB,
            rr_per_conn_lossless: 500,
            rr_per_conn_lossy: 200,
            state_conns: 512,
            smoltcp_state_conns: 512,
            ..Options::full()
        }
    }
}

/// One stack's figure for one row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Value(f64),
    Failed(String),
    NotRun,
}

/// One line of the results table.
#[derive(Clone, Debug)]
pub struct Row {
    pub workload: String,
    pub loss: String,
    pub sluice: Cell,
    pub smoltcp: Cell,
    /// Whether a larger figure is better (throughput) or worse (bytes).
    pub higher_is_better: bool,
}

/// Everything a run produced.
#[derive(Default)]
pub struct Outcome {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    /// Transfers that did not complete or delivered wrong data.
    pub failures: Vec<String>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// One repetition of one workload on one stack; a failure or panic becomes
/// the error message.
fn run_once<E: Endpoint, T>(
    factory: &StackFactory<E>,
    label: &str,
    rep: usize,
    seed: u64,
    measure: impl Fn(&StackFactory<E>, u64) -> Result<T, StackError>,
    describe: impl Fn(&T) -> String,
) -> Result<T, String> {
    let result = match catch_unwind(AssertUnwindSafe(|| measure(factory, seed))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.0),
        Err(payload) => Err(format!("panicked: {}", panic_message(payload.as_ref()))),
    };
    match &result {
        Ok(value) => eprintln!("  {label} {} rep {}: {}", factory.name, rep + 1, describe(value)),
        Err(failure) => eprintln!("  {label} {} rep {}: FAILED: {failure}", factory.name, rep + 1),
    }
    result
}

/// The repetitions of one workload on one stack: `None` if the stack is not
/// measured, the first failure if any repetition failed.
struct Series<T>(Option<Result<Vec<T>, String>>);

impl<T> Series<T> {
    fn new(selected: bool) -> Series<T> {
        Series(selected.then(|| Ok(Vec::new())))
    }
    /// Whether another repetition should run (selected, nothing failed yet).
    fn wants_more(&self) -> bool {
        matches!(self.0, Some(Ok(_)))
    }
    fn push(&mut self, result: Result<T, String>) {
        match (&mut self.0, result) {
            (Some(Ok(values)), Ok(value)) => values.push(value),
            (slot @ Some(Ok(_)), Err(e)) => *slot = Some(Err(e)),
            _ => {}
        }
    }
    fn record_failure(&self, outcome: &mut Outcome, label: &str, stack: &str) {
        if let Some(Err(e)) = &self.0 {
            outcome.failures.push(format!("{label}, {stack}: {e}"));
        }
    }
}

/// The median of one figure over a measurement's repetitions.
fn median_cell<T>(series: &Series<T>, figure: impl Fn(&T) -> f64) -> Cell {
    match &series.0 {
        None => Cell::NotRun,
        Some(Err(e)) => Cell::Failed(e.clone()),
        Some(Ok(values)) => Cell::Value(median(&mut values.iter().map(figure).collect::<Vec<f64>>())),
    }
}

/// The per-core rate row of a workload and, under loss, the row of virtual
/// time to finish (lower is better: it shows how well loss is recovered from).
fn push_rate_rows<T>(
    outcome: &mut Outcome,
    rate_label: &str,
    workload: &str,
    loss: f64,
    (s, m): (&Series<T>, &Series<T>),
    rate: impl Fn(&T) -> f64,
    virtual_micros: impl Fn(&T) -> u64,
) {
    outcome.rows.push(Row { workload: rate_label.to_owned(), loss: loss_label(loss), sluice: median_cell(s, &rate), smoltcp: median_cell(m, &rate), higher_is_better: true });
    if loss > 0.0 {
        let secs = |r: &T| virtual_micros(r) as f64 / 1e6;
        outcome.rows.push(Row {
            workload: format!("{workload}: virtual time to finish (s)"),
            loss: loss_label(loss),
            sluice: median_cell(s, secs),
            smoltcp: median_cell(m, secs),
            higher_is_better: false,
        });
    }
}

fn loss_label(loss: f64) -> String {
    format!("{}%", loss * 100.0)
}

/// Run the selected workloads; `heap_in_use` reads the live heap bytes.
pub fn run(opts: &Options, heap_in_use: &dyn Fn() -> usize) -> Outcome {
    let mut outcome = Outcome::default();
    let sluice = sluice_factory();
    let smol = smoltcp_factory();
    let run_sluice = opts.stacks.sluice();
    let run_smol = opts.stacks.smoltcp();
    let wants = |w: WorkloadChoice| opts.workloads == WorkloadChoice::All || opts.workloads == w;

    // Connection state first, while the heap is still unfragmented.
    let run_state = wants(WorkloadChoice::State);
    let describe_state = |r: &StateResult| format!("{:.0} B per endpoint over {} connections, opened in {:.2?} CPU", r.bytes_per_endpoint(), r.connections, r.setup_time.cpu);
    let mut sluice_state = Series::new(run_state && run_sluice);
    if sluice_state.wants_more() {
        sluice_state.push(run_once(&sluice, "state", 0, opts.seed, |f, seed| run_conn_state(f, opts.state_conns, seed, heap_in_use), describe_state));
    }
    let mut smol_state = Series::new(run_state && run_smol);
    if smol_state.wants_more() {
        smol_state.push(run_once(&smol, "state", 0, opts.seed, |f, seed| run_conn_state(f, opts.smoltcp_state_conns, seed, heap_in_use), describe_state));
    }
    sluice_state.record_failure(&mut outcome, "state", sluice.name);
    smol_state.record_failure(&mut outcome, "state", smol.name);

    let bulk_runs = if wants(WorkloadChoice::Bulk) { vec![(0.0, opts.bulk_bytes_lossless), (0.01, opts.bulk_bytes_lossy)] } else { Vec::new() };
    for (loss, bytes) in bulk_runs {
        let label = format!("bulk {} MiB at {}", bytes / MIB, loss_label(loss));
        eprintln!("{label}");
        let describe = |r: &BulkResult| {
            format!(
                "{:.3} Gbit/s ({:.2?} CPU, {:.2?} wall, {:.3} s virtual, {} rounds, {} frames, {} dropped)",
                r.gbit_per_s(),
                r.time.cpu,
                r.time.wall,
                r.virtual_elapsed as f64 / 1e6,
                r.rounds,
                r.wire.delivered + r.wire.dropped,
                r.wire.dropped
            )
        };
        let (mut s, mut m) = (Series::new(run_sluice), Series::new(run_smol));
        // Stacks alternate per repetition, so load from other processes on
        // the shared machine falls on both alike.
        for rep in 0..opts.reps.max(1) {
            let seed = opts.seed.wrapping_add(rep as u64);
            if s.wants_more() {
                s.push(run_once(&sluice, &label, rep, seed, |f, seed| run_bulk::<SluiceEndpoint>(f, bytes, loss, seed), describe));
            }
            if m.wants_more() {
                m.push(run_once(&smol, &label, rep, seed, |f, seed| run_bulk::<SmoltcpEndpoint>(f, bytes, loss, seed), describe));
            }
        }
        s.record_failure(&mut outcome, &label, sluice.name);
        m.record_failure(&mut outcome, &label, smol.name);
        let workload = format!("bulk goodput, 1 conn, {} MiB", bytes / MIB);
        push_rate_rows(&mut outcome, &format!("{workload} (Gbit/s per core)"), &workload, loss, (&s, &m), BulkResult::gbit_per_s, |r| r.virtual_elapsed);
    }

    let rr_runs = if wants(WorkloadChoice::RequestResponse) { vec![(0.0, opts.rr_per_conn_lossless), (0.01, opts.rr_per_conn_lossy)] } else { Vec::new() };
    for (loss, per_conn) in rr_runs {
        let label = format!("request/response {}x{} at {}", opts.rr_conns, per_conn, loss_label(loss));
        eprintln!("{label}");
        let describe = |r: &RrResult| {
            format!(
                "{:.1} k txn/s ({} txns, {:.2?} CPU, {:.2?} wall, {:.3} s virtual, {} rounds, {} frames, {} dropped)",
                r.per_second() / 1e3,
                r.transactions,
                r.time.cpu,
                r.time.wall,
                r.virtual_elapsed as f64 / 1e6,
                r.rounds,
                r.wire.delivered + r.wire.dropped,
                r.wire.dropped
            )
        };
        let conns = opts.rr_conns;
        let (mut s, mut m) = (Series::new(run_sluice), Series::new(run_smol));
        for rep in 0..opts.reps.max(1) {
            let seed = opts.seed.wrapping_add(rep as u64);
            if s.wants_more() {
                s.push(run_once(&sluice, &label, rep, seed, |f, seed| run_request_response::<SluiceEndpoint>(f, conns, per_conn, loss, seed), describe));
            }
            if m.wants_more() {
                m.push(run_once(&smol, &label, rep, seed, |f, seed| run_request_response::<SmoltcpEndpoint>(f, conns, per_conn, loss, seed), describe));
            }
        }
        s.record_failure(&mut outcome, &label, sluice.name);
        m.record_failure(&mut outcome, &label, smol.name);
        let workload = format!("request/response {MESSAGE_LEN} B, {conns} conns x {per_conn}");
        let per_second_k = |r: &RrResult| r.per_second() / 1e3;
        push_rate_rows(&mut outcome, &format!("{workload} (k txn/s per core)"), &workload, loss, (&s, &m), per_second_k, |r| r.virtual_elapsed);
    }

    if run_state {
        outcome.rows.push(Row {
            workload: "state: size_of connection struct (bytes, no buffers)".into(),
            loss: "-".into(),
            sluice: if run_sluice { Cell::Value(SluiceEndpoint::slot_size() as f64) } else { Cell::NotRun },
            smoltcp: if run_smol { Cell::Value(SmoltcpEndpoint::socket_size() as f64) } else { Cell::NotRun },
            higher_is_better: false,
        });
        let state_conns = if opts.state_conns == opts.smoltcp_state_conns {
            format!("{}", opts.state_conns)
        } else {
            format!("Sluice {}, smoltcp {}", opts.state_conns, opts.smoltcp_state_conns)
        };
        outcome.rows.push(Row {
            workload: format!("state: heap per idle established conn endpoint (bytes, {state_conns} conns)"),
            loss: "-".into(),
            sluice: median_cell(&sluice_state, StateResult::bytes_per_endpoint),
            smoltcp: median_cell(&smol_state, StateResult::bytes_per_endpoint),
            higher_is_better: false,
        });
    }
    outcome.notes.push(format!(
        "Both stacks: Ethernet, IP MTU {MTU}, {} KiB send and receive buffers, CUBIC, Nagle off, TCP timestamps on, software checksums; \
         ARP on the wire; one thread drives client and server and per-core figures divide by that thread's CPU time (the machine is shared, so wall time would count time spent descheduled); the virtual clock advances {} us per busy round and jumps to the next timer when idle.",
        BUFFER / 1024,
        super::driver::ROUND_TICK
    ));
    outcome.notes.push(format!(
        "size_of: Sluice `engine::ConnSlot` = {} B (of which `tcp::conn::TcpConn` = {} B); smoltcp `socket::tcp::Socket` = {} B, \
         plus its two {} KiB buffers allocated at socket creation.",
        SluiceEndpoint::slot_size(),
        SluiceEndpoint::conn_size(),
        SmoltcpEndpoint::socket_size(),
        BUFFER / 1024
    ));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keeps_the_first_failure_and_stops() {
        let mut series = Series::new(true);
        series.push(Ok(1.0));
        series.push(Ok(3.0));
        assert!(series.wants_more());
        assert_eq!(median_cell(&series, |v| *v), Cell::Value(2.0));
        series.push(Err("stalled".to_string()));
        series.push(Ok(5.0));
        assert!(!series.wants_more());
        assert_eq!(median_cell(&series, |v| *v), Cell::Failed("stalled".into()));
        let mut outcome = Outcome::default();
        series.record_failure(&mut outcome, "bulk", "Sluice");
        assert_eq!(outcome.failures, vec!["bulk, Sluice: stalled".to_string()]);
        let unselected: Series<f64> = Series::new(false);
        assert!(!unselected.wants_more());
        assert_eq!(median_cell(&unselected, |v| *v), Cell::NotRun);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
