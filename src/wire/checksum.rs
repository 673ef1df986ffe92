//! The Internet checksum (RFC 1071), used by IPv4 headers and IGMP.

/// One's-complement sum of `data` folded to 16 bits, not yet inverted.
pub fn sum(data: &[u8]) -> u16 {
    todo!("wire helper")
}

/// The checksum to store in a header: `!sum(data)` with the checksum field zeroed.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// True when `data` (checksum field included) verifies.
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}
