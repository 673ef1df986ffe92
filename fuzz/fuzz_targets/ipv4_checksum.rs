//! `ipv4::complete_udp_checksum` on arbitrary mutable bytes: never panics; when it reports
//! false the bytes are untouched; when it reports true the packet is a well-formed
//! unfragmented IPv4/UDP packet, only the UDP checksum field changed, and a receiver's
//! RFC 768 check (pseudo-header + UDP header + data) verifies. The check uses its own
//! one's-complement sum, not the crate's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoopcast::wire::ipv4;

/// RFC 1071 one's-complement sum over concatenated byte slices, folded to 16 bits.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let mut acc: u32 = 0;
    for pair in bytes.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |&b| u32::from(b));
        acc += hi | lo;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Where the UDP header starts and how long UDP says it is, if the packet is one the
/// function should complete.
fn model(p: &[u8]) -> Option<(usize, usize)> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < 20 || ihl > p.len() || total < ihl || total > p.len() {
        return None;
    }
    let frag = u16::from_be_bytes([p[6], p[7]]) & 0x3fff; // MF + fragment offset
    if p[9] != 17 || frag != 0 || total - ihl < 8 {
        return None;
    }
    let udp_len = usize::from(u16::from_be_bytes([p[ihl + 4], p[ihl + 5]]));
    if udp_len < 8 || udp_len > total - ihl {
        return None;
    }
    Some((ihl, udp_len))
}

fuzz_target!(|data: &[u8]| {
    let mut p = data.to_vec();
    let ok = ipv4::complete_udp_checksum(&mut p);
    let want = model(data);
    assert_eq!(ok, want.is_some(), "returned {ok}, model {want:?}");
    let Some((ihl, udp_len)) = want else {
        assert_eq!(p, data, "changed bytes but returned false");
        return;
    };
    // Only the two checksum octets may differ.
    for (i, (a, b)) in data.iter().zip(&p).enumerate() {
        if i != ihl + 6 && i != ihl + 7 {
            assert_eq!(a, b, "octet {i} changed");
        }
    }
    // RFC 768: a transmitted zero means "no checksum", so a computed zero is sent as ones.
    assert_ne!(&p[ihl + 6..ihl + 8], &[0, 0]);
    // The receiver's check.
    let udp = &p[ihl..ihl + udp_len];
    let len = (udp_len as u16).to_be_bytes();
    let pseudo = [
        p[12], p[13], p[14], p[15], p[16], p[17], p[18], p[19], 0, 17, len[0], len[1],
    ];
    assert_eq!(
        ones_sum(&[&pseudo, udp]),
        0xffff,
        "UDP checksum does not verify"
    );
});
