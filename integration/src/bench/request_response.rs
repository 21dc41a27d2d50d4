//! Request/response workload: `conns` connections, each doing `per_conn`
//! exchanges of a 64-byte request for a 64-byte response, one outstanding
//! request per connection. The client checks every response byte.

use super::cpu_clock::{Elapsed, Stopwatch};
use super::driver::{App, Sim, Step};
use super::endpoint::{Endpoint, Micros, RecvOutcome, StackError};
use super::setup::{open_connections, Opened, SERVER_PORT};
use super::wire::WireStats;
use super::StackFactory;

/// Request and response size.
pub const MESSAGE_LEN: usize = 64;
/// The server's response is the request with every byte XORed with this.
const RESPONSE_MASK: u8 = 0x5a;

/// One request/response run's measurements.
#[derive(Clone, Copy, Debug)]
pub struct RrResult {
    pub transactions: u64,
    /// Time the exchanges took (setup excluded).
    pub time: Elapsed,
    pub virtual_elapsed: Micros,
    /// Driver rounds (each polls both stacks once).
    pub rounds: u64,
    pub wire: WireStats,
}

impl RrResult {
    /// Transactions per second per core (over the thread's CPU time).
    pub fn per_second(&self) -> f64 {
        self.transactions as f64 / self.time.cpu.as_secs_f64().max(1e-9)
    }
}

/// A partially sent or received 64-byte message.
#[derive(Clone, Copy)]
struct Message {
    bytes: [u8; MESSAGE_LEN],
    /// Bytes sent (outgoing) or received (incoming) so far.
    done: usize,
}

impl Message {
    const EMPTY: Message = Message { bytes: [0; MESSAGE_LEN], done: 0 };
}

struct ClientSide<C> {
    conn: C,
    index: u32,
    completed: u64,
    /// A request is out and its response not yet complete.
    in_flight: bool,
    request: Message,
    response: Message,
}

struct ServerSide<C> {
    conn: C,
    request: Message,
    response: Message,
    /// A response is being sent.
    responding: bool,
}

fn request_bytes(index: u32, seq: u64) -> [u8; MESSAGE_LEN] {
    let mut bytes = [0u8; MESSAGE_LEN];
    bytes[..4].copy_from_slice(&index.to_be_bytes());
    bytes[4..12].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in bytes.iter_mut().enumerate().skip(12) {
        *b = (i as u8).wrapping_mul(37) ^ (seq as u8);
    }
    bytes
}

fn response_to(request: &[u8; MESSAGE_LEN]) -> [u8; MESSAGE_LEN] {
    request.map(|b| b ^ RESPONSE_MASK)
}

/// Send the unsent rest of `msg`; returns whether it is now fully sent.
fn send_rest<E: Endpoint>(ep: &mut E, conn: E::Conn, msg: &mut Message, step: &mut Step) -> Result<bool, StackError> {
    let rest = msg.bytes.get(msg.done..).unwrap_or_default();
    if !rest.is_empty() {
        let n = ep.send(conn, rest)?;
        msg.done += n;
        step.progressed |= n > 0;
    }
    Ok(msg.done == MESSAGE_LEN)
}

/// Read into the unfilled rest of `msg`; returns whether it is now complete.
fn recv_rest<E: Endpoint>(ep: &mut E, conn: E::Conn, msg: &mut Message, step: &mut Step) -> Result<bool, StackError> {
    while msg.done < MESSAGE_LEN {
        let buf = msg.bytes.get_mut(msg.done..).unwrap_or_default();
        match ep.recv(conn, buf)? {
            RecvOutcome::Data(n) => {
                msg.done += n;
                step.progressed = true;
            }
            RecvOutcome::WouldBlock => return Ok(false),
            RecvOutcome::Eof => return Err(StackError("peer closed during request/response".into())),
        }
    }
    Ok(true)
}

struct Exchanges<C> {
    clients: Vec<ClientSide<C>>,
    servers: Vec<ServerSide<C>>,
    per_conn: u64,
}

impl<E: Endpoint> App<E> for Exchanges<E::Conn> {
    fn step(&mut self, _now: Micros, client: &mut E, server: &mut E) -> Result<Step, StackError> {
        let mut step = Step::default();
        for s in &mut self.servers {
            loop {
                if s.responding {
                    if !send_rest(server, s.conn, &mut s.response, &mut step)? {
                        break;
                    }
                    s.responding = false;
                }
                if !recv_rest(server, s.conn, &mut s.request, &mut step)? {
                    break;
                }
                s.response = Message { bytes: response_to(&s.request.bytes), done: 0 };
                s.request = Message::EMPTY;
                s.responding = true;
            }
        }
        let mut all_done = true;
        for c in &mut self.clients {
            if c.in_flight && recv_rest(client, c.conn, &mut c.response, &mut step)? {
                if c.response.bytes != response_to(&c.request.bytes) {
                    return Err(StackError(format!("connection {}: wrong response to request {}", c.index, c.completed)));
                }
                c.completed += 1;
                c.in_flight = false;
            }
            if !c.in_flight && c.completed < self.per_conn {
                c.request = Message { bytes: request_bytes(c.index, c.completed), done: 0 };
                c.response = Message::EMPTY;
                c.in_flight = true;
            }
            if c.in_flight {
                send_rest(client, c.conn, &mut c.request, &mut step)?;
            }
            all_done &= c.completed == self.per_conn;
        }
        step.done = all_done;
        Ok(step)
    }
}

/// Run `per_conn` exchanges on each of `conns` connections of a fresh simulation.
pub fn run_request_response<E: Endpoint>(factory: &StackFactory<E>, conns: usize, per_conn: u64, loss: f64, seed: u64) -> Result<RrResult, StackError> {
    let mut sim = Sim::new(factory.make, factory.mtu, factory.buffer, loss, seed);
    sim.server.listen(sim.now, SERVER_PORT, conns)?;
    let mut opened = Opened { client: Vec::new(), server: Vec::new() };
    open_connections(&mut sim, conns, conns, &mut opened)?;
    let clients = opened
        .client
        .iter()
        .enumerate()
        .map(|(i, &conn)| ClientSide { conn, index: i as u32, completed: 0, in_flight: false, request: Message::EMPTY, response: Message::EMPTY })
        .collect();
    let servers = opened.server.iter().map(|&conn| ServerSide { conn, request: Message::EMPTY, response: Message::EMPTY, responding: false }).collect();
    let mut exchanges = Exchanges { clients, servers, per_conn };
    let wire_before = sim.wire_stats();
    let watch = Stopwatch::start();
    let run = sim.run(&mut exchanges)?;
    let time = watch.elapsed();
    let transactions = exchanges.clients.iter().map(|c| c.completed).sum();
    Ok(RrResult {
        transactions,
        time,
        virtual_elapsed: run.virtual_elapsed,
        rounds: run.rounds,
        wire: sim.wire_stats().since(wire_before),
    })
}
