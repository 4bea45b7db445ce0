//! Loaders for cluster inputs, and content sniffers so the CLI recognises inputs by what they
//! contain rather than by their names.
//!
//! * [`cluster_toml::parse_cluster_toml`] — interface.md's `cluster.toml`
//! * [`kubectl::parse_kubectl_text`] / [`kubectl::parse_kubectl_json`] — `kubectl get … -o wide|json`
//! * [`route::parse_route_n`] — `route -n`; [`route::parse_ip_route`] — `ip route`
//! * [`load_bytes`] / [`load_path`] — sniff and dispatch.

pub mod cluster_toml;
pub mod kubectl;
pub mod route;
mod table;

use super::error::{Diagnostic, LoadError, LoadErrorKind};
use super::model::ClusterSource;
use std::io::Read;
use std::path::Path;

pub use cluster_toml::parse_cluster_toml;
pub use kubectl::{parse_kubectl_json, parse_kubectl_text};
pub use route::{Route, RouteTable, parse_ip_route, parse_route_n};

/// Cluster inputs are small text files; anything bigger is refused rather than read.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Sniffers look at the start of a file only.
const SNIFF_BYTES: usize = 64 * 1024;

/// What kind of cluster input some bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterInputKind {
    ClusterToml,
    KubectlText,
    KubectlJson,
    RouteN,
    /// `ip route` output.
    IpRoute,
}

/// The first `SNIFF_BYTES` as text (its valid UTF-8 prefix), without a UTF-8 byte-order mark.
/// `None` for binary data.
fn sniff_text(bytes: &[u8]) -> Option<&str> {
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    // Sniff the valid prefix: a character cut at the sniff boundary, or a stray bad byte in an
    // otherwise textual file (which the loader then reports with its offset).
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    // NUL bytes mean binary (a pcap can be mostly printable).
    (!text.contains('\0')).then_some(text)
}

/// `[load_balancer]`, `[[nodes]]` or `[[pods]]` at the start of a line.
pub fn looks_like_cluster_toml(bytes: &[u8]) -> bool {
    let Some(text) = sniff_text(bytes) else {
        return false;
    };
    text.lines().map(str::trim_start).any(|l| {
        let l = l.split('#').next().unwrap_or("").trim_end();
        matches!(l, "[load_balancer]" | "[[nodes]]" | "[[pods]]")
            || l.replace(' ', "").as_str() == "[load_balancer]"
    })
}

/// A kubectl table header (NAME … with INTERNAL-IP, or IP and NODE, or TYPE and EXTERNAL-IP).
pub fn looks_like_kubectl_text(bytes: &[u8]) -> bool {
    let Some(text) = sniff_text(bytes) else {
        return false;
    };
    text.lines().take(200).any(|l| {
        if !table::is_header(l) {
            return false;
        }
        let toks: Vec<&str> = l.split_whitespace().collect();
        let has = |n: &str| toks.contains(&n);
        has("INTERNAL-IP") || (has("IP") && has("NODE")) || (has("TYPE") && has("EXTERNAL-IP"))
    })
}

/// A JSON object whose `kind` is a kubectl list or a Node/Pod/Service.
pub fn looks_like_kubectl_json(bytes: &[u8]) -> bool {
    let Some(text) = sniff_text(bytes) else {
        return false;
    };
    if !text.trim_start().starts_with('{') {
        return false;
    }
    // Look for the kind near the top without parsing the whole (possibly large) document.
    const KINDS: &[&str] = &[
        "List",
        "NodeList",
        "PodList",
        "ServiceList",
        "EndpointSliceList",
        "EndpointsList",
        "Node",
        "Pod",
        "Service",
        "EndpointSlice",
        "Endpoints",
    ];
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    KINDS
        .iter()
        .any(|k| compact.contains(&format!("\"kind\":\"{k}\"")))
}

/// A `route -n` header.
pub fn looks_like_route_n(bytes: &[u8]) -> bool {
    let Some(text) = sniff_text(bytes) else {
        return false;
    };
    text.lines().take(50).any(|l| {
        let t: Vec<&str> = l.split_whitespace().collect();
        (t.contains(&"Destination") && t.contains(&"Gateway") && t.contains(&"Genmask"))
            || (t.contains(&"Destination") && t.contains(&"Next") && t.contains(&"Hop"))
    })
}

/// `ip route` output: most lines are `default|ADDR[/LEN] … dev IFACE …`.
pub fn looks_like_ip_route(bytes: &[u8]) -> bool {
    let Some(text) = sniff_text(bytes) else {
        return false;
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(50)
        .collect();
    let routes = lines
        .iter()
        .filter(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let dest = match t.first() {
                Some(&"unicast" | &"local" | &"broadcast") => t.get(1).copied().unwrap_or(""),
                Some(d) => d,
                None => "",
            };
            let dest_ok = dest == "default"
                || dest.parse::<ipnet::IpNet>().is_ok()
                || dest.parse::<std::net::IpAddr>().is_ok();
            dest_ok && t.contains(&"dev")
        })
        .count();
    routes > 0 && routes * 2 > lines.len()
}

/// Recognise a cluster input by content.
pub fn sniff(bytes: &[u8]) -> Option<ClusterInputKind> {
    if looks_like_kubectl_json(bytes) {
        Some(ClusterInputKind::KubectlJson)
    } else if looks_like_cluster_toml(bytes) {
        Some(ClusterInputKind::ClusterToml)
    } else if looks_like_route_n(bytes) {
        Some(ClusterInputKind::RouteN)
    } else if looks_like_ip_route(bytes) {
        Some(ClusterInputKind::IpRoute)
    } else if looks_like_kubectl_text(bytes) {
        Some(ClusterInputKind::KubectlText)
    } else {
        None
    }
}

fn as_text<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, LoadError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        LoadError::new(
            LoadErrorKind::NotText,
            Diagnostic::warning(
                file,
                format!("not UTF-8 text: invalid byte at offset {}", e.valid_up_to()),
            ),
        )
    })
}

/// Parse bytes of a known kind. `file` names it in messages; `base_dir` resolves cluster.toml's
/// relative paths; `on_node` says which node a `route -n` dump was taken on.
pub fn load_kind(
    kind: ClusterInputKind,
    bytes: &[u8],
    file: &str,
    base_dir: &Path,
    on_node: Option<&str>,
) -> Result<ClusterSource, LoadError> {
    let text = as_text(bytes, file)?;
    match kind {
        ClusterInputKind::ClusterToml => parse_cluster_toml(text, file, base_dir),
        ClusterInputKind::KubectlText => parse_kubectl_text(text, file),
        ClusterInputKind::KubectlJson => parse_kubectl_json(text, file),
        ClusterInputKind::RouteN => Ok(parse_route_n(text, file)?.into_source(on_node)),
        ClusterInputKind::IpRoute => Ok(parse_ip_route(text, file)?.into_source(on_node)),
    }
}

/// Sniff and parse.
pub fn load_bytes(
    bytes: &[u8],
    file: &str,
    base_dir: &Path,
    on_node: Option<&str>,
) -> Result<ClusterSource, LoadError> {
    let kind = sniff(bytes).ok_or_else(|| {
        LoadError::new(
            LoadErrorKind::NotRecognised,
            Diagnostic::warning(
                file,
                "not a recognised cluster input (expected cluster.toml, `kubectl get nodes|pods -o wide` or `-o json`, or `route -n` / `ip route` output)",
            ),
        )
    })?;
    load_kind(kind, bytes, file, base_dir, on_node)
}

/// Read (at most [`MAX_INPUT_BYTES`]), sniff and parse a file. Relative paths inside a
/// cluster.toml resolve against the file's directory.
pub fn load_path(path: &Path, on_node: Option<&str>) -> Result<ClusterSource, LoadError> {
    let file = path.display().to_string();
    let io_err = |e: std::io::Error| {
        LoadError::new(LoadErrorKind::Io, Diagnostic::warning(&file, e.to_string()))
    };
    let f = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    f.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(LoadError::new(
            LoadErrorKind::TooLarge,
            Diagnostic::warning(
                &file,
                format!("larger than the {MAX_INPUT_BYTES}-byte limit for a cluster input"),
            ),
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    load_bytes(&bytes, &file, base, on_node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffers_tell_formats_apart() {
        let toml = b"# lab\n[load_balancer]\nseed = 1\n";
        let nodes = b"NAME   STATUS   INTERNAL-IP\nn0   Ready   10.0.0.1\n";
        let pods = b"NAME   READY   STATUS   RESTARTS   AGE   IP   NODE   NOMINATED NODE   READINESS GATES\n";
        let json = b"{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"items\": []\n}";
        let route = b"Kernel IP routing table\nDestination     Gateway         Genmask         Flags Metric Ref    Use Iface\n";
        let pcap = b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00";
        let iptables = b"*nat\n:PREROUTING ACCEPT [0:0]\n-A KUBE-SERVICES -d 10.0.0.1/32 -j KUBE-SVC-X\nCOMMIT\n";
        assert_eq!(sniff(toml), Some(ClusterInputKind::ClusterToml));
        assert_eq!(sniff(nodes), Some(ClusterInputKind::KubectlText));
        assert_eq!(sniff(pods), Some(ClusterInputKind::KubectlText));
        assert_eq!(sniff(json), Some(ClusterInputKind::KubectlJson));
        assert_eq!(sniff(route), Some(ClusterInputKind::RouteN));
        let ip_route = b"default via 10.0.0.1 dev eth0\n10.1.0.0/24 dev cbr0 proto kernel scope link src 10.1.0.1\n";
        assert_eq!(sniff(ip_route), Some(ClusterInputKind::IpRoute));
        assert_eq!(sniff(pcap), None);
        assert_eq!(sniff(iptables), None);
        assert_eq!(sniff(b"{\"kind\":\"Deployment\"}"), None);
        assert_eq!(sniff(b""), None);
        assert!(!looks_like_cluster_toml(b"x = \"[[nodes]]\""));
    }

    #[test]
    fn load_bytes_reports_binary_and_unknown() {
        let e = load_bytes(b"\x00\x01\x02", "f.bin", Path::new("."), None).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NotRecognised);
        let e = load_kind(
            ClusterInputKind::ClusterToml,
            b"[[nodes]]\nname = \"\xff\"\n",
            "c.toml",
            Path::new("."),
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NotText);
        assert!(e.to_string().contains("offset 18"), "{e}");
    }

    #[test]
    fn load_path_resolves_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("htcl-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cluster.toml");
        std::fs::write(
            &p,
            "[[nodes]]\nname = \"n\"\nip = \"10.0.0.1\"\ncaptures = [\"n-eth0.pcap\"]\n",
        )
        .unwrap();
        let s = load_path(&p, None).unwrap();
        assert_eq!(s.nodes[0].captures[0].value, dir.join("n-eth0.pcap"));
        let e = load_path(&dir.join("missing.toml"), None).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Io);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
