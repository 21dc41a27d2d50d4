//! The event loop: one engine on one TAP device in real time.
//!
//! Each turn: read the frames the kernel has queued → `handle_frame`; run the
//! engine's timers when due; let the application react to events; drain
//! `poll_transmit` into the device; then sleep in `poll(2)` until a frame
//! arrives or the engine's next deadline (never a busy loop).

use std::io;
use std::time::{Duration as StdDuration, Instant as WallInstant};

use sluice_stack::{Instant, Stack, StackConfig};

use super::app::App;
use super::args::Options;
use super::tap_sink::TapSink;
use crate::tap::{TapDevice, MAX_FRAME};

/// Frames read per turn before timers and transmission get a chance, so a
/// flood of input cannot starve ACKs and retransmissions.
const RX_BATCH: usize = 64;

/// Engine time: microseconds since the driver started.
pub struct Clock {
    start: WallInstant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock { start: WallInstant::now() }
    }
    pub fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX))
    }
}

/// Device-side counters (the engine's own are in `Stack::stats`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceCounters {
    pub frames_read: u64,
    pub frames_written: u64,
    /// Times a write found the device full and a frame had to be held.
    pub write_blocked: u64,
    pub loop_turns: u64,
}

/// How a run ended.
pub struct Outcome {
    pub app: App,
    pub stack: Stack,
    pub device: DeviceCounters,
    pub elapsed: StdDuration,
    /// `--duration` ran out before the application was done.
    pub timed_out: bool,
}

/// Read 32 bytes of OS randomness for the engine's secret (ISNs, SYN cookies).
fn random_secret() -> io::Result<[u8; 32]> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

pub fn stack_config(opts: &Options) -> io::Result<StackConfig> {
    let mut config = StackConfig::new(opts.mac, opts.ip, opts.prefix_len, random_secret()?);
    config.gateway = opts.gateway;
    config.mtu = opts.mtu;
    config.tcp.congestion = opts.congestion;
    Ok(config)
}

/// Run until the application is done (plus the linger time) or the duration
/// runs out. `on_ready` is called once the listener or connection exists.
pub fn run(opts: &Options, on_ready: impl FnOnce(&TapDevice)) -> io::Result<Outcome> {
    let tap = TapDevice::open(&opts.tap)?;
    let clock = Clock::start();
    let mut stack = Stack::new(stack_config(opts)?, clock.now());
    let mut app = App::new(opts.mode, opts.exit_after);
    app.start(&mut stack, clock.now()).map_err(io::Error::other)?;
    on_ready(&tap);

    let deadline = Instant::ZERO + sluice_stack::Duration::from_micros(duration_micros(opts.duration));
    let linger = sluice_stack::Duration::from_micros(duration_micros(opts.linger));
    let mut rx = vec![0u8; MAX_FRAME];
    let mut tx = vec![0u8; MAX_FRAME];
    let mut held = None;
    let mut device = DeviceCounters::default();
    let mut done_at: Option<Instant> = None;
    let mut timed_out = false;

    loop {
        device.loop_turns += 1;
        let now = clock.now();

        for _ in 0..RX_BATCH {
            match tap.recv(&mut rx)? {
                Some(len) => {
                    device.frames_read += 1;
                    stack.handle_frame(now, &rx[..len]);
                }
                None => break,
            }
        }
        if stack.poll_timeout().is_some_and(|due| due <= now) {
            stack.handle_timeout(now);
        }
        app.on_events(&mut stack, now);
        app.reap_acknowledged(&mut stack, now);

        let mut sink = TapSink::new(&tap, &mut tx, &mut held);
        let was_blocked = sink.is_blocked();
        if sink.flush()? {
            stack.poll_transmit(now, &mut sink);
        }
        if let Some(e) = sink.take_error() {
            return Err(e);
        }
        device.frames_written += sink.frames();
        let blocked = sink.is_blocked();
        if blocked && !was_blocked {
            device.write_blocked += 1;
        }

        if app.is_done() {
            let since = *done_at.get_or_insert(now);
            // Every byte and FIN is acknowledged by now; linger only so the
            // ACK of the peer's FIN can be repeated if it was lost. TIME-WAIT
            // itself is not waited for.
            if now.saturating_since(since) >= linger || stack.connection_count() == 0 {
                break;
            }
        }
        if now >= deadline {
            // Without --exit-after, running for the whole duration is the plan.
            timed_out = app.exit_after().is_some() && !app.is_done();
            break;
        }

        let mut wake = deadline;
        if let Some(since) = done_at {
            wake = wake.min(since + linger);
        }
        if let Some(due) = stack.poll_timeout() {
            wake = wake.min(due);
        }
        let wait = StdDuration::from_micros(wake.saturating_since(clock.now()).total_micros());
        tap.wait(blocked, Some(wait))?;
    }

    let elapsed = clock.start.elapsed();
    Ok(Outcome { app, stack, device, elapsed, timed_out })
}

fn duration_micros(d: StdDuration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
