//! Ethernet II framing and MAC addresses.

use super::{Result, WireError};
use std::fmt;

pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A 48-bit MAC address: pnet's, which displays as `aa:bb:cc:dd:ee:ff`. Parse with
/// [`parse_mac`], which also takes `-` separators and says what it expected.
pub use pnet::util::MacAddr;

/// The Ethernet group address of an IPv4 group: 01:00:5e + low 23 bits (RFC 1112 section 6.4).
pub fn ipv4_group_mac(group: std::net::Ipv4Addr) -> MacAddr {
    let o = group.octets();
    MacAddr(0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3])
}

/// The Ethernet group address of an IPv6 multicast address: 33:33 + its last four octets
/// (RFC 2464 section 7).
pub fn ipv6_group_mac(group: std::net::Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr(0x33, 0x33, o[12], o[13], o[14], o[15])
}

/// Error from parsing a MAC address string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMacError(pub String);

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid MAC address '{}': expected six hex bytes like aa:bb:cc:dd:ee:ff",
            self.0
        )
    }
}
impl std::error::Error for ParseMacError {}

/// A MAC address from `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, any case, two hex digits
/// each.
pub fn parse_mac(s: &str) -> std::result::Result<MacAddr, ParseMacError> {
    {
        let err = || ParseMacError(s.to_string());
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(err());
        }
        let mut m = [0u8; 6];
        for (b, p) in m.iter_mut().zip(parts) {
            // from_str_radix alone would also take a sign ("+f").
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(err());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        Ok(MacAddr::from(m))
    }
}

/// The parts of an Ethernet II header we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

/// Field offsets of the Ethernet II header (IEEE 802.3 clause 3.2, "Ethernet II" framing).
mod field {
    pub type Field = std::ops::Range<usize>;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
}

fn mac_at(frame: &[u8], f: field::Field) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&frame[f]);
    MacAddr::from(m)
}

/// Parse the 14-byte header; the payload starts at `HEADER_LEN`.
pub fn parse(frame: &[u8]) -> Result<EthernetHeader> {
    if frame.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let et = &frame[field::ETHERTYPE];
    Ok(EthernetHeader {
        dst: mac_at(frame, field::DESTINATION),
        src: mac_at(frame, field::SOURCE),
        ethertype: u16::from_be_bytes([et[0], et[1]]),
    })
}

/// Write an Ethernet II header into `buf[..14]`. Panics if `buf` is shorter (callers size it).
pub fn write_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    buf[field::DESTINATION].copy_from_slice(&dst.octets());
    buf[field::SOURCE].copy_from_slice(&src.octets());
    buf[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const DST: MacAddr = MacAddr(0x01, 0x00, 0x5e, 0x00, 0x00, 0x16);
    const SRC: MacAddr = MacAddr(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);

    #[test]
    fn parse_real_header() {
        // Start of a Linux-style IGMPv3 report frame: to 01:00:5e:00:00:16, IPv4.
        let frame = [
            0x01, 0x00, 0x5e, 0x00, 0x00, 0x16, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00,
            0x46, 0xc0,
        ];
        let h = parse(&frame).unwrap();
        assert_eq!(h.dst, DST);
        assert_eq!(h.src, SRC);
        assert_eq!(h.ethertype, ETHERTYPE_IPV4);
        assert!(h.dst.is_multicast());
        assert!(!h.src.is_multicast());
    }

    #[test]
    fn parse_exactly_header_len() {
        let mut buf = [0u8; HEADER_LEN];
        write_header(&mut buf, DST, SRC, 0x86dd);
        let h = parse(&buf).unwrap();
        assert_eq!((h.dst, h.src, h.ethertype), (DST, SRC, 0x86dd));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut buf = [0u8; HEADER_LEN];
        write_header(&mut buf, DST, SRC, ETHERTYPE_IPV4);
        for len in 0..HEADER_LEN {
            assert_eq!(parse(&buf[..len]), Err(WireError::Truncated), "len {len}");
        }
    }

    #[test]
    fn write_header_layout() {
        let mut buf = [0xaau8; 20];
        write_header(&mut buf, MacAddr::broadcast(), SRC, 0x0806);
        assert_eq!(&buf[..6], &[0xff; 6]);
        assert_eq!(&buf[6..12], &SRC.octets());
        assert_eq!(&buf[12..14], &[0x08, 0x06]);
        // Bytes past the header are left alone.
        assert_eq!(&buf[14..], &[0xaa; 6]);
    }

    #[test]
    fn mac_display_and_parse() {
        assert_eq!(SRC.to_string(), "52:54:00:12:34:56");
        assert_eq!(parse_mac("52-54-00-12-34-56").unwrap(), SRC);
        assert!(parse_mac("52:54:00:12:34:5G").is_err());
        assert!(parse_mac("52:54:00:12:34").is_err());
        assert!(parse_mac("525:4:00:12:34:56").is_err());
        assert!(parse_mac("+f:54:00:12:34:56").is_err());
        assert!(parse_mac("52:54:00:12:34:56:").is_err());
        assert_eq!(
            parse_mac("AA:bb:CC:dd:EE:ff").unwrap().to_string(),
            "aa:bb:cc:dd:ee:ff"
        );
        assert!(MacAddr::default().is_zero());
        assert!(MacAddr::broadcast().is_multicast());
    }

    #[test]
    fn group_mac_keeps_low_23_bits() {
        // RFC 1112 section 6.4: the high bit of the second octet is dropped.
        assert_eq!(ipv4_group_mac(Ipv4Addr::new(224, 0, 0, 22)), DST);
        assert_eq!(
            ipv4_group_mac(Ipv4Addr::new(239, 129, 2, 3)),
            MacAddr(0x01, 0x00, 0x5e, 0x01, 0x02, 0x03)
        );
    }

    #[test]
    fn ipv6_group_mac_keeps_last_four_octets() {
        // RFC 2464 section 7: 33:33 followed by the last 32 bits of the address.
        let g: std::net::Ipv6Addr = "ff02::16".parse().unwrap();
        assert_eq!(ipv6_group_mac(g), MacAddr(0x33, 0x33, 0, 0, 0, 0x16));
        let g: std::net::Ipv6Addr = "ff0e::8000:1:ff12:3456".parse().unwrap();
        let m = ipv6_group_mac(g);
        assert_eq!(m, MacAddr(0x33, 0x33, 0xff, 0x12, 0x34, 0x56));
        assert!(m.is_multicast());
    }
}
