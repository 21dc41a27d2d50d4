//! `nginx-tests`: runs the nginx suite on the kernel and under Sluice and
//! prints the table (case, kernel, sluice, same outcome, note) and the
//! pass rate of each side. Needs root. Exits 1 if any case failed on either
//! side, differed between them, or the run itself went wrong.

use clap::Parser;
use sluice_nginx_tests::suite::{run, Options};

#[derive(Parser)]
#[command(about = "nginx behaviours under the Sluice preload vs the same nginx on the kernel")]
struct Args {
    /// Namespace prefix for the topology (PREFIX-peer, -mid, -dut).
    #[arg(long, default_value = "ntu")]
    prefix: String,
    /// Run only the cases whose names contain this (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Keep the scratch directory (under the temp dir: nginx's logs and
    /// configurations) after the run.
    #[arg(long)]
    keep_dir: bool,
}

fn main() {
    let args = Args::parse();
    let result = run(&Options { prefix: args.prefix, only: args.only, keep_dir: args.keep_dir });
    print!("{}", result.report.render());
    println!("took {:.1} s", result.took.as_secs_f64());
    for problem in &result.problems {
        println!("problem: {problem}");
    }
    let clean = result.report.rows.iter().all(|r| r.kernel.passed() && r.sluice.passed() && r.same());
    std::process::exit(if clean && result.problems.is_empty() { 0 } else { 1 });
}
