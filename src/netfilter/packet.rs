//! What is evaluated: a packet (the first packet of a connection) and the node it arrives at.

use serde::Serialize;
use std::net::IpAddr;

use super::model::{Protocol, tcp_flags};

/// Where the packet comes from, which decides the hooks it traverses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Locally generated when the source is one of the node's addresses and no input interface
    /// other than `lo` is given; otherwise arriving from the network.
    #[default]
    Auto,
    /// Arrives on an interface: PREROUTING, then INPUT or FORWARD(+POSTROUTING).
    Incoming,
    /// Sent by a process on the node: OUTPUT, POSTROUTING, and (for a local destination) the
    /// loopback pass through PREROUTING and INPUT.
    Local,
}

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    /// `None` when not known (a `--sport` rule is then undecidable).
    pub src_port: Option<u16>,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub proto: Protocol,
    pub in_iface: Option<String>,
    pub out_iface: Option<String>,
    pub ttl: u8,
    /// TCP flags of the packet; a new connection starts with SYN.
    pub tcp_flags: u8,
    pub origin: Origin,
}

impl Packet {
    /// A TCP SYN from `src` to `dst`.
    pub fn tcp(src: IpAddr, src_port: Option<u16>, dst: IpAddr, dst_port: u16) -> Packet {
        Packet::new(Protocol::Tcp, src, src_port, dst, dst_port)
    }

    pub fn new(
        proto: Protocol,
        src: IpAddr,
        src_port: Option<u16>,
        dst: IpAddr,
        dst_port: u16,
    ) -> Packet {
        Packet {
            src,
            src_port,
            dst,
            dst_port,
            proto,
            in_iface: None,
            out_iface: None,
            ttl: 64,
            tcp_flags: tcp_flags::SYN,
            origin: Origin::Auto,
        }
    }

    pub fn with_in_iface(mut self, iface: &str) -> Packet {
        self.in_iface = Some(iface.to_string());
        self
    }

    pub fn with_origin(mut self, origin: Origin) -> Packet {
        self.origin = origin;
        self
    }
}

/// The node a packet is evaluated on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeContext {
    /// Addresses that are LOCAL for `-m addrtype` and for the routing decision (INPUT vs
    /// FORWARD). Always includes 127.0.0.1 and ::1.
    local: Vec<IpAddr>,
    /// Kernel `HZ`, for `recent --seconds` (jiffies granularity).
    pub hz: u32,
    /// Packets cross a Linux bridge (`-m physdev --physdev-is-in` etc. are true).
    pub bridged: bool,
}

impl Default for NodeContext {
    fn default() -> Self {
        NodeContext::new(std::iter::empty())
    }
}

impl NodeContext {
    pub fn new(local_ips: impl IntoIterator<Item = IpAddr>) -> NodeContext {
        let mut local: Vec<IpAddr> = vec![
            "127.0.0.1".parse().expect("literal"),
            "::1".parse().expect("literal"),
        ];
        for ip in local_ips {
            if !local.contains(&ip) {
                local.push(ip);
            }
        }
        NodeContext {
            local,
            hz: 250,
            bridged: false,
        }
    }

    pub fn is_local(&self, ip: &IpAddr) -> bool {
        self.local.contains(ip)
    }

    pub fn local_ips(&self) -> &[IpAddr] {
        &self.local
    }
}
