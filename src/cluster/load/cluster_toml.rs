//! `cluster.toml` (interface.md): `[load_balancer]`, `[[nodes]]`, `[[pods]]`.
//!
//! Walked by hand over toml's spanned document so every error names the file, the line and the
//! key path (`nodes[1].pod_cidr`). Wrong types and bad values are errors (the user wrote this
//! file; guessing would hide a typo); unknown keys are warnings (newer files stay readable).
//! Paths (`captures`, `rules`) are relative to the cluster file.

use crate::cluster::alb::{AlbHash, AlbMode, ExternalTrafficPolicy, SessionAffinity};
use crate::cluster::error::{Diagnostic, LineIndex, LoadError, LoadErrorKind};
use crate::cluster::maglev::{MAX_TABLE_SIZE, is_prime};
use crate::cluster::model::{Client, ClusterSource, Node, Pod};
use crate::cluster::provenance::{Fact, Provenance, SourceKind};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

type SValue<'i> = Spanned<DeValue<'i>>;

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
    base_dir: &'a Path,
    lines: LineIndex,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn line(&self, span: &Range<usize>) -> u32 {
        self.lines.line_col(self.text, span.start).0
    }

    fn diag(&self, span: &Range<usize>, key: &str, message: String) -> Diagnostic {
        let (line, col) = self.lines.line_col(self.text, span.start);
        Diagnostic::warning(self.file, message)
            .at_line(Some(line))
            .at_column(Some(col))
            .with_key(key)
    }

    fn err(
        &self,
        kind: LoadErrorKind,
        span: &Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> LoadError {
        LoadError::new(kind, self.diag(span, key, message.into()))
    }

    fn given(&self, span: &Range<usize>) -> Provenance {
        Provenance::given(SourceKind::ClusterToml, self.file, Some(self.line(span)))
    }

    fn fact<T>(&self, value: T, span: &Range<usize>) -> Fact<T> {
        Fact::new(value, self.given(span))
    }

    fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], path: &str) {
        let mut unknown: Vec<(Range<usize>, String)> = table
            .iter()
            .filter(|(k, _)| !known.contains(&k.get_ref().as_ref()))
            .map(|(k, _)| (k.span(), k.get_ref().to_string()))
            .collect();
        unknown.sort_by_key(|(s, _)| s.start);
        for (span, k) in unknown {
            let key = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let d = self.diag(
                &span,
                &key,
                format!("unknown key ignored; expected one of: {}", known.join(", ")),
            );
            self.diags.push(d);
        }
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn as_str<'v>(cx: &Ctx<'_>, v: &'v SValue<'_>, key: &str) -> Result<&'v str, LoadError> {
    v.get_ref().as_str().ok_or_else(|| {
        cx.err(
            LoadErrorKind::InvalidValue,
            &v.span(),
            key,
            format!("expected a string, found {}", type_name(v.get_ref())),
        )
    })
}

fn as_array<'v, 'i>(
    cx: &Ctx<'_>,
    v: &'v SValue<'i>,
    key: &str,
) -> Result<&'v [SValue<'i>], LoadError> {
    match v.get_ref() {
        DeValue::Array(a) => Ok(a.as_ref()),
        other => Err(cx.err(
            LoadErrorKind::InvalidValue,
            &v.span(),
            key,
            format!("expected an array, found {}", type_name(other)),
        )),
    }
}

fn as_table<'v, 'i>(
    cx: &Ctx<'_>,
    v: &'v SValue<'i>,
    key: &str,
) -> Result<&'v DeTable<'i>, LoadError> {
    match v.get_ref() {
        DeValue::Table(t) => Ok(t),
        other => Err(cx.err(
            LoadErrorKind::InvalidValue,
            &v.span(),
            key,
            format!("expected a table, found {}", type_name(other)),
        )),
    }
}

/// A string, or an array of strings (accepted wherever a list is natural, e.g. `captures`).
fn as_str_list<'v>(
    cx: &Ctx<'_>,
    v: &'v SValue<'_>,
    key: &str,
) -> Result<Vec<(&'v str, Range<usize>)>, LoadError> {
    if let Some(s) = v.get_ref().as_str() {
        return Ok(vec![(s, v.span())]);
    }
    as_array(cx, v, key)?
        .iter()
        .enumerate()
        .map(|(i, e)| as_str(cx, e, &format!("{key}[{i}]")).map(|s| (s, e.span())))
        .collect()
}

fn parse_ip(cx: &Ctx<'_>, v: &SValue<'_>, key: &str) -> Result<Fact<IpAddr>, LoadError> {
    let s = as_str(cx, v, key)?;
    s.trim()
        .parse::<IpAddr>()
        .map(|ip| cx.fact(ip, &v.span()))
        .map_err(|_| {
            cx.err(
                LoadErrorKind::InvalidValue,
                &v.span(),
                key,
                format!("{s:?} is not an IPv4 or IPv6 address"),
            )
        })
}

/// Parse a CIDR; host bits set (`10.100.0.7/24`) are cleared with a warning.
pub(crate) fn parse_cidr_text(s: &str) -> Result<(IpNet, bool), String> {
    let net: IpNet = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a CIDR (expected e.g. 10.100.0.0/24)"))?;
    let trunc = net.trunc();
    Ok((trunc, trunc != net))
}

fn parse_cidr(cx: &mut Ctx<'_>, v: &SValue<'_>, key: &str) -> Result<Fact<IpNet>, LoadError> {
    let s = as_str(cx, v, key)?;
    let (net, had_host_bits) =
        parse_cidr_text(s).map_err(|m| cx.err(LoadErrorKind::InvalidValue, &v.span(), key, m))?;
    if had_host_bits {
        let d = cx.diag(
            &v.span(),
            key,
            format!("{s:?} has host bits set; using {net}"),
        );
        cx.diags.push(d);
    }
    Ok(cx.fact(net, &v.span()))
}

/// Parse an unsigned 32-bit integer from a TOML integer (any radix) or a string holding a
/// decimal or `0x…` hexadecimal number. nft seeds are u32.
fn parse_u32(cx: &Ctx<'_>, v: &SValue<'_>, key: &str) -> Result<u32, LoadError> {
    let bad = |m: String| cx.err(LoadErrorKind::InvalidValue, &v.span(), key, m);
    let (digits, radix, shown) = match v.get_ref() {
        DeValue::Integer(i) => (i.as_str().to_owned(), i.radix(), i.to_string()),
        DeValue::String(s) => {
            let t = s.trim().replace('_', "");
            if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                (h.to_owned(), 16, s.to_string())
            } else {
                (t, 10, s.to_string())
            }
        }
        other => {
            return Err(bad(format!(
                "expected an integer (decimal or 0x… hex), found {}",
                type_name(other)
            )));
        }
    };
    if digits.is_empty() || digits.starts_with('+') {
        return Err(bad(format!("{shown:?} is not a number")));
    }
    match i128::from_str_radix(&digits, radix) {
        Ok(n) if (0..=i128::from(u32::MAX)).contains(&n) => Ok(n as u32),
        Ok(_) => Err(bad(format!(
            "{shown} does not fit in an unsigned 32-bit integer (0..=0xffffffff)"
        ))),
        Err(_) if digits.chars().all(|c| c.is_digit(radix)) => Err(bad(format!(
            "{shown} does not fit in an unsigned 32-bit integer (0..=0xffffffff)"
        ))),
        Err(_) => Err(bad(format!(
            "{shown:?} is not a decimal or 0x… hexadecimal number"
        ))),
    }
}

fn parse_enum<T: std::str::FromStr>(
    cx: &Ctx<'_>,
    v: &SValue<'_>,
    key: &str,
) -> Result<Fact<T>, LoadError>
where
    T::Err: std::fmt::Display,
{
    let s = as_str(cx, v, key)?;
    s.parse::<T>()
        .map(|x| cx.fact(x, &v.span()))
        .map_err(|e| cx.err(LoadErrorKind::InvalidValue, &v.span(), key, e.to_string()))
}

fn resolve_path(cx: &Ctx<'_>, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cx.base_dir.join(path)
    }
}

/// Parse a cluster.toml document. `file` is the name used in messages; `base_dir` is the
/// directory relative paths are resolved against (the cluster file's directory).
pub fn parse_cluster_toml(
    text: &str,
    file: &str,
    base_dir: &Path,
) -> Result<ClusterSource, LoadError> {
    let mut cx = Ctx {
        text,
        file,
        base_dir,
        lines: LineIndex::new(text),
        diags: Vec::new(),
    };
    let doc = DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let (line, col) = cx.lines.line_col(text, span.start);
        let mut message = e.message().trim().to_owned();
        let line_text = text
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("")
            .trim();
        if !line_text.is_empty() {
            let shown: String = line_text.chars().take(60).collect();
            message.push_str(&format!(" in `{shown}`"));
        }
        // The most common slip: an address or CIDR without quotes parses as a broken number.
        if let Some((_, value)) = line_text.split_once('=') {
            let v = value.trim();
            if !v.is_empty()
                && !v.starts_with(['"', '\'', '[', '{'])
                && v.contains(['.', ':'])
                && v.chars()
                    .all(|c| c.is_ascii_hexdigit() || ".:/".contains(c))
            {
                message.push_str(&format!("; addresses and CIDRs are strings: write \"{v}\""));
            }
        }
        LoadError::new(
            LoadErrorKind::Syntax,
            Diagnostic::warning(file, format!("TOML syntax: {message}"))
                .at_line(Some(line))
                .at_column(Some(col)),
        )
    })?;
    let root = doc.get_ref();
    let mut src = ClusterSource::new(SourceKind::ClusterToml, file);
    cx.unknown_keys(root, &["load_balancer", "nodes", "pods", "clients"], "");

    if let Some(v) = root.get("nodes") {
        let mut names = HashSet::new();
        for (i, item) in as_array(&cx, v, "nodes")?.iter().enumerate() {
            let node = parse_node(&mut cx, item, i)?;
            if !names.insert(node.name.value.clone()) {
                return Err(cx.err(
                    LoadErrorKind::Duplicate,
                    &item.span(),
                    &format!("nodes[{i}].name"),
                    format!("node {:?} is defined twice", node.name.value),
                ));
            }
            src.nodes.push(node);
        }
    }
    if let Some(v) = root.get("pods") {
        for (i, item) in as_array(&cx, v, "pods")?.iter().enumerate() {
            let pod = parse_pod(&mut cx, item, i)?;
            src.pods.push(pod);
        }
    }
    if let Some(v) = root.get("clients") {
        let mut names = HashSet::new();
        for (i, item) in as_array(&cx, v, "clients")?.iter().enumerate() {
            let client = parse_client(&mut cx, item, i)?;
            if let Some(n) = client.name()
                && !names.insert(n.to_owned())
            {
                return Err(cx.err(
                    LoadErrorKind::Duplicate,
                    &item.span(),
                    &format!("clients[{i}].name"),
                    format!("client {n:?} is defined twice"),
                ));
            }
            src.clients.push(client);
        }
    }
    if let Some(v) = root.get("load_balancer") {
        parse_load_balancer(&mut cx, v, &mut src)?;
    }
    src.diagnostics = cx.diags;
    Ok(src)
}

fn missing(cx: &Ctx<'_>, span: &Range<usize>, key: &str, what: &str) -> LoadError {
    cx.err(
        LoadErrorKind::Missing,
        span,
        key,
        format!("missing required key `{what}`"),
    )
}

fn parse_node(cx: &mut Ctx<'_>, item: &SValue<'_>, i: usize) -> Result<Node, LoadError> {
    let path = format!("nodes[{i}]");
    let t = as_table(cx, item, &path)?;
    cx.unknown_keys(
        t,
        &["name", "ip", "pod_cidr", "zone", "captures", "rules"],
        &path,
    );
    let key = |k: &str| format!("{path}.{k}");
    let name_v = t
        .get("name")
        .ok_or_else(|| missing(cx, &item.span(), &key("name"), "name"))?;
    let name = as_str(cx, name_v, &key("name"))?.trim();
    if name.is_empty() {
        return Err(cx.err(
            LoadErrorKind::InvalidValue,
            &name_v.span(),
            &key("name"),
            "node name is empty",
        ));
    }
    let mut node = Node::new(cx.fact(name.to_owned(), &name_v.span()));
    let ip_v = t
        .get("ip")
        .ok_or_else(|| missing(cx, &item.span(), &key("ip"), "ip"))?;
    // `ip` may list a second (dual-stack) address.
    if ip_v.get_ref().as_str().is_some() {
        node.ips.push(parse_ip(cx, ip_v, &key("ip"))?);
    } else {
        for (j, e) in as_array(cx, ip_v, &key("ip"))?.iter().enumerate() {
            node.ips
                .push(parse_ip(cx, e, &format!("{}[{j}]", key("ip")))?);
        }
        if node.ips.is_empty() {
            return Err(cx.err(
                LoadErrorKind::Missing,
                &ip_v.span(),
                &key("ip"),
                "no address given",
            ));
        }
    }
    if let Some(v) = t.get("pod_cidr") {
        if v.get_ref().as_str().is_some() {
            node.pod_cidrs.push(parse_cidr(cx, v, &key("pod_cidr"))?);
        } else {
            for (j, e) in as_array(cx, v, &key("pod_cidr"))?.iter().enumerate() {
                node.pod_cidrs
                    .push(parse_cidr(cx, e, &format!("{}[{j}]", key("pod_cidr")))?);
            }
        }
    }
    if let Some(v) = t.get("zone") {
        // Zones are often written as bare numbers (`zone = 1`): accept both.
        let z = match v.get_ref() {
            DeValue::String(s) => s.trim().to_owned(),
            DeValue::Integer(n) => n.to_string(),
            other => {
                return Err(cx.err(
                    LoadErrorKind::InvalidValue,
                    &v.span(),
                    &key("zone"),
                    format!("expected a string, found {}", type_name(other)),
                ));
            }
        };
        node.zone = Some(cx.fact(z, &v.span()));
    }
    if let Some(v) = t.get("captures") {
        for (p, span) in as_str_list(cx, v, &key("captures"))? {
            let f = cx.fact(resolve_path(cx, p), &span);
            node.captures.push(f);
        }
    }
    if let Some(v) = t.get("rules") {
        let p = as_str(cx, v, &key("rules"))?;
        node.rules = Some(cx.fact(resolve_path(cx, p), &v.span()));
    }
    Ok(node)
}

fn parse_pod(cx: &mut Ctx<'_>, item: &SValue<'_>, i: usize) -> Result<Pod, LoadError> {
    let path = format!("pods[{i}]");
    let t = as_table(cx, item, &path)?;
    cx.unknown_keys(t, &["name", "ip", "node", "namespace"], &path);
    let key = |k: &str| format!("{path}.{k}");
    let ip_v = t
        .get("ip")
        .ok_or_else(|| missing(cx, &item.span(), &key("ip"), "ip"))?;
    let mut pod = Pod::new(parse_ip(cx, ip_v, &key("ip"))?);
    for (k, slot) in [
        ("name", &mut pod.name),
        ("node", &mut pod.node),
        ("namespace", &mut pod.namespace),
    ] {
        if let Some(v) = t.get(k) {
            let s = as_str(cx, v, &key(k))?.trim();
            if s.is_empty() {
                return Err(cx.err(
                    LoadErrorKind::InvalidValue,
                    &v.span(),
                    &key(k),
                    format!("{k} is empty"),
                ));
            }
            *slot = Some(cx.fact(s.to_owned(), &v.span()));
        }
    }
    Ok(pod)
}

/// `[[clients]]`: `ip` (an address, a CIDR, or a list of them) is required; `name` and
/// `captures` are optional.
fn parse_client(cx: &mut Ctx<'_>, item: &SValue<'_>, i: usize) -> Result<Client, LoadError> {
    let path = format!("clients[{i}]");
    let t = as_table(cx, item, &path)?;
    cx.unknown_keys(t, &["name", "ip", "captures"], &path);
    let key = |k: &str| format!("{path}.{k}");
    let mut client = Client {
        name: None,
        addresses: Vec::new(),
        captures: Vec::new(),
    };
    if let Some(v) = t.get("name") {
        let s = as_str(cx, v, &key("name"))?.trim();
        if s.is_empty() {
            return Err(cx.err(
                LoadErrorKind::InvalidValue,
                &v.span(),
                &key("name"),
                "client name is empty",
            ));
        }
        client.name = Some(cx.fact(s.to_owned(), &v.span()));
    }
    let ip_v = t
        .get("ip")
        .ok_or_else(|| missing(cx, &item.span(), &key("ip"), "ip"))?;
    for (s, span) in as_str_list(cx, ip_v, &key("ip"))? {
        let net = if s.contains('/') {
            parse_cidr_text(s).map(|(n, _)| n)
        } else {
            s.trim()
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("{s:?} is not an address or CIDR"))
        }
        .map_err(|m| cx.err(LoadErrorKind::InvalidValue, &span, &key("ip"), m))?;
        client.addresses.push(cx.fact(net, &span));
    }
    if client.addresses.is_empty() {
        return Err(cx.err(
            LoadErrorKind::Missing,
            &ip_v.span(),
            &key("ip"),
            "no address given",
        ));
    }
    if let Some(v) = t.get("captures") {
        for (p, span) in as_str_list(cx, v, &key("captures"))? {
            let f = cx.fact(resolve_path(cx, p), &span);
            client.captures.push(f);
        }
    }
    Ok(client)
}

fn parse_load_balancer(
    cx: &mut Ctx<'_>,
    v: &SValue<'_>,
    src: &mut ClusterSource,
) -> Result<(), LoadError> {
    let t = as_table(cx, v, "load_balancer")?;
    cx.unknown_keys(
        t,
        &[
            "frontends",
            "mode",
            "hash",
            "seed",
            "backends",
            "session_affinity",
            "external_traffic_policy",
            "maglev_table_size",
            "unhealthy",
        ],
        "load_balancer",
    );
    let key = |k: &str| format!("load_balancer.{k}");
    let lb = &mut src.load_balancer;
    if let Some(v) = t.get("frontends") {
        let list = if v.get_ref().as_str().is_some() {
            std::slice::from_ref(v)
        } else {
            as_array(cx, v, &key("frontends"))?
        };
        for (i, e) in list.iter().enumerate() {
            lb.frontends
                .push(parse_ip(cx, e, &format!("{}[{i}]", key("frontends")))?);
        }
    }
    if let Some(v) = t.get("mode") {
        lb.mode = Some(parse_enum::<AlbMode>(cx, v, &key("mode"))?);
    }
    if let Some(v) = t.get("hash") {
        lb.hash = Some(parse_enum::<AlbHash>(cx, v, &key("hash"))?);
    }
    if let Some(v) = t.get("seed") {
        let s = parse_u32(cx, v, &key("seed"))?;
        lb.seed = Some(cx.fact(s, &v.span()));
    }
    if let Some(v) = t.get("backends") {
        let mut names = Vec::new();
        for (i, e) in as_array(cx, v, &key("backends"))?.iter().enumerate() {
            let k = format!("{}[{i}]", key("backends"));
            let n = as_str(cx, e, &k)?.trim().to_owned();
            if names.contains(&n) {
                return Err(cx.err(
                    LoadErrorKind::Duplicate,
                    &e.span(),
                    &k,
                    format!("backend {n:?} is listed twice"),
                ));
            }
            names.push(n);
        }
        lb.backends = Some(cx.fact(names, &v.span()));
    }
    if let Some(v) = t.get("session_affinity") {
        lb.session_affinity = Some(parse_enum::<SessionAffinity>(
            cx,
            v,
            &key("session_affinity"),
        )?);
    }
    if let Some(v) = t.get("external_traffic_policy") {
        lb.external_traffic_policy = Some(parse_enum::<ExternalTrafficPolicy>(
            cx,
            v,
            &key("external_traffic_policy"),
        )?);
    }
    if let Some(v) = t.get("maglev_table_size") {
        let k = key("maglev_table_size");
        let m = parse_u32(cx, v, &k)?;
        if !(2..=MAX_TABLE_SIZE).contains(&m) || !is_prime(m) {
            return Err(cx.err(
                LoadErrorKind::InvalidValue,
                &v.span(),
                &k,
                format!("{m} is not a prime between 2 and {MAX_TABLE_SIZE}"),
            ));
        }
        lb.maglev_table_size = Some(cx.fact(m, &v.span()));
    }
    if let Some(v) = t.get("unhealthy") {
        for (n, span) in as_str_list(cx, v, &key("unhealthy"))? {
            let f = cx.fact(n.trim().to_owned(), &span);
            src.load_balancer.unhealthy.push(f);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[load_balancer]
frontends = ["20.185.96.169"]      # frontend IPs
mode = "default"
hash = "jhash"
seed = 0x5eed0001
backends = ["node0", "node1", "node2"]

[[nodes]]
name = "node0"
ip = "10.220.1.4"
pod_cidr = "10.100.0.0/24"
zone = "1"
captures = ["node0-eth0.pcap"]
rules = "rules.iptables"

[[nodes]]
name = "node1"
ip = "10.220.1.5"

[[nodes]]
name = "node2"
ip = "10.220.1.6"

[[pods]]
name = "testapp-7f4b8f5c9d-zp4ns"
ip = "10.100.0.7"
node = "node0"
"#;

    fn parse(t: &str) -> Result<ClusterSource, LoadError> {
        parse_cluster_toml(t, "cluster.toml", Path::new("/scen"))
    }

    #[test]
    fn interface_md_example() {
        let s = parse(EXAMPLE).unwrap();
        assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
        assert_eq!(s.nodes.len(), 3);
        let n0 = &s.nodes[0];
        assert_eq!(n0.name(), "node0");
        assert_eq!(n0.ip(), Some("10.220.1.4".parse().unwrap()));
        assert_eq!(
            n0.pod_cidrs[0].value,
            "10.100.0.0/24".parse::<IpNet>().unwrap()
        );
        assert_eq!(n0.zone(), Some("1"));
        assert_eq!(n0.captures[0].value, PathBuf::from("/scen/node0-eth0.pcap"));
        assert_eq!(
            n0.rules.as_ref().unwrap().value,
            PathBuf::from("/scen/rules.iptables")
        );
        match &n0.ips[0].provenance {
            Provenance::Given { source } => assert_eq!(source.line, Some(11)),
            p => panic!("{p:?}"),
        }
        let lb = &s.load_balancer;
        assert_eq!(lb.seed.as_ref().unwrap().value, 0x5eed_0001);
        assert_eq!(lb.mode.as_ref().unwrap().value, AlbMode::Default);
        assert_eq!(lb.hash.as_ref().unwrap().value, AlbHash::Jhash);
        assert_eq!(
            lb.backends.as_ref().unwrap().value,
            ["node0", "node1", "node2"]
        );
        assert_eq!(s.pods[0].node_name(), Some("node0"));
    }

    #[test]
    fn seed_forms() {
        for (text, want) in [
            ("seed = 0x5eed0001", Ok(0x5eed_0001u32)),
            ("seed = 1592590337", Ok(1_592_590_337)),
            ("seed = \"0x5EED0001\"", Ok(0x5eed_0001)),
            ("seed = \"1592590337\"", Ok(1_592_590_337)),
            ("seed = 0xffffffff", Ok(u32::MAX)),
            ("seed = 0", Ok(0)),
            ("seed = 0x100000000", Err(LoadErrorKind::InvalidValue)),
            ("seed = -1", Err(LoadErrorKind::InvalidValue)),
            ("seed = \"0xzz\"", Err(LoadErrorKind::InvalidValue)),
            ("seed = \"\"", Err(LoadErrorKind::InvalidValue)),
            ("seed = 1.5", Err(LoadErrorKind::InvalidValue)),
        ] {
            let doc = format!("[load_balancer]\n{text}\n");
            let got = parse(&doc)
                .map(|s| s.load_balancer.seed.unwrap().value)
                .map_err(|e| e.kind);
            assert_eq!(got, want, "{text}");
        }
    }

    /// Bad inputs: (document, line, key, message fragment).
    #[test]
    fn errors_name_line_and_key() {
        let cases: &[(&str, u32, Option<&str>, &str)] = &[
            (
                "[[nodes]]\nname = \"a\"\n",
                1,
                Some("nodes[0].ip"),
                "missing required key `ip`",
            ),
            (
                "[[nodes]]\nip = \"10.0.0.1\"\n",
                1,
                Some("nodes[0].name"),
                "missing required key `name`",
            ),
            (
                "[[nodes]]\nname = \"a\"\nip = \"10.0.0.300\"\n",
                3,
                Some("nodes[0].ip"),
                "not an IPv4 or IPv6 address",
            ),
            (
                "[[nodes]]\nname = \"a\"\nip = 7\n",
                3,
                Some("nodes[0].ip"),
                "found an integer",
            ),
            (
                "[[nodes]]\nname = \"a\"\nip = \"10.0.0.1\"\npod_cidr = \"10.0.0.0/33\"\n",
                4,
                Some("nodes[0].pod_cidr"),
                "not a CIDR",
            ),
            (
                "[[nodes]]\nname = \"a\"\nip = \"10.0.0.1\"\n\n[[nodes]]\nname = \"a\"\nip = \"10.0.0.2\"\n",
                5,
                Some("nodes[1].name"),
                "defined twice",
            ),
            (
                "[[pods]]\nname = \"p\"\n",
                1,
                Some("pods[0].ip"),
                "missing required key `ip`",
            ),
            (
                "[load_balancer]\nmode = \"sticky\"\n",
                2,
                Some("load_balancer.mode"),
                "unknown ALB mode",
            ),
            (
                "[load_balancer]\nhash = \"crc32\"\n",
                2,
                Some("load_balancer.hash"),
                "unknown ALB hash",
            ),
            (
                "[load_balancer]\nbackends = [\"a\", \"a\"]\n",
                2,
                Some("load_balancer.backends[1]"),
                "listed twice",
            ),
            (
                "[load_balancer]\nmaglev_table_size = 100\n",
                2,
                Some("load_balancer.maglev_table_size"),
                "not a prime",
            ),
            (
                "[load_balancer]\nfrontends = [\"1.2.3.4\", 5]\n",
                2,
                Some("load_balancer.frontends[1]"),
                "expected a string",
            ),
            ("nodes = 3\n", 1, Some("nodes"), "expected an array"),
            (
                "[load_balancer\nmode = \"default\"\n",
                1,
                None,
                "TOML syntax",
            ),
            (
                "\n\n[[nodes]]\nname = \"a\"\nname = \"b\"\n",
                5,
                None,
                "TOML syntax",
            ),
            ("a = \"unterminated\n", 1, None, "TOML syntax"),
            (
                "[[nodes]]\nname = \"a\"\nip = 10.0.0.1\n",
                3,
                None,
                "write \"10.0.0.1\"",
            ),
            (
                "[[nodes]]\nname = \"a\"\nname = \"b\"\n",
                3,
                None,
                "in `name = \"b\"`",
            ),
        ];
        for (doc, line, key, frag) in cases {
            let e = parse(doc).expect_err(doc);
            assert_eq!(e.line(), Some(*line), "{doc:?} → {e}");
            assert_eq!(e.key(), *key, "{doc:?} → {e}");
            assert!(e.to_string().contains(frag), "{doc:?} → {e}");
            assert!(e.to_string().starts_with("cluster.toml:"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_and_host_bits_warn_but_load() {
        let s = parse(
            "colour = \"blue\"\n[[nodes]]\nname = \"a\"\nip = \"10.0.0.1\"\npod_cidr = \"10.1.0.7/24\"\nflavour = 1\n",
        )
        .unwrap();
        let msgs: Vec<String> = s.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(
            msgs[0].starts_with("cluster.toml:1:1: colour: unknown key"),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("nodes[0].flavour") && m.contains(":6:")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("using 10.1.0.0/24")),
            "{msgs:?}"
        );
        assert_eq!(
            s.nodes[0].pod_cidrs[0].value,
            "10.1.0.0/24".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn extensions_dual_stack_numeric_zone_and_absolute_paths() {
        let s = parse(
            "[load_balancer]\nsession_affinity = \"ClientIP\"\nexternal_traffic_policy = \"Local\"\nunhealthy = \"n\"\nfrontends = \"1.2.3.4\"\n\
             [[nodes]]\nname = \"n\"\nip = [\"10.0.0.1\", \"fd00::1\"]\npod_cidr = [\"10.1.0.0/24\", \"fd01::/64\"]\nzone = 2\ncaptures = \"/abs/x.pcap\"\n",
        )
        .unwrap();
        assert_eq!(s.nodes[0].ips.len(), 2);
        assert_eq!(s.nodes[0].pod_cidrs.len(), 2);
        assert_eq!(s.nodes[0].zone(), Some("2"));
        assert_eq!(s.nodes[0].captures[0].value, PathBuf::from("/abs/x.pcap"));
        assert_eq!(
            s.load_balancer.session_affinity.as_ref().unwrap().value,
            SessionAffinity::ClientIp
        );
        assert_eq!(
            s.load_balancer
                .external_traffic_policy
                .as_ref()
                .unwrap()
                .value,
            ExternalTrafficPolicy::Local
        );
        assert_eq!(s.load_balancer.unhealthy[0].value, "n");
        assert_eq!(s.load_balancer.frontends.len(), 1);
    }

    #[test]
    fn clients_as_the_lab_writes_them() {
        let s = parse(
            "[[clients]]\nname = \"client1\"\nip = \"71.246.222.12\"\ncaptures = [\"client1-eth0.pcap\"]\n\n\
             [[clients]]\nname = \"crowd\"\nip = [\"71.246.224.0/21\", \"71.246.222.40\"]\n",
        )
        .unwrap();
        assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
        assert_eq!(s.clients.len(), 2);
        assert_eq!(s.clients[0].name(), Some("client1"));
        assert_eq!(
            s.clients[0].captures[0].value,
            PathBuf::from("/scen/client1-eth0.pcap")
        );
        assert!(s.clients[1].contains("71.246.225.9".parse().unwrap()));
        assert!(s.clients[1].contains("71.246.222.40".parse().unwrap()));
        let e = parse("[[clients]]\nname = \"c\"\n").unwrap_err();
        assert_eq!((e.line(), e.key()), (Some(1), Some("clients[0].ip")));
        let e = parse("[[clients]]\nip = \"1.2.3\"\n").unwrap_err();
        assert_eq!((e.line(), e.kind), (Some(2), LoadErrorKind::InvalidValue));
    }

    #[test]
    fn empty_document_is_an_empty_source() {
        let s = parse("").unwrap();
        assert!(s.nodes.is_empty() && s.pods.is_empty() && s.diagnostics.is_empty());
    }
}
