//! End-to-end checks of the harness itself, run against both stacks.

use core::net::SocketAddrV4;

use super::bulk::run_bulk;
use super::conn_state::run_conn_state;
use super::endpoint::{Endpoint, EndpointConfig, Micros, RecvOutcome, StackError};
use super::request_response::run_request_response;
use super::smoltcp_endpoint::SmoltcpEndpoint;
use super::wire::Port;
use super::{sluice_factory, smoltcp_factory, StackFactory, BUFFER, MTU};

fn bulk_delivers_every_byte_without_loss<E: Endpoint>(factory: &StackFactory<E>) {
    let r = run_bulk(factory, 1 << 20, 0.0, 1).unwrap();
    assert_eq!(r.bytes, 1 << 20);
    assert_eq!(r.wire.dropped, 0);
    assert!(r.wire.delivered >= (1 << 20) / 1500);
}

fn bulk_recovers_from_one_percent_loss<E: Endpoint>(factory: &StackFactory<E>) {
    let r = run_bulk(factory, 1 << 20, 0.01, 2).unwrap();
    assert_eq!(r.bytes, 1 << 20);
    assert!(r.wire.dropped > 0, "the lossy run dropped nothing");
}

fn request_response_completes_every_exchange<E: Endpoint>(factory: &StackFactory<E>) {
    let r = run_request_response(factory, 4, 50, 0.0, 3).unwrap();
    assert_eq!(r.transactions, 200);
    // One request and one response frame per exchange at least.
    assert!(r.wire.delivered >= 400);
    let lossy = run_request_response(factory, 4, 50, 0.01, 4).unwrap();
    assert_eq!(lossy.transactions, 200);
}

fn total_loss_fails_instead_of_hanging<E: Endpoint>(factory: &StackFactory<E>) {
    let err = run_bulk(factory, 1 << 16, 1.0, 5).unwrap_err();
    // Either the stack gives up on the connect (Sluice: ARP for the peer
    // fails, EHOSTUNREACH as on Linux, or SYN retries run out) or it retries
    // forever and the driver's virtual-time cap ends it (smoltcp).
    let gave_up = ["destination unreachable", "timed out", "an hour of virtual time"];
    assert!(gave_up.iter().any(|reason| err.0.contains(reason)), "{err}");
}

fn conn_state_opens_every_connection_in_batches_and_reads_the_heap_twice<E: Endpoint>(factory: &StackFactory<E>) {
    let readings = std::cell::Cell::new(0usize);
    let heap = || {
        readings.set(readings.get() + 1);
        // First reading 1 MB, second 1 MB + 600 KB.
        if readings.get() == 1 { 1_000_000 } else { 1_600_000 }
    };
    let r = run_conn_state(factory, 300, 6, &heap).unwrap();
    assert_eq!(readings.get(), 2);
    assert_eq!(r.connections, 300);
    assert_eq!(r.heap_growth, 600_000);
    assert_eq!(r.bytes_per_endpoint(), 1000.0);
}

#[test]
fn smoltcp_bulk_delivers_every_byte_without_loss() {
    bulk_delivers_every_byte_without_loss(&smoltcp_factory());
}

#[test]
fn smoltcp_bulk_recovers_from_one_percent_loss() {
    bulk_recovers_from_one_percent_loss(&smoltcp_factory());
}

#[test]
fn smoltcp_request_response_completes_every_exchange() {
    request_response_completes_every_exchange(&smoltcp_factory());
}

#[test]
fn smoltcp_total_loss_fails_instead_of_hanging() {
    total_loss_fails_instead_of_hanging(&smoltcp_factory());
}

#[test]
fn smoltcp_conn_state_opens_every_connection() {
    conn_state_opens_every_connection_in_batches_and_reads_the_heap_twice(&smoltcp_factory());
}

#[test]
fn sluice_bulk_delivers_every_byte_without_loss() {
    bulk_delivers_every_byte_without_loss(&sluice_factory());
}

#[test]
fn sluice_bulk_recovers_from_one_percent_loss() {
    bulk_recovers_from_one_percent_loss(&sluice_factory());
}

#[test]
fn sluice_request_response_completes_every_exchange() {
    request_response_completes_every_exchange(&sluice_factory());
}

#[test]
fn sluice_total_loss_fails_instead_of_hanging() {
    total_loss_fails_instead_of_hanging(&sluice_factory());
}

#[test]
fn sluice_conn_state_opens_every_connection() {
    conn_state_opens_every_connection_in_batches_and_reads_the_heap_twice(&sluice_factory());
}

/// smoltcp with one bit of the server's received data flipped after
/// `CORRUPT_AFTER` bytes: the workloads must notice. (Only the server side
/// corrupts: in request/response, a flip on both sides could cancel out.)
struct Corrupting {
    inner: SmoltcpEndpoint,
    received: usize,
    corrupt_at: usize,
}

const CORRUPT_AFTER: usize = 100_000;

impl Corrupting {
    fn new(config: &EndpointConfig, now: Micros) -> Corrupting {
        let is_server = config.ip == super::driver::endpoint_configs(MTU, BUFFER, 0).1.ip;
        let corrupt_at = if is_server { CORRUPT_AFTER } else { usize::MAX };
        Corrupting { inner: SmoltcpEndpoint::new(config, now), received: 0, corrupt_at }
    }
}

impl Endpoint for Corrupting {
    type Conn = <SmoltcpEndpoint as Endpoint>::Conn;
    fn ingress(&mut self, now: Micros, port: &mut Port) {
        self.inner.ingress(now, port)
    }
    fn egress(&mut self, now: Micros, port: &mut Port) {
        self.inner.egress(now, port)
    }
    fn next_deadline(&mut self, now: Micros) -> Option<Micros> {
        self.inner.next_deadline(now)
    }
    fn listen(&mut self, now: Micros, port: u16, backlog: usize) -> Result<(), StackError> {
        self.inner.listen(now, port, backlog)
    }
    fn accept(&mut self, out: &mut Vec<Self::Conn>) -> Result<(), StackError> {
        self.inner.accept(out)
    }
    fn connect(&mut self, now: Micros, remote: SocketAddrV4) -> Result<Self::Conn, StackError> {
        self.inner.connect(now, remote)
    }
    fn is_established(&mut self, conn: Self::Conn) -> Result<bool, StackError> {
        self.inner.is_established(conn)
    }
    fn send(&mut self, conn: Self::Conn, data: &[u8]) -> Result<usize, StackError> {
        self.inner.send(conn, data)
    }
    fn recv(&mut self, conn: Self::Conn, buf: &mut [u8]) -> Result<RecvOutcome, StackError> {
        let outcome = self.inner.recv(conn, buf)?;
        if let RecvOutcome::Data(n) = outcome {
            let before = self.received;
            self.received += n;
            if before < self.corrupt_at && self.received >= self.corrupt_at {
                buf[n - 1] ^= 0x01;
            }
        }
        Ok(outcome)
    }
    fn close(&mut self, now: Micros, conn: Self::Conn) -> Result<(), StackError> {
        self.inner.close(now, conn)
    }
}

fn corrupting_factory() -> StackFactory<Corrupting> {
    StackFactory { name: "corrupting smoltcp", make: Corrupting::new, mtu: MTU, buffer: BUFFER }
}

#[test]
fn bulk_detects_a_corrupted_byte() {
    let err = run_bulk(&corrupting_factory(), 1 << 20, 0.0, 7).unwrap_err();
    assert!(err.0.contains("data mismatch"), "{err}");
}

#[test]
fn request_response_detects_a_corrupted_byte() {
    // 64-byte requests: the server passes 100 kB after ~1600 of the 2000.
    let err = run_request_response(&corrupting_factory(), 2, 1000, 0.0, 8).unwrap_err();
    assert!(err.0.contains("wrong response"), "{err}");
}
