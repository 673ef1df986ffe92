//! Which groups snoopcast handles at all: `--allow` / `--deny` prefixes.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 prefix such as `239.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Cidr {
    pub const fn new(addr: Ipv4Addr, len: u8) -> Self {
        Ipv4Cidr { addr, len }
    }

    fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (u32::from(a) & self.mask()) == (u32::from(self.addr) & self.mask())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    /// `a.b.c.d/len`, or a bare address meaning `/32`. Host bits must be zero, so a typo such
    /// as `239.1.1.1/8` is caught instead of silently meaning 239.0.0.0/8.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("invalid IPv4 prefix '{s}': '{a}' is not an IPv4 address"))?;
        let len = match l {
            None => 32,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 32 => n,
                _ => return Err(format!("invalid IPv4 prefix '{s}': length must be 0 to 32")),
            },
        };
        let c = Ipv4Cidr { addr, len };
        if u32::from(addr) & !c.mask() != 0 {
            return Err(format!(
                "invalid IPv4 prefix '{s}': host bits are set (did you mean {}/{len}?)",
                Ipv4Addr::from(u32::from(addr) & c.mask())
            ));
        }
        Ok(c)
    }
}

/// The all-multicast prefix, the default IPv4 `--allow`.
pub const ALL_MULTICAST: Ipv4Cidr = Ipv4Cidr::new(Ipv4Addr::new(224, 0, 0, 0), 4);

/// An IPv6 prefix such as `ff0e::/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Cidr {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Ipv6Cidr {
    pub const fn new(addr: Ipv6Addr, len: u8) -> Self {
        Ipv6Cidr { addr, len }
    }

    fn mask(&self) -> u128 {
        if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.len))
        }
    }

    pub fn contains(&self, a: Ipv6Addr) -> bool {
        (u128::from(a) & self.mask()) == (u128::from(self.addr) & self.mask())
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The IPv6 all-multicast prefix, the default IPv6 `--allow`.
pub const ALL_MULTICAST_V6: Ipv6Cidr = Ipv6Cidr::new(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8);

/// An `--allow`/`--deny` argument: a prefix of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    V4(Ipv4Cidr),
    V6(Ipv6Cidr),
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(c) => c.fmt(f),
            Prefix::V6(c) => c.fmt(f),
        }
    }
}

impl Prefix {
    /// Whether the prefix holds any multicast address of its family (224.0.0.0/4,
    /// ff00::/8): two prefixes overlap when the shorter one holds the other's address.
    pub fn has_multicast(&self) -> bool {
        match self {
            Prefix::V4(c) if c.len <= ALL_MULTICAST.len => c.contains(ALL_MULTICAST.addr),
            Prefix::V4(c) => ALL_MULTICAST.contains(c.addr),
            Prefix::V6(c) if c.len <= ALL_MULTICAST_V6.len => c.contains(ALL_MULTICAST_V6.addr),
            Prefix::V6(c) => ALL_MULTICAST_V6.contains(c.addr),
        }
    }
}

impl FromStr for Prefix {
    type Err = String;
    /// An IPv4 prefix (see [`Ipv4Cidr`]) or an IPv6 one (`ff0e::/16`, a bare address meaning
    /// `/128`); host bits must be zero in both.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.contains(':') {
            return s.parse().map(Prefix::V4);
        }
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv6Addr = a
            .parse()
            .map_err(|_| format!("invalid IPv6 prefix '{s}': '{a}' is not an IPv6 address"))?;
        let len = match l {
            None => 128,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 128 => n,
                _ => {
                    return Err(format!(
                        "invalid IPv6 prefix '{s}': length must be 0 to 128"
                    ))
                }
            },
        };
        let c = Ipv6Cidr { addr, len };
        if u128::from(addr) & !c.mask() != 0 {
            return Err(format!(
                "invalid IPv6 prefix '{s}': host bits are set (did you mean {}/{len}?)",
                Ipv6Addr::from(u128::from(addr) & c.mask())
            ));
        }
        Ok(Prefix::V6(c))
    }
}

/// A group is handled when some allow prefix of its family contains it, no deny prefix does,
/// and it is not link-local: 224.0.0.0/24 (RFC 4541 section 2.1.2) or an IPv6 group of
/// interface-local or link-local scope (RFC 4541 section 3, RFC 4291 section 2.7). The allow
/// list of each family is separate: with no `--allow` prefix of a family, all of its multicast
/// is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFilter {
    allow: Vec<Ipv4Cidr>,
    deny: Vec<Ipv4Cidr>,
    allow6: Vec<Ipv6Cidr>,
    deny6: Vec<Ipv6Cidr>,
}

impl Default for GroupFilter {
    fn default() -> Self {
        GroupFilter::new(vec![], vec![])
    }
}

fn split(p: Vec<Prefix>) -> (Vec<Ipv4Cidr>, Vec<Ipv6Cidr>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for x in p {
        match x {
            Prefix::V4(c) => v4.push(c),
            Prefix::V6(c) => v6.push(c),
        }
    }
    (v4, v6)
}

impl GroupFilter {
    /// A family with no allow prefix gets the default: all of its multicast.
    pub fn new(allow: Vec<Prefix>, deny: Vec<Prefix>) -> Self {
        let (mut allow, mut allow6) = split(allow);
        let (deny, deny6) = split(deny);
        if allow.is_empty() {
            allow.push(ALL_MULTICAST);
        }
        if allow6.is_empty() {
            allow6.push(ALL_MULTICAST_V6);
        }
        GroupFilter {
            allow,
            deny,
            allow6,
            deny6,
        }
    }

    /// IPv4 only (the filter of a daemon before IPv6, and of the tests).
    pub fn v4(allow: Vec<Ipv4Cidr>, deny: Vec<Ipv4Cidr>) -> Self {
        GroupFilter::new(
            allow.into_iter().map(Prefix::V4).collect(),
            deny.into_iter().map(Prefix::V4).collect(),
        )
    }

    pub fn admits_v4(&self, group: Ipv4Addr) -> bool {
        group.is_multicast()
            && !crate::wire::ipv4::is_link_local_group(group)
            && self.allow.iter().any(|c| c.contains(group))
            && !self.deny.iter().any(|c| c.contains(group))
    }

    pub fn admits_v6(&self, group: Ipv6Addr) -> bool {
        crate::wire::ipv6::is_forwardable_group(group)
            && self.allow6.iter().any(|c| c.contains(group))
            && !self.deny6.iter().any(|c| c.contains(group))
    }

    /// Whether this filter handles `group` (either family).
    pub fn admits(&self, group: impl Into<std::net::IpAddr>) -> bool {
        match group.into() {
            std::net::IpAddr::V4(g) => self.admits_v4(g),
            std::net::IpAddr::V6(g) => self.admits_v6(g),
        }
    }

    pub fn allow(&self) -> &[Ipv4Cidr] {
        &self.allow
    }

    pub fn deny(&self) -> &[Ipv4Cidr] {
        &self.deny
    }

    pub fn allow6(&self) -> &[Ipv6Cidr] {
        &self.allow6
    }

    pub fn deny6(&self) -> &[Ipv6Cidr] {
        &self.deny6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_and_rejects_bad_ones() {
        assert_eq!(
            "239.0.0.0/8".parse::<Ipv4Cidr>().unwrap(),
            Ipv4Cidr::new(Ipv4Addr::new(239, 0, 0, 0), 8)
        );
        assert_eq!("239.1.2.3".parse::<Ipv4Cidr>().unwrap().len, 32);
        assert!("239.1.1.1/8"
            .parse::<Ipv4Cidr>()
            .unwrap_err()
            .contains("239.0.0.0/8"));
        assert!("239.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("nonsense/8"
            .parse::<Ipv4Cidr>()
            .unwrap_err()
            .contains("nonsense"));
        assert!("".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn default_filter_admits_multicast_but_not_link_local() {
        let f = GroupFilter::default();
        assert!(f.admits(Ipv4Addr::new(239, 1, 1, 1)));
        assert!(f.admits(Ipv4Addr::new(232, 1, 1, 1)));
        assert!(!f.admits(Ipv4Addr::new(224, 0, 0, 251)));
        assert!(!f.admits(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(f.admits(Ipv4Addr::new(224, 0, 1, 1)));
    }

    #[test]
    fn deny_beats_allow() {
        let f = GroupFilter::v4(
            vec!["239.0.0.0/8".parse().unwrap()],
            vec!["239.255.0.0/16".parse().unwrap()],
        );
        assert!(f.admits(Ipv4Addr::new(239, 1, 1, 1)));
        assert!(!f.admits(Ipv4Addr::new(239, 255, 255, 250)));
        assert!(!f.admits(Ipv4Addr::new(238, 1, 1, 1)));
    }

    #[test]
    fn zero_length_prefix_contains_everything() {
        let c: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(239, 1, 1, 1)));
    }

    #[test]
    fn ipv6_prefixes_and_per_family_allow_lists() {
        let p = |s: &str| s.parse::<Prefix>();
        assert_eq!(
            p("ff0e::/16").unwrap(),
            Prefix::V6(Ipv6Cidr::new("ff0e::".parse().unwrap(), 16))
        );
        assert_eq!(p("ff0e::1").unwrap().to_string(), "ff0e::1/128");
        assert!(p("ff0e::1/16").unwrap_err().contains("ff0e::/16"));
        assert!(p("ff0e::/129").unwrap_err().contains("0 to 128"));
        assert!(p("ff0e::zz/16")
            .unwrap_err()
            .contains("not an IPv6 address"));
        assert_eq!(p("239.0.0.0/8").unwrap().to_string(), "239.0.0.0/8");
        let a6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        // Only an IPv4 allow list: IPv6 keeps its default (all routable multicast).
        let f = GroupFilter::new(vec![p("239.0.0.0/8").unwrap()], vec![]);
        assert!(f.admits(a6("ff0e::1")) && !f.admits(Ipv4Addr::new(238, 1, 1, 1)));
        let f = GroupFilter::new(
            vec![p("ff0e::/16").unwrap()],
            vec![p("ff0e::dead/128").unwrap()],
        );
        assert!(f.admits(a6("ff0e::1")));
        assert!(!f.admits(a6("ff0e::dead")), "deny beats allow");
        assert!(!f.admits(a6("ff05::1")), "outside the IPv6 allow list");
        assert!(
            f.admits(Ipv4Addr::new(239, 1, 1, 1)),
            "IPv4 keeps its default"
        );
        // Link scope is never handled, whatever the lists say.
        let f = GroupFilter::new(vec![p("ff00::/8").unwrap()], vec![]);
        for g in ["ff02::1", "ff02::1:ff00:1", "ff01::1", "2001:db8::1"] {
            assert!(!f.admits(a6(g)), "{g}");
        }
    }

    #[test]
    fn a_prefix_has_multicast_when_it_overlaps_the_family_range() {
        let has = |s: &str| s.parse::<Prefix>().unwrap().has_multicast();
        for p in [
            "239.0.0.0/8",
            "224.0.0.0/4",
            "0.0.0.0/0",
            "192.0.0.0/2",
            "239.1.1.1",
            "ff3e::/16",
            "::/0",
            "ff00::/8",
            "fe00::/7",
        ] {
            assert!(has(p), "{p}");
        }
        for p in [
            "10.0.0.0/8",
            "192.168.1.0/24",
            "240.0.0.0/4",
            "0.0.0.0/1",
            "2001:db8::/32",
            "fe80::/10",
            "fe00::/8",
        ] {
            assert!(!has(p), "{p}");
        }
    }
}
