//! ICMPv4 (RFC 792): echo, plus the errors the stack needs to read.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IcmpRepr {
    EchoRequest { ident: u16, seq_no: u16, data_len: usize },
    EchoReply { ident: u16, seq_no: u16, data_len: usize },
    /// Destination unreachable; code 4 is "fragmentation needed" with `next_hop_mtu`.
    DestinationUnreachable { code: u8, next_hop_mtu: u16 },
    Other { msg_type: u8, code: u8 },
}
