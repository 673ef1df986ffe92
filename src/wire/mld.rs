//! MLD messages, the IPv6 counterpart of IGMP: MLDv1 (RFC 2710) and MLDv2 (RFC 3810).
//!
//! MLD messages are ICMPv6 messages. Their checksum covers an IPv6 pseudo-header (source,
//! destination, upper-layer length, next header 58; RFC 8200 section 8.1), so [`parse`] and
//! [`emit`] take the two addresses. The IPv6 framing (hop-by-hop Router Alert, hop limit 1,
//! link-local source) is judged by the caller. Group records reuse IGMPv3's record types:
//! RFC 3810 section 5.2.12 numbers them the same way.

use super::checksum as inet;
use super::igmp::decode_code;
#[cfg(test)]
use super::igmp::RecordType;
use super::{Reader, Result, WireError};
use std::net::Ipv6Addr;
use std::time::Duration;

/// ICMPv6 types of MLD (RFC 2710 section 3, RFC 3810 sections 5.1 and 5.2).
pub const TYPE_QUERY: u8 = 130;
pub const TYPE_V1_REPORT: u8 = 131;
pub const TYPE_V1_DONE: u8 = 132;
pub const TYPE_V2_REPORT: u8 = 143;

/// IPv6 next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// All-nodes, the destination of general queries (RFC 3810 section 5.1.15).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers, the destination of MLDv1 Done (RFC 2710 section 3).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// All MLDv2-capable routers, the destination of MLDv2 reports (RFC 3810 section 5.2.14).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// Length of an MLDv1 message and the shortest MLD message (RFC 2710 section 3).
pub const V1_LEN: usize = 24;
/// Length of an MLDv2 query without sources (RFC 3810 section 5.1).
pub const V2_QUERY_MIN_LEN: usize = 28;

mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const MAX_RESP: Range<usize> = 4..6;
    pub const ADDRESS: Range<usize> = 8..24;
    pub const S_QRV: usize = 24;
    pub const QQIC: usize = 25;
    pub const QUERY_NUM_SOURCES: Range<usize> = 26..28;
    pub const QUERY_SOURCES: usize = 28;
    pub const REPORT_NUM_RECORDS: Range<usize> = 6..8;
    pub const REPORT_RECORDS: usize = 8;
    // Records (RFC 3810 section 5.2.4): see `Reader::group_record` in wire/mod.rs.
}

const S_FLAG: u8 = 0x08;
const QRV_MASK: u8 = 0x07;

/// Query version, told apart by length (RFC 3810 section 8.1): 24 octets is MLDv1, 28 or
/// more MLDv2; anything else is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueryVersion {
    V1,
    V2,
}

/// A multicast listener query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub version: QueryVersion,
    /// Decoded Maximum Response Delay (v1: milliseconds; v2: RFC 3810 5.1.3 float).
    pub max_resp: Duration,
    /// `::` for a general query.
    pub group: Ipv6Addr,
    /// v2 only (false otherwise): Suppress Router-Side Processing.
    pub s_flag: bool,
    /// v2 only (0 otherwise): Querier's Robustness Variable.
    pub qrv: u8,
    /// v2 only (zero otherwise): decoded Querier's Query Interval (RFC 3810 5.1.9).
    pub qqi: Duration,
    /// v2 only: sources of a multicast-address-and-source-specific query.
    pub sources: Vec<Ipv6Addr>,
}

/// One multicast address record of an MLDv2 report (RFC 3810 section 5.2.4). Auxiliary data
/// is skipped; its length is in 32-bit words (section 5.2.6).
pub type AddressRecord = super::Record<Ipv6Addr>;

/// A parsed, checksum-verified MLD message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Query(Query),
    ReportV1 { group: Ipv6Addr },
    DoneV1 { group: Ipv6Addr },
    ReportV2 { records: Vec<AddressRecord> },
}

impl Message {
    /// Records and source addresses carried, plus one: the measure for bounding queues of
    /// parsed messages (see `igmp::Message::weight`).
    pub fn weight(&self) -> usize {
        1 + match self {
            Message::Query(q) => q.sources.len(),
            Message::ReportV2 { records } => {
                records.iter().map(|r| 1 + r.sources.len()).sum::<usize>()
            }
            _ => 0,
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// The ICMPv6 checksum sum over the pseudo-header and `msg` (RFC 8200 section 8.1): source,
/// destination, 32-bit upper-layer length, three zero octets and next header 58.
fn pseudo_sum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut head = [0u8; 40];
    head[0..16].copy_from_slice(&src.octets());
    head[16..32].copy_from_slice(&dst.octets());
    // An MLD message fits an IPv6 payload (at most 65535 octets without jumbograms), so the
    // length always fits 32 bits.
    head[32..36].copy_from_slice(&(msg.len() as u32).to_be_bytes());
    head[39] = NEXT_HEADER_ICMPV6;
    let a = u32::from(inet::sum(&head)) + u32::from(inet::sum(msg));
    ((a & 0xffff) + (a >> 16)) as u16
}

/// The value to store in the checksum field of `msg` (whose checksum field is zero), sent
/// from `src` to `dst`.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    !pseudo_sum(src, dst, msg)
}

/// Parse an MLD message: the ICMPv6 message `buf` (the IPv6 payload after any extension
/// headers), sent from `src` to `dst`. Verifies the checksum over the pseudo-header and the
/// whole message. A report whose record, source or aux-data counts overrun the message is
/// `Malformed`; a query neither 24 nor at least 28 octets long is `Malformed` (RFC 3810
/// section 8.1 says ignore it); other ICMPv6 types are `UnknownType`.
pub fn parse(src: Ipv6Addr, dst: Ipv6Addr, buf: &[u8]) -> Result<Message> {
    if buf.len() < field::REPORT_RECORDS {
        return Err(WireError::Truncated);
    }
    if pseudo_sum(src, dst, buf) != 0xffff {
        return Err(WireError::BadChecksum);
    }
    match buf[field::TYPE] {
        TYPE_QUERY => parse_query(buf).map(Message::Query),
        TYPE_V1_REPORT => v1_group(buf).map(|group| Message::ReportV1 { group }),
        TYPE_V1_DONE => v1_group(buf).map(|group| Message::DoneV1 { group }),
        TYPE_V2_REPORT => parse_v2_report(buf),
        other => Err(WireError::UnknownType(other)),
    }
}

/// The multicast address of an MLDv1 report or done (RFC 2710 section 3.6).
fn v1_group(buf: &[u8]) -> Result<Ipv6Addr> {
    buf.get(field::ADDRESS)
        .map(addr)
        .ok_or(WireError::Truncated)
}

fn parse_query(buf: &[u8]) -> Result<Query> {
    if buf.len() < V1_LEN {
        return Err(WireError::Truncated);
    }
    let code = be16(&buf[field::MAX_RESP]);
    let group = addr(&buf[field::ADDRESS]);
    match buf.len() {
        // RFC 2710 section 3.4: Maximum Response Delay in milliseconds.
        V1_LEN => Ok(Query {
            version: QueryVersion::V1,
            max_resp: Duration::from_millis(u64::from(code)),
            group,
            s_flag: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: Vec::new(),
        }),
        // RFC 3810 section 8.1: queries of other lengths MUST be silently ignored.
        n if n < V2_QUERY_MIN_LEN => Err(WireError::Malformed),
        _ => {
            let s_qrv = buf[field::S_QRV];
            let num_sources = usize::from(be16(&buf[field::QUERY_NUM_SOURCES]));
            let mut r = Reader::new(buf, field::QUERY_SOURCES);
            let sources = r.addresses::<16, Ipv6Addr>(num_sources)?;
            Ok(Query {
                version: QueryVersion::V2,
                max_resp: Duration::from_millis(u64::from(decode_max_resp(code))),
                group,
                s_flag: s_qrv & S_FLAG != 0,
                qrv: s_qrv & QRV_MASK,
                // RFC 3810 section 5.1.9: QQIC is IGMPv3's 8-bit float, in seconds.
                qqi: Duration::from_secs(u64::from(decode_code(buf[field::QQIC]))),
                sources,
            })
        }
    }
}

/// An MLDv2 report (RFC 3810 section 5.2).
fn parse_v2_report(buf: &[u8]) -> Result<Message> {
    let num_records = usize::from(be16(&buf[field::REPORT_NUM_RECORDS]));
    let mut r = Reader::new(buf, field::REPORT_RECORDS);
    let mut records = Vec::new();
    for _ in 0..num_records {
        // RFC 3810 sections 5.2.4 to 5.2.10 (aux data in 32-bit words, skipped).
        let (record_type, group, sources) = r.group_record::<16, Ipv6Addr>()?;
        records.push(AddressRecord {
            record_type,
            group,
            sources,
        });
    }
    Ok(Message::ReportV2 { records })
}

/// Decode the 16-bit Maximum Response Code of an MLDv2 query into milliseconds (RFC 3810
/// section 5.1.3): below 32768 the value itself, else the float
/// `(mant | 0x1000) << (exp + 3)` with a 3-bit exponent and a 12-bit mantissa.
pub fn decode_max_resp(code: u16) -> u32 {
    if code < 0x8000 {
        u32::from(code)
    } else {
        let exp = u32::from((code >> 12) & 0x7);
        let mant = u32::from(code & 0x0fff);
        (mant | 0x1000) << (exp + 3)
    }
}

/// Encode milliseconds as a Maximum Response Code (RFC 3810 section 5.1.3), rounding down
/// to the nearest value the float can hold and saturating at the largest.
pub fn encode_max_resp(ms: u32) -> u16 {
    if ms < 0x8000 {
        return ms as u16;
    }
    for exp in (0..8u32).rev() {
        let base = 0x1000u32 << (exp + 3);
        if ms >= base {
            let mant = ((ms >> (exp + 3)) - 0x1000).min(0x0fff);
            return 0x8000 | ((exp as u16) << 12) | mant as u16;
        }
    }
    unreachable!("ms >= 0x8000 = 0x1000 << 3 always finds an exponent")
}

/// Append the ICMPv6 bytes of `msg`, sent from `src` to `dst`, with its checksum.
pub fn emit(src: Ipv6Addr, dst: Ipv6Addr, msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    let head = |t: u8, code: u16, out: &mut Vec<u8>| {
        out.extend_from_slice(&[t, 0, 0, 0]);
        out.extend_from_slice(&code.to_be_bytes());
    };
    match msg {
        Message::Query(q) => {
            let ms = u32::try_from(q.max_resp.as_millis()).unwrap_or(u32::MAX);
            match q.version {
                QueryVersion::V1 => head(TYPE_QUERY, ms.min(0xffff) as u16, out),
                QueryVersion::V2 => head(TYPE_QUERY, encode_max_resp(ms), out),
            }
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&q.group.octets());
            if q.version == QueryVersion::V2 {
                let s = if q.s_flag { S_FLAG } else { 0 };
                // RFC 3810 section 5.1.8: a robustness above 7 is sent as QRV 0.
                let qrv = if q.qrv > QRV_MASK { 0 } else { q.qrv };
                out.push(s | qrv);
                let qqi = u32::try_from(q.qqi.as_secs()).unwrap_or(u32::MAX);
                out.push(super::igmp::encode_code(qqi));
                // At most 65535 sources, so the count stays true.
                let n = q.sources.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&(n as u16).to_be_bytes());
                for s in &q.sources[..n] {
                    out.extend_from_slice(&s.octets());
                }
            }
        }
        Message::ReportV1 { group } | Message::DoneV1 { group } => {
            let t = if matches!(msg, Message::ReportV1 { .. }) {
                TYPE_V1_REPORT
            } else {
                TYPE_V1_DONE
            };
            head(t, 0, out);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&group.octets());
        }
        Message::ReportV2 { records } => {
            // Octets 4..6 are reserved (zero), the record count sits at 6..8.
            head(TYPE_V2_REPORT, 0, out);
            let n = records.len().min(usize::from(u16::MAX));
            out.extend_from_slice(&(n as u16).to_be_bytes());
            for r in &records[..n] {
                out.push(u8::from(r.record_type));
                out.push(0);
                let k = r.sources.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&(k as u16).to_be_bytes());
                out.extend_from_slice(&r.group.octets());
                for s in &r.sources[..k] {
                    out.extend_from_slice(&s.octets());
                }
            }
        }
    }
    let sum = !pseudo_sum(src, dst, &out[start..]);
    out[start + field::CHECKSUM.start..start + field::CHECKSUM.end]
        .copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0200, 0x5eff, 0xfe00, 0x5301);
    const G: Ipv6Addr = Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0, 0x1234);
    const S1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const S2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    fn bytes(src: Ipv6Addr, dst: Ipv6Addr, m: &Message) -> Vec<u8> {
        let mut v = Vec::new();
        emit(src, dst, m, &mut v);
        v
    }

    fn report() -> Message {
        Message::ReportV2 {
            records: vec![
                AddressRecord {
                    record_type: RecordType::ChangeToInclude,
                    group: G,
                    sources: vec![S1, S2],
                },
                AddressRecord {
                    record_type: RecordType::ChangeToExclude,
                    group: Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, 7),
                    sources: vec![],
                },
            ],
        }
    }

    fn queries() -> Vec<Message> {
        vec![
            Message::Query(Query {
                version: QueryVersion::V1,
                max_resp: Duration::from_millis(10_000),
                group: Ipv6Addr::UNSPECIFIED,
                s_flag: false,
                qrv: 0,
                qqi: Duration::ZERO,
                sources: vec![],
            }),
            Message::Query(Query {
                version: QueryVersion::V2,
                max_resp: Duration::from_millis(10_000),
                group: G,
                s_flag: true,
                qrv: 2,
                qqi: Duration::from_secs(125),
                sources: vec![S1],
            }),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        let mut all = queries();
        all.push(Message::ReportV1 { group: G });
        all.push(Message::DoneV1 { group: G });
        all.push(report());
        all.push(Message::ReportV2 { records: vec![] });
        for m in all {
            let b = bytes(HOST, ALL_MLDV2_ROUTERS, &m);
            assert_eq!(parse(HOST, ALL_MLDV2_ROUTERS, &b), Ok(m.clone()), "{m:?}");
        }
    }

    /// RFC 3810 section 5.1.8: a robustness above 7 is sent as QRV 0, not masked.
    #[test]
    fn qrv_above_seven_is_sent_as_zero() {
        let [_, v2] = queries().try_into().unwrap();
        let Message::Query(mut q) = v2 else { panic!() };
        q.qrv = 9;
        let b = bytes(HOST, ALL_NODES, &Message::Query(q));
        let Ok(Message::Query(back)) = parse(HOST, ALL_NODES, &b) else {
            panic!()
        };
        assert_eq!((back.qrv, back.s_flag), (0, true));
    }

    #[test]
    fn lengths_follow_the_rfcs() {
        assert_eq!(
            bytes(HOST, G, &Message::ReportV1 { group: G }).len(),
            V1_LEN
        );
        let [v1, v2] = queries().try_into().unwrap();
        assert_eq!(bytes(HOST, ALL_NODES, &v1).len(), V1_LEN);
        assert_eq!(bytes(HOST, ALL_NODES, &v2).len(), V2_QUERY_MIN_LEN + 16);
        // 8 octets of header, then 20 + 16 x 2 and 20 for the two records.
        assert_eq!(bytes(HOST, ALL_MLDV2_ROUTERS, &report()).len(), 8 + 52 + 20);
    }

    /// The report a Linux host sends when it joins its solicited-node group (one
    /// CHANGE_TO_EXCLUDE {} record), laid out byte by byte from RFC 3810 section 5.2 rather
    /// than through `emit`.
    #[test]
    fn parses_a_hand_laid_solicited_node_report() {
        let src: Ipv6Addr = "fe80::200:5eff:fe00:5301".parse().unwrap();
        let group: Ipv6Addr = "ff02::1:ff00:5301".parse().unwrap();
        let mut b = vec![143, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0];
        b.extend_from_slice(&group.octets());
        // Fill in the checksum as the sender would, then check that parse agrees and that a
        // wrong pseudo-header (another source) fails.
        let sum = !pseudo_sum(src, ALL_MLDV2_ROUTERS, &b);
        b[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            parse(src, ALL_MLDV2_ROUTERS, &b),
            Ok(Message::ReportV2 {
                records: vec![AddressRecord {
                    record_type: RecordType::ChangeToExclude,
                    group,
                    sources: vec![],
                }]
            })
        );
        assert_eq!(
            parse(S1, ALL_MLDV2_ROUTERS, &b),
            Err(WireError::BadChecksum)
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut all = queries();
        all.push(Message::ReportV1 { group: G });
        all.push(report());
        for m in all {
            let full = bytes(HOST, ALL_NODES, &m);
            for n in 0..full.len() {
                // Re-checksum the cut message so the length checks, not the checksum, judge it.
                let mut cut = full[..n].to_vec();
                if n >= 4 {
                    cut[2..4].copy_from_slice(&[0, 0]);
                    let sum = !pseudo_sum(HOST, ALL_NODES, &cut);
                    cut[2..4].copy_from_slice(&sum.to_be_bytes());
                }
                let got = parse(HOST, ALL_NODES, &cut);
                if n == V1_LEN && matches!(m, Message::Query(_)) {
                    // RFC 3810 section 8.1: 24 octets is an MLDv1 query, whatever followed.
                    assert!(
                        matches!(&got, Ok(Message::Query(q)) if q.version == QueryVersion::V1),
                        "{m:?} cut at {n}: {got:?}"
                    );
                    continue;
                }
                assert!(got.is_err(), "{m:?} cut at {n}: {got:?}");
            }
        }
    }

    #[test]
    fn counts_that_overrun_are_malformed() {
        let fix = |b: &mut Vec<u8>| {
            b[2..4].copy_from_slice(&[0, 0]);
            let sum = !pseudo_sum(HOST, ALL_MLDV2_ROUTERS, b);
            b[2..4].copy_from_slice(&sum.to_be_bytes());
        };
        let good = bytes(HOST, ALL_MLDV2_ROUTERS, &report());
        // Record count 3 with two records present.
        let mut b = good.clone();
        b[7] = 3;
        fix(&mut b);
        assert_eq!(
            parse(HOST, ALL_MLDV2_ROUTERS, &b),
            Err(WireError::Malformed)
        );
        // First record's source count 0xffff.
        let mut b = good.clone();
        b[10..12].copy_from_slice(&[0xff, 0xff]);
        fix(&mut b);
        assert_eq!(
            parse(HOST, ALL_MLDV2_ROUTERS, &b),
            Err(WireError::Malformed)
        );
        // Aux data length 1 (4 octets) in the last record, not present.
        let mut b = good.clone();
        let last = 8 + 52;
        b[last + 1] = 1;
        fix(&mut b);
        assert_eq!(
            parse(HOST, ALL_MLDV2_ROUTERS, &b),
            Err(WireError::Malformed)
        );
        // ... and present: skipped, in 32-bit words (RFC 3810 5.2.6).
        b.extend_from_slice(&[0xaa; 4]);
        fix(&mut b);
        assert_eq!(parse(HOST, ALL_MLDV2_ROUTERS, &b), Ok(report()));
        // A 26-octet query is neither v1 nor v2.
        let mut q = bytes(HOST, ALL_NODES, &queries()[0]);
        q.extend_from_slice(&[0, 0]);
        q[2..4].copy_from_slice(&[0, 0]);
        let sum = !pseudo_sum(HOST, ALL_NODES, &q);
        q[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse(HOST, ALL_NODES, &q), Err(WireError::Malformed));
    }

    #[test]
    fn other_icmpv6_types_are_unknown() {
        let mut b = bytes(HOST, ALL_NODES, &Message::ReportV1 { group: G });
        b[0] = 135; // Neighbour Solicitation
        b[2..4].copy_from_slice(&[0, 0]);
        let sum = !pseudo_sum(HOST, ALL_NODES, &b);
        b[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse(HOST, ALL_NODES, &b), Err(WireError::UnknownType(135)));
    }

    #[test]
    fn max_resp_code_float_per_rfc_3810_5_1_3() {
        assert_eq!(decode_max_resp(0), 0);
        assert_eq!(decode_max_resp(10_000), 10_000);
        assert_eq!(decode_max_resp(0x7fff), 0x7fff);
        assert_eq!(decode_max_resp(0x8000), 0x1000 << 3);
        assert_eq!(decode_max_resp(0xffff), 0x1fff << 10);
        for code in [0u16, 1, 0x7fff, 0x8000, 0x8001, 0x9abc, 0xffff] {
            assert_eq!(encode_max_resp(decode_max_resp(code)), code, "{code:#x}");
        }
        // Rounds down between representable values, saturates above the largest.
        assert_eq!(encode_max_resp(0x8001), 0x8000);
        assert_eq!(encode_max_resp(u32::MAX), 0xffff);
        for ms in [0u32, 0x7fff, 0x8000, 40_000, 1_000_000, 8_000_000] {
            assert!(decode_max_resp(encode_max_resp(ms)) <= ms, "{ms}");
        }
    }

    #[test]
    fn weight_counts_records_and_sources() {
        assert_eq!(report().weight(), 1 + 3 + 1);
        assert_eq!(Message::DoneV1 { group: G }.weight(), 1);
    }
}
