//! The two address families snoopcast snoops: IPv4 groups with IGMP, IPv6 groups with MLD.
//!
//! The membership table, the forwarding snapshot, the querier and the upstream join pool are
//! written once, generic over [`GroupAddr`]; what differs between the families is here.

use crate::wire::MacAddr;
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A group (or source) address of one family.
pub trait GroupAddr:
    Copy + Ord + Eq + Hash + Debug + Display + Send + Sync + 'static + Into<IpAddr>
{
    /// The lowest and highest address, for range scans over keys.
    const MIN: Self;
    const MAX: Self;
    /// "IGMP" or "MLD", for log lines.
    const PROTOCOL: &'static str;
    /// The version of a current-state (source-filtering) report: IGMPv3, MLDv2.
    const FILTER_VERSION: u8;
    /// Bytes of one address on the wire (4, 16): the size of report records.
    const ADDR_LEN: usize;

    /// Whether a query must come from a real address of the link: MLD queries from `::` are
    /// discarded by hosts (RFC 3810 section 5.1.14); IGMP queries may come from 0.0.0.0 (RFC
    /// 4541 section 2.1.1, a proxy querier).
    const QUERIES_NEED_SOURCE: bool;

    fn is_unspecified(&self) -> bool;
    /// The source-specific multicast range: 232.0.0.0/8 (RFC 4607 section 1), FF3x::/96
    /// (RFC 4607 section 1, RFC 3306 section 6).
    fn is_ssm(&self) -> bool;
    /// The Ethernet group address of the group (RFC 1112 section 6.4, RFC 2464 section 7).
    fn group_mac(&self) -> MacAddr;
    /// Whether an older-version host of `version` makes leaves ignored (RFC 3376 section
    /// 7.3.2: IGMPv1 hosts send no leave). No MLD version is like that (RFC 3810 section 8.3.2).
    fn ignores_leaves(version: u8) -> bool;
}

impl GroupAddr for Ipv4Addr {
    const MIN: Self = Ipv4Addr::UNSPECIFIED;
    const MAX: Self = Ipv4Addr::BROADCAST;
    const PROTOCOL: &'static str = "IGMP";
    const FILTER_VERSION: u8 = 3;
    const ADDR_LEN: usize = 4;
    const QUERIES_NEED_SOURCE: bool = false;

    fn is_unspecified(&self) -> bool {
        Ipv4Addr::is_unspecified(self)
    }
    fn is_ssm(&self) -> bool {
        crate::wire::ipv4::is_ssm_group(*self)
    }
    fn group_mac(&self) -> MacAddr {
        crate::wire::ethernet::ipv4_group_mac(*self)
    }
    fn ignores_leaves(version: u8) -> bool {
        version == 1
    }
}

impl GroupAddr for Ipv6Addr {
    const MIN: Self = Ipv6Addr::UNSPECIFIED;
    const MAX: Self = Ipv6Addr::new(
        0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
    );
    const PROTOCOL: &'static str = "MLD";
    const FILTER_VERSION: u8 = 2;
    const ADDR_LEN: usize = 16;
    const QUERIES_NEED_SOURCE: bool = true;

    fn is_unspecified(&self) -> bool {
        Ipv6Addr::is_unspecified(self)
    }
    fn is_ssm(&self) -> bool {
        crate::wire::ipv6::is_ssm_group(*self)
    }
    fn group_mac(&self) -> MacAddr {
        crate::wire::ethernet::ipv6_group_mac(*self)
    }
    fn ignores_leaves(_version: u8) -> bool {
        false
    }
}

/// Whether an IPv6 group may be snooped and forwarded at all (see
/// [`crate::wire::ipv6::is_forwardable_group`]: scope wider than the link). RFC 4541
/// section 3 treats link-scope groups like IPv4's 224.0.0.0/24: always flooded.
pub use crate::wire::ipv6::is_forwardable_group as is_routable_group_v6;

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ssm_ranges_of_both_families() {
        assert!(a("ff3e::1").is_ssm() && a("ff35::8000:1").is_ssm());
        assert!(
            !a("ff3e:30:2001:db8::1").is_ssm(),
            "unicast-prefix based, not SSM"
        );
        assert!(!a("ff0e::1").is_ssm());
        assert!(Ipv4Addr::new(232, 1, 2, 3).is_ssm() && !Ipv4Addr::new(233, 1, 2, 3).is_ssm());
    }

    #[test]
    fn group_macs() {
        assert_eq!(
            a("ff0e::1:8001:0203").group_mac(),
            MacAddr(0x33, 0x33, 0x80, 0x01, 0x02, 0x03)
        );
        assert_eq!(
            Ipv4Addr::new(239, 129, 2, 3).group_mac(),
            MacAddr(0x01, 0x00, 0x5e, 0x01, 0x02, 0x03)
        );
    }

    #[test]
    fn key_bounds_bracket_everything() {
        assert!(
            Ipv6Addr::MIN <= a("::")
                && a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") <= Ipv6Addr::MAX
        );
        assert!(<Ipv4Addr as GroupAddr>::MAX == Ipv4Addr::BROADCAST);
        assert!(Ipv4Addr::ignores_leaves(1) && !Ipv4Addr::ignores_leaves(2));
        assert!(!Ipv6Addr::ignores_leaves(1));
    }
}
