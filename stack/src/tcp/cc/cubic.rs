//! CUBIC (RFC 9438): W_cubic(t) = C*(t-K)^3 + W_max, with the Reno-friendly region.

#[derive(Clone, Debug)]
pub struct Cubic {
    _todo: (),
}
