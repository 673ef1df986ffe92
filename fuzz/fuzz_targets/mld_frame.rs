//! The IPv6 framing of issue 6 on arbitrary bytes: `ipv6::parse_mld_frame`,
//! `ipv6::parse_data_packet` and `ipv6::complete_udp_checksum` never panic, and each agrees
//! with a small model of the extension-header walk written here from RFC 8200 section 4
//! (so a wrongly rejected packet is caught too); whatever parses as MLD survives
//! `build_mld_frame` -> `parse_mld_frame` unchanged, with the framing RFC 3810 section 5
//! asks for.
//!
//! Input: one flag byte, then an Ethernet frame. With bit 0 of the flag set, the ICMPv6
//! checksum of an unfragmented ICMPv6 packet is filled in first (found by the model), so
//! the fuzzer reaches past the checksum check. The data path and the checksum completion
//! run on the IPv6 packet after the Ethernet header and on the whole frame as raw IP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoopcast::wire::{ipv6, mld, MacAddr};
use std::net::Ipv6Addr;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn addr(b: &[u8], at: usize) -> Ipv6Addr {
    Ipv6Addr::from(<[u8; 16]>::try_from(&b[at..at + 16]).unwrap())
}

/// What the model makes of an IPv6 packet.
#[derive(Debug)]
struct Walk {
    /// The packet trimmed to 40 + payload length.
    len: usize,
    /// Next Header ending the chain and where its header (or fragment data) starts.
    upper: u8,
    off: usize,
    /// Fragment offset of the last fragment header seen; M set in any of them.
    frag_offset: u16,
    more: bool,
    segments_left: u8,
    /// Hop-by-hop Router Alert value; `Err` if the option list is broken.
    router_alert: Result<Option<u16>, ()>,
}

/// RFC 2711 / RFC 8200 section 4.2 option walk, restated.
fn options(o: &[u8]) -> Result<Option<u16>, ()> {
    let mut ra = None;
    let mut i = 0;
    while i < o.len() {
        if o[i] == 0 {
            i += 1;
            continue;
        }
        if i + 1 >= o.len() {
            return Err(());
        }
        let n = o[i + 1] as usize;
        if i + 2 + n > o.len() {
            return Err(());
        }
        if o[i] == 5 {
            if n != 2 {
                return Err(());
            }
            ra = Some(be16(o, i + 2));
        }
        i += 2 + n;
    }
    Ok(ra)
}

/// RFC 8200 sections 3 and 4, restated: version 6, payload length within the bytes,
/// hop-by-hop (only first), routing, destination options (8-octet units + 1), AH (4-octet
/// units + 2), fragment (8 octets; a non-zero offset ends the walk).
fn walk(p: &[u8]) -> Option<Walk> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return None;
    }
    let len = 40 + be16(p, 4) as usize;
    if len > p.len() {
        return None;
    }
    let mut w = Walk {
        len,
        upper: p[6],
        off: 40,
        frag_offset: 0,
        more: false,
        segments_left: 0,
        router_alert: Ok(None),
    };
    loop {
        let hl = match w.upper {
            0 if w.off != 40 => return None,
            0 | 43 | 60 if w.off + 2 <= len => 8 * (p[w.off + 1] as usize + 1),
            51 if w.off + 2 <= len => 4 * (p[w.off + 1] as usize + 2),
            44 => 8,
            0 | 43 | 60 | 51 => return None,
            _ => return Some(w),
        };
        if w.off + hl > len {
            return None;
        }
        let h = &p[w.off..w.off + hl];
        match w.upper {
            0 => w.router_alert = options(&h[2..]),
            43 => w.segments_left = h[3],
            44 => {
                w.frag_offset = be16(h, 2) >> 3;
                w.more |= be16(h, 2) & 1 == 1;
            }
            _ => {}
        }
        w.upper = h[0];
        w.off += hl;
        if w.frag_offset != 0 {
            return Some(w);
        }
    }
}

fn fragmented(w: &Walk) -> bool {
    w.frag_offset != 0 || w.more
}

fn is_mld_type(t: u8) -> bool {
    matches!(t, 130 | 131 | 132 | 143)
}

/// ff00::/8 with a scope nibble other than 0, 1, 2 and 15 (RFC 4291 section 2.7).
fn forwardable(g: Ipv6Addr) -> bool {
    let o = g.octets();
    o[0] == 0xff && !matches!(o[1] & 0x0f, 0 | 1 | 2 | 15)
}

/// RFC 768 / RFC 8200 section 8.1 receiver check with a sum of its own.
fn udp_verifies(src: Ipv6Addr, dst: Ipv6Addr, udp: &[u8]) -> bool {
    let mut b = Vec::with_capacity(40 + udp.len() + 1);
    b.extend_from_slice(&src.octets());
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&(udp.len() as u32).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 17]);
    b.extend_from_slice(udp);
    b.push(0);
    let mut acc: u64 = 0;
    for w in b.chunks_exact(2) {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc == 0xffff
}

fn check_mld(frame: &[u8]) {
    let got = ipv6::parse_mld_frame(frame);
    let is_ipv6 = frame.len() >= 14 && frame[12..14] == [0x86, 0xdd];
    let ip = frame.get(14..).unwrap_or(&[]);
    let w = if is_ipv6 { walk(ip) } else { None };
    // The model's view of an unfragmented ICMPv6 MLD message with sound options.
    let candidate = w.as_ref().filter(|w| {
        w.upper == 58
            && !fragmented(w)
            && w.router_alert.is_ok()
            && ip.get(w.off).is_some_and(|&t| is_mld_type(t))
    });
    let Ok(f) = got else {
        // Rejected: then the model's candidate must fail `mld::parse` itself.
        if let Some(w) = candidate {
            let parsed = mld::parse(addr(ip, 8), addr(ip, 24), &ip[w.off..w.len]);
            assert!(
                parsed.is_err(),
                "rejected {got:?} but model and mld::parse accept"
            );
        }
        return;
    };
    let w = candidate.expect("parse_mld_frame accepted what the model refuses");
    assert_eq!(f.dst_mac.octets(), frame[0..6]);
    assert_eq!(f.src_mac.octets(), frame[6..12]);
    assert_eq!(Ok(f.ip), ipv6::parse_header(ip));
    assert_eq!(f.ip.hop_limit, ip[7]);
    assert_eq!(f.router_alert, w.router_alert == Ok(Some(0)));
    assert_eq!(
        mld::parse(f.ip.src, f.ip.dst, &ip[w.off..w.len]).as_ref(),
        Ok(&f.message)
    );
    // Round trip through our own framing (RFC 3810 section 5).
    let mac = MacAddr(0x02, 0, 0, 0, 0, 0x53);
    let built = ipv6::build_mld_frame(mac, f.ip.src, f.ip.dst, &f.message);
    let back = ipv6::parse_mld_frame(&built)
        .unwrap_or_else(|e| panic!("re-parse failed: {e:?} {built:02x?}"));
    assert_eq!(back.message, f.message);
    assert_eq!((back.ip.src, back.ip.dst), (f.ip.src, f.ip.dst));
    assert_eq!(back.src_mac, mac);
    assert_eq!(
        back.dst_mac,
        snoopcast::wire::ethernet::ipv6_group_mac(f.ip.dst)
    );
    assert_eq!(back.ip.hop_limit, 1);
    assert!(back.router_alert);
    assert!(ipv6::parse_data_packet(&built[14..]).is_err());
}

fn check_data(ip: &[u8]) {
    let got = ipv6::parse_data_packet(ip);
    let want = walk(ip).filter(|w| {
        forwardable(addr(ip, 24))
            && !(w.upper == 58
                && w.frag_offset == 0
                && ip[..w.len].get(w.off).is_none_or(|&t| is_mld_type(t)))
    });
    // A packet refused only for its destination is refused before the walk.
    if ip.len() >= 40 && ip[0] >> 4 == 6 && !forwardable(addr(ip, 24)) {
        assert!(got.is_err());
    }
    assert_eq!(got.is_ok(), want.is_some(), "{got:?} vs model {want:?}");
    if let (Ok(d), Some(w)) = (got, want) {
        assert_eq!(d.ip, &ip[..w.len]);
        assert_eq!(d.source, addr(ip, 8));
        assert_eq!(d.group, addr(ip, 24));
    }
}

fn check_checksum(ip: &[u8]) {
    let mut p = ip.to_vec();
    let ok = ipv6::complete_udp_checksum(&mut p);
    let want = walk(ip).and_then(|w| {
        if w.upper != 17 || fragmented(&w) || w.segments_left != 0 || w.len - w.off < 8 {
            return None;
        }
        let udp_len = be16(ip, w.off + 4) as usize;
        (udp_len >= 8 && udp_len <= w.len - w.off).then_some((w.off, udp_len))
    });
    assert_eq!(ok, want.is_some(), "returned {ok}, model {want:?}");
    let Some((off, udp_len)) = want else {
        assert_eq!(p, ip, "changed bytes but returned false");
        return;
    };
    for (i, (a, b)) in ip.iter().zip(&p).enumerate() {
        if i != off + 6 && i != off + 7 {
            assert_eq!(a, b, "octet {i} changed");
        }
    }
    assert_ne!(
        &p[off + 6..off + 8],
        &[0, 0],
        "a zero checksum is sent as all ones"
    );
    assert!(
        udp_verifies(addr(&p, 8), addr(&p, 24), &p[off..off + udp_len]),
        "UDP checksum does not verify"
    );
}

/// Fill in the ICMPv6 checksum of an unfragmented ICMPv6 packet behind the Ethernet header.
fn fix_icmp_checksum(frame: &mut [u8]) {
    let Some(ip) = frame.get_mut(14..) else {
        return;
    };
    let Some(w) = walk(ip) else {
        return;
    };
    if w.upper != 58 || fragmented(&w) || w.len - w.off < 4 {
        return;
    }
    let (src, dst) = (addr(ip, 8), addr(ip, 24));
    let body = &mut ip[w.off..w.len];
    body[2..4].fill(0);
    let c = mld::checksum(src, dst, body);
    body[2..4].copy_from_slice(&c.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut frame = rest.to_vec();
    if flags & 1 == 1 {
        fix_icmp_checksum(&mut frame);
    }
    check_mld(&frame);
    for ip in [frame.get(14..).unwrap_or(&[]), &frame[..]] {
        check_data(ip);
        check_checksum(ip);
    }
});
