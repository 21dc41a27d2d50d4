//! NewReno window arithmetic (RFC 5681 §3, RFC 6582).

#[derive(Clone, Debug)]
pub struct NewReno {
    _todo: (),
}
