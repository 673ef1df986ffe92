//! Which groups snoopcast handles at all: `--allow` / `--deny` prefixes.

use std::fmt;
use std::net::Ipv4Addr;
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

/// The all-multicast prefix, the default `--allow`.
pub const ALL_MULTICAST: Ipv4Cidr = Ipv4Cidr::new(Ipv4Addr::new(224, 0, 0, 0), 4);

/// A group is handled when some allow prefix contains it, no deny prefix does, and it is not
/// in 224.0.0.0/24 (link-local control traffic is never snooped nor forwarded, RFC 4541
/// section 2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFilter {
    allow: Vec<Ipv4Cidr>,
    deny: Vec<Ipv4Cidr>,
}

impl Default for GroupFilter {
    fn default() -> Self {
        GroupFilter {
            allow: vec![ALL_MULTICAST],
            deny: vec![],
        }
    }
}

impl GroupFilter {
    /// An empty `allow` means the default, 224.0.0.0/4.
    pub fn new(allow: Vec<Ipv4Cidr>, deny: Vec<Ipv4Cidr>) -> Self {
        let allow = if allow.is_empty() {
            vec![ALL_MULTICAST]
        } else {
            allow
        };
        GroupFilter { allow, deny }
    }

    pub fn admits(&self, group: Ipv4Addr) -> bool {
        group.is_multicast()
            && !crate::wire::ipv4::is_link_local_group(group)
            && self.allow.iter().any(|c| c.contains(group))
            && !self.deny.iter().any(|c| c.contains(group))
    }

    pub fn allow(&self) -> &[Ipv4Cidr] {
        &self.allow
    }

    pub fn deny(&self) -> &[Ipv4Cidr] {
        &self.deny
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
        let f = GroupFilter::new(
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
}
