//! Interface facts read from the kernel: index, MAC, IPv4 address, link type.

use crate::wire::{LinkType, MacAddr};
use std::net::{Ipv4Addr, Ipv6Addr};

/// ARPHRD_ETHER, from /sys/class/net/IF/type.
const ARPHRD_ETHER: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceInfo {
    pub name: String,
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub ipv4: Option<Ipv4Addr>,
    /// The interface's IPv6 link-local address (fe80::/10), the source of our MLD queries.
    pub ipv6_link_local: Option<Ipv6Addr>,
    pub link: LinkType,
    /// ARPHRD_* number, for messages.
    pub arphrd: u32,
}

fn sysfs(name: &str, attr: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{attr}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Look an interface up; None when it does not exist.
pub fn lookup(name: &str) -> Option<IfaceInfo> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let index = super::sys::if_nametoindex(name)?;
    let arphrd: u32 = sysfs(name, "type")
        .and_then(|t| t.parse().ok())
        .unwrap_or(ARPHRD_ETHER);
    let link = if arphrd == ARPHRD_ETHER {
        LinkType::Ethernet
    } else {
        LinkType::RawIp
    };
    let mac = sysfs(name, "address")
        .and_then(|a| a.parse::<MacAddr>().ok())
        .filter(|m| !m.is_zero());
    let ips = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .map(|i| i.ips)
        .unwrap_or_default();
    let ipv4 = ips.iter().find_map(|n| match n.ip() {
        std::net::IpAddr::V4(a) => Some(a),
        _ => None,
    });
    let ipv6_link_local = ips.iter().find_map(|n| match n.ip() {
        std::net::IpAddr::V6(a) if crate::wire::ipv6::is_link_local_unicast(a) => Some(a),
        _ => None,
    });
    Some(IfaceInfo {
        name: name.to_string(),
        index,
        mac,
        ipv4,
        ipv6_link_local,
        link,
        arphrd,
    })
}

/// Whether an interface is there and usable: administratively up (IFF_UP) and its operational
/// state not down (a tun/dummy reports "unknown", which is fine).
pub fn lookup_usable(name: &str) -> Option<IfaceInfo> {
    usable_index(name)?;
    lookup(name)
}

/// The index of an interface that is there and usable (as [`lookup_usable`]), from a name
/// lookup and two small sysfs reads: cheap enough to check every second (no address dump).
pub fn usable_index(name: &str) -> Option<u32> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let index = super::sys::if_nametoindex(name)?;
    let flags = sysfs(name, "flags")
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())?;
    let oper = sysfs(name, "operstate").unwrap_or_default();
    let up = flags & 1 == 1 && !matches!(oper.as_str(), "down" | "lowerlayerdown" | "notpresent");
    up.then_some(index)
}

/// pnet's view of the interface, which its channel constructor needs.
pub fn pnet_interface(index: u32) -> Option<pnet_datalink::NetworkInterface> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.index == index)
}
