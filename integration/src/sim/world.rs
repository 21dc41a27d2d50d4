//! The simulated world: a virtual clock, hosts on a [`Switch`], and the loop
//! that drives them (after quinn-proto's test `Pair` and smoltcp's netsim).
//!
//! A host is either a Sluice [`Stack`] with an [`App`] on top, or a
//! [`RawHost`] that speaks frames directly (a SYN flooder, a router stub).
//! Each step at the current instant: frames due are delivered
//! (`handle_frame`), due timers fire (`handle_timeout`), apps react to their
//! events, stacks transmit into the switch (`poll_transmit`). Then the clock
//! jumps to the earliest of: next frame arrival, next stack timer, next app
//! wake-up. Nothing reads a wall clock and every collection iterates in a
//! fixed order, so a seed fully determines a run.

use core::fmt;
use std::path::PathBuf;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_stack::config::StackConfig;
use sluice_stack::engine::FrameSink;
use sluice_stack::time::{Duration, Instant};
use sluice_stack::wire::{EthernetAddress, Ipv4Addr};
use sluice_stack::Stack;

use super::frame::Mac;
use super::link::{PortFaults, Switch, TapId};
use super::pcap::pcap_from_env;
use super::trace::{AsAny, Direction, PortId, TraceDigest};

/// Application logic running on a stack.
pub trait App: AsAny {
    /// Called once, when the node joins the world.
    fn start(&mut self, now: Instant, stack: &mut Stack);
    /// Called at every step: drain this app's events and react.
    fn poll(&mut self, now: Instant, stack: &mut Stack);
    /// When the app next wants to run although no event arrives (its own timers).
    fn next_wakeup(&self) -> Option<Instant> {
        None
    }
}

/// An app that does nothing: the stack alone answers ARP, ICMP, stray segments.
pub struct Idle;

impl App for Idle {
    fn start(&mut self, _: Instant, _: &mut Stack) {}
    fn poll(&mut self, _: Instant, _: &mut Stack) {}
}

/// A host that handles raw frames itself.
pub trait RawHost: AsAny {
    fn on_frame(&mut self, now: Instant, frame: &[u8]);
    /// Emit whatever is due at `now` through `send`.
    fn poll(&mut self, now: Instant, send: &mut dyn FnMut(Vec<u8>));
    fn next_wakeup(&self) -> Option<Instant>;
}

/// A host in the world; also the number of its switch port.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId(pub usize);

struct StackNode {
    stack: Stack,
    app: Box<dyn App>,
    /// The last `poll_transmit` emitted frames: poll again (work postponed
    /// by a per-poll budget waits for "the next poll") after `dispatch_gap`.
    repoll: bool,
    /// Virtual time one dispatch cycle takes: how long postponed work waits
    /// when nothing else wakes the node. Zero: the next poll is immediate.
    dispatch_gap: Duration,
}

enum Node {
    // Boxed: an engine is kilobytes, a raw host a pointer.
    Stack(Box<StackNode>),
    Raw(Box<dyn RawHost>),
}

/// Why `run_until` stopped without its condition becoming true.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RunError {
    /// The deadline passed; the clock stands at the deadline.
    Deadline { now: Instant },
    /// Nothing is scheduled any more: no frame in flight, no timer, no wake-up.
    Idle { now: Instant },
    /// The clock did not advance over `steps` steps: something asks to be
    /// polled at once forever (a livelock in the engine or an app).
    Stalled { now: Instant, steps: u64 },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Deadline { now } => write!(f, "deadline reached at {now:?}"),
            RunError::Idle { now } => write!(
                f,
                "world went idle at {now:?} with the condition still false"
            ),
            RunError::Stalled { now, steps } => {
                write!(f, "clock stuck at {now:?} for {steps} steps")
            }
        }
    }
}

impl std::error::Error for RunError {}

/// Steps at one instant before the run is declared stalled.
const STALL_STEPS: u64 = 1_000_000;

/// Feeds a stack's frames into its switch port.
struct PortSink<'a> {
    switch: &'a mut Switch,
    port: PortId,
    now: Instant,
}

impl FrameSink for PortSink<'_> {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut frame = self.switch.take_buffer(len);
        fill(&mut frame);
        self.switch.send(self.now, self.port, frame);
        true
    }
}

pub struct World {
    label: String,
    seed: u64,
    now: Instant,
    switch: Switch,
    nodes: Vec<Node>,
    pcap_prefix: Option<PathBuf>,
    steps: u64,
}

impl World {
    /// An empty world at time zero. `label` names the run in reports and
    /// capture files; `seed` drives every random choice of the link.
    /// With `SLUICE_SIM_PCAP=<dir>` set, the wire is captured (see `sim::pcap`).
    pub fn new(label: &str, seed: u64) -> World {
        let mut switch = Switch::new(seed);
        let mut pcap_prefix = None;
        if let Some((tap, prefix)) = pcap_from_env(&format!("{label}-seed{seed}")) {
            eprintln!(
                "sim: {label} seed {seed}: capturing to {}.node<N>.pcap and .dropped.pcap",
                prefix.display()
            );
            switch.add_tap(tap);
            pcap_prefix = Some(prefix);
        }
        World {
            label: label.to_string(),
            seed,
            now: Instant::ZERO,
            switch,
            nodes: Vec::new(),
            pcap_prefix,
            steps: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn label(&self) -> &str {
        &self.label
    }
    /// Steps run so far (a measure of simulation work).
    pub fn steps(&self) -> u64 {
        self.steps
    }
    pub fn switch(&self) -> &Switch {
        &self.switch
    }
    pub fn switch_mut(&mut self) -> &mut Switch {
        &mut self.switch
    }
    /// Where the capture files are (`<prefix>.node<N>.pcap`, `<prefix>.dropped.pcap`), if capturing.
    pub fn pcap_prefix(&self) -> Option<&PathBuf> {
        self.pcap_prefix.as_ref()
    }

    /// Attaches a digest of every wire event; read it with [`World::digest`].
    pub fn enable_digest(&mut self) -> TapId {
        self.switch.add_tap(TraceDigest::new())
    }
    pub fn digest(&self, tap: TapId) -> u64 {
        self.switch
            .tap::<TraceDigest>(tap)
            .map_or(0, TraceDigest::digest)
    }

    /// Adds a stack running `app` on a new switch port; the app's `start` runs now.
    pub fn add_stack(&mut self, config: StackConfig, faults: PortFaults, app: impl App) -> NodeId {
        let port = self.switch.add_port(faults);
        let mut stack = Stack::new(config, self.now);
        let mut app: Box<dyn App> = Box::new(app);
        app.start(self.now, &mut stack);
        self.nodes.push(Node::Stack(Box::new(StackNode {
            stack,
            app,
            repoll: true,
            dispatch_gap: Duration::ZERO,
        })));
        debug_assert_eq!(port, self.nodes.len() - 1);
        NodeId(port)
    }

    /// Adds a raw host on a new switch port.
    pub fn add_raw(&mut self, faults: PortFaults, host: impl RawHost) -> NodeId {
        let port = self.switch.add_port(faults);
        self.nodes.push(Node::Raw(Box::new(host)));
        NodeId(port)
    }

    fn stack_node(&self, id: NodeId) -> &StackNode {
        match self.nodes.get(id.0) {
            Some(Node::Stack(n)) => n,
            _ => panic!("node {id:?} is not a stack"),
        }
    }
    fn stack_node_mut(&mut self, id: NodeId) -> &mut StackNode {
        match self.nodes.get_mut(id.0) {
            Some(Node::Stack(n)) => n,
            _ => panic!("node {id:?} is not a stack"),
        }
    }

    pub fn stack(&self, id: NodeId) -> &Stack {
        &self.stack_node(id).stack
    }
    /// The stack, for direct socket calls from a test. Anything the test
    /// queues is transmitted at the next step.
    pub fn stack_mut(&mut self, id: NodeId) -> &mut Stack {
        let node = self.stack_node_mut(id);
        node.repoll = true;
        &mut node.stack
    }

    /// Makes each dispatch cycle of a stack take `gap` of virtual time: work
    /// the engine postponed to its next poll waits that long unless other
    /// input wakes the node sooner (VPP: one frame of retransmits per cycle).
    pub fn set_dispatch_gap(&mut self, id: NodeId, gap: Duration) {
        self.stack_node_mut(id).dispatch_gap = gap;
    }

    /// The app of a stack node as its concrete type.
    pub fn app<A: App>(&self, id: NodeId) -> &A {
        (*self.stack_node(id).app)
            .as_any()
            .downcast_ref()
            .unwrap_or_else(|| panic!("app of {id:?} has another type"))
    }
    /// The stack and the app of a node together, e.g. to call the app's methods
    /// that take the stack.
    pub fn stack_and_app_mut<A: App>(&mut self, id: NodeId) -> (&mut Stack, &mut A) {
        let node = self.stack_node_mut(id);
        node.repoll = true;
        let app = (*node.app)
            .as_any_mut()
            .downcast_mut()
            .unwrap_or_else(|| panic!("app of {id:?} has another type"));
        (&mut node.stack, app)
    }

    /// A raw host as its concrete type.
    pub fn raw<H: RawHost>(&self, id: NodeId) -> &H {
        match self.nodes.get(id.0) {
            Some(Node::Raw(h)) => (**h)
                .as_any()
                .downcast_ref()
                .unwrap_or_else(|| panic!("raw host {id:?} has another type")),
            _ => panic!("node {id:?} is not a raw host"),
        }
    }

    /// Runs one step at the current instant (see the module docs).
    pub fn step(&mut self) {
        let now = self.now;
        self.steps += 1;
        while let Some((port, frame)) = self.switch.pop_delivery(now) {
            match &mut self.nodes[port] {
                Node::Stack(n) => {
                    n.stack.handle_frame(now, &frame);
                    n.repoll = true;
                }
                Node::Raw(h) => h.on_frame(now, &frame),
            }
            self.switch.recycle(frame);
        }
        for (port, node) in self.nodes.iter_mut().enumerate() {
            match node {
                Node::Stack(n) => {
                    if n.stack.poll_timeout().is_some_and(|t| t <= now) {
                        n.stack.handle_timeout(now);
                    }
                    n.app.poll(now, &mut n.stack);
                    let mut sink = PortSink {
                        switch: &mut self.switch,
                        port,
                        now,
                    };
                    n.repoll = n.stack.poll_transmit(now, &mut sink) > 0;
                }
                Node::Raw(h) => {
                    let switch = &mut self.switch;
                    h.poll(now, &mut |frame| switch.send(now, port, frame));
                }
            }
        }
    }

    /// The earliest instant anything is scheduled for.
    pub fn next_event(&self) -> Option<Instant> {
        let mut next = self.switch.next_arrival();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for node in &self.nodes {
            match node {
                Node::Stack(n) => {
                    consider(n.stack.poll_timeout());
                    consider(n.app.next_wakeup());
                    if n.repoll {
                        consider(Some(self.now + n.dispatch_gap));
                    }
                }
                Node::Raw(h) => consider(h.next_wakeup()),
            }
        }
        next
    }

    /// Runs until `done` returns true (checked before every step), or until
    /// `deadline` passes, the world goes idle or stalls.
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut World) -> bool,
    ) -> Result<Instant, RunError> {
        let mut steps_at_this_instant = 0u64;
        loop {
            if done(self) {
                return Ok(self.now);
            }
            self.step();
            match self.next_event() {
                None => {
                    return if done(self) {
                        Ok(self.now)
                    } else {
                        Err(RunError::Idle { now: self.now })
                    };
                }
                Some(t) if t <= self.now => {
                    steps_at_this_instant += 1;
                    if steps_at_this_instant > STALL_STEPS {
                        return Err(RunError::Stalled {
                            now: self.now,
                            steps: steps_at_this_instant,
                        });
                    }
                }
                Some(t) if t > deadline => {
                    self.now = self.now.max(deadline);
                    return if done(self) {
                        Ok(self.now)
                    } else {
                        Err(RunError::Deadline { now: self.now })
                    };
                }
                Some(t) => {
                    self.now = t;
                    steps_at_this_instant = 0;
                }
            }
        }
    }

    /// Runs for `duration` of virtual time (until `now + duration`), whatever happens.
    pub fn run_for(&mut self, duration: Duration) -> Result<Instant, RunError> {
        let until = self.now + duration;
        match self.run_until(until, |w| w.now >= until) {
            Err(RunError::Idle { .. }) | Err(RunError::Deadline { .. }) => {
                self.now = until;
                Ok(until)
            }
            other => other,
        }
    }

    /// A description of the run for failure messages: seed, time, capture
    /// location, link counters, every stack's counters.
    pub fn report(&self) -> String {
        use fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sim run {:?}: seed {} at {:?} after {} steps",
            self.label, self.seed, self.now, self.steps
        );
        match &self.pcap_prefix {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "  capture: {}.node<N>.pcap (node N = switch port N), {0}.dropped.pcap",
                    p.display()
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  no capture: set {}=<dir> to write pcaps of this run",
                    super::pcap::PCAP_DIR_ENV
                );
            }
        }
        for (port, node) in self.nodes.iter().enumerate() {
            let up = self.switch.counters(port, Direction::Uplink);
            let down = self.switch.counters(port, Direction::Downlink);
            let _ = writeln!(
                s,
                "  node {port}: uplink {up:?}\n          downlink {down:?}"
            );
            if let Node::Stack(n) = node {
                let _ = writeln!(
                    s,
                    "          connections {}; stats {:?}",
                    n.stack.connection_count(),
                    n.stack.stats()
                );
            }
        }
        s
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Only plain fields here: the engine may be what panicked.
        if std::thread::panicking() {
            eprintln!(
                "sim run {:?} failed: seed {} at virtual time {:?}",
                self.label, self.seed, self.now
            );
            match &self.pcap_prefix {
                Some(p) => eprintln!(
                    "  capture: {}.node<N>.pcap (node N = switch port N), {0}.dropped.pcap",
                    p.display()
                ),
                None => eprintln!(
                    "  rerun with {}=<dir> to capture the wire",
                    super::pcap::PCAP_DIR_ENV
                ),
            }
        }
    }
}

/// The MAC address of simulated host `n` (locally administered).
pub fn host_mac(n: u8) -> Mac {
    [0x02, 0, 0, 0, 0, n]
}

/// The IPv4 address of simulated host `n` on the 10.0.0.0/24 segment.
pub fn host_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// A stack configuration for host `n` of the segment, with a secret derived
/// from `seed` (so ISNs and cookies vary with the seed, deterministically).
pub fn host_config(n: u8, seed: u64) -> StackConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1 << 32 | u64::from(n));
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    StackConfig::new(EthernetAddress(host_mac(n)), host_ip(n), 24, secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::fault::Faults;

    /// Sends `count` frames to `peer` at `start`, `start + gap`, ...; records what it receives.
    struct Pinger {
        me: u8,
        peer: u8,
        next: Option<Instant>,
        gap: Duration,
        left: u32,
        received: Vec<(Instant, u8)>,
    }

    impl Pinger {
        fn new(me: u8, peer: u8, start: Option<Instant>, gap: Duration, left: u32) -> Pinger {
            Pinger {
                me,
                peer,
                next: start,
                gap,
                left,
                received: Vec::new(),
            }
        }
    }

    impl RawHost for Pinger {
        fn on_frame(&mut self, now: Instant, frame: &[u8]) {
            self.received.push((now, frame[14]));
        }
        fn poll(&mut self, now: Instant, send: &mut dyn FnMut(Vec<u8>)) {
            while self.left > 0 && self.next.is_some_and(|t| t <= now) {
                let mut f = vec![0u8; 60];
                f[0..6].copy_from_slice(&host_mac(self.peer));
                f[6..12].copy_from_slice(&host_mac(self.me));
                f[14] = self.left as u8;
                send(f);
                self.left -= 1;
                self.next = self.next.map(|t| t + self.gap);
            }
        }
        fn next_wakeup(&self) -> Option<Instant> {
            if self.left > 0 {
                self.next
            } else {
                None
            }
        }
    }

    #[test]
    fn clock_jumps_from_event_to_event_and_frames_arrive_after_the_delay() {
        let mut w = World::new("unit-world", 1);
        let delay = PortFaults::symmetric(Faults::delay(Duration::from_millis(5)));
        let a = w.add_raw(
            delay,
            Pinger::new(
                1,
                2,
                Some(Instant::from_millis(100)),
                Duration::from_millis(50),
                3,
            ),
        );
        let b = w.add_raw(
            PortFaults::default(),
            Pinger::new(2, 1, None, Duration::ZERO, 0),
        );
        let end = w
            .run_until(Instant::from_secs(10), |w| {
                w.raw::<Pinger>(b).received.len() == 3
            })
            .unwrap();
        assert_eq!(end, Instant::from_millis(205));
        assert_eq!(
            w.raw::<Pinger>(b).received,
            vec![
                (Instant::from_millis(105), 3),
                (Instant::from_millis(155), 2),
                (Instant::from_millis(205), 1)
            ]
        );
        assert!(w.raw::<Pinger>(a).received.is_empty());
        // Sends at 100, 150, 200 and deliveries at 105, 155, 205 (delay on the uplink):
        // six instants, so a handful of steps, not one per microsecond.
        assert!(w.steps() <= 8, "{} steps", w.steps());
    }

    #[test]
    fn idle_and_deadline_are_reported() {
        let mut w = World::new("unit-world-idle", 1);
        w.add_raw(
            PortFaults::default(),
            Pinger::new(
                1,
                2,
                Some(Instant::from_millis(10)),
                Duration::from_secs(1),
                100,
            ),
        );
        w.add_raw(
            PortFaults::default(),
            Pinger::new(2, 1, None, Duration::ZERO, 0),
        );
        assert_eq!(
            w.run_until(Instant::from_millis(2500), |_| false),
            Err(RunError::Deadline {
                now: Instant::from_millis(2500)
            })
        );
        let mut quiet = World::new("unit-world-quiet", 1);
        quiet.add_raw(
            PortFaults::default(),
            Pinger::new(1, 2, None, Duration::ZERO, 0),
        );
        assert_eq!(
            quiet.run_until(Instant::from_secs(1), |_| false),
            Err(RunError::Idle { now: Instant::ZERO })
        );
        assert_eq!(
            quiet.run_for(Duration::from_secs(3)),
            Ok(Instant::from_secs(3))
        );
    }

    #[test]
    fn same_seed_gives_identical_wire_trace() {
        let run = |seed| {
            let mut w = World::new("unit-world-digest", seed);
            let tap = w.enable_digest();
            let lossy = PortFaults::symmetric(Faults {
                drop: 0.2,
                jitter: Duration::from_millis(3),
                duplicate: 0.1,
                corrupt: 0.1,
                ..Faults::default()
            });
            w.add_raw(
                lossy,
                Pinger::new(1, 2, Some(Instant::ZERO), Duration::from_micros(100), 200),
            );
            let b = w.add_raw(
                lossy,
                Pinger::new(2, 1, Some(Instant::ZERO), Duration::from_micros(130), 200),
            );
            let _ = w.run_for(Duration::from_secs(1));
            (w.digest(tap), w.raw::<Pinger>(b).received.len())
        };
        let (d1, n1) = run(3);
        assert_eq!((d1, n1), run(3));
        assert_ne!(d1, run(4).0);
        assert!(
            n1 > 100 && n1 < 200,
            "loss and duplication should show: {n1}"
        );
    }

    #[test]
    fn host_configs_differ_by_host_and_seed() {
        let a = host_config(1, 9);
        assert_eq!(a.ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.mac, EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(a.secret, host_config(1, 9).secret);
        assert_ne!(a.secret, host_config(2, 9).secret);
        assert_ne!(a.secret, host_config(1, 10).secret);
    }
}
