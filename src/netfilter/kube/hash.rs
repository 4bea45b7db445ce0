//! kube-proxy's chain names: `KUBE-SVC-`/`SVL-`/`EXT-`/`FW-`/`XLB-` + the first 16 characters of
//! `base32(sha256(servicePortName + protocol))`, and `KUBE-SEP-` + the same over
//! `servicePortName + protocol + endpoint` (standard base32 alphabet, upper case, no padding
//! needed for 16 characters). `servicePortName` is `ns/name:portName` or `ns/name` for an unnamed
//! port; `protocol` is lower case; `endpoint` is `ip:port` (`[v6]:port`).

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_prefix16(bytes: &[u8]) -> String {
    // 16 base32 characters = 80 bits = the first 10 bytes.
    let mut out = String::with_capacity(16);
    let mut acc: u64 = 0;
    let mut bits = 0;
    for &b in &bytes[..10] {
        acc = (acc << 8) | b as u64;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    out
}

/// The 16-character suffix of a Service port's chains.
pub fn service_suffix(service_port_name: &str, protocol: &str) -> String {
    let mut h = Sha256::new();
    h.update(service_port_name.as_bytes());
    h.update(protocol.to_ascii_lowercase().as_bytes());
    base32_prefix16(&h.finalize())
}

/// The 16-character suffix of an endpoint's `KUBE-SEP-` chain.
pub fn endpoint_suffix(service_port_name: &str, protocol: &str, endpoint: &str) -> String {
    let mut h = Sha256::new();
    h.update(service_port_name.as_bytes());
    h.update(protocol.to_ascii_lowercase().as_bytes());
    h.update(endpoint.as_bytes());
    base32_prefix16(&h.finalize())
}

/// The suffix of a kube-proxy per-service or per-endpoint chain name.
pub fn chain_suffix(chain: &str) -> Option<(&str, &str)> {
    for prefix in [
        "KUBE-SVC-",
        "KUBE-SVL-",
        "KUBE-EXT-",
        "KUBE-FW-",
        "KUBE-XLB-",
        "KUBE-SEP-",
    ] {
        if let Some(s) = chain.strip_prefix(prefix)
            && s.len() == 16
        {
            return Some((prefix, s));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_names_in_kube_proxy_dumps() {
        assert_eq!(service_suffix("ns1/svc1:p80", "tcp"), "XPGD46QRK7WJZT7O");
        assert_eq!(service_suffix("ns2/svc2:p8080", "tcp"), "2VJB64SDSIJUP5T6");
        assert_eq!(service_suffix("ns1/svc1", "tcp"), "AQI2S6QIMU7PVVRP");
        assert_eq!(service_suffix("ns1/svc1:p80", "sctp"), "GFCIFIA5VTFSTMSM");
        assert_eq!(
            endpoint_suffix("ns1/svc1:p80", "tcp", "10.180.0.1:80"),
            "SXIVWICOYRO3J4NJ"
        );
        assert_eq!(
            endpoint_suffix("ns1/svc1:p80", "tcp", "[ff06::c1]:80"),
            "LIGRYQQLSZN4UWQ5"
        );
    }
}
