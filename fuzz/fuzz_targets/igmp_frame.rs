//! `parse_igmp_frame` on arbitrary bytes: never panics, and whatever parses survives a
//! round trip through `igmp::emit` / `igmp::build_frame` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoopcast::wire::{self, ethernet, igmp, ipv4};

fuzz_target!(|data: &[u8]| {
    let Ok(f) = wire::parse_igmp_frame(data) else {
        return;
    };

    // The framing the parser reported is the framing in the bytes.
    assert_eq!(f.dst_mac.octets()[..], data[0..6]);
    assert_eq!(f.src_mac.octets()[..], data[6..12]);
    assert_eq!(data[12..14], [0x08, 0x00]);
    let ip = &data[ethernet::HEADER_LEN..];
    assert!(f.ip.header_len >= ipv4::MIN_HEADER_LEN);
    assert!(f.ip.header_len <= f.ip.total_len);
    assert!(f.ip.total_len <= ip.len());
    assert_eq!(f.ip.header_len, usize::from(ip[0] & 0x0f) * 4);
    assert_eq!(
        f.ip.total_len,
        usize::from(u16::from_be_bytes([ip[2], ip[3]]))
    );
    assert_eq!(f.ip.protocol, ipv4::PROTO_IGMP);
    let body = &ip[f.ip.header_len..f.ip.total_len];
    assert_eq!(igmp::parse(body).as_ref(), Ok(&f.message));

    // Message round trip: emit, parse again, same message.
    let mut out = Vec::new();
    igmp::emit(&f.message, &mut out);
    // Aux data and additional data are dropped, so the emitted form is never longer.
    assert!(
        out.len() <= body.len(),
        "emitted {} > parsed {}",
        out.len(),
        body.len()
    );
    let again = igmp::parse(&out).unwrap_or_else(|e| panic!("re-parse failed: {e:?} {out:02x?}"));
    assert_eq!(again, f.message);
    // The emitted form is canonical: emitting the re-parsed message gives the same bytes.
    let mut out2 = Vec::new();
    igmp::emit(&again, &mut out2);
    assert_eq!(out, out2);

    // Frame round trip through build_frame (IHL 6 with Router Alert, TTL 1). Its 16-bit
    // total length must hold the message; an IGMP body near 64 KiB behind a 20-byte header
    // does not fit behind 24 bytes, which is out of scope (build_frame sends our queries).
    if ipv4::ROUTER_ALERT_HEADER_LEN + out.len() <= usize::from(u16::MAX) {
        let frame = igmp::build_frame(f.src_mac, f.ip.src, f.ip.dst, &f.message);
        assert_eq!(
            frame.len(),
            ethernet::HEADER_LEN + ipv4::ROUTER_ALERT_HEADER_LEN + out.len()
        );
        let g = wire::parse_igmp_frame(&frame)
            .unwrap_or_else(|e| panic!("built frame does not parse: {e:?} {frame:02x?}"));
        assert_eq!(g.message, f.message);
        assert_eq!(g.src_mac, f.src_mac);
        assert_eq!(
            g.dst_mac,
            snoopcast::wire::ethernet::ipv4_group_mac(f.ip.dst)
        );
        assert_eq!((g.ip.src, g.ip.dst), (f.ip.src, f.ip.dst));
        assert_eq!((g.ip.ttl, g.ip.router_alert), (1, true));
        assert_eq!(g.ip.header_len, ipv4::ROUTER_ALERT_HEADER_LEN);
        assert_eq!(
            &frame[ethernet::HEADER_LEN + ipv4::ROUTER_ALERT_HEADER_LEN..],
            &out[..]
        );
    }
});
