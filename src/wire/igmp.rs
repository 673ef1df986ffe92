//! IGMP messages: v1 (RFC 1112), v2 (RFC 2236), v3 (RFC 3376).

use super::{Result, WireError};
use std::net::Ipv4Addr;
use std::time::Duration;

pub const TYPE_QUERY: u8 = 0x11;
pub const TYPE_V1_REPORT: u8 = 0x12;
pub const TYPE_V2_REPORT: u8 = 0x16;
pub const TYPE_V2_LEAVE: u8 = 0x17;
pub const TYPE_V3_REPORT: u8 = 0x22;

/// The all-systems group, destination of general queries.
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// The IGMPv3 routers group, destination of v3 reports.
pub const ALL_V3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);
/// The all-routers group, destination of v2 leaves.
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);

/// Query version, told apart by length and Max Resp Code (RFC 3376 section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueryVersion {
    V1,
    V2,
    V3,
}

/// A membership query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub version: QueryVersion,
    /// Decoded maximum response time (v1: zero; v2: code in 1/10 s; v3: RFC 3376 4.1.1 float).
    pub max_resp: Duration,
    /// 0.0.0.0 for a general query.
    pub group: Ipv4Addr,
    /// v3 only (false otherwise): Suppress Router-Side Processing.
    pub s_flag: bool,
    /// v3 only (0 otherwise): Querier's Robustness Variable.
    pub qrv: u8,
    /// v3 only (zero otherwise): decoded Querier's Query Interval (RFC 3376 4.1.7).
    pub qqi: Duration,
    /// v3 only: source list of a group-and-source-specific query.
    pub sources: Vec<Ipv4Addr>,
}

/// IGMPv3 group record types (RFC 3376 section 4.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// 1 MODE_IS_INCLUDE
    ModeIsInclude,
    /// 2 MODE_IS_EXCLUDE
    ModeIsExclude,
    /// 3 CHANGE_TO_INCLUDE_MODE
    ChangeToInclude,
    /// 4 CHANGE_TO_EXCLUDE_MODE
    ChangeToExclude,
    /// 5 ALLOW_NEW_SOURCES
    AllowNew,
    /// 6 BLOCK_OLD_SOURCES
    BlockOld,
    /// Anything else: RFC 3376 section 4.2.12 says ignore the record.
    Unknown(u8),
}

impl From<u8> for RecordType {
    fn from(v: u8) -> Self {
        todo!("wire helper")
    }
}

impl From<RecordType> for u8 {
    fn from(v: RecordType) -> u8 {
        todo!("wire helper")
    }
}

/// One group record of a v3 report. Auxiliary data is skipped (its length is in 32-bit
/// words, RFC 3376 section 4.2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub record_type: RecordType,
    pub group: Ipv4Addr,
    pub sources: Vec<Ipv4Addr>,
}

/// A parsed, checksum-verified IGMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Query(Query),
    ReportV1 { group: Ipv4Addr },
    ReportV2 { group: Ipv4Addr },
    LeaveV2 { group: Ipv4Addr },
    ReportV3 { records: Vec<GroupRecord> },
}

/// Parse an IGMP message (the IPv4 payload, padding already trimmed by the IPv4 total
/// length). Verifies the checksum over the whole message. Query version by length and Max
/// Resp Code (RFC 3376 section 7.1): 8 bytes with code 0 is v1, 8 bytes otherwise v2, >= 12
/// bytes v3; 9..=11 bytes is `Malformed`. A v3 report whose record or source counts overrun
/// the message is `Malformed`.
pub fn parse(buf: &[u8]) -> Result<Message> {
    let _ = WireError::Truncated;
    todo!("wire helper")
}

/// Decode an 8-bit Max Resp Code / QQIC (RFC 3376 sections 4.1.1 and 4.1.7): below 128 the
/// value itself, else the mantissa/exponent float `(mant | 0x10) << (exp + 3)`.
pub fn decode_code(code: u8) -> u32 {
    todo!("wire helper")
}

/// Encode a value into the 8-bit code (the inverse of `decode_code`, rounding down to the
/// nearest representable value; values above the maximum, 31744, saturate).
pub fn encode_code(value: u32) -> u8 {
    todo!("wire helper")
}

/// Serialise an IGMP message with its checksum, appending to `out`. Queries: v1/v2 are 8
/// bytes (v2 max resp in 1/10 s, capped at 255), v3 are 12 + 4 * sources bytes.
/// Reports and leaves are emitted too (tests and fuzzing use them).
pub fn emit(msg: &Message, out: &mut Vec<u8>) {
    todo!("wire helper")
}

/// A whole Ethernet frame carrying `msg` over IPv4 with a Router Alert option and TTL 1,
/// from `src_mac`/`src_ip` to `dst_ip` (Ethernet destination: the group MAC of `dst_ip`).
pub fn build_frame(
    src_mac: super::MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    msg: &Message,
) -> Vec<u8> {
    todo!("wire helper")
}
