//! What the capture threads decide about each frame they read, as pure functions: the
//! downstream capture (`cap-dn:IF`, runtime/capture.rs) and the upstream capture (`cap-up:IF`,
//! runtime/datapath.rs) call these and only count and hand on the result, so the unit tests below and
//! the fuzz target `fuzz/fuzz_targets/capture_frame.rs` run exactly the code the threads run.

use crate::wire::ipv6::{self, MldFrame};
use crate::wire::{self, ethernet, ipv4, DataPacket, IgmpFrame, LinkType, WireError};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a downstream frame is not handed to the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownDrop {
    /// Not a well-formed IGMP frame (counted in `igmp_malformed`; a well-formed message of an
    /// unknown type, `WireError::UnknownType`, in `igmp_unknown_type`).
    Malformed(WireError),
    /// A well-formed IGMP frame from a multicast or broadcast source MAC, which no host has
    /// (IEEE 802.3 section 3.2.3): spoofed or broken (counted in `igmp_malformed`).
    MulticastSource,
    /// TTL other than 1 (counted in `igmp_bad_ttl`): RFC 3376 section 4 and RFC 2236
    /// section 2 send IGMP with TTL 1, so anything else did not come from this link.
    BadTtl { ttl: u8, src: Ipv4Addr },
}

impl fmt::Display for DownDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownDrop::Malformed(e) => e.fmt(f),
            DownDrop::MulticastSource => write!(f, "multicast source MAC"),
            DownDrop::BadTtl { ttl, src } => write!(f, "TTL {ttl} from {src}"),
        }
    }
}

/// A frame captured on a downstream interface (always Ethernet: the IGMP capture socket's
/// filter, `sys::bpf::igmp_only`, reads the EtherType at offset 12). Ok: an IGMP message from
/// a host on the link, for the querier (queries) or the membership table (the rest).
pub fn downstream(frame: &[u8]) -> Result<IgmpFrame, DownDrop> {
    // Ethernet, IPv4 (header length, checksum, total length), IGMP checksum.
    let f = wire::parse_igmp_frame(frame).map_err(DownDrop::Malformed)?;
    if f.src_mac.is_multicast() {
        return Err(DownDrop::MulticastSource);
    }
    if f.ip.ttl != 1 {
        return Err(DownDrop::BadTtl {
            ttl: f.ip.ttl,
            src: f.ip.src,
        });
    }
    Ok(f)
}

/// Which protocol a downstream frame carries, by its EtherType: IPv4 (IGMP) or IPv6 (MLD).
pub fn is_ipv6_frame(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&ethernet::ETHERTYPE_IPV6.to_be_bytes()[..])
}

/// Why a downstream IPv6 frame is not handed to the control thread as MLD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MldDrop {
    /// Not IPv6 ICMPv6 in the MLD range at all (neighbour discovery and the like, which the
    /// capture filter lets through): not counted, not logged.
    NotMld,
    /// A broken MLD message (counted in `mld_malformed`; an ICMPv6 type in no MLD version,
    /// `WireError::UnknownType`, in `mld_unknown_type`).
    Malformed(WireError),
    /// From a multicast or broadcast source MAC (counted in `mld_malformed`).
    MulticastSource,
    /// Hop limit other than 1 (`mld_bad_hop_limit`): RFC 3810 section 5 and RFC 2710
    /// section 3 send every MLD message with hop limit 1.
    BadHopLimit { hop_limit: u8, src: Ipv6Addr },
    /// Source not link-local (`mld_bad_source`): RFC 3810 sections 5.1.14 and 5.2.13. A
    /// report or Done from `::` is accepted (RFC 4541 section 3), a query from `::` is not.
    BadSource { src: Ipv6Addr, query: bool },
    /// No hop-by-hop Router Alert option (`mld_no_router_alert`): RFC 3810 section 5 and
    /// RFC 2710 section 3 require it; RFC 3810 section 6.2 and 7.4 discard messages without.
    NoRouterAlert { src: Ipv6Addr },
}

impl fmt::Display for MldDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MldDrop::NotMld => write!(f, "not MLD"),
            MldDrop::Malformed(e) => e.fmt(f),
            MldDrop::MulticastSource => write!(f, "multicast source MAC"),
            MldDrop::BadHopLimit { hop_limit, src } => {
                write!(f, "hop limit {hop_limit} from {src}")
            }
            MldDrop::BadSource { src, query: false } => {
                write!(f, "source {src} is not link-local")
            }
            MldDrop::BadSource { src, query: true } => {
                write!(f, "query from {src}, which is not link-local")
            }
            MldDrop::NoRouterAlert { src } => write!(f, "no Router Alert option from {src}"),
        }
    }
}

/// A downstream frame with EtherType 0x86DD (see [`is_ipv6_frame`]). Ok: an MLD message from a
/// host on the link, for the MLD querier (queries) or the IPv6 membership table (the rest).
/// Judged in this order: well-formed, unicast source MAC, hop limit 1, link-local source,
/// Router Alert.
pub fn downstream_mld(frame: &[u8]) -> Result<MldFrame, MldDrop> {
    let f = ipv6::parse_mld_frame(frame).map_err(|e| match e {
        WireError::NotMld | WireError::NotIpv6 => MldDrop::NotMld,
        e => MldDrop::Malformed(e),
    })?;
    if f.src_mac.is_multicast() {
        return Err(MldDrop::MulticastSource);
    }
    let src = f.ip.src;
    if f.ip.hop_limit != 1 {
        return Err(MldDrop::BadHopLimit {
            hop_limit: f.ip.hop_limit,
            src,
        });
    }
    // Queries only from a link-local address (RFC 3810 section 5.1.14); reports and Dones
    // also from `::`, sent by a host still in duplicate address detection (RFC 3810 section
    // 5.2.13), which a snooping switch must not reject (RFC 4541 section 3). Hosts are known
    // by their MAC, so such a report is as good as any.
    let is_query = matches!(f.message, crate::wire::mld::Message::Query(_));
    if !(ipv6::is_link_local_unicast(src) || (src.is_unspecified() && !is_query)) {
        return Err(MldDrop::BadSource {
            src,
            query: is_query,
        });
    }
    if !f.router_alert {
        return Err(MldDrop::NoRouterAlert { src });
    }
    Ok(f)
}

/// A general query heard on the upstream (from the router that keeps the box's
/// memberships): its source and IGMP (1-3) or MLD (1-2) version. The frame is judged as a
/// downstream one ([`downstream`], [`downstream_mld`]: well-formed, unicast source MAC,
/// TTL or hop limit 1, link-local MLD source, Router Alert); only general queries count
/// (group 0.0.0.0 or ::): RFC 3376 section 6.6.2 and RFC 3810 section 7.6.2 elect the
/// querier from general queries, and RFC 9776 section 6.6.2 makes that explicit.
pub fn upstream_query(frame: &[u8]) -> Option<(std::net::IpAddr, u8)> {
    if is_ipv6_frame(frame) {
        let f = downstream_mld(frame).ok()?;
        match f.message {
            crate::wire::mld::Message::Query(q) if q.group.is_unspecified() => {
                let v = match q.version {
                    crate::wire::mld::QueryVersion::V1 => 1,
                    crate::wire::mld::QueryVersion::V2 => 2,
                };
                Some((f.ip.src.into(), v))
            }
            _ => None,
        }
    } else {
        let f = downstream(frame).ok()?;
        match f.message {
            crate::wire::igmp::Message::Query(q) if q.group.is_unspecified() => {
                let v = match q.version {
                    crate::wire::igmp::QueryVersion::V1 => 1,
                    crate::wire::igmp::QueryVersion::V2 => 2,
                    crate::wire::igmp::QueryVersion::V3 => 3,
                };
                Some((f.ip.src.into(), v))
            }
            _ => None,
        }
    }
}

/// What the upstream capture made of one frame.
#[derive(Debug, PartialEq, Eq)]
pub struct UpstreamFrame<'a> {
    /// The UDP checksum was completed in place (counted in `checksums_completed`).
    pub checksum_completed: bool,
    /// The multicast packet to forward, or why there is none (counted in `frames_invalid`).
    pub packet: wire::Result<DataPacket<'a>>,
}

/// A frame captured on the upstream interface of link type `link`. `csum_not_ready` is the
/// PACKET_AUXDATA flag TP_STATUS_CSUMNOTREADY: a local program sent the frame and its UDP
/// checksum is still left to the device (CHECKSUM_PARTIAL); it is completed in place first,
/// or every member would drop the copies.
pub fn upstream(link: LinkType, frame: &mut [u8], csum_not_ready: bool) -> UpstreamFrame<'_> {
    let ip_offset = match link {
        LinkType::Ethernet => ethernet::HEADER_LEN,
        LinkType::RawIp => 0,
    };
    let checksum_completed = csum_not_ready
        && frame.len() > ip_offset
        && match frame[ip_offset] >> 4 {
            4 => ipv4::complete_udp_checksum(&mut frame[ip_offset..]),
            6 => ipv6::complete_udp_checksum(&mut frame[ip_offset..]),
            _ => false,
        };
    UpstreamFrame {
        checksum_completed,
        packet: wire::parse_data_packet(link, frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::igmp::{self, Message};
    use crate::wire::MacAddr;

    const HOST: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);
    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn report(src: MacAddr) -> Vec<u8> {
        igmp::build_frame(src, IP, G, &Message::ReportV2 { group: G })
    }

    fn set_ttl(frame: &mut [u8], ttl: u8) {
        let ip = &mut frame[ethernet::HEADER_LEN..];
        ip[8] = ttl;
        let hl = usize::from(ip[0] & 0x0f) * 4;
        ip[10..12].fill(0);
        let c = wire::checksum::checksum(&ip[..hl]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn downstream_takes_a_host_report_with_ttl_1() {
        let f = downstream(&report(HOST)).unwrap();
        assert_eq!(f.message, Message::ReportV2 { group: G });
        assert_eq!((f.src_mac, f.ip.src), (HOST, IP));
    }

    #[test]
    fn downstream_drops_in_order_malformed_multicast_source_bad_ttl() {
        assert_eq!(
            downstream(&[]),
            Err(DownDrop::Malformed(WireError::Truncated))
        );
        let mut bad = report(HOST);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            downstream(&bad),
            Err(DownDrop::Malformed(WireError::BadChecksum))
        );
        let mut f = report(MacAddr::broadcast());
        assert_eq!(downstream(&f), Err(DownDrop::MulticastSource));
        // A multicast source is judged before the TTL.
        set_ttl(&mut f, 64);
        assert_eq!(downstream(&f), Err(DownDrop::MulticastSource));
        let mut f = report(HOST);
        set_ttl(&mut f, 2);
        assert_eq!(downstream(&f), Err(DownDrop::BadTtl { ttl: 2, src: IP }));
        assert_eq!(
            DownDrop::MulticastSource.to_string(),
            "multicast source MAC"
        );
    }

    /// A UDP packet 10.9.8.7 -> 239.1.2.3 with a zero (not yet computed) checksum.
    fn udp(link: LinkType) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 8 + 4];
        p[0] = 0x45;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = 8;
        p[9] = ipv4::PROTO_UDP;
        p[12..16].copy_from_slice(&[10, 9, 8, 7]);
        p[16..20].copy_from_slice(&G.octets());
        p[24..26].copy_from_slice(&12u16.to_be_bytes());
        p[28..].copy_from_slice(b"data");
        match link {
            LinkType::RawIp => p,
            LinkType::Ethernet => {
                let mut f = vec![0u8; ethernet::HEADER_LEN];
                ethernet::write_header(
                    &mut f,
                    crate::wire::ethernet::ipv4_group_mac(G),
                    HOST,
                    0x0800,
                );
                f.extend_from_slice(&p);
                f
            }
        }
    }

    #[test]
    fn upstream_completes_the_checksum_only_when_asked_then_parses() {
        for (link, off) in [(LinkType::Ethernet, 14), (LinkType::RawIp, 0)] {
            let mut f = udp(link);
            let up = upstream(link, &mut f, false);
            assert!(!up.checksum_completed);
            assert_eq!(up.packet.unwrap().group, std::net::IpAddr::V4(G));
            assert_eq!(f[off + 26..off + 28], [0, 0]);
            let up = upstream(link, &mut f, true);
            assert!(up.checksum_completed);
            assert_eq!(up.packet.unwrap().ip.len(), 32);
            assert_ne!(f[off + 26..off + 28], [0, 0]);
        }
        // Too short for the IP header: nothing completed, nothing forwarded.
        let mut f = [0u8; 14];
        let up = upstream(LinkType::Ethernet, &mut f, true);
        assert!(!up.checksum_completed && up.packet.is_err());
        let up = upstream(LinkType::RawIp, &mut [], true);
        assert!(!up.checksum_completed && up.packet.is_err());
    }

    #[test]
    fn upstream_query_takes_general_queries_of_each_version_only() {
        use crate::wire::{igmp::Query, igmp::QueryVersion, mld};
        use std::time::Duration;
        let q = |version, group| {
            Message::Query(Query {
                version,
                max_resp: Duration::from_secs(if version == QueryVersion::V1 { 0 } else { 10 }),
                group,
                s_flag: false,
                qrv: if version == QueryVersion::V3 { 2 } else { 0 },
                qqi: if version == QueryVersion::V3 {
                    Duration::from_secs(125)
                } else {
                    Duration::ZERO
                },
                sources: vec![],
            })
        };
        let all = Ipv4Addr::new(224, 0, 0, 1);
        for (v, n) in [
            (QueryVersion::V1, 1),
            (QueryVersion::V2, 2),
            (QueryVersion::V3, 3),
        ] {
            let f = igmp::build_frame(HOST, IP, all, &q(v, Ipv4Addr::UNSPECIFIED));
            assert_eq!(upstream_query(&f), Some((IP.into(), n)), "{v:?}");
        }
        // Group-specific queries, reports and broken frames do not name the querier.
        let f = igmp::build_frame(HOST, IP, G, &q(QueryVersion::V2, G));
        assert_eq!(upstream_query(&f), None);
        assert_eq!(upstream_query(&report(HOST)), None);
        let mut f = igmp::build_frame(HOST, IP, all, &q(QueryVersion::V3, Ipv4Addr::UNSPECIFIED));
        set_ttl(&mut f, 2);
        assert_eq!(upstream_query(&f), None, "TTL 2 is not from this link");
        assert_eq!(upstream_query(&f[..20]), None);
        // MLD: v1 and v2 general queries from a link-local address.
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let all6: Ipv6Addr = "ff02::1".parse().unwrap();
        for (v, n) in [(mld::QueryVersion::V1, 1), (mld::QueryVersion::V2, 2)] {
            let msg = mld::Message::Query(mld::Query {
                version: v,
                max_resp: Duration::from_secs(10),
                group: Ipv6Addr::UNSPECIFIED,
                s_flag: false,
                qrv: if n == 2 { 2 } else { 0 },
                qqi: if n == 2 {
                    Duration::from_secs(125)
                } else {
                    Duration::ZERO
                },
                sources: vec![],
            });
            let f = ipv6::build_mld_frame(HOST, ll, all6, &msg);
            assert_eq!(upstream_query(&f), Some((ll.into(), n)), "{v:?}");
        }
    }
}
