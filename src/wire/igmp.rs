//! IGMP messages: v1 (RFC 1112), v2 (RFC 2236), v3 (RFC 3376).

use super::{checksum, ethernet, ipv4, Reader, Result, WireError};
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
        match v {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNew,
            6 => RecordType::BlockOld,
            other => RecordType::Unknown(other),
        }
    }
}

impl From<RecordType> for u8 {
    fn from(v: RecordType) -> u8 {
        match v {
            RecordType::ModeIsInclude => 1,
            RecordType::ModeIsExclude => 2,
            RecordType::ChangeToInclude => 3,
            RecordType::ChangeToExclude => 4,
            RecordType::AllowNew => 5,
            RecordType::BlockOld => 6,
            RecordType::Unknown(other) => other,
        }
    }
}

/// One group record of a v3 report. Auxiliary data is skipped (its length is in 32-bit
/// words, RFC 3376 section 4.2.6).
pub type GroupRecord = super::Record<Ipv4Addr>;

/// A parsed, checksum-verified IGMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Query(Query),
    ReportV1 { group: Ipv4Addr },
    ReportV2 { group: Ipv4Addr },
    LeaveV2 { group: Ipv4Addr },
    ReportV3 { records: Vec<GroupRecord> },
}

impl Message {
    /// How many group records and source addresses the message carries, plus one: the
    /// measure of the memory a parsed message holds (a v3 report in a 1500-byte frame can
    /// carry 183 records, in a 64 KiB one 8,000), for bounding queues of them.
    pub fn weight(&self) -> usize {
        1 + match self {
            Message::Query(q) => q.sources.len(),
            Message::ReportV3 { records } => {
                records.iter().map(|r| 1 + r.sources.len()).sum::<usize>()
            }
            _ => 0,
        }
    }
}

/// Field offsets, named after the message diagrams of RFC 2236 section 2 and RFC 3376
/// sections 4.1 and 4.2.
mod field {
    pub type Field = std::ops::Range<usize>;
    // Common to every message (the v1/v2 8-octet layout).
    pub const TYPE: usize = 0;
    pub const MAX_RESP_CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const GROUP: Field = 4..8;
    // IGMPv3 query (RFC 3376 section 4.1).
    /// Resv (4 bits) | S (1 bit) | QRV (3 bits).
    pub const S_QRV: usize = 8;
    pub const QQIC: usize = 9;
    pub const QUERY_NUM_SOURCES: Field = 10..12;
    pub const QUERY_SOURCES: usize = 12;
    // IGMPv3 report (RFC 3376 section 4.2): type, reserved, checksum, reserved, count.
    pub const REPORT_NUM_RECORDS: Field = 6..8;
    pub const REPORT_RECORDS: usize = 8;
    // Records: see `Reader::group_record` in wire/mod.rs.
}

/// Every IGMP message is at least 8 octets (RFC 2236 section 2, RFC 3376 section 7.1).
pub const MIN_LEN: usize = 8;
/// An IGMPv3 query is at least 12 octets (RFC 3376 section 7.1).
pub const V3_QUERY_MIN_LEN: usize = 12;
/// The S flag within the S/QRV octet (RFC 3376 section 4.1.5).
const S_FLAG: u8 = 0x08;
/// The QRV field is 3 bits (RFC 3376 section 4.1.6).
const QRV_MASK: u8 = 0x07;
/// The largest value the 8-bit float code can carry: mant 0xf, exp 7.
const CODE_MAX_VALUE: u32 = 0x1f << (7 + 3);

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Parse an IGMP message (the IPv4 payload, padding already trimmed by the IPv4 total
/// length). Verifies the checksum over the whole message. Query version by length and Max
/// Resp Code (RFC 3376 section 7.1): 8 bytes with code 0 is v1, 8 bytes otherwise v2, >= 12
/// bytes v3; 9..=11 bytes is `Malformed`. A v3 report whose record or source counts overrun
/// the message is `Malformed`.
pub fn parse(buf: &[u8]) -> Result<Message> {
    if buf.len() < MIN_LEN {
        return Err(WireError::Truncated);
    }
    // RFC 2236 section 2.3 and RFC 3376 section 4.1.2: the checksum covers the whole IGMP
    // message, including any additional data past the fields we read (RFC 3376 4.1.10,
    // 4.2.11).
    if !checksum::verify(buf) {
        return Err(WireError::BadChecksum);
    }
    let group = addr(&buf[field::GROUP]);
    match buf[field::TYPE] {
        TYPE_QUERY => parse_query(buf).map(Message::Query),
        TYPE_V1_REPORT => Ok(Message::ReportV1 { group }),
        TYPE_V2_REPORT => Ok(Message::ReportV2 { group }),
        TYPE_V2_LEAVE => Ok(Message::LeaveV2 { group }),
        TYPE_V3_REPORT => parse_v3_report(buf),
        other => Err(WireError::UnknownType(other)),
    }
}

/// A query of any version; `buf` is at least `MIN_LEN` and checksum-verified.
fn parse_query(buf: &[u8]) -> Result<Query> {
    let code = buf[field::MAX_RESP_CODE];
    let group = addr(&buf[field::GROUP]);
    // RFC 3376 section 7.1: the version of a query is told by its length, and for 8-octet
    // queries by whether the Max Resp Code is zero.
    match buf.len() {
        MIN_LEN => {
            let (version, max_resp) = if code == 0 {
                // RFC 1112 appendix I: the v1 query's second octet is unused.
                (QueryVersion::V1, Duration::ZERO)
            } else {
                // RFC 2236 section 2.2: Max Response Time in units of 1/10 second.
                (QueryVersion::V2, tenths(u32::from(code)))
            };
            Ok(Query {
                version,
                max_resp,
                group,
                s_flag: false,
                qrv: 0,
                qqi: Duration::ZERO,
                sources: Vec::new(),
            })
        }
        // "Query messages that do not match any of the above conditions (e.g., a Query of
        // length 10 octets) MUST be silently ignored" (RFC 3376 section 7.1).
        n if n < V3_QUERY_MIN_LEN => Err(WireError::Malformed),
        _ => {
            let s_qrv = buf[field::S_QRV];
            let num_sources = usize::from(be16(&buf[field::QUERY_NUM_SOURCES]));
            // Octets after the source list are Additional Data: ignored (RFC 3376 4.1.10).
            let sources =
                Reader::new(buf, field::QUERY_SOURCES).addresses::<4, Ipv4Addr>(num_sources)?;
            Ok(Query {
                version: QueryVersion::V3,
                // RFC 3376 section 4.1.1: the code is a float in units of 1/10 second.
                max_resp: tenths(decode_code(code)),
                group,
                s_flag: s_qrv & S_FLAG != 0,
                qrv: s_qrv & QRV_MASK,
                // RFC 3376 section 4.1.7: QQIC is the same float, in seconds.
                qqi: Duration::from_secs(u64::from(decode_code(buf[field::QQIC]))),
                sources,
            })
        }
    }
}

/// An IGMPv3 report (RFC 3376 section 4.2); `buf` is at least `MIN_LEN`.
fn parse_v3_report(buf: &[u8]) -> Result<Message> {
    let num_records = usize::from(be16(&buf[field::REPORT_NUM_RECORDS]));
    let mut r = Reader::new(buf, field::REPORT_RECORDS);
    let mut records = Vec::new();
    for _ in 0..num_records {
        // RFC 3376 sections 4.2.4 to 4.2.10 (aux data in 32-bit words, skipped).
        let (record_type, group, sources) = r.group_record::<4, Ipv4Addr>()?;
        records.push(GroupRecord {
            record_type,
            group,
            sources,
        });
    }
    // Octets after the last record are Additional Data: ignored (RFC 3376 4.2.11).
    Ok(Message::ReportV3 { records })
}

fn tenths(v: u32) -> Duration {
    Duration::from_millis(u64::from(v) * 100)
}

/// Decode an 8-bit Max Resp Code / QQIC (RFC 3376 sections 4.1.1 and 4.1.7): below 128 the
/// value itself, else the mantissa/exponent float `(mant | 0x10) << (exp + 3)`.
pub fn decode_code(code: u8) -> u32 {
    if code < 0x80 {
        return u32::from(code);
    }
    // RFC 3376 4.1.1: |1| exp (3 bits) | mant (4 bits)|.
    let exp = u32::from((code >> 4) & 0x07);
    let mant = u32::from(code & 0x0f);
    (mant | 0x10) << (exp + 3)
}

/// Encode a value into the 8-bit code (the inverse of `decode_code`, rounding down to the
/// nearest representable value; values above the maximum, 31744, saturate).
pub fn encode_code(value: u32) -> u8 {
    if value < 0x80 {
        return value as u8;
    }
    if value >= CODE_MAX_VALUE {
        return 0xff;
    }
    // Find the exponent that leaves a 5-bit mantissa with its top bit set (16..=31); the
    // bits shifted out are what rounding down drops. 128 <= value < 31744 so exp <= 7.
    let mut exp = 0u32;
    while value >> (exp + 3) > 0x1f {
        exp += 1;
    }
    let mant = (value >> (exp + 3)) & 0x0f;
    0x80 | ((exp as u8) << 4) | mant as u8
}

/// A duration in whole tenths of a second (rounded down), saturating.
fn as_tenths(d: Duration) -> u32 {
    u32::try_from(d.as_millis() / 100).unwrap_or(u32::MAX)
}

/// A count field: the caller's list is cut to what 16 bits can say, so the count and the
/// addresses that follow it always agree.
fn count16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// The fixed 8 octets common to every message, checksum zero (filled in by `emit`).
fn push_head(out: &mut Vec<u8>, kind: u8, code: u8, group: Ipv4Addr) {
    out.extend_from_slice(&[kind, code, 0, 0]);
    out.extend_from_slice(&group.octets());
}

fn push_addrs(out: &mut Vec<u8>, addrs: &[Ipv4Addr], count: u16) {
    for a in &addrs[..usize::from(count)] {
        out.extend_from_slice(&a.octets());
    }
}

/// Serialise an IGMP message with its checksum, appending to `out`. Queries: v1/v2 are 8
/// bytes (v2 max resp in 1/10 s, capped at 255), v3 are 12 + 4 * sources bytes.
/// Reports and leaves are emitted too (tests and fuzzing use them).
///
/// Lists longer than 65535 entries are cut to 65535 so the counts stay true. A v2 query
/// whose max resp is below 100 ms is sent with code 1, because code 0 would make it a v1
/// query (RFC 3376 section 7.1). A v3 QRV above 7 is sent as 0 (RFC 3376 section 4.1.6).
pub fn emit(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    match msg {
        Message::Query(q) => match q.version {
            // RFC 1112 appendix I: unused octet zero.
            QueryVersion::V1 => push_head(out, TYPE_QUERY, 0, q.group),
            QueryVersion::V2 => {
                // RFC 2236 section 2.2, in 1/10 s; at least 1 to stay a v2 query.
                let code = as_tenths(q.max_resp).clamp(1, 255) as u8;
                push_head(out, TYPE_QUERY, code, q.group);
            }
            QueryVersion::V3 => {
                push_head(out, TYPE_QUERY, encode_code(as_tenths(q.max_resp)), q.group);
                // RFC 3376 section 4.1.6: "If the querier's [Robustness Variable] exceeds
                // 7, the maximum value of the QRV field, the QRV is set to zero."
                let qrv = if q.qrv > QRV_MASK { 0 } else { q.qrv };
                let s = if q.s_flag { S_FLAG } else { 0 };
                let qqi = u32::try_from(q.qqi.as_secs()).unwrap_or(u32::MAX);
                let n = count16(q.sources.len());
                out.extend_from_slice(&[s | qrv, encode_code(qqi)]);
                out.extend_from_slice(&n.to_be_bytes());
                push_addrs(out, &q.sources, n);
            }
        },
        Message::ReportV1 { group } => push_head(out, TYPE_V1_REPORT, 0, *group),
        Message::ReportV2 { group } => push_head(out, TYPE_V2_REPORT, 0, *group),
        Message::LeaveV2 { group } => push_head(out, TYPE_V2_LEAVE, 0, *group),
        Message::ReportV3 { records } => {
            let n = count16(records.len());
            out.extend_from_slice(&[TYPE_V3_REPORT, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&n.to_be_bytes());
            for rec in &records[..usize::from(n)] {
                let ns = count16(rec.sources.len());
                // Aux Data Len 0: we never send auxiliary data (RFC 3376 section 4.2.6).
                out.extend_from_slice(&[rec.record_type.into(), 0]);
                out.extend_from_slice(&ns.to_be_bytes());
                out.extend_from_slice(&rec.group.octets());
                push_addrs(out, &rec.sources, ns);
            }
        }
    }
    let c = checksum::checksum(&out[start..]);
    out[start + field::CHECKSUM.start..start + field::CHECKSUM.end]
        .copy_from_slice(&c.to_be_bytes());
}

/// A whole Ethernet frame carrying `msg` over IPv4 with a Router Alert option and TTL 1,
/// from `src_mac`/`src_ip` to `dst_ip` (Ethernet destination: the group MAC of `dst_ip`).
pub fn build_frame(
    src_mac: super::MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    msg: &Message,
) -> Vec<u8> {
    const IP_START: usize = ethernet::HEADER_LEN;
    const IGMP_START: usize = IP_START + ipv4::ROUTER_ALERT_HEADER_LEN;
    // Emit the message in place after room for both headers, then fill the headers in.
    let mut frame = vec![0u8; IGMP_START];
    emit(msg, &mut frame);
    let igmp_len = frame.len() - IGMP_START;
    // RFC 1112 section 6.4: the group's Ethernet address.
    let dst_mac = crate::wire::ethernet::ipv4_group_mac(dst_ip);
    ethernet::write_header(&mut frame, dst_mac, src_mac, ethernet::ETHERTYPE_IPV4);
    ipv4::write_router_alert_header(&mut frame[IP_START..], src_ip, dst_ip, igmp_len);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MacAddr;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(a, b, c, d)
    }

    #[test]
    fn weight_counts_records_and_sources() {
        let g = ip(239, 1, 1, 1);
        assert_eq!(Message::ReportV2 { group: g }.weight(), 1);
        let rec = |n: usize| GroupRecord {
            record_type: RecordType::ModeIsInclude,
            group: g,
            sources: vec![ip(10, 0, 0, 1); n],
        };
        let m = Message::ReportV3 {
            records: vec![rec(0), rec(3)],
        };
        assert_eq!(m.weight(), 1 + 1 + (1 + 3));
    }

    // Reference messages built byte by byte with python3 `struct` (not captures), in the
    // layout Linux uses for reports; checksums computed there, independently of this crate.

    /// The IGMP part of a Linux-style IGMPv3 report: CHANGE_TO_EXCLUDE {} for 239.1.2.3 (a join)
    /// and CHANGE_TO_INCLUDE {10.0.0.1, 10.0.0.2} for 232.1.1.1, checksum e8f0.
    const LINUX_V3_REPORT: [u8; 32] = [
        0x22, 0x00, 0xe8, 0xf0, 0x00, 0x00, 0x00, 0x02, 0x04, 0x00, 0x00, 0x00, 0xef, 0x01, 0x02,
        0x03, 0x03, 0x00, 0x00, 0x02, 0xe8, 0x01, 0x01, 0x01, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00,
        0x00, 0x02,
    ];
    /// A Linux-style IGMPv2 report for 239.1.2.3, checksum f8fa.
    const LINUX_V2_REPORT: [u8; 8] = [0x16, 0x00, 0xf8, 0xfa, 0xef, 0x01, 0x02, 0x03];
    /// An IGMPv2 leave for 239.1.2.3, checksum f7fa.
    const V2_LEAVE: [u8; 8] = [0x17, 0x00, 0xf7, 0xfa, 0xef, 0x01, 0x02, 0x03];
    /// An IGMPv1 report for 239.1.2.3, checksum fcfa.
    const V1_REPORT: [u8; 8] = [0x12, 0x00, 0xfc, 0xfa, 0xef, 0x01, 0x02, 0x03];
    /// IGMPv1 general query, checksum eeff.
    const V1_QUERY: [u8; 8] = [0x11, 0x00, 0xee, 0xff, 0, 0, 0, 0];
    /// IGMPv2 general query, Max Resp Time 10 s, checksum ee9b.
    const V2_QUERY: [u8; 8] = [0x11, 0x64, 0xee, 0x9b, 0, 0, 0, 0];
    /// IGMPv2 group-specific query for 239.1.2.3, 1 s, checksum fdf0.
    const V2_GROUP_QUERY: [u8; 8] = [0x11, 0x0a, 0xfd, 0xf0, 0xef, 0x01, 0x02, 0x03];
    /// IGMPv3 general query with the RFC 3376 defaults: 10 s, QRV 2, QQIC 125, checksum ec1e.
    const V3_QUERY: [u8; 12] = [0x11, 0x64, 0xec, 0x1e, 0, 0, 0, 0, 0x02, 0x7d, 0, 0];
    /// IGMPv3 group-and-source-specific query: 239.1.2.3 {10.0.0.1, 10.0.0.2}, 1 s, S flag
    /// set (a retransmission, RFC 3376 6.6.3.2), QRV 2, QQIC 125, checksum df6e.
    const V3_GS_QUERY: [u8; 20] = [
        0x11, 0x0a, 0xdf, 0x6e, 0xef, 0x01, 0x02, 0x03, 0x0a, 0x7d, 0x00, 0x02, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02,
    ];

    /// Fill in the checksum of a hand-made message.
    fn fix(mut m: Vec<u8>) -> Vec<u8> {
        if m.len() >= 4 {
            m[2..4].fill(0);
            let c = checksum::checksum(&m);
            m[2..4].copy_from_slice(&c.to_be_bytes());
        }
        m
    }

    fn emitted(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        emit(msg, &mut out);
        out
    }

    fn query(version: QueryVersion, max_resp_ms: u64, group: Ipv4Addr) -> Query {
        Query {
            version,
            max_resp: Duration::from_millis(max_resp_ms),
            group,
            s_flag: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: Vec::new(),
        }
    }

    fn v3_query(max_resp_ms: u64, group: Ipv4Addr, sources: Vec<Ipv4Addr>) -> Query {
        Query {
            qrv: 2,
            qqi: Duration::from_secs(125),
            sources,
            ..query(QueryVersion::V3, max_resp_ms, group)
        }
    }

    fn linux_v3_records() -> Vec<GroupRecord> {
        vec![
            GroupRecord {
                record_type: RecordType::ChangeToExclude,
                group: ip(239, 1, 2, 3),
                sources: vec![],
            },
            GroupRecord {
                record_type: RecordType::ChangeToInclude,
                group: ip(232, 1, 1, 1),
                sources: vec![ip(10, 0, 0, 1), ip(10, 0, 0, 2)],
            },
        ]
    }

    /// One message of every kind, each with non-zero bytes at its end.
    fn every_kind() -> Vec<Message> {
        let mut v3s = v3_query(
            1000,
            ip(239, 1, 2, 3),
            vec![ip(10, 0, 0, 1), ip(10, 0, 0, 2)],
        );
        v3s.s_flag = true;
        vec![
            Message::Query(query(QueryVersion::V1, 0, Ipv4Addr::UNSPECIFIED)),
            Message::Query(query(QueryVersion::V2, 10_000, Ipv4Addr::UNSPECIFIED)),
            Message::Query(query(QueryVersion::V2, 1_000, ip(239, 1, 2, 3))),
            Message::Query(v3_query(10_000, Ipv4Addr::UNSPECIFIED, vec![])),
            Message::Query(v3_query(1_000, ip(239, 1, 2, 3), vec![])),
            Message::Query(v3s),
            Message::ReportV1 {
                group: ip(239, 1, 2, 3),
            },
            Message::ReportV2 {
                group: ip(239, 1, 2, 3),
            },
            Message::LeaveV2 {
                group: ip(239, 1, 2, 3),
            },
            Message::ReportV3 {
                records: linux_v3_records(),
            },
            Message::ReportV3 {
                records: vec![GroupRecord {
                    record_type: RecordType::Unknown(9),
                    group: ip(239, 9, 9, 9),
                    sources: vec![ip(192, 0, 2, 1)],
                }],
            },
        ]
    }

    // ---- the float code (RFC 3376 4.1.1) ----

    #[test]
    fn decode_code_known_values() {
        for c in 0u8..128 {
            assert_eq!(decode_code(c), u32::from(c));
        }
        // exp 0, mant 0: 0x10 << 3.
        assert_eq!(decode_code(0x80), 128);
        assert_eq!(decode_code(0x8f), 0x1f << 3);
        assert_eq!(decode_code(0x90), 0x10 << 4);
        assert_eq!(decode_code(0xa5), 0x15 << 5);
        assert_eq!(decode_code(0xff), 31744);
    }

    #[test]
    fn decode_is_strictly_increasing() {
        for c in 1..=255u8 {
            assert!(decode_code(c) > decode_code(c - 1), "code {c}");
        }
    }

    #[test]
    fn code_round_trip_all_256() {
        // Every code has a unique value, so decode then encode gives the code back.
        for c in 0..=255u8 {
            assert_eq!(encode_code(decode_code(c)), c, "code {c:#04x}");
        }
    }

    #[test]
    fn encode_rounds_down_to_largest_representable() {
        let table: Vec<u32> = (0..=255u8).map(decode_code).collect();
        for v in 0..=40_000u32 {
            let got = decode_code(encode_code(v));
            // The largest representable value not above v.
            let want = *table.iter().rev().find(|&&t| t <= v).unwrap();
            assert_eq!(got, want, "value {v}");
            assert!(got <= v);
        }
    }

    #[test]
    fn encode_saturates() {
        assert_eq!(encode_code(31744), 0xff);
        assert_eq!(encode_code(31745), 0xff);
        assert_eq!(encode_code(u32::MAX), 0xff);
        assert_eq!(encode_code(31743), 0xfe);
        assert_eq!(encode_code(127), 127);
        assert_eq!(encode_code(128), 0x80);
        assert_eq!(encode_code(135), 0x80);
        assert_eq!(encode_code(136), 0x81);
    }

    // ---- record types ----

    #[test]
    fn record_type_round_trip_all_256() {
        for v in 0..=255u8 {
            let t = RecordType::from(v);
            assert_eq!(u8::from(t), v);
            let known = (1..=6).contains(&v);
            assert_eq!(!matches!(t, RecordType::Unknown(_)), known, "value {v}");
        }
        assert_eq!(RecordType::from(1), RecordType::ModeIsInclude);
        assert_eq!(RecordType::from(2), RecordType::ModeIsExclude);
        assert_eq!(RecordType::from(3), RecordType::ChangeToInclude);
        assert_eq!(RecordType::from(4), RecordType::ChangeToExclude);
        assert_eq!(RecordType::from(5), RecordType::AllowNew);
        assert_eq!(RecordType::from(6), RecordType::BlockOld);
        assert_eq!(RecordType::from(0), RecordType::Unknown(0));
    }

    // ---- real bytes ----

    #[test]
    fn parse_linux_v3_report() {
        assert_eq!(
            parse(&LINUX_V3_REPORT),
            Ok(Message::ReportV3 {
                records: linux_v3_records()
            })
        );
    }

    #[test]
    fn parse_linux_v2_report_and_friends() {
        let g = ip(239, 1, 2, 3);
        assert_eq!(parse(&LINUX_V2_REPORT), Ok(Message::ReportV2 { group: g }));
        assert_eq!(parse(&V2_LEAVE), Ok(Message::LeaveV2 { group: g }));
        assert_eq!(parse(&V1_REPORT), Ok(Message::ReportV1 { group: g }));
    }

    #[test]
    fn parse_queries_by_version() {
        assert_eq!(
            parse(&V1_QUERY),
            Ok(Message::Query(query(
                QueryVersion::V1,
                0,
                Ipv4Addr::UNSPECIFIED
            )))
        );
        assert_eq!(
            parse(&V2_QUERY),
            Ok(Message::Query(query(
                QueryVersion::V2,
                10_000,
                Ipv4Addr::UNSPECIFIED
            )))
        );
        assert_eq!(
            parse(&V2_GROUP_QUERY),
            Ok(Message::Query(query(
                QueryVersion::V2,
                1_000,
                ip(239, 1, 2, 3)
            )))
        );
        assert_eq!(
            parse(&V3_QUERY),
            Ok(Message::Query(v3_query(
                10_000,
                Ipv4Addr::UNSPECIFIED,
                vec![]
            )))
        );
        let mut gs = v3_query(
            1_000,
            ip(239, 1, 2, 3),
            vec![ip(10, 0, 0, 1), ip(10, 0, 0, 2)],
        );
        gs.s_flag = true;
        assert_eq!(parse(&V3_GS_QUERY), Ok(Message::Query(gs)));
    }

    #[test]
    fn v2_max_resp_is_code_in_tenths() {
        for code in 1..=255u8 {
            let m = fix(vec![0x11, code, 0, 0, 0, 0, 0, 0]);
            let Ok(Message::Query(q)) = parse(&m) else {
                panic!("code {code}")
            };
            assert_eq!(q.version, QueryVersion::V2);
            assert_eq!(q.max_resp, Duration::from_millis(u64::from(code) * 100));
        }
    }

    #[test]
    fn v3_query_float_fields_and_flags() {
        // Max Resp Code 0x8f = 248 tenths, S set, QRV 7, reserved bits set (ignored),
        // QQIC 0xff = 31744 s.
        let m = fix(vec![0x11, 0x8f, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
        let Ok(Message::Query(q)) = parse(&m) else {
            panic!()
        };
        assert_eq!(q.version, QueryVersion::V3);
        assert_eq!(q.max_resp, Duration::from_millis(24_800));
        assert!(q.s_flag);
        assert_eq!(q.qrv, 7);
        assert_eq!(q.qqi, Duration::from_secs(31744));
        // v3 with Max Resp Code 0 is still v3: the length decides (RFC 3376 7.1).
        let m = fix(vec![0x11, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0, 0]);
        let Ok(Message::Query(q)) = parse(&m) else {
            panic!()
        };
        assert_eq!(q.version, QueryVersion::V3);
        assert_eq!(
            (q.max_resp, q.s_flag, q.qrv, q.qqi),
            (Duration::ZERO, false, 0, Duration::ZERO)
        );
    }

    // ---- errors ----

    #[test]
    fn short_messages_are_truncated() {
        for len in 0..MIN_LEN {
            assert_eq!(
                parse(&fix(vec![0x16; len])),
                Err(WireError::Truncated),
                "len {len}"
            );
        }
    }

    #[test]
    fn every_truncation_of_every_kind_is_an_error() {
        let mut all: Vec<Vec<u8>> = every_kind().iter().map(emitted).collect();
        for real in [
            &LINUX_V3_REPORT[..],
            &LINUX_V2_REPORT,
            &V2_LEAVE,
            &V1_REPORT,
            &V1_QUERY,
            &V2_QUERY,
            &V3_QUERY,
            &V3_GS_QUERY,
        ] {
            all.push(real.to_vec());
        }
        for m in &all {
            let whole = parse(m);
            assert!(whole.is_ok(), "{m:02x?}");
            for len in 0..m.len() {
                // As cut: the checksum or a length check catches it.
                let cut = parse(&m[..len]);
                assert!(cut.is_err(), "{m:02x?} cut to {len}: {cut:?}");
                // With the checksum fixed up the length checks must still hold.
                let refixed = parse(&fix(m[..len].to_vec()));
                if len < MIN_LEN {
                    assert_eq!(refixed, Err(WireError::Truncated));
                } else if m[0] == TYPE_QUERY && len == MIN_LEN {
                    // An 8-octet prefix of a v3 query is a well-formed v1/v2 query.
                    assert!(refixed.is_ok());
                } else if m[0] == TYPE_QUERY || m[0] == TYPE_V3_REPORT {
                    assert_eq!(refixed, Err(WireError::Malformed), "{m:02x?} cut to {len}");
                }
            }
        }
    }

    #[test]
    fn every_single_bit_error_is_caught() {
        for m in every_kind().iter().map(emitted) {
            for bit in 0..m.len() * 8 {
                let mut bad = m.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    parse(&bad),
                    Err(WireError::BadChecksum),
                    "{m:02x?} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn corrupt_checksum() {
        let mut m = LINUX_V2_REPORT;
        m[3] = m[3].wrapping_add(1);
        assert_eq!(parse(&m), Err(WireError::BadChecksum));
        let mut m = LINUX_V3_REPORT;
        m[2..4].fill(0);
        assert_eq!(parse(&m), Err(WireError::BadChecksum));
    }

    #[test]
    fn query_of_9_to_11_octets_is_malformed() {
        for len in 9..=11 {
            let m = fix(vec![0x11; len]);
            assert_eq!(parse(&m), Err(WireError::Malformed), "len {len}");
        }
    }

    #[test]
    fn unknown_types() {
        let known = [
            TYPE_QUERY,
            TYPE_V1_REPORT,
            TYPE_V2_REPORT,
            TYPE_V2_LEAVE,
            TYPE_V3_REPORT,
        ];
        for t in 0..=255u8 {
            if known.contains(&t) {
                continue;
            }
            let m = fix(vec![t, 0, 0, 0, 239, 1, 2, 3]);
            assert_eq!(parse(&m), Err(WireError::UnknownType(t)));
        }
        // A DVMRP (0x13) message is not ours.
        assert_eq!(
            parse(&fix(vec![0x13; 12])),
            Err(WireError::UnknownType(0x13))
        );
    }

    #[test]
    fn v3_query_source_count_overrun() {
        // Claims 3 sources, carries 2.
        let mut m = V3_GS_QUERY.to_vec();
        m[11] = 3;
        assert_eq!(parse(&fix(m)), Err(WireError::Malformed));
        // Claims 65535 sources with none present.
        let m = fix(vec![0x11, 0x64, 0, 0, 0, 0, 0, 0, 0x02, 0x7d, 0xff, 0xff]);
        assert_eq!(parse(&m), Err(WireError::Malformed));
        // Claims 1, carries 3 bytes of it.
        let m = fix(vec![
            0x11, 0x64, 0, 0, 0, 0, 0, 0, 0x02, 0x7d, 0, 1, 10, 0, 0,
        ]);
        assert_eq!(parse(&m), Err(WireError::Malformed));
    }

    #[test]
    fn v3_query_additional_data_ignored() {
        // RFC 3376 4.1.10: octets after the sources count in the checksum only.
        let mut m = V3_GS_QUERY.to_vec();
        m.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x01]);
        assert_eq!(parse(&fix(m)), parse(&V3_GS_QUERY));
    }

    /// A v3 report header with `n` records claimed, then `body`.
    fn v3_report(n: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0x22, 0, 0, 0, 0, 0];
        m.extend_from_slice(&n.to_be_bytes());
        m.extend_from_slice(body);
        fix(m)
    }

    #[test]
    fn v3_report_record_count_overrun() {
        let body = &LINUX_V3_REPORT[8..];
        assert!(parse(&v3_report(2, body)).is_ok());
        assert_eq!(parse(&v3_report(3, body)), Err(WireError::Malformed));
        assert_eq!(parse(&v3_report(u16::MAX, body)), Err(WireError::Malformed));
        assert_eq!(parse(&v3_report(1, &[])), Err(WireError::Malformed));
        // Fewer records claimed than present: the rest is additional data, ignored
        // (RFC 3376 4.2.11).
        assert_eq!(
            parse(&v3_report(1, body)),
            Ok(Message::ReportV3 {
                records: linux_v3_records()[..1].to_vec()
            })
        );
        assert_eq!(
            parse(&v3_report(0, body)),
            Ok(Message::ReportV3 { records: vec![] })
        );
    }

    #[test]
    fn v3_report_source_count_overrun() {
        // One record claiming 2 sources with 1 present.
        let rec = [0x01, 0x00, 0x00, 0x02, 239, 1, 2, 3, 10, 0, 0, 1];
        assert_eq!(parse(&v3_report(1, &rec)), Err(WireError::Malformed));
        let rec = [0x01, 0x00, 0xff, 0xff, 239, 1, 2, 3];
        assert_eq!(parse(&v3_report(1, &rec)), Err(WireError::Malformed));
        // Record header itself cut short.
        assert_eq!(parse(&v3_report(1, &rec[..7])), Err(WireError::Malformed));
    }

    #[test]
    fn v3_report_aux_len_is_in_words() {
        // RFC 3376 4.2.6: Aux Data Len counts 32-bit words. Record 1 has aux len 1 (four
        // octets of aux data), then record 2 follows. Reading the length as octets (the
        // querierd bug) would start record 2 three octets early and misparse it.
        let body = [
            0x02, 0x01, 0x00, 0x01, 239, 1, 1, 1, 10, 0, 0, 1, 0xaa, 0xbb, 0xcc,
            0xdd, // rec 1
            0x05, 0x00, 0x00, 0x00, 239, 2, 2, 2, // rec 2
        ];
        assert_eq!(
            parse(&v3_report(2, &body)),
            Ok(Message::ReportV3 {
                records: vec![
                    GroupRecord {
                        record_type: RecordType::ModeIsExclude,
                        group: ip(239, 1, 1, 1),
                        sources: vec![ip(10, 0, 0, 1)],
                    },
                    GroupRecord {
                        record_type: RecordType::AllowNew,
                        group: ip(239, 2, 2, 2),
                        sources: vec![],
                    },
                ]
            })
        );
    }

    #[test]
    fn v3_report_aux_len_overrun() {
        // Aux len 1 word but only 1..=3 octets follow: not enough.
        for have in 0..4 {
            let mut rec = vec![0x01, 0x01, 0x00, 0x00, 239, 1, 2, 3];
            rec.extend(std::iter::repeat_n(0xaa, have));
            assert_eq!(
                parse(&v3_report(1, &rec)),
                Err(WireError::Malformed),
                "have {have}"
            );
        }
        // Aux len 255 words (1020 octets) with 1019 present.
        let mut rec = vec![0x01, 0xff, 0x00, 0x00, 239, 1, 2, 3];
        rec.extend(std::iter::repeat_n(0, 1019));
        assert_eq!(parse(&v3_report(1, &rec)), Err(WireError::Malformed));
        rec.push(0);
        assert!(parse(&v3_report(1, &rec)).is_ok());
    }

    #[test]
    fn unknown_record_type_round_trips() {
        for t in [0u8, 7, 8, 0x80, 0xff] {
            let rec = [t, 0x00, 0x00, 0x01, 239, 1, 2, 3, 10, 0, 0, 1];
            let bytes = v3_report(1, &rec);
            let msg = parse(&bytes).unwrap();
            let Message::ReportV3 { records } = &msg else {
                panic!()
            };
            assert_eq!(records[0].record_type, RecordType::Unknown(t));
            assert_eq!(emitted(&msg), bytes);
        }
    }

    // ---- emit ----

    #[test]
    fn emit_matches_real_bytes() {
        let g = ip(239, 1, 2, 3);
        assert_eq!(
            emitted(&Message::ReportV3 {
                records: linux_v3_records()
            }),
            LINUX_V3_REPORT
        );
        assert_eq!(emitted(&Message::ReportV2 { group: g }), LINUX_V2_REPORT);
        assert_eq!(emitted(&Message::LeaveV2 { group: g }), V2_LEAVE);
        assert_eq!(emitted(&Message::ReportV1 { group: g }), V1_REPORT);
        let any = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            emitted(&Message::Query(query(QueryVersion::V1, 0, any))),
            V1_QUERY
        );
        assert_eq!(
            emitted(&Message::Query(query(QueryVersion::V2, 10_000, any))),
            V2_QUERY
        );
        assert_eq!(
            emitted(&Message::Query(v3_query(10_000, any, vec![]))),
            V3_QUERY
        );
        let mut gs = v3_query(1_000, g, vec![ip(10, 0, 0, 1), ip(10, 0, 0, 2)]);
        gs.s_flag = true;
        assert_eq!(emitted(&Message::Query(gs)), V3_GS_QUERY);
    }

    #[test]
    fn emit_parse_round_trip_every_kind() {
        for msg in every_kind() {
            let bytes = emitted(&msg);
            assert!(checksum::verify(&bytes));
            assert_eq!(parse(&bytes), Ok(msg.clone()), "{bytes:02x?}");
        }
    }

    #[test]
    fn emit_appends() {
        let mut out = vec![0xaa, 0xbb, 0xcc];
        emit(
            &Message::ReportV2 {
                group: ip(239, 1, 2, 3),
            },
            &mut out,
        );
        assert_eq!(&out[..3], &[0xaa, 0xbb, 0xcc]);
        assert_eq!(&out[3..], &LINUX_V2_REPORT);
    }

    #[test]
    fn emit_lengths() {
        let lens: Vec<usize> = every_kind().iter().map(|m| emitted(m).len()).collect();
        assert_eq!(lens, [8, 8, 8, 12, 12, 20, 8, 8, 8, 32, 20]);
    }

    fn emitted_query(q: Query) -> Vec<u8> {
        emitted(&Message::Query(q))
    }

    #[test]
    fn emit_v1_query_code_is_zero() {
        let b = emitted_query(query(QueryVersion::V1, 10_000, Ipv4Addr::UNSPECIFIED));
        assert_eq!(b[1], 0);
    }

    #[test]
    fn emit_v2_query_code() {
        let any = Ipv4Addr::UNSPECIFIED;
        // Rounds down to whole tenths.
        assert_eq!(emitted_query(query(QueryVersion::V2, 1_299, any))[1], 12);
        // Capped at 255 (25.5 s).
        assert_eq!(emitted_query(query(QueryVersion::V2, 25_500, any))[1], 255);
        assert_eq!(emitted_query(query(QueryVersion::V2, 60_000, any))[1], 255);
        let mut huge = query(QueryVersion::V2, 0, any);
        huge.max_resp = Duration::MAX;
        assert_eq!(emitted_query(huge)[1], 255);
        // Below 100 ms would be code 0, a v1 query: sent as code 1 to stay v2.
        for ms in [0, 50, 99] {
            let b = emitted_query(query(QueryVersion::V2, ms, any));
            assert_eq!(b[1], 1);
            let Ok(Message::Query(q)) = parse(&b) else {
                panic!()
            };
            assert_eq!(q.version, QueryVersion::V2);
        }
    }

    #[test]
    fn emit_v3_query_fields() {
        let mut q = v3_query(125_000, Ipv4Addr::UNSPECIFIED, vec![]);
        // 1250 tenths -> the largest code not above: 0x80|exp 3|mant 3 = 1216.
        q.qqi = Duration::from_secs(200);
        q.s_flag = true;
        q.qrv = 5;
        let b = emitted_query(q.clone());
        assert_eq!(decode_code(b[1]), 1216);
        assert_eq!(b[1], encode_code(1250));
        assert_eq!(b[8], 0x08 | 5);
        assert_eq!(decode_code(b[9]), 200);
        // RFC 3376 4.1.6: a robustness above 7 is sent as QRV 0.
        q.qrv = 8;
        assert_eq!(emitted_query(q.clone())[8], 0x08);
        q.qrv = 255;
        q.s_flag = false;
        assert_eq!(emitted_query(q.clone())[8], 0);
        q.qrv = 7;
        assert_eq!(emitted_query(q.clone())[8], 7);
        // Saturation of both floats.
        q.max_resp = Duration::MAX;
        q.qqi = Duration::MAX;
        let b = emitted_query(q);
        assert_eq!((b[1], b[9]), (0xff, 0xff));
    }

    #[test]
    fn emit_v3_query_many_sources() {
        let sources: Vec<Ipv4Addr> = (0..300u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect();
        let q = v3_query(1_000, ip(239, 1, 2, 3), sources);
        let b = emitted_query(q.clone());
        assert_eq!(b.len(), 12 + 4 * 300);
        assert_eq!(parse(&b), Ok(Message::Query(q)));
    }

    #[test]
    fn emit_caps_counts_at_16_bits() {
        let sources = vec![ip(10, 0, 0, 1); 70_000];
        let q = v3_query(1_000, ip(239, 1, 2, 3), sources);
        let b = emitted_query(q);
        assert_eq!(&b[10..12], &[0xff, 0xff]);
        assert_eq!(b.len(), 12 + 4 * 65535);
        let Ok(Message::Query(back)) = parse(&b) else {
            panic!()
        };
        assert_eq!(back.sources.len(), 65535);
    }

    // ---- whole frames ----

    #[test]
    fn build_frame_layout_and_round_trip() {
        let mac = MacAddr(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
        let src = ip(192, 168, 1, 1);
        for msg in every_kind() {
            let dst = match &msg {
                Message::Query(q) if q.group.is_unspecified() => ALL_SYSTEMS,
                Message::Query(q) => q.group,
                Message::ReportV1 { group } | Message::ReportV2 { group } => *group,
                Message::LeaveV2 { .. } => ALL_ROUTERS,
                Message::ReportV3 { .. } => ALL_V3_ROUTERS,
            };
            let frame = build_frame(mac, src, dst, &msg);
            let igmp = emitted(&msg);
            assert_eq!(frame.len(), 14 + 24 + igmp.len());
            assert_eq!(&frame[38..], &igmp[..]);
            assert_eq!(
                &frame[0..6],
                &crate::wire::ethernet::ipv4_group_mac(dst).octets()
            );
            assert_eq!(&frame[6..12], &mac.octets());
            assert_eq!(&frame[12..14], &[0x08, 0x00]);
            // Version 4, IHL 6, TOS 0xc0, Router Alert.
            assert_eq!(&frame[14..16], &[0x46, 0xc0]);
            assert_eq!(&frame[34..38], &[0x94, 0x04, 0x00, 0x00]);
            let f = crate::wire::parse_igmp_frame(&frame).unwrap();
            assert_eq!(f.src_mac, mac);
            assert_eq!(f.dst_mac, crate::wire::ethernet::ipv4_group_mac(dst));
            assert_eq!((f.ip.src, f.ip.dst, f.ip.ttl), (src, dst, 1));
            assert_eq!((f.ip.header_len, f.ip.total_len), (24, 24 + igmp.len()));
            assert!(f.ip.router_alert);
            assert_eq!(f.message, msg);
        }
    }
}
