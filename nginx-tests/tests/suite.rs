//! The nginx suite (issue 5) as part of `make test`: every case must pass
//! on the kernel and under Sluice with the same outcome, but for the
//! differences listed in [`KNOWN_DIFFERENCES`] with their reasons. Needs
//! root (namespaces, TAP), nginx and libnginx-mod-stream
//! (scripts/install-deps.sh).

use sluice_nginx_tests::suite::{run, Options};

/// Cases allowed to fail under Sluice or differ from the kernel: (case
/// name, why). Each must still pass on the kernel.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

#[test]
fn nginx_behaves_the_same_under_sluice_as_on_the_kernel() {
    let result = run(&Options { prefix: "ntk".into(), only: Vec::new(), keep_dir: false });
    let table = result.report.render();
    eprintln!("{table}took {:.1} s", result.took.as_secs_f64());
    assert!(result.problems.is_empty(), "{table}\nproblems: {:#?}", result.problems);
    assert!(result.report.rows.len() >= 20, "cases missing:\n{table}");
    for row in &result.report.rows {
        assert!(row.kernel.passed(), "{} fails on the kernel: {:?}\n{table}", row.case, row.kernel.problems);
        let known = KNOWN_DIFFERENCES.iter().any(|(case, _)| *case == row.case);
        if !known {
            assert!(row.sluice.passed() && row.same(), "{}: {}\n{table}", row.case, row.note());
        }
    }
}
