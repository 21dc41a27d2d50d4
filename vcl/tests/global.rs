//! The process-wide attachment, found through `SLUICE_CONTROL_SOCKET`.
//! Alone in its test binary: it sets an environment variable.

mod support;

use std::sync::Arc;

use sluice_vcl::{default_control_path, Vcl, CONTROL_SOCKET_ENV};
use support::*;

#[test]
fn global_attaches_once_through_the_environment() {
    let d = FakeDaemon::start();
    std::env::set_var(CONTROL_SOCKET_ENV, d.path());
    assert_eq!(default_control_path(), d.path());
    let a = Vcl::global().unwrap();
    let b = Vcl::global().unwrap();
    assert!(Arc::ptr_eq(&a, &b), "one attachment per process");
    let listener = a.listen(addr(0, 0, 0, 0, 6000), 4).unwrap();
    assert_eq!(listener.local_addr().unwrap().port(), 6000);
    std::env::remove_var(CONTROL_SOCKET_ENV);
    d.assert_clean();
}
