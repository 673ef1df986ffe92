//! `mld::parse` on arbitrary bytes: never panics, and whatever parses survives a round trip
//! through `mld::emit` unchanged. Input: one flag byte, source and destination addresses
//! (16 bytes each), then the ICMPv6 message. With bit 0 of the flag set the checksum is
//! filled in first, so the fuzzer reaches past the checksum check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoopcast::wire::mld;
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    if data.len() < 33 {
        return;
    }
    let addr = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap());
    let (src, dst) = (addr(&data[1..17]), addr(&data[17..33]));
    let mut msg = data[33..].to_vec();
    if data[0] & 1 == 1 && msg.len() >= 4 {
        msg[2..4].copy_from_slice(&[0, 0]);
        let sum = mld::checksum(src, dst, &msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let Ok(m) = mld::parse(src, dst, &msg) else {
        return;
    };
    let mut out = Vec::new();
    mld::emit(src, dst, &m, &mut out);
    // Aux data and additional data are dropped, so the emitted form is never longer.
    assert!(
        out.len() <= msg.len(),
        "emitted {} > parsed {}",
        out.len(),
        msg.len()
    );
    let again =
        mld::parse(src, dst, &out).unwrap_or_else(|e| panic!("re-parse failed: {e:?} {out:02x?}"));
    assert_eq!(again, m);
    assert!(m.weight() >= 1);
});
