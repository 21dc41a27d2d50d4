//! Sizes and counts take binary suffixes, from every source.

mod config_support;

use config_support::{resolve_with, REQUIRED};

fn rx_fifo_from_flag(value: &str) -> Result<u32, String> {
    let flag = format!("--rx-fifo={value}");
    let args = [&REQUIRED[..], &[flag.as_str()]].concat();
    resolve_with(&args, &[], None).map(|c| c.rx_fifo).map_err(|e| e.to_string())
}

#[test]
fn suffixes_are_powers_of_1024() {
    for (text, bytes) in [
        ("65536", 65536),
        ("64k", 65536),
        ("64K", 65536),
        ("64KiB", 65536),
        ("4M", 4 << 20),
        ("4m", 4 << 20),
        ("4MiB", 4 << 20),
        ("4096", 4096),
    ] {
        assert_eq!(rx_fifo_from_flag(text), Ok(bytes), "{text}");
    }
}

#[test]
fn malformed_sizes_are_refused() {
    for text in ["64KB", "64 k", "1.5M", "k", "+64k", "64kk", "0x1000", ""] {
        let error = rx_fifo_from_flag(text).unwrap_err();
        assert!(error.starts_with("setting 'rx_fifo' (from --rx-fifo): "), "{text}: {error}");
    }
}

#[test]
fn suffixes_apply_to_rings_frames_and_sessions_from_every_source() {
    let vars = [("SLUICE_EVENT_RING", "16k"), ("SLUICE_XDP_FRAMES", "8k")];
    let config =
        resolve_with(&REQUIRED, &vars, Some("max_sessions = \"1M\"\ntx_fifo = \"1M\"\nrequest_ring = \"1k\"\n"))
            .unwrap();
    assert_eq!((config.event_ring, config.xdp_frames), (16384, 8192));
    assert_eq!((config.max_sessions, config.tx_fifo, config.request_ring), (1 << 20, 1 << 20, 1024));
}

#[test]
fn the_largest_suffixed_values_do_not_wrap() {
    // 2^64 bytes would wrap a u64 and 4G wraps a u32 to 0; both must be errors.
    assert!(rx_fifo_from_flag("17179869184G").is_err());
    assert!(rx_fifo_from_flag("4G").is_err());
}
