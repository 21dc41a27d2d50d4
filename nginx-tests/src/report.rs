//! Outcomes and the report: per case and side, whether the case's own
//! expectations held, and whether both sides' records agree.

use serde_json::Value;

/// What one case saw on one side.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What the clients saw, reduced to what two correct servers agree on
    /// (no dates, boundaries or exact timings): compared across sides.
    pub record: Value,
    /// The case's expectations that did not hold; empty when it passed.
    pub problems: Vec<String>,
}

impl Outcome {
    /// An outcome with `record`; `check` adds a problem for each failed
    /// expectation.
    pub fn new(record: Value) -> Outcome {
        Outcome { record, problems: Vec::new() }
    }

    /// Records `problem` unless `ok`.
    pub fn expect(&mut self, ok: bool, problem: impl Into<String>) {
        if !ok {
            self.problems.push(problem.into());
        }
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One case on both sides.
#[derive(Clone, Debug)]
pub struct Row {
    pub case: &'static str,
    pub kernel: Outcome,
    pub sluice: Outcome,
}

impl Row {
    /// Both sides' records agree.
    pub fn same(&self) -> bool {
        self.kernel.record == self.sluice.record
    }

    /// A short note: the first problems, or how the records differ.
    pub fn note(&self) -> String {
        let mut notes = Vec::new();
        for (side, outcome) in [("kernel", &self.kernel), ("sluice", &self.sluice)] {
            if let Some(problem) = outcome.problems.first() {
                notes.push(format!("{side}: {problem}"));
            }
        }
        if !self.same() {
            notes.push(format!("records differ: kernel {} / sluice {}", self.kernel.record, self.sluice.record));
        }
        notes.join("; ")
    }
}

/// Every case's row, in order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    /// Passed cases and all cases, for the kernel and for Sluice.
    pub fn pass_counts(&self) -> ((usize, usize), (usize, usize)) {
        let n = self.rows.len();
        let kernel = self.rows.iter().filter(|r| r.kernel.passed()).count();
        let sluice = self.rows.iter().filter(|r| r.sluice.passed()).count();
        ((kernel, n), (sluice, n))
    }

    /// The table: case, kernel, sluice, same outcome, note; then the pass
    /// rate of each side.
    pub fn render(&self) -> String {
        let verdict = |o: &Outcome| if o.passed() { "pass" } else { "FAIL" };
        let width = self.rows.iter().map(|r| r.case.len()).max().unwrap_or(4).max(4);
        let mut out = format!("{:width$}  kernel  sluice  same  note\n", "case");
        for r in &self.rows {
            let same = if r.same() { "yes" } else { "NO" };
            let line = format!(
                "{:width$}  {:6}  {:6}  {:4}  {}",
                r.case,
                verdict(&r.kernel),
                verdict(&r.sluice),
                same,
                r.note()
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let ((k, n), (s, _)) = self.pass_counts();
        let rate = |p: usize| if n == 0 { 0.0 } else { 100.0 * p as f64 / n as f64 };
        out.push_str(&format!("pass rate: kernel {k}/{n} ({:.0}%), sluice {s}/{n} ({:.0}%)\n", rate(k), rate(s)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(record: Value, problem: Option<&str>) -> Outcome {
        let mut out = Outcome::new(record);
        out.expect(problem.is_none(), problem.unwrap_or_default());
        out
    }

    #[test]
    fn rows_compare_records_and_rates_count_each_side() {
        let report = Report {
            rows: vec![
                Row {
                    case: "same",
                    kernel: outcome(json!({"s": 200}), None),
                    sluice: outcome(json!({"s": 200}), None),
                },
                Row {
                    case: "differs",
                    kernel: outcome(json!({"s": 200}), None),
                    sluice: outcome(json!({"s": 502}), Some("status 502")),
                },
            ],
        };
        assert!(report.rows[0].same() && report.rows[0].note().is_empty());
        assert!(!report.rows[1].same());
        assert!(report.rows[1].note().starts_with("sluice: status 502; records differ"), "{}", report.rows[1].note());
        assert_eq!(report.pass_counts(), ((2, 2), (1, 2)));
        let table = report.render();
        assert!(table.contains("differs  pass    FAIL    NO"), "{table}");
        assert!(table.ends_with("pass rate: kernel 2/2 (100%), sluice 1/2 (50%)\n"), "{table}");
    }
}
