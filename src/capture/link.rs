//! Link layer → IP → transport, through etherparse's lax slicing so that packets cut by the snap
//! length still yield every header they contain.
//!
//! Link types: Ethernet (with 802.1Q / QinQ), Linux cooked SLL (113) and SLL2 (276, stripped by
//! hand: etherparse has no SLL2), raw IP (101, and 12/14 as some writers store DLT_RAW), IPv4 (228),
//! IPv6 (229), BSD NULL (0, host byte order) and LOOP (108, network byte order). Anything else is
//! [`LinkError::UnsupportedLinkType`], which the caller counts and reports.

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
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
#[derive(Debug, Clone, Copy)]
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

/// Decode one frame of link type `link_type`.
pub fn decode(link_type: u32, data: &[u8]) -> Result<Decoded<'_>, LinkError> {
    let sliced = match link_type {
        LINKTYPE_ETHERNET => LaxSlicedPacket::from_ethernet(data).map_err(|_| LinkError::Short)?,
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => LaxSlicedPacket::from_ip(data).map_err(|_| LinkError::Short)?,
        LINKTYPE_LINUX_SLL => {
            // 16-byte cooked header; protocol (ether type) at offset 14.
            let proto = be16(data, 14).ok_or(LinkError::Short)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[16..])
        }
        LINKTYPE_LINUX_SLL2 => {
            // 20-byte cooked v2 header; protocol at offset 0.
            let proto = be16(data, 0).ok_or(LinkError::Short)?;
            if data.len() < 20 {
                return Err(LinkError::Short);
            }
            LaxSlicedPacket::from_ether_type(EtherType(proto), &data[20..])
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let fam: [u8; 4] = data.get(..4).ok_or(LinkError::Short)?.try_into().map_err(|_| LinkError::Short)?;
            // NULL is in the writer's byte order (unknown to us); LOOP is big-endian. AF_INET is
            // 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the BSD.
            let fam = if link_type == LINKTYPE_LOOP || fam[0] == 0 && fam[1] == 0 {
                u32::from_be_bytes(fam)
            } else {
                u32::from_le_bytes(fam)
            };
            match fam {
                2 | 24 | 28 | 30 => LaxSlicedPacket::from_ip(&data[4..]).map_err(|_| LinkError::Short)?,
                _ => return Err(LinkError::NotIp),
            }
        }
        other => return Err(LinkError::UnsupportedLinkType(other)),
    };
    let net = sliced.net.as_ref().ok_or(LinkError::NotIp)?;
    let (ip_version, src, dst, payload) = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            (4u8, IpAddr::V4(Ipv4Addr::from(h.source())), IpAddr::V4(Ipv4Addr::from(h.destination())), v4.payload())
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            (6u8, IpAddr::V6(Ipv6Addr::from(h.source())), IpAddr::V6(Ipv6Addr::from(h.destination())), v6.payload())
        }
        LaxNetSlice::Arp(_) => return Err(LinkError::NotIp),
    };
    let fragment = payload.fragmented;
    let ip_payload_wire = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let hdrs = payload.payload.as_ptr() as usize - h.slice().as_ptr() as usize;
            let declared = (h.total_len() as usize).saturating_sub(hdrs);
            // total_len 0 (segmentation offload seen before the NIC splits it) → trust the bytes.
            if h.total_len() == 0 { payload.payload.len() } else { declared.max(payload.payload.len()) }
        }
        LaxNetSlice::Ipv6(v6) => {
            let exts = payload.payload.as_ptr() as usize - v6.header().slice().as_ptr() as usize - 40;
            let declared = (v6.header().payload_length() as usize).saturating_sub(exts);
            if v6.header().payload_length() == 0 { payload.payload.len() } else { declared.max(payload.payload.len()) }
        }
        LaxNetSlice::Arp(_) => 0,
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
        wire_payload_len: 0,
        fragment,
        transport_missing: false,
    };
    match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
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
            d.wire_payload_len = ip_payload_wire.saturating_sub(hdr.len()).max(d.payload.len()) as u32;
        }
        Some(TransportSlice::Udp(u)) => {
            d.src_port = u.source_port();
            d.dst_port = u.destination_port();
            d.payload = u.payload();
            d.wire_payload_len = ip_payload_wire.saturating_sub(8).max(d.payload.len()) as u32;
        }
        Some(TransportSlice::Icmpv4(i)) => {
            // Echo request/reply (8/0) identifiers make pings distinguishable flows.
            let b = i.slice();
            if matches!(b.first(), Some(0) | Some(8)) {
                let id = be16(b, 4).unwrap_or(0);
                (d.src_port, d.dst_port) = (id, id);
            }
            d.payload = i.payload();
            d.wire_payload_len = d.payload.len() as u32;
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let b = i.slice();
            if matches!(b.first(), Some(128) | Some(129)) {
                let id = be16(b, 4).unwrap_or(0);
                (d.src_port, d.dst_port) = (id, id);
            }
            d.payload = i.payload();
            d.wire_payload_len = d.payload.len() as u32;
        }
        _ => {
            d.transport_missing = !fragment && matches!(d.protocol, proto::TCP | proto::UDP);
            d.wire_payload_len = ip_payload_wire as u32;
        }
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
        assert_eq!(TcpFlags(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK).to_string(), "FP.");
    }

    #[test]
    fn unknown_and_short_inputs() {
        assert_eq!(decode(147, b"abc").unwrap_err(), LinkError::UnsupportedLinkType(147));
        assert_eq!(decode(LINKTYPE_LINUX_SLL2, b"\x08\x00").unwrap_err(), LinkError::Short);
        assert_eq!(decode(LINKTYPE_LINUX_SLL, b"").unwrap_err(), LinkError::Short);
        assert!(decode(LINKTYPE_NULL, b"\x02\x00").is_err());
        assert!(decode(LINKTYPE_ETHERNET, &[0u8; 5]).is_err());
    }
}
