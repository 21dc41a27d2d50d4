//! Flags, variables and file to a checked [`DaemonConfig`]: each setting is
//! looked up by precedence and checked on its own, then the settings that
//! constrain each other are checked together, and last the segment geometry
//! is checked by the same function the app runs on it at attach.

use std::path::{Path, PathBuf};

use sluice_shm::layout::{GeometryError, MAX_FIFO, MAX_SESSIONS as SHM_MAX_SESSIONS, MAX_WORKERS, MIN_FIFO};

use super::error::{ConfigError, Source};
use super::file::ConfigFile;
use super::lookup::{Given, Sources};
use super::raw::Raw;
use super::settings::*;
use super::{names, net, paths, DaemonConfig, DeviceKind, PollMode, XdpMode};
use crate::cli::DaemonArgs;

/// Slots of each AF_XDP ring (fill, completion, RX, TX) at least; the UMEM
/// needs a full fill ring's worth of frames for RX plus as many for TX.
pub const XDP_RING_MIN: u32 = 1024;
/// Most UMEM frames per queue (1 GiB of 4 KiB frames).
pub const XDP_FRAMES_MAX: u32 = 1 << 18;
/// Ring bounds of `Geometry::validate` (sluice-shm), checked here first so
/// the error can name the setting's source.
const EVENT_RING_MAX: u32 = 1 << 24;
const REQUEST_RING_MAX: u32 = 1 << 16;

/// `"64k" = 65536` when the text differs from the number it means.
fn shown_value(raw: &Raw, value: u64) -> String {
    let shown = raw.shown();
    if shown.trim_matches('"') == value.to_string() {
        shown
    } else {
        format!("{shown} = {value}")
    }
}

/// `value` if it is in `lo..=hi`, else the setting's rule as the message.
fn within(setting: &Setting, raw: &Raw, value: u64, lo: u32, hi: u32) -> Result<u32, String> {
    match u32::try_from(value) {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("{} is out of range: must be {}", shown_value(raw, value), setting.rule)),
    }
}

/// `value` if it is a power of two in `lo..=hi`.
fn power_of_two(setting: &Setting, raw: &Raw, value: u64, lo: u32, hi: u32) -> Result<u32, String> {
    match u32::try_from(value) {
        Ok(v) if v.is_power_of_two() && (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("{} is invalid: must be {}", shown_value(raw, value), setting.rule)),
    }
}

/// Text checked by a name/address checker that takes the shown value.
fn text_with(raw: &Raw, check: impl FnOnce(&str, &str) -> Result<(), String>) -> Result<String, String> {
    let text = raw.text()?;
    check(text, &raw.shown())?;
    Ok(text.to_owned())
}

/// The setting a geometry field comes from.
fn geometry_setting(error: &GeometryError) -> &'static Setting {
    match error.field {
        "workers" => &QUEUES,
        "event_cap" => &EVENT_RING,
        "request_cap" => &REQUEST_RING,
        "max_sessions" => &MAX_SESSIONS,
        "rx_fifo" => &RX_FIFO,
        _ => &TX_FIFO,
    }
}

/// Builds the configuration from `args`, variables looked up through `env`
/// (the process environment, or a test's map), and the config file's path
/// and text if there is one. Reads nothing else but the effective uid (for
/// the default control socket).
pub fn resolve(
    args: &DaemonArgs,
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<(&Path, &str)>,
) -> Result<DaemonConfig, ConfigError> {
    let file = file.map(|(path, text)| ConfigFile::parse(path, text)).transpose()?;
    let src = Sources { args, env, file: file.as_ref() };

    let iface = src.require(&IFACE, |raw| text_with(raw, names::iface))?;
    let ip = src.require(&IP, |raw| net::ip_prefix(raw.text()?, &raw.shown()))?;
    let (addr, prefix) = ip.value;
    let gateway = src.get(&GATEWAY, |raw| net::gateway(raw.text()?, &raw.shown(), addr, prefix))?;
    let device = src.require(&DEVICE, |raw| raw.choice(&[("xdp", DeviceKind::Xdp), ("tap", DeviceKind::Tap)]))?;
    let queues = src.require(&QUEUES, |raw| within(&QUEUES, raw, raw.count()?, 1, MAX_WORKERS))?;
    let xdp_mode = src.require(&XDP_MODE, |raw| {
        raw.choice(&[("auto", XdpMode::Auto), ("native", XdpMode::Native), ("skb", XdpMode::Skb)])
    })?;
    let zero_copy = src.require(&ZERO_COPY, |raw| match raw {
        Raw::Toml(toml::Value::Boolean(on)) => Ok(Some(*on)),
        _ => raw.choice(&[("auto", None), ("on", Some(true)), ("off", Some(false))]),
    })?;
    check_zero_copy_mode(&zero_copy, &xdp_mode)?;
    let xdp_frames =
        src.require(&XDP_FRAMES, |raw| power_of_two(&XDP_FRAMES, raw, raw.size()?, 2 * XDP_RING_MIN, XDP_FRAMES_MAX))?;
    let poll_mode = src.require(&POLL_MODE, |raw| {
        raw.choice(&[("adaptive", PollMode::Adaptive), ("busy", PollMode::Busy), ("sleep", PollMode::Sleep)])
    })?;
    let idle_spin_us = src.require(&IDLE_SPIN_US, |raw| within(&IDLE_SPIN_US, raw, raw.count()?, 0, 1_000_000))?;
    let rx_fifo = src.require(&RX_FIFO, |raw| power_of_two(&RX_FIFO, raw, raw.size()?, MIN_FIFO, MAX_FIFO))?;
    let tx_fifo = src.require(&TX_FIFO, |raw| power_of_two(&TX_FIFO, raw, raw.size()?, MIN_FIFO, MAX_FIFO))?;
    let max_sessions =
        src.require(&MAX_SESSIONS, |raw| within(&MAX_SESSIONS, raw, raw.size()?, 1, SHM_MAX_SESSIONS))?;
    let event_ring = src.require(&EVENT_RING, |raw| power_of_two(&EVENT_RING, raw, raw.size()?, 2, EVENT_RING_MAX))?;
    let request_ring =
        src.require(&REQUEST_RING, |raw| power_of_two(&REQUEST_RING, raw, raw.size()?, 2, REQUEST_RING_MAX))?;
    let control_socket = match src.get(&CONTROL_SOCKET, |raw| text_with(raw, names::socket_path))? {
        Some(given) => PathBuf::from(given.value),
        None => default_control_socket(env)?,
    };
    let socket_mode = src.require(&SOCKET_MODE, |raw| match raw.octal()? {
        mode @ 0..=0o777 => Ok(mode as u32),
        // A file's integer was most likely written in octal (0o1777).
        mode => {
            let shown = if matches!(raw, Raw::Toml(_)) { format!("{mode:#o}") } else { raw.shown() };
            Err(format!("{shown} is out of range: must be {}", SOCKET_MODE.rule))
        }
    })?;
    let mac = src.get(&MAC, |raw| net::mac(raw.text()?, &raw.shown()))?;
    let mtu = src.require(&MTU, |raw| within(&MTU, raw, raw.count()?, 576, 9000))?;
    let loopback = src.require(&LOOPBACK, Raw::switch)?;
    let log = src.require(&LOG, |raw| text_with(raw, names::log_filter))?;
    let loss = src.require(&LOSS, Raw::percent_ppm)?;
    let loss_seed = src.get(&LOSS_SEED, Raw::count)?;
    let allow_kernel_addr = src.require(&ALLOW_KERNEL_ADDR, Raw::switch)?;

    let config = DaemonConfig {
        device: device.value,
        iface: iface.value,
        ip: addr,
        prefix,
        gateway: gateway.map(|g| g.value),
        mac: mac.map(|m| m.value),
        mtu: mtu.value,
        queues: queues.value,
        xdp_mode: xdp_mode.value,
        zero_copy: zero_copy.value,
        xdp_frames: xdp_frames.value,
        poll_mode: poll_mode.value,
        idle_spin_us: idle_spin_us.value,
        rx_fifo: rx_fifo.value,
        tx_fifo: tx_fifo.value,
        max_sessions: max_sessions.value,
        event_ring: event_ring.value,
        request_ring: request_ring.value,
        control_socket,
        socket_mode: socket_mode.value,
        loopback: loopback.value,
        log: log.value,
        loss_ppm: loss.value,
        loss_seed: loss_seed.map(|s| s.value),
        allow_kernel_addr: allow_kernel_addr.value,
    };
    // The checks above mirror these; running the real one keeps the daemon
    // from ever offering a geometry the app would refuse at attach.
    config.geometry().validate().map_err(|e| {
        let setting = geometry_setting(&e);
        let source = match setting.name {
            "queues" => queues.source,
            "event_ring" => event_ring.source,
            "request_ring" => request_ring.source,
            "max_sessions" => max_sessions.source,
            "rx_fifo" => rx_fifo.source,
            _ => tx_fifo.source,
        };
        ConfigError::new(setting.name, source, e.to_string())
    })?;
    Ok(config)
}

/// Zero-copy needs the driver's XDP path: generic (skb) XDP runs after the
/// kernel has copied the frame into an skb, so there is nothing to share.
fn check_zero_copy_mode(zero_copy: &Given<Option<bool>>, xdp_mode: &Given<XdpMode>) -> Result<(), ConfigError> {
    if zero_copy.value == Some(true) && xdp_mode.value == XdpMode::Skb {
        let message =
            format!("\"on\" needs native XDP, but xdp_mode is skb (from {})", xdp_mode.source.describe(XDP_MODE.name));
        return Err(ConfigError::new(ZERO_COPY.name, zero_copy.source.clone(), message));
    }
    Ok(())
}

/// The default socket path, checked like a given one (a long
/// `$XDG_RUNTIME_DIR` could make it too long for `sun_path`).
fn default_control_socket(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    let path = paths::default_control_socket_for(paths::euid(), env(paths::RUNTIME_DIR_ENV).map(PathBuf::from));
    let text = path.to_string_lossy();
    names::socket_path(&text, &format!("{text:?}"))
        .map_err(|message| ConfigError::new(CONTROL_SOCKET.name, Source::Default, message))?;
    Ok(path)
}
