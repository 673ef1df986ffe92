//! Best-effort reading of a firewall rule set (`nft list ruleset`, `iptables-save`,
//! `ip6tables-save`): the rules that drop IGMP, MLD or multicast. Pure, text in, lines out.

/// Words that make a rule about IGMP, MLD or multicast.
const MATCHES: [&str; 14] = [
    "igmp",
    "l4proto 2 ",
    "protocol 2 ",
    "-p 2 ",
    "mld",
    "icmpv6 type 130",
    "icmpv6-type 130",
    "icmpv6-type 131",
    "icmpv6-type 143",
    "224.0.0.0/4",
    "ff00::/8",
    "pkttype multicast",
    "pkt-type multicast",
    "01:00:5e",
];

fn about_multicast(rule: &str) -> bool {
    let r = format!("{} ", rule.to_ascii_lowercase());
    MATCHES.iter().any(|m| r.contains(m))
}

fn accepts_igmp(rule: &str) -> bool {
    let r = format!("{} ", rule.to_ascii_lowercase());
    (r.contains("igmp") || r.contains("l4proto 2 ") || r.contains("-p 2 "))
        && (r.contains(" accept") || r.contains("-j accept"))
}

fn verdict_drops(rule: &str) -> bool {
    let words: Vec<&str> = rule.split_whitespace().collect();
    words
        .iter()
        .any(|w| matches!(*w, "drop" | "reject" | "DROP" | "REJECT"))
}

/// The offending rules (trimmed lines), or for a chain whose policy drops with nothing
/// accepting IGMP, a line naming the chain.
pub fn drops(text: &str) -> Vec<String> {
    let mut out = vec![];
    // nftables: chains in braces; iptables-save: ":CHAIN POLICY" and "-A CHAIN ...".
    let mut chain: Option<(String, bool, bool)> = None; // (name, policy drop on input/output, accepts igmp)
    let mut ipt_policies: Vec<String> = vec![];
    let mut ipt_accepts = false;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("chain ") {
            chain = Some((rest.trim_end_matches('{').trim().to_string(), false, false));
            continue;
        }
        if l == "}" {
            if let Some((name, true, false)) = chain.take() {
                out.push(format!(
                    "chain {name}: policy drop, and no rule accepts IGMP"
                ));
            }
            continue;
        }
        if let Some(c) = chain.as_mut() {
            if l.starts_with("type ") {
                let hooked = l.contains("hook input") || l.contains("hook output");
                c.1 = hooked && l.contains("policy drop");
                continue;
            }
            if accepts_igmp(l) {
                c.2 = true;
            }
        }
        if let Some(p) = l.strip_prefix(':') {
            let f: Vec<&str> = p.split_whitespace().collect();
            if let [name, "DROP", ..] = f[..] {
                if name == "INPUT" || name == "OUTPUT" {
                    ipt_policies.push(name.to_string());
                }
            }
            continue;
        }
        if l.starts_with("-A ") && accepts_igmp(l) {
            ipt_accepts = true;
        }
        if (l.starts_with("-A ") || chain.is_some()) && verdict_drops(l) && about_multicast(l) {
            out.push(l.to_string());
        }
    }
    if !ipt_accepts {
        for p in ipt_policies {
            out.push(format!(":{p} DROP, and no rule accepts IGMP"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::drops;

    #[test]
    fn nft_rules_that_drop_igmp_mld_or_multicast_are_found() {
        let t = "table inet f {\n\tchain in {\n\t\ttype filter hook input priority filter; policy accept;\n\
                 \t\tmeta l4proto igmp drop\n\t\ttcp dport 22 accept\n\t\ticmpv6 type mld-listener-query reject\n\
                 \t\tip daddr 224.0.0.0/4 counter packets 0 bytes 0 drop\n\t\tip saddr 10.0.0.0/8 drop\n\t}\n}\n";
        let d = drops(t);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[0], "meta l4proto igmp drop");
        assert!(d[1].contains("mld-listener-query"));
        assert!(d[2].contains("224.0.0.0/4"));
    }

    #[test]
    fn an_nft_drop_policy_counts_unless_igmp_is_accepted() {
        let closed = "table ip f {\n chain in {\n  type filter hook input priority 0; policy drop;\n  tcp dport 22 accept\n }\n}\n";
        assert_eq!(
            drops(closed),
            vec!["chain in: policy drop, and no rule accepts IGMP"]
        );
        let open = closed.replace("tcp dport 22 accept", "ip protocol igmp accept");
        assert!(drops(&open).is_empty());
        let fwd = closed.replace("hook input", "hook forward");
        assert!(
            drops(&fwd).is_empty(),
            "forwarding is not the box's own IGMP"
        );
    }

    #[test]
    fn iptables_save_rules_and_policies() {
        let t =
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n-A INPUT -i eth1 -p igmp -j DROP\n\
                 -A INPUT -p tcp --dport 22 -j DROP\nCOMMIT\n";
        assert_eq!(drops(t), vec!["-A INPUT -i eth1 -p igmp -j DROP"]);
        let p = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n";
        assert_eq!(drops(p), vec![":INPUT DROP, and no rule accepts IGMP"]);
        let ok = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p igmp -j ACCEPT\nCOMMIT\n";
        assert!(drops(ok).is_empty());
        let v6 = "*filter\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 130 -j DROP\n";
        assert_eq!(drops(v6).len(), 1);
    }

    #[test]
    fn odd_text_never_panics_and_finds_nothing() {
        for t in [
            "",
            "}",
            "chain",
            ":",
            "-A",
            "\0\u{fffd}",
            "chain x {\n}\n}\n}",
        ] {
            assert!(drops(t).is_empty(), "{t:?}");
        }
    }
}
