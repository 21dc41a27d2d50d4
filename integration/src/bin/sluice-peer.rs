//! Test driver: a Sluice engine on a TAP device. See `--help`.

use std::io::Write;
use std::process::ExitCode;

use sluice_integration::peer::args::{Options, USAGE};
use sluice_integration::peer::{driver, report};

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(msg) if msg == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("sluice-peer: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = driver::run(&opts, |tap| {
        println!("{}", report::ready_line(tap.name(), opts.mode.name()));
        // The test harness waits for this line before starting the peer.
        let _ = std::io::stdout().flush();
    });
    match outcome {
        Ok(outcome) => {
            println!("{}", report::done_line(&outcome));
            if report::succeeded(&outcome) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("sluice-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
