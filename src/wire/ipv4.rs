//! IPv4 header view (RFC 791) with the checks pnet's Ipv4Packet does not make.

use super::{Result, WireError};
use std::net::Ipv4Addr;

pub const PROTO_IGMP: u8 = 2;
pub const PROTO_UDP: u8 = 17;
/// IP option type of Router Alert (RFC 2113), 4 bytes: 0x94 0x04 0x00 0x00.
pub const OPTION_ROUTER_ALERT: u8 = 0x94;

/// The IPv4 header fields we use, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub protocol: u8,
    /// IHL * 4, at least 20.
    pub header_len: usize,
    /// The total length field, `header_len <= total_len <= bytes received`.
    pub total_len: usize,
    /// A Router Alert option is present (IGMP reports carry one, RFC 2236 section 2).
    pub router_alert: bool,
}

/// Field offsets of the fixed IPv4 header (RFC 791 section 3.1).
mod field {
    pub type Field = std::ops::Range<usize>;
    /// Version (high nibble) and IHL (low nibble, in 32-bit words).
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
    /// Options start after the fixed part and run to IHL * 4.
    pub const OPTIONS: usize = 20;
}

/// Length of the fixed header (IHL 5).
pub const MIN_HEADER_LEN: usize = 20;
/// Length of the header written by `write_router_alert_header` (IHL 6).
pub const ROUTER_ALERT_HEADER_LEN: usize = 24;

/// Option type octets that are not type-length-value (RFC 791 section 3.1, "Options").
const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
/// The Router Alert option is always 4 octets long (RFC 2113 section 2.1).
const ROUTER_ALERT_LEN: u8 = 4;

fn addr_at(buf: &[u8], f: field::Field) -> Ipv4Addr {
    let b = &buf[f];
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// The length checks shared by `parse` and `parse_unchecked`, in the order querierd's
/// `igmp.c` makes them: version, IHL, header within the buffer, total length.
fn parse_lengths(buf: &[u8]) -> Result<Ipv4Header> {
    if buf.len() < MIN_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if buf[field::VER_IHL] >> 4 != 4 {
        return Err(WireError::NotIpv4);
    }
    // RFC 791 section 3.1: IHL counts 32-bit words; "the minimum value for a correct header
    // is 5".
    let header_len = usize::from(buf[field::VER_IHL] & 0x0f) * 4;
    if header_len < MIN_HEADER_LEN {
        return Err(WireError::BadHeaderLength);
    }
    if header_len > buf.len() {
        return Err(WireError::Truncated);
    }
    // Total length covers header and data. It must hold the header and may not claim more
    // than we received; anything received beyond it is link padding.
    let t = &buf[field::TOTAL_LEN];
    let total_len = usize::from(u16::from_be_bytes([t[0], t[1]]));
    if total_len < header_len || total_len > buf.len() {
        return Err(WireError::BadTotalLength);
    }
    Ok(Ipv4Header {
        src: addr_at(buf, field::SRC),
        dst: addr_at(buf, field::DST),
        ttl: buf[field::TTL],
        protocol: buf[field::PROTOCOL],
        header_len,
        total_len,
        router_alert: false,
    })
}

/// Walk the option list (RFC 791 section 3.1) and report whether it holds a Router Alert
/// (RFC 2113). End of Option List stops the walk, No Operation is a single octet, every
/// other option has a length octet that counts the type and length octets themselves, so
/// it is at least 2 and must end inside the header; otherwise the list is `Malformed`.
fn find_router_alert(options: &[u8]) -> Result<bool> {
    let mut found = false;
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            OPTION_END => break,
            OPTION_NOP => i += 1,
            kind => {
                let len = *options.get(i + 1).ok_or(WireError::Malformed)?;
                if len < 2 || i + usize::from(len) > options.len() {
                    return Err(WireError::Malformed);
                }
                if kind == OPTION_ROUTER_ALERT {
                    // RFC 2113 section 2.1: Type 148, Length 4, a 2-octet Value. Any other
                    // length is not a Router Alert option we can trust.
                    if len != ROUTER_ALERT_LEN {
                        return Err(WireError::Malformed);
                    }
                    found = true;
                }
                i += usize::from(len);
            }
        }
    }
    Ok(found)
}

/// Full validation for control packets: version 4, IHL >= 5, total length within the buffer
/// and not below the header, header checksum verified, options walked (a malformed option
/// list is `Malformed`) to find Router Alert.
pub fn parse(buf: &[u8]) -> Result<Ipv4Header> {
    let mut hdr = parse_lengths(buf)?;
    // RFC 791 section 3.1: the checksum covers the header only, options included.
    if !super::checksum::verify(&buf[..hdr.header_len]) {
        return Err(WireError::BadChecksum);
    }
    hdr.router_alert = find_router_alert(&buf[field::OPTIONS..hdr.header_len])?;
    Ok(hdr)
}

/// Cheap validation for the data path: version 4, IHL >= 5, total length within the buffer
/// and not below the header. No checksum, no option walk (`router_alert` is false).
pub fn parse_unchecked(buf: &[u8]) -> Result<Ipv4Header> {
    parse_lengths(buf)
}

/// 224.0.0.0/24, the Local Network Control Block: never snooped, never forwarded.
pub fn is_link_local_group(addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    o[0] == 224 && o[1] == 0 && o[2] == 0
}

/// 232.0.0.0/8, the source-specific multicast range (RFC 4607, RFC 4604 section 2.2).
pub fn is_ssm_group(addr: Ipv4Addr) -> bool {
    addr.octets()[0] == 232
}

/// Build an IPv4 header with a Router Alert option (24 bytes) into `buf`, checksum filled.
/// Used for the queries we send: TTL 1, TOS 0xc0 (Internetwork Control), protocol IGMP.
/// `payload_len` is the IGMP message length. Returns the header length (24).
/// Panics if `buf` is shorter than 24 bytes (callers size it).
pub fn write_router_alert_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: usize,
) -> usize {
    let hdr = &mut buf[..ROUTER_ALERT_HEADER_LEN];
    // Version 4, IHL 6 (20 fixed octets + the 4-octet option).
    hdr[field::VER_IHL] = 0x40 | (ROUTER_ALERT_HEADER_LEN / 4) as u8;
    // RFC 791 section 3.1 precedence 110 (Internetwork Control), as Linux sends IGMP.
    hdr[field::TOS] = 0xc0;
    // An IGMP message is tiny; a payload that would not fit the 16-bit field is a caller
    // bug, and saturating keeps the header self-consistent about being too long for us.
    let total = u16::try_from(ROUTER_ALERT_HEADER_LEN + payload_len).unwrap_or(u16::MAX);
    hdr[field::TOTAL_LEN].copy_from_slice(&total.to_be_bytes());
    hdr[field::IDENT].fill(0);
    hdr[field::FLAGS_FRAG].fill(0);
    // RFC 2236 section 2 and RFC 3376 section 4: IGMP is sent with TTL 1.
    hdr[field::TTL] = 1;
    hdr[field::PROTOCOL] = PROTO_IGMP;
    hdr[field::CHECKSUM].fill(0);
    hdr[field::SRC].copy_from_slice(&src.octets());
    hdr[field::DST].copy_from_slice(&dst.octets());
    // RFC 2113 section 2.1: Router Alert, Value 0 "Router shall examine packet".
    hdr[field::OPTIONS..].copy_from_slice(&[OPTION_ROUTER_ALERT, ROUTER_ALERT_LEN, 0, 0]);
    let c = super::checksum::checksum(hdr);
    hdr[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    ROUTER_ALERT_HEADER_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    /// The IPv4 part of a Linux-style IGMPv3 report, hand-built with python3 `struct`
    /// (192.168.1.10 -> 224.0.0.22, TOS 0xc0, DF, TTL 1, Router Alert), total length 56,
    /// followed by its 32-byte IGMP message.
    const V3_REPORT_IP: [u8; 56] = [
        0x46, 0xc0, 0x00, 0x38, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0x42, 0x37, 0xc0, 0xa8, 0x01,
        0x0a, 0xe0, 0x00, 0x00, 0x16, 0x94, 0x04, 0x00, 0x00, 0x22, 0x00, 0xe8, 0xf0, 0x00, 0x00,
        0x00, 0x02, 0x04, 0x00, 0x00, 0x00, 0xef, 0x01, 0x02, 0x03, 0x03, 0x00, 0x00, 0x02, 0xe8,
        0x01, 0x01, 0x01, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    ];

    /// A header with the given options (padded by the caller to a multiple of 4), a
    /// payload of `payload_len` zero bytes, and a correct checksum.
    fn packet(options: &[u8], payload_len: usize) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let header_len = 20 + options.len();
        let total = header_len + payload_len;
        let mut p = vec![0u8; total];
        p[0] = 0x40 | (header_len / 4) as u8;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = PROTO_UDP;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[239, 1, 2, 3]);
        p[20..header_len].copy_from_slice(options);
        refill_checksum(&mut p);
        p
    }

    fn refill_checksum(p: &mut [u8]) {
        let header_len = usize::from(p[0] & 0x0f) * 4;
        let header_len = header_len.clamp(20, p.len());
        p[10..12].fill(0);
        let c = checksum::checksum(&p[..header_len]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn parse_linux_report_header() {
        let h = parse(&V3_REPORT_IP).unwrap();
        assert_eq!(h.src, Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(h.dst, Ipv4Addr::new(224, 0, 0, 22));
        assert_eq!(h.ttl, 1);
        assert_eq!(h.protocol, PROTO_IGMP);
        assert_eq!(h.header_len, 24);
        assert_eq!(h.total_len, 56);
        assert!(h.router_alert);
        // The data-path parse agrees apart from the option walk.
        let u = parse_unchecked(&V3_REPORT_IP).unwrap();
        assert_eq!(
            u,
            Ipv4Header {
                router_alert: false,
                ..h
            }
        );
    }

    #[test]
    fn parse_plain_header() {
        let p = packet(&[], 8);
        let h = parse(&p).unwrap();
        assert_eq!((h.header_len, h.total_len, h.router_alert), (20, 28, false));
        assert_eq!(h.ttl, 64);
        assert_eq!(h.protocol, PROTO_UDP);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for len in 0..V3_REPORT_IP.len() {
            assert!(parse(&V3_REPORT_IP[..len]).is_err(), "parse len {len}");
            assert!(
                parse_unchecked(&V3_REPORT_IP[..len]).is_err(),
                "unchecked len {len}"
            );
        }
        assert_eq!(parse(&V3_REPORT_IP[..19]), Err(WireError::Truncated));
        // Header present, total length beyond what we got.
        assert_eq!(parse(&V3_REPORT_IP[..24]), Err(WireError::BadTotalLength));
        // Header cut inside its options.
        assert_eq!(parse(&V3_REPORT_IP[..22]), Err(WireError::Truncated));
    }

    #[test]
    fn trailing_bytes_are_allowed() {
        // Link padding after the total length: the header is still fine, total_len says
        // where the packet ends.
        let mut p = packet(&[], 8);
        p.extend_from_slice(&[0xaa; 18]);
        let h = parse(&p).unwrap();
        assert_eq!(h.total_len, 28);
    }

    #[test]
    fn not_version_4() {
        for version in [0u8, 1, 5, 6, 15] {
            let mut p = packet(&[], 0);
            p[0] = (version << 4) | 5;
            refill_checksum(&mut p);
            assert_eq!(parse(&p), Err(WireError::NotIpv4), "version {version}");
            assert_eq!(parse_unchecked(&p), Err(WireError::NotIpv4));
        }
    }

    #[test]
    fn ihl_below_five() {
        for ihl in 0u8..5 {
            let mut p = packet(&[], 8);
            p[0] = 0x40 | ihl;
            refill_checksum(&mut p);
            assert_eq!(parse(&p), Err(WireError::BadHeaderLength), "ihl {ihl}");
            assert_eq!(
                parse_unchecked(&p),
                Err(WireError::BadHeaderLength),
                "ihl {ihl}"
            );
        }
    }

    #[test]
    fn ihl_beyond_total_length() {
        // IHL 15 (60 bytes) in a 64-byte buffer whose total length says 40.
        let mut p = packet(&[0; 40], 4);
        p[0] = 0x4f;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        refill_checksum(&mut p);
        assert_eq!(parse(&p), Err(WireError::BadTotalLength));
        assert_eq!(parse_unchecked(&p), Err(WireError::BadTotalLength));
    }

    #[test]
    fn ihl_beyond_buffer() {
        // IHL 15 but only 28 bytes received.
        let mut p = packet(&[], 8);
        p[0] = 0x4f;
        assert_eq!(parse(&p), Err(WireError::Truncated));
        assert_eq!(parse_unchecked(&p), Err(WireError::Truncated));
    }

    #[test]
    fn total_length_beyond_buffer() {
        let mut p = packet(&[], 8);
        p[2..4].copy_from_slice(&29u16.to_be_bytes());
        refill_checksum(&mut p);
        assert_eq!(parse(&p), Err(WireError::BadTotalLength));
        assert_eq!(parse_unchecked(&p), Err(WireError::BadTotalLength));
        p[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
        refill_checksum(&mut p);
        assert_eq!(parse(&p), Err(WireError::BadTotalLength));
    }

    #[test]
    fn total_length_below_header() {
        for total in [0u16, 1, 19, 23] {
            let mut p = packet(&[OPTION_ROUTER_ALERT, 4, 0, 0], 8);
            p[2..4].copy_from_slice(&total.to_be_bytes());
            refill_checksum(&mut p);
            assert_eq!(parse(&p), Err(WireError::BadTotalLength), "total {total}");
            assert_eq!(parse_unchecked(&p), Err(WireError::BadTotalLength));
        }
        // Exactly the header, no payload, is fine.
        let p = packet(&[OPTION_ROUTER_ALERT, 4, 0, 0], 0);
        assert_eq!(parse(&p).unwrap().total_len, 24);
    }

    #[test]
    fn corrupt_checksum() {
        let mut p = V3_REPORT_IP;
        p[11] ^= 0x40;
        assert_eq!(parse(&p), Err(WireError::BadChecksum));
        // The data path does not look at it.
        assert!(parse_unchecked(&p).is_ok());
        // A flipped bit inside the options is caught too.
        let mut p = V3_REPORT_IP;
        p[22] = 0x01;
        assert_eq!(parse(&p), Err(WireError::BadChecksum));
        // The payload is not covered by the header checksum.
        let mut p = V3_REPORT_IP;
        p[40] ^= 0xff;
        assert!(parse(&p).is_ok());
    }

    fn options_result(options: &[u8]) -> Result<bool> {
        parse(&packet(options, 0)).map(|h| h.router_alert)
    }

    #[test]
    fn option_walk_finds_router_alert() {
        assert_eq!(options_result(&[0x94, 4, 0, 0]), Ok(true));
        // A non-zero value (RFC 2113 reserved) is still a Router Alert option.
        assert_eq!(options_result(&[0x94, 4, 0, 1]), Ok(true));
        assert_eq!(options_result(&[1, 1, 1, 1, 0x94, 4, 0, 0]), Ok(true));
        assert_eq!(options_result(&[1, 0x94, 4, 0, 0, 0, 0, 0]), Ok(true));
        // Record Route (type 7, length 7) first, then Router Alert.
        assert_eq!(
            options_result(&[7, 7, 4, 0, 0, 0, 0, 0x94, 4, 0, 0, 0]),
            Ok(true)
        );
        // Other options only.
        assert_eq!(options_result(&[1, 1, 1, 1]), Ok(false));
        assert_eq!(options_result(&[0, 0, 0, 0]), Ok(false));
        assert_eq!(options_result(&[0x44, 4, 5, 0]), Ok(false));
        // End of Option List ends the walk: what follows is padding, even garbage.
        assert_eq!(options_result(&[0, 0x94, 4, 0]), Ok(false));
        assert_eq!(options_result(&[1, 0, 0xff, 0xff]), Ok(false));
    }

    #[test]
    fn malformed_options() {
        // Length below 2.
        assert_eq!(options_result(&[0x44, 0, 0, 0]), Err(WireError::Malformed));
        assert_eq!(options_result(&[0x44, 1, 0, 0]), Err(WireError::Malformed));
        // Length overruns the header.
        assert_eq!(options_result(&[0x44, 5, 0, 0]), Err(WireError::Malformed));
        assert_eq!(options_result(&[1, 0x94, 4, 0]), Err(WireError::Malformed));
        assert_eq!(
            options_result(&[0x94, 255, 0, 0]),
            Err(WireError::Malformed)
        );
        // Type octet with no room for its length octet.
        assert_eq!(options_result(&[1, 1, 1, 0x44]), Err(WireError::Malformed));
        // Router Alert of the wrong length.
        assert_eq!(options_result(&[0x94, 2, 0, 0]), Err(WireError::Malformed));
        assert_eq!(options_result(&[0x94, 3, 0, 0]), Err(WireError::Malformed));
        assert_eq!(
            options_result(&[0x94, 8, 0, 0, 0, 0, 0, 0]),
            Err(WireError::Malformed)
        );
        // The data path does not walk options.
        let p = packet(&[0x44, 0, 0, 0], 0);
        assert!(parse_unchecked(&p).is_ok());
    }

    #[test]
    fn every_option_byte_pattern_is_safe() {
        // All 4-byte option areas drawn from interesting bytes: never a panic, and any
        // success reports Router Alert only when the option is really there.
        let vals = [0u8, 1, 2, 3, 4, 5, 0x44, 0x94, 0xff];
        for a in vals {
            for b in vals {
                for c in vals {
                    for d in vals {
                        let r = options_result(&[a, b, c, d]);
                        if r == Ok(true) {
                            assert!([a, b, c, d].windows(2).any(|w| w == [0x94, 4]));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn write_router_alert_header_layout() {
        let src = Ipv4Addr::new(192, 168, 1, 1);
        let mut buf = [0xaau8; 32];
        let n = write_router_alert_header(&mut buf, src, igmp_all_systems(), 8);
        assert_eq!(n, 24);
        assert_eq!(
            &buf[..24],
            &[
                0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x82, 0x6d, 0xc0, 0xa8,
                0x01, 0x01, 0xe0, 0x00, 0x00, 0x01, 0x94, 0x04, 0x00, 0x00,
            ]
        );
        assert!(checksum::verify(&buf[..24]));
        // The payload area is untouched.
        assert_eq!(&buf[24..], &[0xaa; 8]);
        let h = parse(&buf).unwrap();
        assert_eq!(h.src, src);
        assert_eq!(h.dst, igmp_all_systems());
        assert_eq!(
            (h.ttl, h.protocol, h.header_len, h.total_len),
            (1, PROTO_IGMP, 24, 32)
        );
        assert!(h.router_alert);
    }

    fn igmp_all_systems() -> Ipv4Addr {
        crate::wire::igmp::ALL_SYSTEMS
    }

    #[test]
    fn write_router_alert_header_overwrites_stale_bytes() {
        let src = Ipv4Addr::new(10, 1, 2, 3);
        let dst = Ipv4Addr::new(239, 1, 2, 3);
        let mut a = [0x00u8; 24];
        let mut b = [0xffu8; 24];
        write_router_alert_header(&mut a, src, dst, 12);
        write_router_alert_header(&mut b, src, dst, 12);
        assert_eq!(a, b);
    }

    #[test]
    fn group_classes() {
        assert!(is_link_local_group(Ipv4Addr::new(224, 0, 0, 1)));
        assert!(is_link_local_group(Ipv4Addr::new(224, 0, 0, 255)));
        assert!(!is_link_local_group(Ipv4Addr::new(224, 0, 1, 1)));
        assert!(!is_link_local_group(Ipv4Addr::new(239, 0, 0, 1)));
        assert!(is_ssm_group(Ipv4Addr::new(232, 1, 2, 3)));
        assert!(!is_ssm_group(Ipv4Addr::new(233, 1, 2, 3)));
    }
}

/// Fill in the UDP checksum of an unfragmented IPv4/UDP packet whose checksum was left to the
/// device (a frame read from a packet socket on the sending side, CHECKSUM_PARTIAL): the
/// pseudo-header sum of RFC 768 over source, destination, protocol and UDP length, then the
/// UDP header and data. Returns false (and changes nothing) for anything else: not UDP, a
/// fragment, or a UDP length that does not fit the packet.
pub fn complete_udp_checksum(packet: &mut [u8]) -> bool {
    let Ok(h) = parse_unchecked(packet) else {
        return false;
    };
    let flags_frag = u16::from_be_bytes([packet[6], packet[7]]);
    if h.protocol != PROTO_UDP || flags_frag & 0x3fff != 0 {
        return false;
    }
    let udp = &mut packet[h.header_len..h.total_len];
    if udp.len() < 8 {
        return false;
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return false;
    }
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&h.src.octets());
    pseudo[4..8].copy_from_slice(&h.dst.octets());
    pseudo[9] = PROTO_UDP;
    pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
    super::checksum::fill_udp(&pseudo, &mut udp[..udp_len]);
    true
}

#[cfg(test)]
mod udp_checksum_tests {
    use super::*;

    /// 10.1.0.1:40000 -> 239.1.1.1:5000, payload "hello", UDP checksum 0x1235 computed
    /// independently (python3, RFC 768 pseudo-header).
    fn packet() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 33, 0, 0, 0x40, 0, 8, 17, 0, 0, 10, 1, 0, 1, 239, 1, 1, 1, // IPv4
            0x9c, 0x40, 0x13, 0x88, 0, 13, 0, 0, // UDP, checksum zero
            b'h', b'e', b'l', b'l', b'o',
        ];
        let c = crate::wire::checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn fills_the_udp_checksum_and_the_receiver_verifies_it() {
        let mut p = packet();
        p[26] = 0x77; // garbage a partial checksum would leave
        assert!(complete_udp_checksum(&mut p));
        assert_eq!(&p[26..28], &[0x12, 0x35]);
        // Verify as a receiver does: pseudo-header + UDP sums to 0xffff.
        let mut all = vec![10, 1, 0, 1, 239, 1, 1, 1, 0, 17, 0, 13];
        all.extend_from_slice(&p[20..]);
        assert!(crate::wire::checksum::verify(&all));
    }

    #[test]
    fn leaves_fragments_and_other_protocols_alone() {
        let mut frag = packet();
        frag[6] = 0x20; // MF
        let before = frag.clone();
        assert!(!complete_udp_checksum(&mut frag));
        assert_eq!(frag, before);
        let mut tcp = packet();
        tcp[9] = 6;
        assert!(!complete_udp_checksum(&mut tcp));
        let mut short = packet();
        short[24..26].copy_from_slice(&200u16.to_be_bytes());
        assert!(
            !complete_udp_checksum(&mut short),
            "UDP length beyond the packet"
        );
        assert!(!complete_udp_checksum(&mut [0x45, 0, 0]));
    }
}
