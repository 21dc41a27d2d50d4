//! `SLUICE_*` variables: unknown ones are warned about (with a suggestion
//! when they look like a typo), app-side ones are not, empty ones are unset.

mod config_support;

use config_support::{resolve_with, REQUIRED};
use sluice_daemon::config::settings::{CONFIG_ENV, SETTINGS};
use sluice_daemon::config::{control_socket_path_in, unknown_variable_warnings, APP_VARIABLES};

#[test]
fn known_variables_are_not_warned_about() {
    let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.env).collect();
    names.extend(APP_VARIABLES);
    names.extend([CONFIG_ENV, "SLUICE_FAULT_DROP_ATTACH", "SLUICE_SIM_SEED", "PATH", "XDG_RUNTIME_DIR", "sluice_ip"]);
    assert_eq!(unknown_variable_warnings(names), Vec::<String>::new());
}

#[test]
fn the_app_side_names_are_known() {
    for name in [
        "SLUICE_RULES",
        "SLUICE_FALLBACK",
        "SLUICE_TRACE",
        "SLUICE_UDP",
        "SLUICE_INHERITED",
        "SLUICE_PRELOAD",
        "SLUICE_PANIC",
    ] {
        assert!(APP_VARIABLES.contains(&name), "{name}");
    }
}

#[test]
fn typos_get_a_suggestion() {
    let warnings = unknown_variable_warnings(["SLUICE_QUEUS", "SLUICE_XDPMODE", "SLUICE_RULE", "SLUICE_WHATEVER"]);
    assert_eq!(
        warnings,
        [
            "SLUICE_QUEUS is not a Sluice variable (did you mean SLUICE_QUEUES?); ignoring it",
            "SLUICE_XDPMODE is not a Sluice variable (did you mean SLUICE_XDP_MODE?); ignoring it",
            "SLUICE_RULE is not a Sluice variable (did you mean SLUICE_RULES?); ignoring it",
            "SLUICE_WHATEVER is not a Sluice variable; ignoring it",
        ]
    );
}

#[test]
fn an_empty_variable_is_unset() {
    let config = resolve_with(&REQUIRED, &[("SLUICE_QUEUES", ""), ("SLUICE_MAC", "")], Some("queues = 3\n")).unwrap();
    assert_eq!((config.queues, config.mac), (3, None));
    let error = resolve_with(&["--ip", "10.0.0.2/24"], &[("SLUICE_IFACE", "")], None).unwrap_err();
    assert_eq!(error.setting, "iface");
    assert!(error.message.starts_with("is required"), "{error}");
}

#[test]
fn admin_commands_find_the_socket_by_flag_then_variable_then_default() {
    use std::path::{Path, PathBuf};
    let env = |name: &str| (name == "SLUICE_CONTROL_SOCKET").then(|| PathBuf::from("/v.sock"));
    assert_eq!(control_socket_path_in(Some(Path::new("/f.sock")), &env, 1000), Path::new("/f.sock"));
    assert_eq!(control_socket_path_in(None, &env, 1000), Path::new("/v.sock"));
    assert_eq!(control_socket_path_in(None, &|_| None, 1000), Path::new("/tmp/sluice-1000/control.sock"));
    assert_eq!(control_socket_path_in(None, &|_| None, 0), Path::new("/run/sluice/control.sock"));
}
