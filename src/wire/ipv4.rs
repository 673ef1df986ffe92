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

/// Full validation for control packets: version 4, IHL >= 5, total length within the buffer
/// and not below the header, header checksum verified, options walked (a malformed option
/// list is `Malformed`) to find Router Alert.
pub fn parse(buf: &[u8]) -> Result<Ipv4Header> {
    let _ = WireError::Truncated;
    todo!("wire helper")
}

/// Cheap validation for the data path: version 4, IHL >= 5, total length within the buffer
/// and not below the header. No checksum, no option walk (`router_alert` is false).
pub fn parse_unchecked(buf: &[u8]) -> Result<Ipv4Header> {
    todo!("wire helper")
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
pub fn write_router_alert_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: usize,
) -> usize {
    todo!("wire helper")
}
