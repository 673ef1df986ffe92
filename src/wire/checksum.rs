//! The Internet checksum (RFC 1071), used by IPv4 headers and IGMP.

/// One's-complement sum of `data` folded to 16 bits, not yet inverted.
///
/// RFC 1071 section 4.1: add big-endian 16-bit words into a wide accumulator, pad an odd
/// trailing byte with a zero byte on its right, then fold the carries back into 16 bits.
pub fn sum(data: &[u8]) -> u16 {
    // A u64 accumulator cannot overflow: each word adds at most 0xffff, so it would take
    // more than 2^48 words (far beyond any packet) to carry out of 64 bits.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    // End-around carry (RFC 1071 section 2, "(B) Deferred Carries").
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to store in a header: `!sum(data)` with the checksum field zeroed.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// True when `data` (checksum field included) verifies.
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}

/// Fill in the checksum of a whole UDP datagram `udp` (header and data, its length the UDP
/// length) under the family's pseudo-header `pseudo` (RFC 768 for IPv4, RFC 8200 section
/// 8.1 for IPv6). A computed zero is sent as all ones (RFC 768: zero means "no checksum",
/// which IPv6 does not allow). The one implementation of UDP checksum completion behind
/// `ipv4::complete_udp_checksum` and `ipv6::complete_udp_checksum`.
pub fn fill_udp(pseudo: &[u8], udp: &mut [u8]) {
    udp[6..8].fill(0);
    let total = u32::from(sum(pseudo)) + u32::from(sum(udp));
    let folded = ((total & 0xffff) + (total >> 16)) as u16;
    let c = match !folded {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sums_to_zero() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 worked example: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        // Padding explicitly gives the same result.
        let odd = [0x01, 0x02, 0x03, 0x04, 0x05];
        let even = [0x01, 0x02, 0x03, 0x04, 0x05, 0x00];
        assert_eq!(sum(&odd), sum(&even));
    }

    #[test]
    fn carries_fold_back() {
        // 0xffff + 0x0001 = 0x1_0000 -> 0x0001 after the end-around carry.
        assert_eq!(sum(&[0xff, 0xff, 0x00, 0x01]), 0x0001);
        // Many all-ones words stay all ones (negative zero).
        assert_eq!(sum(&[0xff; 1000]), 0xffff);
    }

    #[test]
    fn known_ipv4_header_verifies() {
        // A textbook IPv4 header (Wikipedia's example) with checksum b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(&hdr));
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xb861);
        let mut bad = hdr;
        bad[15] ^= 0x01;
        assert!(!verify(&bad));
    }

    #[test]
    fn filled_checksum_verifies_for_any_length() {
        for len in 2..64usize {
            let mut data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            data[0] = 0;
            data[1] = 0;
            let c = checksum(&data);
            data[..2].copy_from_slice(&c.to_be_bytes());
            assert!(verify(&data), "len {len}");
        }
    }
}
