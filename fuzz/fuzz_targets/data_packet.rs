//! `parse_data_packet` for both link types: never panics; when it accepts, the IP slice is
//! the packet inside the input, trimmed to the IPv4 total length, and the group is a
//! forwardable multicast group. Acceptance of IPv4 is also compared with a small model
//! written from the documentation, so a wrongly rejected packet is caught too. IPv6 packets
//! (EtherType 0x86DD, or version 6 on a raw-IP link) are checked for their addresses,
//! length and scope; `mld_frame` fuzzes the IPv6 view in depth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snoopcast::core::family::is_routable_group_v6;
use snoopcast::wire::{self, ipv4, LinkType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether the frame holds IPv6 for the parser: EtherType 0x86DD, or version 6 on raw IP.
fn is_v6(link: LinkType, data: &[u8]) -> bool {
    match link {
        LinkType::Ethernet => data.len() >= 14 && data[12..14] == [0x86, 0xdd],
        LinkType::RawIp => data.first().is_some_and(|b| b >> 4 == 6),
    }
}

/// Independent restatement of what the data path accepts: the IPv4 packet starts at
/// `off`, is version 4 with IHL >= 5 inside the bytes, a total length between the header
/// length and the bytes received, a 224.0.0.0/4 destination outside 224.0.0.0/24, and is
/// not IGMP. Returns the total length.
fn model(link: LinkType, data: &[u8]) -> Option<usize> {
    let ip = match link {
        LinkType::Ethernet => {
            if data.len() < 14 || data[12..14] != [0x08, 0x00] {
                return None;
            }
            &data[14..]
        }
        LinkType::RawIp => data,
    };
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < 20 || ihl > ip.len() || total < ihl || total > ip.len() {
        return None;
    }
    let dst = &ip[16..20];
    let multicast = dst[0] & 0xf0 == 0xe0;
    let link_local = dst[0..3] == [224, 0, 0];
    if !multicast || link_local || ip[9] == ipv4::PROTO_IGMP {
        return None;
    }
    Some(total)
}

fuzz_target!(|data: &[u8]| {
    for (link, off) in [(LinkType::Ethernet, 14usize), (LinkType::RawIp, 0)] {
        let got = wire::parse_data_packet(link, data);
        if is_v6(link, data) {
            let Ok(d) = got else { continue };
            let base = data.as_ptr() as usize;
            assert_eq!(d.ip.as_ptr() as usize - base, off);
            let ip = d.ip;
            assert!(ip.len() >= 40 && off + ip.len() <= data.len());
            assert_eq!(
                ip.len(),
                40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))
            );
            let addr = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&ip[at..at + 16]).unwrap());
            assert_eq!(d.source, IpAddr::V6(addr(8)));
            assert_eq!(d.group, IpAddr::V6(addr(24)));
            assert!(is_routable_group_v6(addr(24)));
            continue;
        }
        let want = model(link, data);
        assert_eq!(
            got.is_ok(),
            want.is_some(),
            "{link:?}: {got:?} vs model {want:?}"
        );
        let Ok(d) = got else { continue };
        let total = want.unwrap();

        // The slice lies within the input, exactly where the IP packet starts.
        let base = data.as_ptr() as usize;
        let start = d.ip.as_ptr() as usize;
        assert!(start >= base && start + d.ip.len() <= base + data.len());
        assert_eq!(start - base, off);
        // Its length is the IPv4 total length (padding trimmed).
        assert_eq!(d.ip.len(), total);
        assert_eq!(
            d.ip.len(),
            usize::from(u16::from_be_bytes([d.ip[2], d.ip[3]]))
        );
        assert!(d.ip.len() >= 20);
        // Addresses are the header's, and the group is forwardable multicast.
        let group = Ipv4Addr::new(d.ip[16], d.ip[17], d.ip[18], d.ip[19]);
        assert_eq!(
            d.source,
            IpAddr::V4(Ipv4Addr::new(d.ip[12], d.ip[13], d.ip[14], d.ip[15]))
        );
        assert_eq!(d.group, IpAddr::V4(group));
        assert!(group.is_multicast());
        assert!(!ipv4::is_link_local_group(group));
        assert_ne!(d.ip[9], ipv4::PROTO_IGMP);
    }
});
