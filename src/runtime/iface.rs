//! Interface facts read from the kernel: index, MAC, IPv4 address, link type.

// The type lives with the configuration (pure); `iface::IfaceInfo` stays its name here.
pub use crate::config::IfaceInfo;
use crate::wire::LinkType;
use std::net::Ipv6Addr;

/// ARPHRD_ETHER, from /sys/class/net/IF/type.
const ARPHRD_ETHER: u32 = 1;

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
        .and_then(|a| crate::wire::ethernet::parse_mac(&a).ok())
        .filter(|m| !m.is_zero());
    let ipv4 = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .and_then(|i| {
            i.ips.iter().find_map(|n| match n.ip() {
                std::net::IpAddr::V4(a) => Some(a),
                _ => None,
            })
        });
    let ipv6_link_local = std::fs::read_to_string("/proc/net/if_inet6")
        .ok()
        .and_then(|t| usable_link_local(&t, name));
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

/// IFA_F_* flags of /proc/net/if_inet6 that make an address unusable as a source: still in
/// duplicate address detection (tentative), failed it, or deprecated.
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_DEPRECATED: u32 = 0x20;
const IFA_F_TENTATIVE: u32 = 0x40;

/// The usable link-local address (fe80::/10) of interface `name` in the text of
/// /proc/net/if_inet6 (`address ifindex prefixlen scope flags name`, in hex). A tentative
/// address is not yet valid as a source (RFC 4862 section 5.4), so MLD queries (RFC 3810
/// section 5.1.14: from a valid link-local address) wait until duplicate address detection
/// has passed.
pub fn usable_link_local(if_inet6: &str, name: &str) -> Option<Ipv6Addr> {
    if_inet6.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [addr, _, _, _, flags, dev] = f[..] else {
            return None;
        };
        let a = Ipv6Addr::from(u128::from_str_radix(addr, 16).ok()?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        let unusable = IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED;
        (dev == name
            && addr.len() == 32
            && crate::wire::ipv6::is_link_local_unicast(a)
            && flags & unusable == 0)
            .then_some(a)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_from_if_inet6_skips_tentative_and_other_interfaces() {
        let t = "\
fd000000000000000000000000000002 04 40 00 80     eth0
fe8000000000000000fc00fffe000009 05 40 20 c0      dn0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000007 06 40 20 88    dn1
fe8000000000000000fc00fffe000008 06 40 20 80   dn10
garbage
";
        assert_eq!(
            usable_link_local(t, "eth0"),
            Some("fe80::fc:ff:fe00:1".parse().unwrap())
        );
        assert_eq!(usable_link_local(t, "dn0"), None, "tentative");
        assert_eq!(usable_link_local(t, "dn1"), None, "DAD failed");
        assert_eq!(usable_link_local(t, "lo"), None, "not link-local");
        assert_eq!(
            usable_link_local(t, "dn10"),
            Some("fe80::fc:ff:fe00:8".parse().unwrap())
        );
        assert_eq!(usable_link_local(t, "missing"), None);
    }
}
