//! Link layer → IP → transport, through etherparse's lax slicing so that packets cut by the snap
//! length still yield every header they contain.
//!
//! The fixed-size link headers are stripped by hand (etherparse has no SLL2, and its whole-packet
//! slicer is slow per packet); IP (with IPv4 options, IPv6 extension headers, fragments) and the
//! transport headers go through etherparse's lax slices. The one shape most captures are made
//! of, a complete untagged Ethernet / IPv4 (no options, not a fragment) / TCP frame, is decoded
//! by hand first, with the same result (`tests/capture_decode_diff.rs` checks it).
//!
//! Link types: Ethernet (with 802.1Q / QinQ), Linux cooked SLL (113) and SLL2 (276), raw IP (101, and 12/14 as some writers store DLT_RAW), IPv4 (228),
//! IPv6 (229), BSD NULL (0, host byte order) and LOOP (108, network byte order). Anything else is
//! [`LinkError::UnsupportedLinkType`], which the caller counts and reports.

use etherparse::{LaxIpSlice, TcpSlice, UdpSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Human name of a link type, for reports.
pub fn link_type_name(lt: u32) -> &'static str {
    match lt {
        LINKTYPE_NULL => "NULL",
        LINKTYPE_ETHERNET => "EN10MB",
        LINKTYPE_RAW | 12 | 14 => "RAW",
        LINKTYPE_LOOP => "LOOP",
        LINKTYPE_LINUX_SLL => "LINUX_SLL",
        LINKTYPE_IPV4 => "IPV4",
        LINKTYPE_IPV6 => "IPV6",
        LINKTYPE_LINUX_SLL2 => "LINUX_SLL2",
        _ => "unsupported",
    }
}

/// Whether [`decode`] understands this link type.
pub fn link_type_supported(lt: u32) -> bool {
    link_type_name(lt) != "unsupported"
}

/// IP protocol numbers used here.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// TCP flag bits as on the wire (low byte of the flags field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
}

impl std::fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMES: [(u8, char); 8] = [
            (TcpFlags::SYN, 'S'),
            (TcpFlags::FIN, 'F'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        for (bit, c) in NAMES {
            if self.has(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// TCP header fields kept per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
}

/// What one frame contains, borrowed from the frame bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// 4 or 6.
    pub ip_version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number of the transport (after IPv6 extension headers).
    pub protocol: u8,
    /// Ports for TCP/UDP; ICMP echo identifier in both for ICMP echo; else 0.
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp: Option<TcpInfo>,
    /// Transport payload bytes present in the capture.
    pub payload: &'a [u8],
    /// Transport payload length on the wire (from the IP length fields); ≥ `payload.len()`.
    pub wire_payload_len: u32,
    /// Part of a fragmented IP datagram (IPv4 MF/offset or IPv6 fragment header).
    pub fragment: bool,
    /// Headers were cut: the transport header itself is missing or incomplete.
    pub transport_missing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    UnsupportedLinkType(u32),
    /// Link header present but carries something other than IP (ARP, LLDP …).
    NotIp,
    /// Too short for the link or IP header.
    Short,
}

/// Strip the link layer: the ether type (or IP version marker) and the network-layer bytes.
/// Done by hand — the headers are fixed-size — so only the IP and transport layers go through
/// etherparse (whose whole-packet slicer moves large structs around per packet).
fn strip_link(link_type: u32, data: &[u8]) -> Result<&[u8], LinkError> {
    const IPV4: u16 = 0x0800;
    const IPV6: u16 = 0x86DD;
    let ip_ether_type = |t: u16| {
        if t == IPV4 || t == IPV6 {
            Ok(())
        } else {
            Err(LinkError::NotIp)
        }
    };
    match link_type {
        LINKTYPE_ETHERNET => {
            let mut t = be16(data, 12).ok_or(LinkError::Short)?;
            let mut off = 14;
            // 802.1Q, 802.1ad (QinQ) and the old 0x9100 tag, up to three deep.
            for _ in 0..3 {
                if matches!(t, 0x8100 | 0x88A8 | 0x9100) {
                    t = be16(data, off + 2).ok_or(LinkError::Short)?;
                    off += 4;
                }
            }
            ip_ether_type(t)?;
            Ok(&data[off..])
        }
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Ok(data),
        LINKTYPE_LINUX_SLL => {
            // 16-byte cooked header; protocol (ether type) at offset 14.
            let t = be16(data, 14).ok_or(LinkError::Short)?;
            ip_ether_type(t)?;
            Ok(&data[16..])
        }
        LINKTYPE_LINUX_SLL2 => {
            // 20-byte cooked v2 header; protocol at offset 0.
            let t = be16(data, 0).ok_or(LinkError::Short)?;
            if data.len() < 20 {
                return Err(LinkError::Short);
            }
            ip_ether_type(t)?;
            Ok(&data[20..])
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let fam: [u8; 4] = data
                .get(..4)
                .ok_or(LinkError::Short)?
                .try_into()
                .map_err(|_| LinkError::Short)?;
            // NULL is in the writer's byte order (unknown to us); LOOP is big-endian. AF_INET is
            // 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the BSD.
            let fam = if link_type == LINKTYPE_LOOP || fam[0] == 0 && fam[1] == 0 {
                u32::from_be_bytes(fam)
            } else {
                u32::from_le_bytes(fam)
            };
            match fam {
                2 | 24 | 28 | 30 => Ok(&data[4..]),
                _ => Err(LinkError::NotIp),
            }
        }
        other => Err(LinkError::UnsupportedLinkType(other)),
    }
}

/// Decode one frame of link type `link_type`.
#[inline]
pub fn decode(link_type: u32, data: &[u8]) -> Result<Decoded<'_>, LinkError> {
    if link_type == LINKTYPE_ETHERNET
        && let Some(d) = decode_ethernet_ipv4_tcp(data)
    {
        return Ok(d);
    }
    decode_general(link_type, data)
}

/// The common case, decoded by hand: untagged Ethernet, IPv4 without options and not a
/// fragment, TCP, every header and the whole IP datagram present. Anything else (VLAN tags,
/// options, fragments, snap-length cuts, Ethernet padding shorter than the datagram,
/// inconsistent lengths) returns `None` and goes through [`decode_general`]. The result is
/// identical to [`decode_general`]'s (`tests/capture_decode_diff.rs` checks it).
#[inline]
fn decode_ethernet_ipv4_tcp(data: &[u8]) -> Option<Decoded<'_>> {
    // Ether type IPv4, version 4 with a 20-byte header.
    if data.len() < 14 + 40 || data[12] != 0x08 || data[13] != 0x00 || data[14] != 0x45 {
        return None;
    }
    let ip = &data[14..];
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    // More-fragments flag or a fragment offset; not TCP; lengths that do not hold a TCP header
    // or that run past the captured bytes (trailing bytes past `total` are link padding).
    if ip[6] & 0x3f != 0 || ip[7] != 0 || ip[9] != proto::TCP || total < 40 || total > ip.len() {
        return None;
    }
    let tcp = &ip[20..total];
    let thl = ((tcp[12] & 0xf0) >> 2) as usize;
    if thl < 20 || thl > tcp.len() {
        return None;
    }
    let payload = &tcp[thl..];
    let tcp: &[u8; 20] = tcp[..20].try_into().ok()?;
    let word = |at: usize| u32::from_be_bytes([tcp[at], tcp[at + 1], tcp[at + 2], tcp[at + 3]]);
    Some(Decoded {
        ip_version: 4,
        src: IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
        dst: IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
        protocol: proto::TCP,
        src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        tcp: Some(TcpInfo {
            flags: TcpFlags(tcp[13]),
            seq: word(4),
            ack: word(8),
            window: u16::from_be_bytes([tcp[14], tcp[15]]),
        }),
        payload,
        wire_payload_len: payload.len() as u32,
        fragment: false,
        transport_missing: false,
    })
}

/// Decode one frame through the general path (hand-stripped link header, etherparse for IP and
/// transport), without [`decode`]'s fast path. Public for the differential test.
#[doc(hidden)]
pub fn decode_general(link_type: u32, data: &[u8]) -> Result<Decoded<'_>, LinkError> {
    let net = strip_link(link_type, data)?;
    let (ip, _ext_err) = LaxIpSlice::from_slice(net).map_err(|_| LinkError::Short)?;
    let (ip_version, src, dst, hdr_start) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            (
                4u8,
                IpAddr::V4(Ipv4Addr::from(h.source())),
                IpAddr::V4(Ipv4Addr::from(h.destination())),
                h.slice().as_ptr(),
            )
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                6u8,
                IpAddr::V6(Ipv6Addr::from(h.source())),
                IpAddr::V6(Ipv6Addr::from(h.destination())),
                h.slice().as_ptr(),
            )
        }
    };
    let payload = ip.payload();
    let fragment = payload.fragmented;
    let hdrs = payload.payload.as_ptr() as usize - hdr_start as usize;
    let ip_payload_wire = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let total = v4.header().total_len() as usize;
            // total_len 0 (segmentation offload seen before the NIC splits it) → trust the bytes.
            if total == 0 {
                payload.payload.len()
            } else {
                total.saturating_sub(hdrs).max(payload.payload.len())
            }
        }
        LaxIpSlice::Ipv6(v6) => {
            let pl = v6.header().payload_length() as usize;
            if pl == 0 {
                payload.payload.len()
            } else {
                (pl + 40).saturating_sub(hdrs).max(payload.payload.len())
            }
        }
    };
    let mut d = Decoded {
        ip_version,
        src,
        dst,
        protocol: payload.ip_number.0,
        src_port: 0,
        dst_port: 0,
        tcp: None,
        payload: &[],
        wire_payload_len: ip_payload_wire as u32,
        fragment,
        transport_missing: false,
    };
    if fragment {
        return Ok(d);
    }
    let body = payload.payload;
    match d.protocol {
        proto::TCP => match TcpSlice::from_slice(body) {
            Ok(t) => {
                d.src_port = t.source_port();
                d.dst_port = t.destination_port();
                let hdr = t.header_slice();
                d.tcp = Some(TcpInfo {
                    flags: TcpFlags(hdr.get(13).copied().unwrap_or(0)),
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    window: t.window_size(),
                });
                d.payload = t.payload();
                d.wire_payload_len = ip_payload_wire
                    .saturating_sub(hdr.len())
                    .max(d.payload.len()) as u32;
            }
            Err(_) => d.transport_missing = true,
        },
        proto::UDP => match UdpSlice::from_slice_lax(body) {
            Ok(u) => {
                d.src_port = u.source_port();
                d.dst_port = u.destination_port();
                d.payload = u.payload();
                d.wire_payload_len = ip_payload_wire.saturating_sub(8).max(d.payload.len()) as u32;
            }
            Err(_) => d.transport_missing = true,
        },
        proto::ICMP | proto::ICMPV6 => {
            // Echo request/reply identifiers make pings distinguishable flows.
            let echo: &[u8] = if d.protocol == proto::ICMP {
                &[0, 8]
            } else {
                &[128, 129]
            };
            if body.len() >= 8 {
                if echo.contains(&body[0]) {
                    let id = be16(body, 4).unwrap_or(0);
                    (d.src_port, d.dst_port) = (id, id);
                }
                d.payload = &body[8..];
                d.wire_payload_len = ip_payload_wire.saturating_sub(8) as u32;
            } else {
                d.transport_missing = true;
            }
        }
        _ => d.payload = body,
    }
    Ok(d)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_display() {
        assert_eq!(TcpFlags(TcpFlags::SYN | TcpFlags::ACK).to_string(), "S.");
        assert_eq!(
            TcpFlags(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK).to_string(),
            "FP."
        );
    }

    #[test]
    fn unknown_and_short_inputs() {
        assert_eq!(
            decode(147, b"abc").unwrap_err(),
            LinkError::UnsupportedLinkType(147)
        );
        assert_eq!(
            decode(LINKTYPE_LINUX_SLL2, b"\x08\x00").unwrap_err(),
            LinkError::Short
        );
        assert_eq!(
            decode(LINKTYPE_LINUX_SLL, b"").unwrap_err(),
            LinkError::Short
        );
        assert!(decode(LINKTYPE_NULL, b"\x02\x00").is_err());
        assert!(decode(LINKTYPE_ETHERNET, &[0u8; 5]).is_err());
    }
}
