//! The results as a Markdown table.

use std::fmt::Write;

use super::suite::{Cell, Outcome};

fn format_cell(cell: &Cell) -> String {
    match cell {
        Cell::Value(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Cell::Value(v) => format!("{v:.3}"),
        Cell::Failed(_) => "FAILED".into(),
        Cell::NotRun => "-".into(),
    }
}

fn ratio(sluice: &Cell, smoltcp: &Cell) -> String {
    match (sluice, smoltcp) {
        (Cell::Value(s), Cell::Value(m)) if *m > 0.0 && s / m >= 0.1 => format!("{:.2}x", s / m),
        (Cell::Value(s), Cell::Value(m)) if *m > 0.0 => format!("{:.2e}x", s / m),
        _ => "-".into(),
    }
}

/// Render the table, notes and failures.
pub fn markdown(outcome: &Outcome, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(out, "| workload | loss | Sluice | smoltcp | Sluice/smoltcp |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for row in &outcome.rows {
        let direction = if row.higher_is_better { "" } else { " (lower is better)" };
        let _ = writeln!(
            out,
            "| {}{direction} | {} | {} | {} | {} |",
            row.workload,
            row.loss,
            format_cell(&row.sluice),
            format_cell(&row.smoltcp),
            ratio(&row.sluice, &row.smoltcp)
        );
    }
    if !outcome.notes.is_empty() {
        let _ = writeln!(out);
        for note in &outcome.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    if !outcome.failures.is_empty() {
        let _ = writeln!(out, "\n## Failures\n");
        for failure in &outcome.failures {
            let _ = writeln!(out, "- {failure}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::suite::Row;

    #[test]
    fn table_shows_ratio_and_failures() {
        let outcome = Outcome {
            rows: vec![
                Row { workload: "bulk".into(), loss: "0%".into(), sluice: Cell::Value(4.0), smoltcp: Cell::Value(2.0), higher_is_better: true },
                Row { workload: "rr".into(), loss: "1%".into(), sluice: Cell::Failed("stalled".into()), smoltcp: Cell::Value(150.0), higher_is_better: true },
                Row { workload: "heap".into(), loss: "-".into(), sluice: Cell::Value(1000.0), smoltcp: Cell::Value(500_000.0), higher_is_better: false },
            ],
            notes: vec![],
            failures: vec!["rr, Sluice: stalled".into()],
        };
        let md = markdown(&outcome, "t");
        assert!(md.contains("| bulk | 0% | 4.000 | 2.000 | 2.00x |"), "{md}");
        assert!(md.contains("| rr | 1% | FAILED | 150 | - |"), "{md}");
        assert!(md.contains("- rr, Sluice: stalled"), "{md}");
        assert!(md.contains("| heap (lower is better) | - | 1000 | 500000 | 2.00e-3x |"), "{md}");
    }
}
