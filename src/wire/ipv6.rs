//! IPv6 framing for MLD snooping and IPv6 multicast data (issue 6): the fixed header
//! (RFC 8200 section 3), the extension-header chain (RFC 8200 section 4), the Router Alert
//! hop-by-hop option (RFC 2711), MLD frames in and out (RFC 2710 section 3, RFC 3810
//! section 5), the data path's view of a multicast packet, and the UDP checksum completion
//! for packets read on the sending side of a veth (RFC 8200 section 8.1).
//!
//! Pure: no I/O, no clock. Every parser returns `Err(WireError)` on bad input, never panics.
//! The MLD messages themselves are `wire::mld`'s; this module finds them in a frame and wraps
//! ours in one.

use super::ethernet::{self, MacAddr};
use super::mld;
use super::{Result, WireError};
use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header (RFC 8200 section 3).
pub const HEADER_LEN: usize = 40;

/// Next Header values (IANA "Assigned Internet Protocol Numbers") this module knows.
pub const NEXT_HEADER_HOP_BY_HOP: u8 = 0;
pub const NEXT_HEADER_UDP: u8 = 17;
pub const NEXT_HEADER_ROUTING: u8 = 43;
pub const NEXT_HEADER_FRAGMENT: u8 = 44;
/// Authentication Header (RFC 4302); walked over like the other extension headers.
pub const NEXT_HEADER_AUTH: u8 = 51;
pub const NEXT_HEADER_ICMPV6: u8 = mld::NEXT_HEADER_ICMPV6;
pub const NEXT_HEADER_NONE: u8 = 59;
pub const NEXT_HEADER_DEST_OPTS: u8 = 60;

/// Hop-by-hop option types (RFC 8200 section 4.2, RFC 2711 section 2.1).
const OPTION_PAD1: u8 = 0;
const OPTION_PADN: u8 = 1;
pub const OPTION_ROUTER_ALERT: u8 = 5;
/// The Router Alert option carries a 2-octet value (RFC 2711 section 2.1).
const ROUTER_ALERT_DATA_LEN: u8 = 2;
/// Router Alert value 0: "Datagram contains a Multicast Listener Discovery message"
/// (RFC 2711 section 2.1).
pub const ROUTER_ALERT_MLD: u16 = 0;

/// Hop limit of every MLD message (RFC 2710 section 3, RFC 3810 section 5).
pub const MLD_HOP_LIMIT: u8 = 1;

/// The hop-by-hop header we put in front of our MLD messages: next header ICMPv6, length
/// 0 (8 octets), Router Alert with value 0 (MLD), then PadN with no data octets to fill
/// the header to 8 octets (RFC 8200 section 4.3, RFC 2711 section 2.1). Linux lays its own
/// MLD reports out the same way.
const MLD_HOP_BY_HOP: [u8; 8] = [
    NEXT_HEADER_ICMPV6,
    0,
    OPTION_ROUTER_ALERT,
    ROUTER_ALERT_DATA_LEN,
    0,
    0,
    OPTION_PADN,
    0,
];

/// Field offsets of the fixed IPv6 header (RFC 8200 section 3).
mod field {
    pub type Field = std::ops::Range<usize>;
    /// Version (4 bits), Traffic Class (8), Flow Label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
    // Within an extension header (RFC 8200 sections 4.3-4.6).
    pub const EXT_NEXT_HEADER: usize = 0;
    pub const EXT_LEN: usize = 1;
    /// Routing header: Segments Left (RFC 8200 section 4.4).
    pub const ROUTING_SEGMENTS_LEFT: usize = 3;
    /// Fragment header: Fragment Offset (13 bits), Res (2), M flag (1) (section 4.5).
    pub const FRAGMENT_OFFSET_FLAGS: Field = 2..4;
    pub const FRAGMENT_LEN: usize = 8;
    // Within a UDP header (RFC 768).
    pub const UDP_LEN: Field = 4..6;
    pub const UDP_HEADER_LEN: usize = 8;
}

/// The fixed IPv6 header fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    /// Octets after the fixed header, extension headers included; at most the bytes
    /// received after the 40-octet header (anything beyond is link padding).
    pub payload_len: u16,
    /// The first Next Header value (0 when a hop-by-hop header follows).
    pub next_header: u8,
}

impl Ipv6Header {
    /// Length of the packet: the fixed header plus the payload.
    pub fn packet_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len)
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn addr_at(buf: &[u8], f: field::Field) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&buf[f]);
    Ipv6Addr::from(a)
}

/// Parse the fixed header: at least 40 octets, version 6, and a payload length that fits
/// the bytes after the header (RFC 8200 section 3). Bytes beyond `40 + payload_len` are
/// link padding: callers trim them (see [`Ipv6Header::packet_len`]). A payload length of 0
/// is taken literally (jumbograms, RFC 2675, are not supported).
pub fn parse_header(buf: &[u8]) -> Result<Ipv6Header> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if buf[field::VER_TC_FLOW.start] >> 4 != 6 {
        return Err(WireError::NotIpv6);
    }
    let payload_len = be16(&buf[field::PAYLOAD_LEN]);
    if usize::from(payload_len) > buf.len() - HEADER_LEN {
        return Err(WireError::BadPayloadLength);
    }
    Ok(Ipv6Header {
        src: addr_at(buf, field::SRC),
        dst: addr_at(buf, field::DST),
        hop_limit: buf[field::HOP_LIMIT],
        payload_len,
        next_header: buf[field::NEXT_HEADER],
    })
}

/// Write a fixed IPv6 header into `buf[..40]`: traffic class and flow label 0.
/// Panics if `buf` is shorter than 40 octets (callers size it).
pub fn write_header(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload_len: u16,
) {
    buf[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
    buf[field::PAYLOAD_LEN].copy_from_slice(&payload_len.to_be_bytes());
    buf[field::NEXT_HEADER] = next_header;
    buf[field::HOP_LIMIT] = hop_limit;
    buf[field::SRC].copy_from_slice(&src.octets());
    buf[field::DST].copy_from_slice(&dst.octets());
}

/// A fragment header that really fragments (RFC 8200 section 4.5): an offset or the M flag.
/// An atomic fragment (offset 0, M clear; RFC 6946) is a whole packet and is not reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Fragment Offset in 8-octet units; 0 for the first fragment.
    pub offset: u16,
    /// The M flag: more fragments follow.
    pub more: bool,
}

/// Where the extension-header chain of a packet ends (RFC 8200 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The Next Header value that ends the chain: the upper-layer protocol (58 ICMPv6,
    /// 17 UDP, 59 No Next Header, or anything this module does not walk over, such as
    /// ESP). For a non-first fragment it is the Fragment header's Next Header.
    pub protocol: u8,
    /// Offset from the start of the IPv6 header of the upper-layer header, or for a
    /// non-first fragment of the fragment's data (no upper-layer header there).
    pub offset: usize,
    /// The packet is a fragment (an atomic fragment is not).
    pub fragment: Option<Fragment>,
    /// The value of the hop-by-hop Router Alert option, if there is one (RFC 2711).
    pub router_alert: Option<u16>,
    /// Segments Left of the last routing header (0 if none): when non-zero the packet's
    /// destination is not its final one (RFC 8200 sections 4.4 and 8.1).
    pub segments_left: u8,
}

impl UpperLayer {
    /// A non-first fragment carries no upper-layer header.
    pub fn is_non_first_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| f.offset != 0)
    }
}

/// Walk the hop-by-hop options (RFC 8200 section 4.2) and return the Router Alert value,
/// if any. Pad1 is a single octet; every other option is type, data length, data, and
/// must end inside the header; a Router Alert whose data is not 2 octets (RFC 2711 section
/// 2.1) is not one we can trust. Either fault is `Malformed`.
fn find_router_alert(options: &[u8]) -> Result<Option<u16>> {
    let mut found = None;
    let mut i = 0;
    while i < options.len() {
        if options[i] == OPTION_PAD1 {
            i += 1;
            continue;
        }
        let data_len = usize::from(*options.get(i + 1).ok_or(WireError::Malformed)?);
        let data = options
            .get(i + 2..i + 2 + data_len)
            .ok_or(WireError::Malformed)?;
        if options[i] == OPTION_ROUTER_ALERT {
            if data.len() != usize::from(ROUTER_ALERT_DATA_LEN) {
                return Err(WireError::Malformed);
            }
            found = Some(be16(data));
        }
        i += 2 + data_len;
    }
    Ok(found)
}

/// Walk the extension-header chain of `packet` (starting at the IPv6 header, already
/// trimmed to `40 + payload_len`) to the upper layer (RFC 8200 section 4).
///
/// Hop-by-hop (0), Routing (43), Destination Options (60) and Authentication (51, RFC 4302
/// section 2.2: length in 4-octet units, minus 2) headers are skipped by their length; a
/// Fragment header (44) with an offset ends the walk there (a non-first fragment carries
/// no upper-layer header), one without continues into the first fragment. The hop-by-hop
/// options are walked only when `options` is set (the MLD path; the data path skips them).
///
/// Errors: `Truncated` when the packet ends inside an extension header (for a first
/// fragment too: RFC 7112 section 5 requires the whole chain in the first fragment);
/// `Malformed` for a hop-by-hop header anywhere but right after the IPv6 header (RFC 8200
/// section 4.1) or a malformed option list.
fn walk(packet: &[u8], first: u8, options: bool) -> Result<UpperLayer> {
    let mut up = UpperLayer {
        protocol: first,
        offset: HEADER_LEN,
        fragment: None,
        router_alert: None,
        segments_left: 0,
    };
    // Every header moves `offset` forward by at least 8 octets within the packet, so the
    // loop ends.
    loop {
        let off = up.offset;
        let len = match up.protocol {
            NEXT_HEADER_HOP_BY_HOP | NEXT_HEADER_ROUTING | NEXT_HEADER_DEST_OPTS => {
                if up.protocol == NEXT_HEADER_HOP_BY_HOP && off != HEADER_LEN {
                    return Err(WireError::Malformed);
                }
                // Hdr Ext Len: 8-octet units, not counting the first 8 octets.
                let units = *packet
                    .get(off + field::EXT_LEN)
                    .ok_or(WireError::Truncated)?;
                (usize::from(units) + 1) * 8
            }
            NEXT_HEADER_AUTH => {
                // RFC 4302 section 2.2: Payload Len is in 4-octet units, minus 2.
                let units = *packet
                    .get(off + field::EXT_LEN)
                    .ok_or(WireError::Truncated)?;
                (usize::from(units) + 2) * 4
            }
            NEXT_HEADER_FRAGMENT => field::FRAGMENT_LEN,
            _ => return Ok(up),
        };
        let hdr = packet.get(off..off + len).ok_or(WireError::Truncated)?;
        match up.protocol {
            NEXT_HEADER_HOP_BY_HOP if options => {
                up.router_alert = find_router_alert(&hdr[2..])?;
            }
            NEXT_HEADER_ROUTING => up.segments_left = hdr[field::ROUTING_SEGMENTS_LEFT],
            NEXT_HEADER_FRAGMENT => {
                let v = be16(&hdr[field::FRAGMENT_OFFSET_FLAGS]);
                let frag = Fragment {
                    offset: v >> 3,
                    more: v & 1 == 1,
                };
                if frag.offset != 0 || frag.more {
                    up.fragment = Some(frag);
                }
                if frag.offset != 0 {
                    up.protocol = hdr[field::EXT_NEXT_HEADER];
                    up.offset = off + len;
                    return Ok(up);
                }
            }
            _ => {}
        }
        up.protocol = hdr[field::EXT_NEXT_HEADER];
        up.offset = off + len;
    }
}

/// Find the upper layer of an IPv6 packet (`ip` starts at the IPv6 header; link padding
/// after the payload length is ignored): the fixed header checks of [`parse_header`], then
/// the extension-header walk, hop-by-hop options included. Returns the header with it.
pub fn upper_layer(ip: &[u8]) -> Result<(Ipv6Header, UpperLayer)> {
    let hdr = parse_header(ip)?;
    let up = walk(&ip[..hdr.packet_len()], hdr.next_header, true)?;
    Ok((hdr, up))
}

/// True for `fe80::/10`, the link-local unicast prefix (RFC 4291 section 2.5.6). (std's
/// `Ipv6Addr::is_unicast_link_local` needs Rust 1.84; we build on 1.80.)
pub fn is_link_local_unicast(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The scope of a multicast address: the low nibble of its second octet (RFC 4291
/// section 2.7).
fn scope(g: Ipv6Addr) -> u8 {
    g.octets()[1] & 0x0f
}

/// A multicast group whose data we forward: multicast (ff00::/8), with a scope (RFC 4291
/// section 2.7) other than 0 (reserved), 1 (interface-local), 2 (link-local, which holds
/// all-nodes ff02::1, all-routers, ff02::16 and the solicited-node groups
/// ff02::1:ffXX:XXXX) and 0xf (reserved). Link-scope packets never cross a router (RFC 4291
/// section 2.7: "routers must not forward any multicast packets beyond of the scope
/// indicated"), so none arrive upstream to be sent on.
pub fn is_forwardable_group(g: Ipv6Addr) -> bool {
    g.is_multicast() && !matches!(scope(g), 0x0 | 0x1 | 0x2 | 0xf)
}

/// FF3x::/96, the source-specific multicast range (RFC 4607 section 1, RFC 3306 section 6):
/// flags P and T set (FF3x), prefix length 0 and prefix 0.
pub fn is_ssm_group(g: Ipv6Addr) -> bool {
    let o = g.octets();
    o[0] == 0xff && o[1] & 0xf0 == 0x30 && o[2..12].iter().all(|&b| b == 0)
}

/// An MLD message from a downstream host with its framing facts; judging them is the
/// caller's job. What the RFCs say a router or a snooping switch does with each fact:
///
/// - **All three at once.** RFC 3810 section 5 (and RFC 2710 section 3 for MLDv1): every
///   MLD message MUST be sent with a link-local IPv6 source address, hop limit 1 and a
///   Router Alert option (RFC 2711) in a hop-by-hop header. On reception of a Query a node
///   "checks if the source address of the message is a valid link-local address, if the
///   Hop Limit is set to 1, and if the Router Alert option is present in the Hop-By-Hop
///   Options header of the IPv6 packet. If any of these checks fails, the packet is
///   dropped" (RFC 3810 section 6.2); a router makes the same three checks on reception of
///   a Report (RFC 3810 section 7.4). So: drop (and count) when `ip.hop_limit != 1` or
///   `!router_alert`, as the IPv4 path does with TTL != 1.
/// - **Source of a Query** (RFC 3810 section 5.1.14; RFC 2710 section 5: "To be valid, the
///   Query message MUST come from a link-local IPv6 Source Address"): a query from `::` or
///   from any address that is not link-local ([`is_link_local_unicast`]) MUST be silently
///   discarded, and a warning SHOULD be logged. RFC 4541 section 3: a snooping switch that
///   spoofs general queries sends them from `::`, and such queries must not take part in
///   the querier election; discarding them does that.
/// - **Source of a Report or Done** (RFC 3810 section 5.2.13, RFC 3590 section 4): a host
///   sends reports from `::` while it has no valid link-local address yet (Duplicate
///   Address Detection of its link-local address, RFC 4862, needs the solicited-node
///   group joined first). A *router* MUST silently discard a message not sent from a valid
///   link-local address and discards reports from `::` too, "as unidentified reporting
///   nodes cannot influence the state" (5.2.13). A *snooping switch*, though, must not
///   reject a report because its source is `::` (RFC 4541 section 3), or DAD's neighbour
///   solicitations would not reach the other hosts. snoopcast keys members by MAC, so it
///   can take reports from `::` as a snooper does; a report from any other non-link-local
///   address (global, ULA, multicast) is discarded. The groups in such DAD-time reports are
///   link-scope solicited-node groups, which [`is_forwardable_group`] refuses anyway.
/// - **Destination**: MLDv2 reports go to ff02::16 (RFC 3810 section 5.2.14), MLDv1
///   reports to the group itself and Dones to ff02::2 (RFC 2710 section 3), but a node
///   MUST accept a v1 report sent to any of its addresses (5.2.14) and a query sent to any
///   (5.1.15): the destination is not a reason to drop.
/// - **Message**: a query neither 24 nor at least 28 octets long is already `Malformed`
///   here (RFC 3810 section 8.1). Unknown ICMPv6 types never reach [`mld::parse`]
///   (`NotMld`, RFC 3810 section 5: "Unrecognized message types MUST be silently
///   ignored").
///
/// RFC 9777 (March 2025) obsoletes RFC 3810 and keeps these rules (its section 6.2 has the
/// same query checks); the section numbers above are RFC 3810's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MldFrame {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub ip: Ipv6Header,
    /// A hop-by-hop Router Alert option with value 0, "MLD" (RFC 2711 section 2.1), is
    /// present. A Router Alert with another value does not count.
    pub router_alert: bool,
    pub message: mld::Message,
}

fn is_mld_type(t: u8) -> bool {
    matches!(
        t,
        mld::TYPE_QUERY | mld::TYPE_V1_REPORT | mld::TYPE_V1_DONE | mld::TYPE_V2_REPORT
    )
}

/// Parse an Ethernet frame carrying an MLD message (RFC 2710 section 3, RFC 3810 section 5).
///
/// Checks in order: Ethernet header and EtherType 0x86DD (`NotIpv6`), the IPv6 header
/// ([`parse_header`]; padding after the payload length is trimmed), the extension-header
/// chain (hop-by-hop, routing, destination options, authentication; `Truncated` or
/// `Malformed`), then the upper layer: anything but ICMPv6 is `NotMld`; a fragmented packet
/// is `Fragmented`, unless the fragment header already shows it is not ICMPv6 or a first
/// fragment shows a non-MLD ICMPv6 type (`NotMld`); an ICMPv6 type other than 130, 131,
/// 132 or 143 is `NotMld` (neighbour discovery and echo are normal traffic); then
/// `mld::parse` with the packet's source and destination for the pseudo-header checksum.
///
/// Not judged here: the hop limit, the source address, the Router Alert (see [`MldFrame`]).
pub fn parse_mld_frame(frame: &[u8]) -> Result<MldFrame> {
    let eth = ethernet::parse(frame)?;
    if eth.ethertype != ethernet::ETHERTYPE_IPV6 {
        return Err(WireError::NotIpv6);
    }
    let ip = &frame[ethernet::HEADER_LEN..];
    let (hdr, up) = upper_layer(ip)?;
    let ip = &ip[..hdr.packet_len()];
    if up.protocol != NEXT_HEADER_ICMPV6 {
        return Err(WireError::NotMld);
    }
    let body = &ip[up.offset..];
    if up.fragment.is_some() {
        // The type octet is visible only in a first fragment.
        return match body.first() {
            Some(&t) if !up.is_non_first_fragment() && !is_mld_type(t) => Err(WireError::NotMld),
            _ => Err(WireError::Fragmented),
        };
    }
    match body.first() {
        None => return Err(WireError::Truncated),
        Some(&t) if !is_mld_type(t) => return Err(WireError::NotMld),
        Some(_) => {}
    }
    let message = mld::parse(hdr.src, hdr.dst, body)?;
    Ok(MldFrame {
        src_mac: eth.src,
        dst_mac: eth.dst,
        ip: hdr,
        router_alert: up.router_alert == Some(ROUTER_ALERT_MLD),
        message,
    })
}

/// Octets in front of the ICMPv6 message in a frame from [`build_mld_frame`].
pub const MLD_FRAME_OVERHEAD: usize = ethernet::HEADER_LEN + HEADER_LEN + MLD_HOP_BY_HOP.len();

/// Build an Ethernet frame carrying `msg` from `src` to `dst` (used for our queries):
/// Ethernet to the group MAC of `dst` (33:33 + its last 4 octets, RFC 2464 section 7),
/// IPv6 with hop limit 1 and a hop-by-hop header holding a Router Alert with value 0 and
/// PadN (RFC 3810 section 5, RFC 2710 section 3, RFC 2711), then the ICMPv6 MLD message
/// with its pseudo-header checksum (RFC 8200 section 8.1). `src` should be our link-local
/// address (RFC 3810 section 5.1.14). A message too long for the 16-bit payload length
/// (over 65527 octets; a query with thousands of sources) saturates the field; callers
/// keep queries small.
pub fn build_mld_frame(
    src_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg: &mld::Message,
) -> Vec<u8> {
    const IP_START: usize = ethernet::HEADER_LEN;
    const HBH_START: usize = IP_START + HEADER_LEN;
    // Emit the message in place after room for the headers, then fill the headers in.
    let mut frame = vec![0u8; MLD_FRAME_OVERHEAD];
    mld::emit(src, dst, msg, &mut frame);
    let payload = frame.len() - HBH_START;
    let payload_len = u16::try_from(payload).unwrap_or(u16::MAX);
    ethernet::write_header(
        &mut frame,
        crate::wire::ethernet::ipv6_group_mac(dst),
        src_mac,
        ethernet::ETHERTYPE_IPV6,
    );
    write_header(
        &mut frame[IP_START..],
        src,
        dst,
        NEXT_HEADER_HOP_BY_HOP,
        MLD_HOP_LIMIT,
        payload_len,
    );
    frame[HBH_START..MLD_FRAME_OVERHEAD].copy_from_slice(&MLD_HOP_BY_HOP);
    frame
}

/// A multicast IPv6 data packet found upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPacket6<'a> {
    pub source: Ipv6Addr,
    pub group: Ipv6Addr,
    /// The whole IPv6 packet, trimmed to `40 + payload_len` (link padding removed).
    pub ip: &'a [u8],
}

/// Locate the IPv6 multicast packet in `ip_bytes` (starting at the IPv6 header; the caller
/// strips the Ethernet header). Cheap (per-packet path): the fixed header checks of
/// [`parse_header`], the destination class, then a walk over the extension headers with no
/// option parsing, only to recognise MLD.
///
/// `Err` for anything that is not forwardable data: not IPv6 or truncated, a destination
/// that [`is_forwardable_group`] refuses (`NotForwardable`), an extension-header chain that
/// overruns the packet (`Truncated`) or breaks RFC 8200 section 4.1 (`Malformed`), and MLD
/// (`IsMld`: ICMPv6 type 130/131/132/143 behind any extension headers, including in a
/// first fragment; an MLDv1 report is sent to its group, which may be of global scope, so
/// the destination alone does not exclude it). An ICMPv6 packet too short to hold its type
/// octet is `Truncated`. Extension headers and fragments are otherwise forwarded unchanged;
/// a non-first fragment has no upper-layer header to look at and is forwarded too.
pub fn parse_data_packet(ip_bytes: &[u8]) -> Result<DataPacket6<'_>> {
    let hdr = parse_header(ip_bytes)?;
    if !is_forwardable_group(hdr.dst) {
        return Err(WireError::NotForwardable);
    }
    let ip = &ip_bytes[..hdr.packet_len()];
    let up = walk(ip, hdr.next_header, false)?;
    if up.protocol == NEXT_HEADER_ICMPV6 && !up.is_non_first_fragment() {
        match ip.get(up.offset) {
            None => return Err(WireError::Truncated),
            Some(&t) if is_mld_type(t) => return Err(WireError::IsMld),
            Some(_) => {}
        }
    }
    Ok(DataPacket6 {
        source: hdr.src,
        group: hdr.dst,
        ip,
    })
}

/// Fill in the UDP checksum of an unfragmented IPv6/UDP packet whose checksum was left to
/// the device (a frame read from a packet socket on the sending side, CHECKSUM_PARTIAL),
/// the contract of `wire::ipv4::complete_udp_checksum`: the RFC 8200 section 8.1
/// pseudo-header (source, destination, the UDP length as a 32-bit upper-layer length, three
/// zero octets, next header 17) summed with the UDP header and data. The extension headers
/// are walked to the UDP header.
///
/// Returns false (and changes nothing) for anything else: not IPv6, not UDP, a fragment
/// (first or not: a fragment holds only part of the datagram the checksum covers; an
/// atomic fragment is whole and is completed), a routing header with segments left (the
/// pseudo-header would need the final destination), a malformed chain, or a UDP length
/// below 8 or beyond the packet (0 would be a jumbogram, RFC 2675).
pub fn complete_udp_checksum(packet: &mut [u8]) -> bool {
    let Ok(hdr) = parse_header(packet) else {
        return false;
    };
    let end = hdr.packet_len();
    let Ok(up) = walk(&packet[..end], hdr.next_header, false) else {
        return false;
    };
    if up.protocol != NEXT_HEADER_UDP || up.fragment.is_some() || up.segments_left != 0 {
        return false;
    }
    let udp = &mut packet[up.offset..end];
    if udp.len() < field::UDP_HEADER_LEN {
        return false;
    }
    let udp_len = usize::from(be16(&udp[field::UDP_LEN]));
    if udp_len < field::UDP_HEADER_LEN || udp_len > udp.len() {
        return false;
    }
    let mut pseudo = [0u8; 40];
    pseudo[0..16].copy_from_slice(&hdr.src.octets());
    pseudo[16..32].copy_from_slice(&hdr.dst.octets());
    pseudo[32..36].copy_from_slice(&(udp_len as u32).to_be_bytes());
    pseudo[39] = NEXT_HEADER_UDP;
    // RFC 8200 section 8.1: the UDP checksum is mandatory in IPv6.
    super::checksum::fill_udp(&pseudo, &mut udp[..udp_len]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::igmp::RecordType;
    use crate::wire::mld::{AddressRecord, Message, Query, QueryVersion};
    use std::time::Duration;

    const HOST_MAC: MacAddr = MacAddr(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
    const HOST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
    const SOURCE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const GROUP: Ipv6Addr = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 0x1234);

    // The reference frames below are not captures: they were built byte by byte with
    // python3 `struct` and `ipaddress` in the layout Linux uses for its MLD reports (traffic
    // class 0, hop limit 1, hop-by-hop header with Router Alert 0 then PadN), with the
    // checksums computed there, independently of this crate.

    /// An MLDv2 report from fe80::5054:ff:fe12:3456 to ff02::16: CHANGE_TO_EXCLUDE {}
    /// ff05::1:3 and MODE_IS_INCLUDE {2001:db8::1} ff3e::8000:1. ICMPv6 checksum 0x3e27.
    const LINUX_MLDV2_REPORT_FRAME: [u8; 126] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x16, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x48, 0x00, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x16, 0x3a, 0x00, 0x05, 0x02, 0x00, 0x00,
        0x01, 0x00, 0x8f, 0x00, 0x3e, 0x27, 0x00, 0x00, 0x00, 0x02, 0x04, 0x00, 0x00, 0x00, 0xff,
        0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03,
        0x01, 0x00, 0x00, 0x01, 0xff, 0x3e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x80, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    /// An MLDv1 report for ff0e::1234, sent to the group (RFC 2710 section 3).
    const MLDV1_REPORT_FRAME: [u8; 86] = [
        0x33, 0x33, 0x00, 0x00, 0x12, 0x34, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56, 0xff, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x3a, 0x00, 0x05, 0x02, 0x00, 0x00,
        0x01, 0x00, 0x83, 0x00, 0xd7, 0xe9, 0x00, 0x00, 0x00, 0x00, 0xff, 0x0e, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34,
    ];

    /// UDP 2001:db8::1 port 5000 -> ff0e::1234 port 6000, "hello", hop limit 64. The UDP
    /// checksum 0x520d was computed by python over the RFC 8200 section 8.1 pseudo-header.
    const UDP_PACKET: [u8; 53] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x0e, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x13, 0x88, 0x17, 0x70, 0x00,
        0x0d, 0x52, 0x0d, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
    ];
    const UDP_CHECKSUM: [u8; 2] = [0x52, 0x0d];

    /// The same datagram behind hop-by-hop (PadN), destination options (PadN) and an atomic
    /// fragment header (offset 0, M clear, id 0x1234).
    const UDP_CHAIN_PACKET: [u8; 77] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x25, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x0e, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x3c, 0x00, 0x01, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x12, 0x34, 0x13, 0x88, 0x17, 0x70, 0x00, 0x0d, 0x52, 0x0d, 0x68, 0x65, 0x6c,
        0x6c, 0x6f,
    ];

    fn v2_report() -> Message {
        Message::ReportV2 {
            records: vec![
                AddressRecord {
                    record_type: RecordType::ChangeToExclude,
                    group: "ff05::1:3".parse().unwrap(),
                    sources: vec![],
                },
                AddressRecord {
                    record_type: RecordType::ModeIsInclude,
                    group: "ff3e::8000:1".parse().unwrap(),
                    sources: vec![SOURCE],
                },
            ],
        }
    }

    // Builders for variants of the reference frames.

    /// An extension header: next header, length in 8-octet units after the first 8, then
    /// `body` padded with zeros (a zero is Pad1 in an options header).
    fn ext(next: u8, body: &[u8]) -> Vec<u8> {
        let total = (2 + body.len()).div_ceil(8) * 8;
        let mut h = vec![next, (total / 8 - 1) as u8];
        h.extend_from_slice(body);
        h.resize(total, 0);
        h
    }

    fn hbh_ra(next: u8, value: u16) -> Vec<u8> {
        let v = value.to_be_bytes();
        ext(next, &[OPTION_ROUTER_ALERT, 2, v[0], v[1], OPTION_PADN, 0])
    }

    fn frag(next: u8, offset: u16, more: bool) -> Vec<u8> {
        let v = (offset << 3) | u16::from(more);
        let b = v.to_be_bytes();
        vec![next, 0, b[0], b[1], 0xde, 0xad, 0xbe, 0xef]
    }

    fn routing(next: u8, segments_left: u8) -> Vec<u8> {
        ext(next, &[0, segments_left, 0, 0, 0, 0])
    }

    fn ip6(src: Ipv6Addr, dst: Ipv6Addr, first: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN];
        write_header(&mut p, src, dst, first, hop, payload.len() as u16);
        p.extend_from_slice(payload);
        p
    }

    fn eth6(dst: Ipv6Addr, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::HEADER_LEN];
        ethernet::write_header(
            &mut f,
            crate::wire::ethernet::ipv6_group_mac(dst),
            HOST_MAC,
            ethernet::ETHERTYPE_IPV6,
        );
        f.extend_from_slice(ip);
        f
    }

    /// The ICMPv6 bytes of `msg` from `src` to `dst` with their checksum.
    fn icmp(src: Ipv6Addr, dst: Ipv6Addr, msg: &Message) -> Vec<u8> {
        let mut v = Vec::new();
        mld::emit(src, dst, msg, &mut v);
        v
    }

    /// An ICMPv6 message of any type with a correct checksum.
    fn icmp_raw(src: Ipv6Addr, dst: Ipv6Addr, mut body: Vec<u8>) -> Vec<u8> {
        body[2..4].fill(0);
        let c = mld::checksum(src, dst, &body);
        body[2..4].copy_from_slice(&c.to_be_bytes());
        body
    }

    /// An MLD frame from HOST to `dst` with the given chain in front of the message.
    fn mld_frame(dst: Ipv6Addr, first: u8, chain: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut payload = chain.to_vec();
        payload.extend_from_slice(msg);
        eth6(dst, &ip6(HOST, dst, first, 1, &payload))
    }

    #[test]
    fn parse_linux_mldv2_report_frame() {
        let f = parse_mld_frame(&LINUX_MLDV2_REPORT_FRAME).unwrap();
        assert_eq!(f.src_mac, HOST_MAC);
        assert_eq!(
            f.dst_mac,
            crate::wire::ethernet::ipv6_group_mac(mld::ALL_MLDV2_ROUTERS)
        );
        assert_eq!(
            f.ip,
            Ipv6Header {
                src: HOST,
                dst: mld::ALL_MLDV2_ROUTERS,
                hop_limit: 1,
                payload_len: 72,
                next_header: NEXT_HEADER_HOP_BY_HOP,
            }
        );
        assert!(f.router_alert);
        assert_eq!(f.message, v2_report());
        assert!(is_link_local_unicast(f.ip.src));
    }

    #[test]
    fn parse_mldv1_report_frame_and_trim_padding() {
        let f = parse_mld_frame(&MLDV1_REPORT_FRAME).unwrap();
        assert_eq!(f.message, Message::ReportV1 { group: GROUP });
        assert_eq!(f.ip.dst, GROUP);
        assert!(f.router_alert);
        // Link padding after the payload length would break the checksum (and the length)
        // if it were not trimmed first.
        for frame in [&MLDV1_REPORT_FRAME[..], &LINUX_MLDV2_REPORT_FRAME[..]] {
            let mut padded = frame.to_vec();
            padded.extend_from_slice(&[0xa5; 7]);
            assert_eq!(
                parse_mld_frame(&padded).unwrap(),
                parse_mld_frame(frame).unwrap()
            );
        }
    }

    #[test]
    fn mld_frame_every_truncation_is_an_error() {
        for frame in [&LINUX_MLDV2_REPORT_FRAME[..], &MLDV1_REPORT_FRAME[..]] {
            for len in 0..frame.len() {
                let want = if len < ethernet::HEADER_LEN + HEADER_LEN {
                    WireError::Truncated
                } else {
                    WireError::BadPayloadLength
                };
                assert_eq!(parse_mld_frame(&frame[..len]), Err(want), "len {len}");
            }
        }
    }

    #[test]
    fn mld_frame_cut_with_a_matching_payload_length_is_an_error() {
        // The payload length rewritten to what is left: the chain or the message is cut.
        let frame = LINUX_MLDV2_REPORT_FRAME;
        for len in 14 + 40..frame.len() {
            let mut f = frame[..len].to_vec();
            f[18..20].copy_from_slice(&((len - 54) as u16).to_be_bytes());
            let got = parse_mld_frame(&f);
            assert!(got.is_err(), "len {len}: {got:?}");
            if len < 14 + 40 + 8 {
                assert_eq!(got, Err(WireError::Truncated), "len {len}");
            }
        }
    }

    #[test]
    fn mld_frame_rejections() {
        // Not IPv6 by EtherType or by version.
        let mut f = LINUX_MLDV2_REPORT_FRAME;
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse_mld_frame(&f), Err(WireError::NotIpv6));
        let mut f = LINUX_MLDV2_REPORT_FRAME;
        f[14] = 0x45;
        assert_eq!(parse_mld_frame(&f), Err(WireError::NotIpv6));
        // A flipped bit in the message or in the pseudo-header's addresses.
        let mut f = LINUX_MLDV2_REPORT_FRAME;
        f[100] ^= 0x01;
        assert_eq!(parse_mld_frame(&f), Err(WireError::BadChecksum));
        let mut f = LINUX_MLDV2_REPORT_FRAME;
        f[37] ^= 0x01;
        assert_eq!(parse_mld_frame(&f), Err(WireError::BadChecksum));
        // The hop limit is not judged here.
        let mut f = LINUX_MLDV2_REPORT_FRAME;
        f[21] = 255;
        assert_eq!(parse_mld_frame(&f).unwrap().ip.hop_limit, 255);
        // Neighbour solicitation (135) and echo request (128): normal traffic, NotMld, and
        // with a broken checksum too (the type is looked at first).
        let all_nodes = mld::ALL_NODES;
        for t in [128u8, 133, 135, 136, 129, 0, 255] {
            let mut body = vec![t, 0, 0, 0, 0, 0, 0, 0];
            body.extend_from_slice(&HOST.octets());
            let body = icmp_raw(HOST, all_nodes, body);
            let f = mld_frame(all_nodes, 58, &[], &body);
            assert_eq!(parse_mld_frame(&f), Err(WireError::NotMld), "type {t}");
        }
        // UDP, or nothing after the chain: NotMld.
        let f = eth6(GROUP, &UDP_PACKET);
        assert_eq!(parse_mld_frame(&f), Err(WireError::NotMld));
        let f = mld_frame(all_nodes, NEXT_HEADER_NONE, &[], &[]);
        assert_eq!(parse_mld_frame(&f), Err(WireError::NotMld));
        // ICMPv6 with not even a type octet.
        let f = mld_frame(all_nodes, 58, &[], &[]);
        assert_eq!(parse_mld_frame(&f), Err(WireError::Truncated));
    }

    #[test]
    fn router_alert_is_reported_only_with_value_zero() {
        let dst = mld::ALL_MLDV2_ROUTERS;
        let msg = icmp(HOST, dst, &v2_report());
        // No hop-by-hop header at all: parsed, no Router Alert.
        let f = parse_mld_frame(&mld_frame(dst, 58, &[], &msg)).unwrap();
        assert!(!f.router_alert);
        assert_eq!(f.message, v2_report());
        // Router Alert value 1 (RSVP, RFC 2711 section 2.1) is not MLD's.
        let f = parse_mld_frame(&mld_frame(dst, 0, &hbh_ra(58, 1), &msg)).unwrap();
        assert!(!f.router_alert);
        // Only padding.
        let f = parse_mld_frame(&mld_frame(dst, 0, &ext(58, &[1, 4, 0, 0, 0, 0]), &msg));
        assert!(!f.unwrap().router_alert);
        // Pad1 octets before the option, and an unknown option (type 0x1e) first.
        let chain = ext(58, &[0, 0, 0x1e, 1, 0xff, OPTION_ROUTER_ALERT, 2, 0, 0]);
        assert!(
            parse_mld_frame(&mld_frame(dst, 0, &chain, &msg))
                .unwrap()
                .router_alert
        );
    }

    #[test]
    fn malformed_hop_by_hop_options() {
        let dst = mld::ALL_MLDV2_ROUTERS;
        let msg = icmp(HOST, dst, &v2_report());
        for opts in [
            // Router Alert with 3 or 1 data octets.
            &[OPTION_ROUTER_ALERT, 3, 0, 0, 0, 1][..],
            &[OPTION_ROUTER_ALERT, 1, 0, 1, 2, 0][..],
            // An option overrunning the header.
            &[0x1e, 5, 0, 0, 0, 0][..],
            // A type octet with no room for its length.
            &[1, 3, 0, 0, 0, 0x1e][..],
        ] {
            let chain = ext(58, opts);
            assert_eq!(chain.len(), 8);
            assert_eq!(
                parse_mld_frame(&mld_frame(dst, 0, &chain, &msg)),
                Err(WireError::Malformed),
                "{opts:02x?}"
            );
        }
        // RFC 8200 section 4.1: hop-by-hop only right after the IPv6 header.
        let mut chain = ext(0, &[1, 4, 0, 0, 0, 0]);
        chain.extend(hbh_ra(58, 0));
        assert_eq!(
            parse_mld_frame(&mld_frame(dst, NEXT_HEADER_DEST_OPTS, &chain, &msg)),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn mld_behind_an_extension_header_chain() {
        // Hop-by-hop (Router Alert), destination options, routing with no segments left,
        // an authentication header and an atomic fragment, then the report.
        let dst = mld::ALL_MLDV2_ROUTERS;
        let msg = icmp(HOST, dst, &v2_report());
        let mut chain = hbh_ra(NEXT_HEADER_DEST_OPTS, 0);
        chain.extend(ext(NEXT_HEADER_ROUTING, &[1, 4, 0, 0, 0, 0]));
        chain.extend(routing(NEXT_HEADER_AUTH, 0));
        // AH: Payload Len 4 -> (4 + 2) * 4 = 24 octets (RFC 4302 section 2.2).
        let mut ah = vec![NEXT_HEADER_FRAGMENT, 4];
        ah.resize(24, 0x77);
        chain.extend(ah);
        chain.extend(frag(58, 0, false));
        let f = mld_frame(dst, 0, &chain, &msg);
        let parsed = parse_mld_frame(&f).unwrap();
        assert!(parsed.router_alert);
        assert_eq!(parsed.message, v2_report());
        let (_, up) = upper_layer(&f[14..]).unwrap();
        assert_eq!(
            up,
            UpperLayer {
                protocol: 58,
                offset: 40 + chain.len(),
                fragment: None,
                router_alert: Some(0),
                segments_left: 0,
            }
        );
        // Every cut of the chain, with the payload length following the cut: an error.
        for len in 54..54 + chain.len() {
            let mut g = f[..len].to_vec();
            g[18..20].copy_from_slice(&((len - 54) as u16).to_be_bytes());
            assert!(parse_mld_frame(&g).is_err(), "len {len}");
        }
    }

    #[test]
    fn fragmented_mld_is_not_parsed() {
        let dst = mld::ALL_MLDV2_ROUTERS;
        let msg = icmp(HOST, dst, &v2_report());
        let with = |chain: Vec<u8>, body: &[u8]| {
            let mut c = hbh_ra(NEXT_HEADER_FRAGMENT, 0);
            c.extend(chain);
            parse_mld_frame(&mld_frame(dst, 0, &c, body))
        };
        // First fragment of an MLD message, and a later one.
        assert_eq!(
            with(frag(58, 0, true), &msg[..16]),
            Err(WireError::Fragmented)
        );
        assert_eq!(
            with(frag(58, 2, false), &msg[16..]),
            Err(WireError::Fragmented)
        );
        // A first fragment that shows a non-MLD ICMPv6 type, or a fragment of UDP: NotMld.
        let mut ns = msg.clone();
        ns[0] = 135;
        assert_eq!(with(frag(58, 0, true), &ns[..16]), Err(WireError::NotMld));
        assert_eq!(
            with(frag(NEXT_HEADER_UDP, 0, true), &UDP_PACKET[40..]),
            Err(WireError::NotMld)
        );
        // An atomic fragment (RFC 6946) is a whole message.
        assert_eq!(with(frag(58, 0, false), &msg).unwrap().message, v2_report());
    }

    fn all_messages() -> Vec<Message> {
        let q = |version, group, sources: Vec<Ipv6Addr>| {
            Message::Query(Query {
                version,
                max_resp: Duration::from_millis(10_000),
                group,
                s_flag: version == QueryVersion::V2 && !sources.is_empty(),
                qrv: if version == QueryVersion::V2 { 2 } else { 0 },
                qqi: if version == QueryVersion::V2 {
                    Duration::from_secs(125)
                } else {
                    Duration::ZERO
                },
                sources,
            })
        };
        vec![
            q(QueryVersion::V1, Ipv6Addr::UNSPECIFIED, vec![]),
            q(QueryVersion::V1, GROUP, vec![]),
            q(QueryVersion::V2, Ipv6Addr::UNSPECIFIED, vec![]),
            q(QueryVersion::V2, GROUP, vec![]),
            q(QueryVersion::V2, GROUP, vec![SOURCE, Ipv6Addr::LOCALHOST]),
            Message::ReportV1 { group: GROUP },
            Message::DoneV1 { group: GROUP },
            v2_report(),
            Message::ReportV2 { records: vec![] },
        ]
    }

    #[test]
    fn build_then_parse_round_trips_every_message_kind() {
        let ours: Ipv6Addr = "fe80::1".parse().unwrap();
        let our_mac = MacAddr(0x02, 0, 0, 0, 0, 1);
        for msg in all_messages() {
            for dst in [mld::ALL_NODES, GROUP, mld::ALL_MLDV2_ROUTERS] {
                let f = build_mld_frame(our_mac, ours, dst, &msg);
                // The framing of RFC 3810 section 5: group MAC, hop limit 1, hop-by-hop
                // header with Router Alert 0 and PadN, ICMPv6 behind it.
                assert_eq!(
                    &f[..6],
                    &crate::wire::ethernet::ipv6_group_mac(dst).octets()
                );
                assert_eq!(&f[6..12], &our_mac.octets());
                assert_eq!(&f[12..14], &[0x86, 0xdd]);
                assert_eq!(&f[14..18], &[0x60, 0, 0, 0]);
                assert_eq!(usize::from(be16(&f[18..20])), f.len() - 54);
                assert_eq!((f[20], f[21]), (NEXT_HEADER_HOP_BY_HOP, 1));
                assert_eq!(&f[54..62], &[58, 0, 5, 2, 0, 0, 1, 0]);
                let p = parse_mld_frame(&f).unwrap();
                assert_eq!(p.message, msg, "to {dst}");
                assert_eq!((p.src_mac, p.ip.src, p.ip.dst), (our_mac, ours, dst));
                assert_eq!(p.ip.hop_limit, 1);
                assert!(p.router_alert);
                // Never forwarded as data, whatever the destination's scope.
                assert!(parse_data_packet(&f[14..]).is_err());
            }
        }
    }

    #[test]
    fn build_matches_the_reference_frame_byte_for_byte() {
        let f = build_mld_frame(HOST_MAC, HOST, mld::ALL_MLDV2_ROUTERS, &v2_report());
        assert_eq!(f, LINUX_MLDV2_REPORT_FRAME);
        let f = build_mld_frame(HOST_MAC, HOST, GROUP, &Message::ReportV1 { group: GROUP });
        assert_eq!(f, MLDV1_REPORT_FRAME);
    }

    #[test]
    fn parse_header_fields_and_errors() {
        let h = parse_header(&UDP_PACKET).unwrap();
        assert_eq!(
            h,
            Ipv6Header {
                src: SOURCE,
                dst: GROUP,
                hop_limit: 64,
                payload_len: 13,
                next_header: NEXT_HEADER_UDP,
            }
        );
        assert_eq!(h.packet_len(), UDP_PACKET.len());
        for version in [0u8, 4, 5, 7, 15] {
            let mut p = UDP_PACKET;
            p[0] = version << 4;
            assert_eq!(parse_header(&p), Err(WireError::NotIpv6), "{version}");
        }
        // Traffic class and flow label do not matter.
        let mut p = UDP_PACKET;
        p[0..4].copy_from_slice(&[0x6f, 0xff, 0xff, 0xff]);
        assert!(parse_header(&p).is_ok());
        // Payload length beyond the bytes, and exactly the header.
        let mut p = UDP_PACKET;
        p[4..6].copy_from_slice(&14u16.to_be_bytes());
        assert_eq!(parse_header(&p), Err(WireError::BadPayloadLength));
        p[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse_header(&p), Err(WireError::BadPayloadLength));
        let mut p = UDP_PACKET[..40].to_vec();
        p[4..6].fill(0);
        assert_eq!(parse_header(&p).unwrap().payload_len, 0);
    }

    #[test]
    fn data_packet_plain_and_padded() {
        let d = parse_data_packet(&UDP_PACKET).unwrap();
        assert_eq!((d.source, d.group, d.ip), (SOURCE, GROUP, &UDP_PACKET[..]));
        let mut padded = UDP_PACKET.to_vec();
        padded.extend_from_slice(&[0xee; 11]);
        assert_eq!(parse_data_packet(&padded).unwrap().ip, &UDP_PACKET[..]);
        let d = parse_data_packet(&UDP_CHAIN_PACKET).unwrap();
        assert_eq!(d.ip, &UDP_CHAIN_PACKET[..]);
        // An Ethernet frame is not an IPv6 packet.
        assert!(parse_data_packet(&eth6(GROUP, &UDP_PACKET)).is_err());
    }

    #[test]
    fn data_packet_every_truncation_is_an_error() {
        for p in [&UDP_PACKET[..], &UDP_CHAIN_PACKET[..]] {
            for len in 0..p.len() {
                let want = if len < HEADER_LEN {
                    WireError::Truncated
                } else {
                    WireError::BadPayloadLength
                };
                assert_eq!(parse_data_packet(&p[..len]), Err(want), "len {len}");
            }
        }
        // With the payload length following the cut: truncated inside the chain is an
        // error, a cut in the UDP data is a (short) packet like any other.
        for len in 40..UDP_CHAIN_PACKET.len() {
            let mut p = UDP_CHAIN_PACKET[..len].to_vec();
            p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
            let got = parse_data_packet(&p);
            if len < 40 + 24 {
                assert_eq!(got, Err(WireError::Truncated), "len {len}");
            } else {
                assert_eq!(got.unwrap().ip, &p[..], "len {len}");
            }
        }
    }

    /// A UDP datagram's IPv6 packet as fragments: first (offset 0, M set) and the rest.
    fn udp_fragments() -> (Vec<u8>, Vec<u8>) {
        let udp = &UDP_PACKET[40..];
        let mut first = frag(NEXT_HEADER_UDP, 0, true);
        first.extend_from_slice(&udp[..8]);
        let mut rest = frag(NEXT_HEADER_UDP, 1, false);
        rest.extend_from_slice(&udp[8..]);
        (
            ip6(SOURCE, GROUP, NEXT_HEADER_FRAGMENT, 64, &first),
            ip6(SOURCE, GROUP, NEXT_HEADER_FRAGMENT, 64, &rest),
        )
    }

    #[test]
    fn data_packet_fragments_are_forwarded() {
        let (first, rest) = udp_fragments();
        assert_eq!(parse_data_packet(&first).unwrap().ip, &first[..]);
        assert_eq!(parse_data_packet(&rest).unwrap().ip, &rest[..]);
        let (_, up) = upper_layer(&rest).unwrap();
        assert!(up.is_non_first_fragment());
        assert_eq!(
            up.fragment,
            Some(Fragment {
                offset: 1,
                more: false
            })
        );
        let (_, up) = upper_layer(&first).unwrap();
        assert_eq!((up.protocol, up.offset), (NEXT_HEADER_UDP, 48));
        assert!(!up.is_non_first_fragment());
    }

    #[test]
    fn mld_is_never_data() {
        // An MLDv1 report goes to its group, which may be of global scope: behind the
        // hop-by-hop header it is MLD, not data.
        assert_eq!(
            parse_data_packet(&MLDV1_REPORT_FRAME[14..]),
            Err(WireError::IsMld)
        );
        // Each MLD type, behind hop-by-hop + destination options + first fragment, to a
        // forwardable group; and without any extension header.
        for t in [130u8, 131, 132, 143] {
            let mut body = vec![t, 0, 0, 0, 0, 0, 0, 0];
            body.extend_from_slice(&GROUP.octets());
            let body = icmp_raw(HOST, GROUP, body);
            let mut chain = hbh_ra(NEXT_HEADER_DEST_OPTS, 0);
            chain.extend(ext(NEXT_HEADER_FRAGMENT, &[1, 4, 0, 0, 0, 0]));
            chain.extend(frag(58, 0, true));
            chain.extend_from_slice(&body);
            let p = ip6(HOST, GROUP, 0, 1, &chain);
            assert_eq!(parse_data_packet(&p), Err(WireError::IsMld), "type {t}");
            let p = ip6(HOST, GROUP, 58, 1, &body);
            assert_eq!(parse_data_packet(&p), Err(WireError::IsMld), "type {t}");
        }
        // Other ICMPv6 (echo request to a group) is data.
        let echo = icmp_raw(SOURCE, GROUP, vec![128, 0, 0, 0, 0, 1, 0, 1, 0xab]);
        let p = ip6(SOURCE, GROUP, 58, 64, &echo);
        assert!(parse_data_packet(&p).is_ok());
        // ICMPv6 with no type octet, and a non-first ICMPv6 fragment (no type to see).
        let p = ip6(SOURCE, GROUP, 58, 64, &[]);
        assert_eq!(parse_data_packet(&p), Err(WireError::Truncated));
        let mut nf = frag(58, 3, false);
        nf.extend_from_slice(&[143, 0, 0, 0]);
        assert!(parse_data_packet(&ip6(SOURCE, GROUP, 44, 64, &nf)).is_ok());
    }

    #[test]
    fn data_packet_rejections() {
        for dst in ["ff02::1", "ff02::1:ff00:1", "ff01::1", "2001:db8::1", "::"] {
            let dst: Ipv6Addr = dst.parse().unwrap();
            let mut p = UDP_PACKET;
            p[24..40].copy_from_slice(&dst.octets());
            assert_eq!(
                parse_data_packet(&p),
                Err(WireError::NotForwardable),
                "{dst}"
            );
        }
        // Hop-by-hop after another header (RFC 8200 section 4.1).
        let mut chain = ext(0, &[1, 4, 0, 0, 0, 0]);
        chain.extend(ext(NEXT_HEADER_UDP, &[1, 4, 0, 0, 0, 0]));
        chain.extend_from_slice(&UDP_PACKET[40..]);
        let p = ip6(SOURCE, GROUP, NEXT_HEADER_DEST_OPTS, 64, &chain);
        assert_eq!(parse_data_packet(&p), Err(WireError::Malformed));
        // The data path does not walk options: a bad option list is forwarded as it is.
        let mut chain = ext(NEXT_HEADER_UDP, &[0x1e, 5, 0, 0, 0, 0]);
        chain.extend_from_slice(&UDP_PACKET[40..]);
        let p = ip6(SOURCE, GROUP, 0, 64, &chain);
        assert!(parse_data_packet(&p).is_ok());
        assert_eq!(upper_layer(&p), Err(WireError::Malformed));
    }

    #[test]
    fn group_scopes_per_rfc_4291_2_7() {
        let table = [
            ("ff01::1", false),        // interface-local
            ("ff02::1", false),        // link-local all-nodes
            ("ff02::1:ff00:1", false), // solicited-node
            ("ff02::16", false),
            ("ff05::1", true),  // site-local
            ("ff0e::1", true),  // global
            ("ff15::1", true),  // transient (flag T), site-local
            ("ff3e::1", true),  // SSM, global
            ("ff00::1", false), // reserved scope 0
            ("ff0f::1", false), // reserved scope f
            ("ff03::1", true),  // realm-local (RFC 7346)
            ("ff04::1", true),  // admin-local
            ("ff08::1", true),  // organization-local
            ("ff32::1", false), // SSM but link-local
            ("2001:db8::1", false),
            ("fe80::1", false),
            ("::", false),
        ];
        for (a, want) in table {
            let g: Ipv6Addr = a.parse().unwrap();
            assert_eq!(is_forwardable_group(g), want, "{a}");
        }
        for (a, want) in [
            ("ff3e::1", true),
            ("ff35::8000:1", true),
            ("ff3e::ffff:ffff", true),
            ("ff3e:0:0:0:0:1::1", false),   // outside the /96
            ("ff3e:40:2001:db8::1", false), // unicast-prefix-based, not SSM
            ("ff1e::1", false),
            ("ff0e::1", false),
            ("fe3e::1", false),
        ] {
            assert_eq!(is_ssm_group(a.parse().unwrap()), want, "{a}");
        }
    }

    #[test]
    fn link_local_unicast_is_fe80_slash_10() {
        for (a, want) in [
            ("fe80::1", true),
            ("febf:ffff::1", true),
            ("fec0::1", false),
            ("fe00::1", false),
            ("::", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
        ] {
            assert_eq!(is_link_local_unicast(a.parse().unwrap()), want, "{a}");
        }
    }

    /// A receiver's check of an IPv6 UDP checksum, with a sum of its own: RFC 8200 section
    /// 8.1 pseudo-header and the datagram add up to all ones.
    fn receiver_verifies(src: Ipv6Addr, dst: Ipv6Addr, udp: &[u8]) -> bool {
        let mut all = Vec::new();
        all.extend_from_slice(&src.octets());
        all.extend_from_slice(&dst.octets());
        all.extend_from_slice(&(udp.len() as u32).to_be_bytes());
        all.extend_from_slice(&[0, 0, 0, 17]);
        all.extend_from_slice(udp);
        if all.len() % 2 == 1 {
            all.push(0);
        }
        let mut acc: u32 = 0;
        for w in all.chunks(2) {
            acc += u32::from(w[0]) << 8 | u32::from(w[1]);
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc == 0xffff
    }

    #[test]
    fn completes_the_udp_checksum_like_python_did() {
        // What veth's CHECKSUM_PARTIAL leaves: some value that is not the checksum.
        let mut p = UDP_PACKET;
        p[46..48].copy_from_slice(&[0x77, 0x01]);
        assert!(complete_udp_checksum(&mut p));
        assert_eq!(p, UDP_PACKET);
        assert!(receiver_verifies(SOURCE, GROUP, &p[40..]));
        // Behind hop-by-hop, destination options and an atomic fragment.
        let mut p = UDP_CHAIN_PACKET;
        p[70..72].fill(0);
        assert!(complete_udp_checksum(&mut p));
        assert_eq!(&p[70..72], &UDP_CHECKSUM);
        assert_eq!(p, UDP_CHAIN_PACKET);
        // Link padding is not summed.
        let mut padded = UDP_PACKET.to_vec();
        padded[46..48].fill(0);
        padded.extend_from_slice(&[0xee; 5]);
        assert!(complete_udp_checksum(&mut padded));
        assert_eq!(&padded[46..48], &UDP_CHECKSUM);
    }

    #[test]
    fn a_computed_zero_is_sent_as_all_ones() {
        // Choose two payload octets so that the one's-complement sum is all ones.
        let mut p = UDP_PACKET.to_vec();
        p.truncate(48);
        p.extend_from_slice(&[0, 0]);
        p[4..6].copy_from_slice(&10u16.to_be_bytes());
        p[44..46].copy_from_slice(&10u16.to_be_bytes());
        assert!(complete_udp_checksum(&mut p));
        // With the payload word w = 0 the checksum field got !s; the sum is s. Setting
        // w = !s makes the sum 0xffff, whose complement 0 must go out as 0xffff.
        let s = !be16(&p[46..48]);
        p[48..50].copy_from_slice(&(!s).to_be_bytes());
        assert!(complete_udp_checksum(&mut p));
        assert_eq!(&p[46..48], &[0xff, 0xff]);
        assert!(receiver_verifies(SOURCE, GROUP, &p[40..]));
    }

    #[test]
    fn leaves_fragments_and_others_alone() {
        let (first, rest) = udp_fragments();
        let mut cases: Vec<(&str, Vec<u8>)> =
            vec![("first fragment", first), ("later fragment", rest)];
        let mut tcp = UDP_PACKET.to_vec();
        tcp[6] = 6;
        cases.push(("tcp", tcp));
        let mut long = UDP_PACKET.to_vec();
        long[44..46].copy_from_slice(&14u16.to_be_bytes());
        cases.push(("UDP length beyond the packet", long));
        let mut short = UDP_PACKET.to_vec();
        short[44..46].copy_from_slice(&7u16.to_be_bytes());
        cases.push(("UDP length below 8", short));
        let mut jumbo = UDP_PACKET.to_vec();
        jumbo[44..46].fill(0);
        cases.push(("UDP length 0", jumbo));
        let mut r = routing(NEXT_HEADER_UDP, 1);
        r.extend_from_slice(&UDP_PACKET[40..]);
        cases.push((
            "segments left",
            ip6(SOURCE, GROUP, NEXT_HEADER_ROUTING, 64, &r),
        ));
        cases.push((
            "udp header cut",
            ip6(SOURCE, GROUP, 17, 64, &UDP_PACKET[40..47]),
        ));
        cases.push(("ipv4", vec![0x45, 0, 0, 20]));
        cases.push(("empty", vec![]));
        for (what, mut p) in cases {
            let before = p.clone();
            assert!(!complete_udp_checksum(&mut p), "{what}");
            assert_eq!(p, before, "{what}");
        }
        // A routing header with no segments left is fine.
        let mut r = routing(NEXT_HEADER_UDP, 0);
        r.extend_from_slice(&UDP_PACKET[40..]);
        let mut p = ip6(SOURCE, GROUP, NEXT_HEADER_ROUTING, 64, &r);
        let at = 40 + 8 + 6;
        p[at..at + 2].fill(0);
        assert!(complete_udp_checksum(&mut p));
        assert_eq!(&p[at..at + 2], &UDP_CHECKSUM);
    }

    use crate::wire::testutil::{self, XorShift};

    /// Everything each entry point promises about any input.
    fn check_everything(bytes: &[u8]) -> bool {
        let mut parsed = false;
        if let Ok(f) = parse_mld_frame(bytes) {
            parsed = true;
            let again = build_mld_frame(f.src_mac, f.ip.src, f.ip.dst, &f.message);
            let p = parse_mld_frame(&again).unwrap();
            assert_eq!(p.message, f.message);
        }
        for ip in [bytes, bytes.get(14..).unwrap_or(&[])] {
            if let Ok(d) = parse_data_packet(ip) {
                assert!(is_forwardable_group(d.group));
                assert!(d.ip.len() >= HEADER_LEN && d.ip.len() <= ip.len());
            }
            let mut copy = ip.to_vec();
            if !complete_udp_checksum(&mut copy) {
                assert_eq!(copy, ip);
            }
            let _ = upper_layer(ip);
        }
        parsed
    }

    #[test]
    fn mutated_frames_never_panic() {
        let mut seeds: Vec<Vec<u8>> = vec![
            LINUX_MLDV2_REPORT_FRAME.to_vec(),
            MLDV1_REPORT_FRAME.to_vec(),
            eth6(GROUP, &UDP_CHAIN_PACKET),
            UDP_CHAIN_PACKET.to_vec(),
        ];
        for m in all_messages() {
            seeds.push(build_mld_frame(HOST_MAC, HOST, mld::ALL_NODES, &m));
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut ok = 0;
        for i in 0..8000 {
            let mut f = seeds[i % seeds.len()].clone();
            testutil::mutate(&mut rng, &mut f, 3, |rng, f| {
                // The length and next-header bytes of IPv6 and its chain.
                let at = [18, 19, 20, 54, 55, 56, 57, 58, 62, 69][rng.below(10)];
                if at < f.len() {
                    f[at] = [0, 1, 2, 44, 58, 60, 0xff][rng.below(7)];
                }
            });
            ok += usize::from(check_everything(&f));
        }
        assert!(ok > 500, "only {ok} parsed");
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check_everything(&bytes);
        }
    }

    #[test]
    fn checksum_fold_with_carries_in_both_sums() {
        // complete_udp_checksum adds the pseudo-header sum and the datagram's sum and folds
        // once more: all-ones addresses and data make both halves carry.
        let mut p = ip6(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            "ff0e:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            17,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0, 12, 0, 0, 0xff, 0xff, 0xff, 0xff],
        );
        assert!(complete_udp_checksum(&mut p));
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
        assert!(receiver_verifies(src, dst, &p[40..]));
    }
}
