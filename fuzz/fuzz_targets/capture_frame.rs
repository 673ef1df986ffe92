//! The capture threads' decision on arbitrary frames, exactly as they make it
//! (`wire::classify`), after the kernel's socket filter as the daemon attaches it
//! (`runtime::sys::bpf`, run by its interpreter):
//!
//! - downstream (`cap-dn:IF`, Ethernet): `classify::downstream` agrees with
//!   `wire::parse_igmp_frame` and the source MAC / TTL rules, drops are reported in order
//!   (malformed, multicast source, TTL); whatever it accepts passes the `igmp_only` socket
//!   filter (else the kernel would hide reports the daemon wants); an accepted message fed to
//!   a membership table with small limits and to a querier never panics, keeps the limits and
//!   makes members only of groups the message names;
//! - downstream MLD (EtherType 0x86DD): `classify::downstream_mld` judges in the documented
//!   order, passes the socket filter, and feeds the IPv6 table the same way;
//! - upstream (`cap-up:IF`, Ethernet and raw IP, with and without CHECKSUM_PARTIAL):
//!   `classify::upstream` changes at most the two UDP checksum octets and only when asked,
//!   reports the completion exactly when `ipv4::complete_udp_checksum` would, returns what
//!   `wire::parse_data_packet` returns for the completed bytes, and whatever it forwards passes
//!   the `multicast_data` socket filter of that link type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoopcast::core::family::{is_routable_group_v6, GroupAddr};
use snoopcast::core::filter::GroupFilter;
use snoopcast::core::membership::{CompatFallback, Heard, HostKey, Settings, Table};
use snoopcast::core::querier::{Mode, Querier, QuerierConfig};
use snoopcast::runtime::sys::bpf;
use snoopcast::wire::classify::{self, DownDrop, MldDrop};
use snoopcast::wire::igmp::Message;
use snoopcast::wire::mld;
use snoopcast::wire::{self, ethernet, ipv4, ipv6, LinkType};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// A table with small limits (3 groups per host, 4 members, 2 sources), so they are hit.
fn small_table<A: GroupAddr>() -> Table<A> {
    let settings = Settings {
        max_groups_per_host: 3,
        max_members: 4,
        max_sources_per_member: 2,
        ..Settings::default()
    };
    Table::new(
        settings,
        GroupFilter::default(),
        vec![CompatFallback::Multicast],
    )
}

fn downstream(data: &[u8]) {
    let got = classify::downstream(data);
    match wire::parse_igmp_frame(data) {
        Err(e) => assert_eq!(got, Err(DownDrop::Malformed(e))),
        Ok(f) if f.src_mac.is_multicast() => assert_eq!(got, Err(DownDrop::MulticastSource)),
        Ok(f) if data[ethernet::HEADER_LEN + 8] != 1 => {
            let ip = &data[ethernet::HEADER_LEN..];
            assert_eq!(
                got,
                Err(DownDrop::BadTtl {
                    ttl: ip[8],
                    src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
                })
            );
            assert_eq!(f.ip.ttl, ip[8]);
        }
        Ok(f) => assert_eq!(got.as_ref(), Ok(&f)),
    }
    let Ok(f) = got else { return };
    // The kernel passes it to the capture socket, whole.
    let snap = bpf::run(&bpf::group_messages(true, true), data) as usize;
    assert!(
        snap >= data.len(),
        "group_messages filter takes {snap} of {}",
        data.len()
    );

    // On to the control thread: queries to the querier, the rest to the table.
    let now = Instant::now();
    match &f.message {
        Message::Query(_) => {
            let Heard::Query(heard) = Heard::from(f.message.clone()) else {
                unreachable!("a query converts to a query")
            };
            let cfg = QuerierConfig {
                mode: Mode::Auto,
                version: 3,
                query_interval: Duration::from_secs(125),
                query_response_interval: Duration::from_secs(10),
                robustness: 2,
            };
            let mut q = Querier::new(cfg, Ipv4Addr::new(10, 0, 0, 128), now);
            q.accept_query(f.ip.src, &heard, now);
            q.poll(now);
            // A group-and-source-specific query opens a window in the table.
            small_table().note_query(0, &heard, now);
        }
        msg => {
            let mut t = small_table();
            let host = HostKey {
                iface: 0,
                mac: f.src_mac,
            };
            t.accept_report(host, f.ip.src, msg, now);
            let named: BTreeSet<Ipv4Addr> = match msg {
                Message::ReportV1 { group } | Message::ReportV2 { group } => [*group].into(),
                Message::LeaveV2 { .. } => BTreeSet::new(),
                Message::ReportV3 { records } => records.iter().map(|r| r.group).collect(),
                Message::Query(_) => unreachable!(),
            };
            assert!(t.member_count() <= 3);
            for (g, h, m) in t.members() {
                assert_eq!(h, host);
                assert!(named.contains(&g), "member of {g}, not in the message");
                assert!(m.sources.len() <= 2);
            }
            let wants = t.upstream_wants();
            assert!(wants.keys().all(|g| named.contains(g)));
            t.poll(now + Settings::default().group_membership_interval());
            assert_eq!(t.member_count(), 0);
        }
    }
}

/// An IPv6 downstream frame: `classify::downstream_mld` judges in order (parse, source MAC,
/// hop limit, link-local source, Router Alert); what it accepts passes the socket filter and
/// makes members of the IPv6 table only of groups the message names.
fn downstream_mld(data: &[u8]) {
    let got = classify::downstream_mld(data);
    match ipv6::parse_mld_frame(data) {
        Err(_) => assert!(got.is_err()),
        Ok(f) if f.src_mac.is_multicast() => assert_eq!(got, Err(MldDrop::MulticastSource)),
        Ok(f) if f.ip.hop_limit != 1 => assert!(matches!(got, Err(MldDrop::BadHopLimit { .. }))),
        Ok(f)
            if f.ip.src.segments()[0] & 0xffc0 != 0xfe80
                && !(f.ip.src.is_unspecified() && !matches!(f.message, mld::Message::Query(_))) =>
        {
            let query = matches!(f.message, mld::Message::Query(_));
            assert_eq!(
                got,
                Err(MldDrop::BadSource {
                    src: f.ip.src,
                    query
                })
            )
        }
        Ok(f) if !f.router_alert => {
            assert_eq!(got, Err(MldDrop::NoRouterAlert { src: f.ip.src }))
        }
        Ok(f) => assert_eq!(got.as_ref(), Ok(&f)),
    }
    let Ok(f) = got else { return };
    let snap = bpf::run(&bpf::group_messages(true, true), data) as usize;
    assert!(
        snap >= data.len(),
        "group_messages takes {snap} of {}",
        data.len()
    );
    let now = Instant::now();
    let mut t: Table<Ipv6Addr> = small_table();
    let host = HostKey {
        iface: 0,
        mac: f.src_mac,
    };
    t.accept_mld(host, f.ip.src, &f.message, now);
    let named: BTreeSet<Ipv6Addr> = match &f.message {
        mld::Message::ReportV1 { group } => [*group].into(),
        mld::Message::ReportV2 { records } => records.iter().map(|r| r.group).collect(),
        mld::Message::DoneV1 { .. } | mld::Message::Query(_) => BTreeSet::new(),
    };
    assert!(t.member_count() <= 3);
    for (g, h, m) in t.members() {
        assert_eq!(h, host);
        assert!(named.contains(&g), "member of {g}, not in the message");
        assert!(is_routable_group_v6(g));
        assert!(m.sources.len() <= 2);
    }
    t.poll(now + Settings::default().group_membership_interval());
    assert_eq!(t.member_count(), 0);
}

fn upstream(data: &[u8]) {
    for (link, off) in [
        (LinkType::Ethernet, ethernet::HEADER_LEN),
        (LinkType::RawIp, 0),
    ] {
        let filter = bpf::multicast_data(off as u32, true, true);
        let passes = bpf::run(&filter, data) as usize >= data.len();
        for csum_not_ready in [false, true] {
            let mut frame = data.to_vec();
            let up = classify::upstream(link, &mut frame, csum_not_ready);
            let completed = up.checksum_completed;
            let packet = up.packet.map(|p| (p.source, p.group, p.ip.to_vec()));

            // The completion, as complete_udp_checksum alone would do it.
            let mut alone = data.to_vec();
            let want = csum_not_ready
                && alone.len() > off
                && match alone[off] >> 4 {
                    4 => ipv4::complete_udp_checksum(&mut alone[off..]),
                    6 => ipv6::complete_udp_checksum(&mut alone[off..]),
                    _ => false,
                };
            assert_eq!(completed, want, "{link:?} csum_not_ready={csum_not_ready}");
            assert_eq!(frame, alone);
            if !completed {
                assert_eq!(frame, data, "bytes changed without a completion");
            } else {
                // Only the two octets of one UDP checksum field changed.
                let changed: Vec<usize> = data
                    .iter()
                    .zip(&frame)
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, _)| i)
                    .collect();
                assert!(
                    changed.len() <= 2 && changed.windows(2).all(|w| w[1] == w[0] + 1),
                    "octets {changed:?} changed"
                );
            }

            // The packet is what the parser makes of the (completed) bytes.
            let direct =
                wire::parse_data_packet(link, &frame).map(|p| (p.source, p.group, p.ip.to_vec()));
            assert_eq!(packet, direct);
            // The kernel passed it to the capture socket (the filter reads no checksum).
            if packet.is_ok() {
                assert!(
                    passes,
                    "{link:?}: forwardable packet refused by multicast_data"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if classify::is_ipv6_frame(data) {
        downstream_mld(data);
    } else if data.len() > ethernet::HEADER_LEN {
        downstream(data);
    } else {
        assert!(classify::downstream(data).is_err());
    }
    upstream(data);
});
