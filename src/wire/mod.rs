//! Wire formats: zero-copy views and small validated representations, no I/O.
//!
//! Layout follows the smoltcp idea: each protocol module validates lengths once and then
//! hands out a small `Repr`-like value. Every parser returns `Err(WireError)` on bad input,
//! never panics.

pub mod checksum;
pub mod ethernet;
pub mod igmp;
pub mod ipv4;

use std::fmt;
use std::net::Ipv4Addr;

pub use ethernet::MacAddr;

/// Why a packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer ends before the header or a length field says it should.
    Truncated,
    /// Not an IPv4 packet (version nibble is not 4) or not the expected EtherType.
    NotIpv4,
    /// IPv4 IHL below 5 or beyond the total length.
    BadHeaderLength,
    /// IPv4 total length below the header length or beyond the bytes received.
    BadTotalLength,
    /// IPv4 header checksum or IGMP checksum does not verify.
    BadChecksum,
    /// The IPv4 protocol is not IGMP (2).
    NotIgmp,
    /// IGMP type we do not understand.
    UnknownType(u8),
    /// A field value that is impossible (e.g. a v3 record count that overruns the packet).
    Malformed,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "truncated packet"),
            WireError::NotIpv4 => write!(f, "not IPv4"),
            WireError::BadHeaderLength => write!(f, "bad IPv4 header length"),
            WireError::BadTotalLength => write!(f, "bad IPv4 total length"),
            WireError::BadChecksum => write!(f, "bad checksum"),
            WireError::NotIgmp => write!(f, "not IGMP"),
            WireError::UnknownType(t) => write!(f, "unknown IGMP type 0x{t:02x}"),
            WireError::Malformed => write!(f, "malformed field"),
        }
    }
}

impl std::error::Error for WireError {}

pub type Result<T> = std::result::Result<T, WireError>;

/// How frames on an interface begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// 14-byte Ethernet II header (ARPHRD_ETHER: Ethernet, veth, tap, bridge).
    Ethernet,
    /// The IP header comes first (ARPHRD_NONE and friends: tun, WireGuard).
    RawIp,
}

/// An IGMP message received on a downstream interface, with what we need of its framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgmpFrame {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub ip: ipv4::Ipv4Header,
    pub message: igmp::Message,
}

/// Parse an Ethernet frame carrying IPv4 + IGMP (RFC 3376 section 4, RFC 2236 section 2).
///
/// Checks in order: Ethernet header and EtherType 0x0800, IPv4 header (IHL >= 5, header
/// checksum, total length <= bytes received; Ethernet padding beyond the total length is
/// trimmed), protocol 2, then the IGMP message and its checksum. The TTL is *not* judged
/// here; the caller decides what to do with TTL != 1.
pub fn parse_igmp_frame(frame: &[u8]) -> Result<IgmpFrame> {
    let eth = ethernet::parse(frame)?;
    if eth.ethertype != ethernet::ETHERTYPE_IPV4 {
        return Err(WireError::NotIpv4);
    }
    let ip_bytes = &frame[ethernet::HEADER_LEN..];
    let ip = ipv4::parse(ip_bytes)?;
    if ip.protocol != ipv4::PROTO_IGMP {
        return Err(WireError::NotIgmp);
    }
    let message = igmp::parse(&ip_bytes[ip.header_len..ip.total_len])?;
    Ok(IgmpFrame {
        src_mac: eth.src,
        dst_mac: eth.dst,
        ip,
        message,
    })
}

/// A multicast IPv4 data packet found in an upstream frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPacket<'a> {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    /// The whole IPv4 packet, trimmed to its total length (link padding removed).
    pub ip: &'a [u8],
}

/// Locate the IPv4 multicast packet in a frame captured on the upstream interface.
///
/// Cheap by design (per-packet path): version, IHL, total length, destination class.
/// The IPv4 header checksum is not verified (the receiving hosts do that). Returns
/// `Err` for anything that is not a forwardable multicast packet: not IPv4, truncated,
/// a destination outside 224.0.0.0/4, or in the link-local block 224.0.0.0/24 (which
/// RFC 4541 section 2.1.2 says is never constrained and which routers never forward).
pub fn parse_data_packet(link: LinkType, frame: &[u8]) -> Result<DataPacket<'_>> {
    let ip_bytes = match link {
        LinkType::Ethernet => {
            let eth = ethernet::parse(frame)?;
            if eth.ethertype != ethernet::ETHERTYPE_IPV4 {
                return Err(WireError::NotIpv4);
            }
            &frame[ethernet::HEADER_LEN..]
        }
        LinkType::RawIp => frame,
    };
    let hdr = ipv4::parse_unchecked(ip_bytes)?;
    if !hdr.dst.is_multicast() || ipv4::is_link_local_group(hdr.dst) {
        return Err(WireError::Malformed);
    }
    if hdr.protocol == ipv4::PROTO_IGMP {
        return Err(WireError::NotIgmp);
    }
    Ok(DataPacket {
        source: hdr.src,
        group: hdr.dst,
        ip: &ip_bytes[..hdr.total_len],
    })
}
