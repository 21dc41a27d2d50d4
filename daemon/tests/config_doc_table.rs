//! The settings table in `config/settings.rs`'s documentation matches the
//! table the code reads, row for row, so the docs cannot drift.

use sluice_daemon::config::settings::SETTINGS;

const SOURCE: &str = include_str!("../src/config/settings.rs");

/// The documentation table's rows, cells trimmed and unquoted.
fn doc_rows() -> Vec<Vec<String>> {
    SOURCE
        .lines()
        .filter_map(|line| line.strip_prefix("//! |"))
        .skip(2) // header and separator
        .map(|row| row.trim_end().trim_end_matches('|').split(" | ").map(|c| c.trim().replace('`', "")).collect())
        .collect()
}

#[test]
fn the_documented_table_is_the_settings_table() {
    let rows = doc_rows();
    assert_eq!(rows.len(), SETTINGS.len(), "one documented row per setting");
    for (row, setting) in rows.iter().zip(SETTINGS) {
        let expected = [
            setting.name.to_owned(),
            setting.flag_name(),
            setting.env.to_owned(),
            setting.name.to_owned(),
            setting.default_text().to_owned(),
            setting.rule.to_owned(),
        ];
        assert_eq!(row.as_slice(), expected.as_slice(), "documented row for {}", setting.name);
    }
}

#[test]
fn variables_are_the_upper_case_setting_names() {
    for setting in SETTINGS {
        assert_eq!(setting.env, format!("SLUICE_{}", setting.name.to_uppercase()));
    }
}
