//! `kubectl get nodes|pods|svc -o wide` text tables and their `-o json` forms.
//!
//! Text: columns are found by header name (position-cut, tolerant of extra and reordered
//! columns, `<none>`, `node/`/`pod/` prefixes, several tables in one file as
//! `kubectl get svc,pods -o wide` prints them). JSON: a `List`/`NodeList`/`PodList` with
//! `items`, or a single object; nodes give `InternalIP`, `spec.podCIDR(s)` and the
//! `topology.kubernetes.io/zone` label; pods `status.podIP(s)`, `spec.nodeName`,
//! `spec.hostNetwork`, `status.hostIP`; LoadBalancer services their ingress IPs,
//! `sessionAffinity` and `externalTrafficPolicy`; EndpointSlices and Endpoints their addresses,
//! `nodeName`, `zone` and target pod names.
//!
//! A bad row or item is a warning naming its line and is skipped; the rest is kept.

use super::cluster_toml::parse_cidr_text;
use super::table::{TextTable, parse_tables};
use crate::cluster::alb::{ExternalTrafficPolicy, SessionAffinity};
use crate::cluster::error::{Diagnostic, LineIndex, LoadError, LoadErrorKind};
use crate::cluster::model::{ClusterSource, Node, Pod};
use crate::cluster::provenance::{Fact, Provenance, SourceKind};
use serde_json::Value;
use std::net::IpAddr;

/// Pod phases/statuses whose IP may already belong to another pod: not loaded.
const FINISHED: &[&str] = &["Completed", "Succeeded", "Failed", "Error", "Evicted"];

fn is_none(cell: &str) -> bool {
    cell.is_empty() || cell == "<none>" || cell == "<pending>" || cell == "<unknown>"
}

fn strip_kind_prefix<'a>(name: &'a str, prefixes: &[&str]) -> &'a str {
    prefixes
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name)
}

// ---------------------------------------------------------------------------------------------
// Text tables

/// Parse `kubectl get … -o wide` output (nodes, pods, services; any mix).
pub fn parse_kubectl_text(text: &str, file: &str) -> Result<ClusterSource, LoadError> {
    let mut src = ClusterSource::new(SourceKind::KubectlText, file);
    let (tables, orphans) = parse_tables(text);
    let mut recognised = 0;
    for t in &tables {
        let before = recognised;
        if t.has("INTERNAL-IP") {
            node_table(t, &mut src);
            recognised += 1;
        } else if t.has("IP") && t.has("NODE") {
            pod_table(t, &mut src);
            recognised += 1;
        } else if t.has("TYPE") && t.has("EXTERNAL-IP") {
            service_table(t, &mut src);
            recognised += 1;
        } else {
            src.diagnostics.push(
                Diagnostic::note(file, "table is not nodes, pods or services (no INTERNAL-IP, IP+NODE or TYPE+EXTERNAL-IP column); ignored")
                    .at_line(Some(t.header_line)),
            );
        }
        if recognised > before {
            for (line, reason) in &t.bad_rows {
                src.diagnostics.push(
                    Diagnostic::warning(file, format!("{reason}; row skipped"))
                        .at_line(Some(*line)),
                );
            }
        }
    }
    // Lines after a table's blank line that start no new table (a row whose cells are all
    // blank splits a table in two, for instance): say so rather than drop them silently.
    const MAX_ORPHAN_NOTES: usize = 20;
    for &line in orphans.iter().take(MAX_ORPHAN_NOTES) {
        src.diagnostics.push(
            Diagnostic::warning(
                file,
                "line outside any table (no header above it since the last blank line); ignored",
            )
            .at_line(Some(line)),
        );
    }
    if orphans.len() > MAX_ORPHAN_NOTES {
        src.diagnostics.push(Diagnostic::warning(
            file,
            format!(
                "{} more lines outside any table ignored",
                orphans.len() - MAX_ORPHAN_NOTES
            ),
        ));
    }
    if recognised == 0 {
        let first = tables.first().map(|t| t.header_line);
        return Err(LoadError::new(
            LoadErrorKind::Missing,
            Diagnostic::warning(
                file,
                "no `kubectl get nodes|pods -o wide` table found (expected a header with NAME and INTERNAL-IP, or NAME, IP and NODE)",
            )
            .at_line(first),
        ));
    }
    Ok(src)
}

struct RowCx<'a> {
    file: &'a str,
    t: &'a TextTable,
    line: u32,
    cells: &'a [String],
}

impl RowCx<'_> {
    fn cell(&self, col: &str) -> Option<&str> {
        self.t
            .column(col)
            .and_then(|i| self.cells.get(i))
            .map(String::as_str)
    }
    fn given(&self) -> Provenance {
        Provenance::given(SourceKind::KubectlText, self.file, Some(self.line))
    }
    fn warn(&self, col: &str, msg: String) -> Diagnostic {
        Diagnostic::warning(self.file, msg)
            .at_line(Some(self.line))
            .with_key(col)
    }
    fn ip(&self, col: &str) -> Result<Option<IpAddr>, Diagnostic> {
        match self.cell(col) {
            None => Ok(None),
            Some(c) if is_none(c) => Ok(None),
            Some(c) => c
                .parse()
                .map(Some)
                .map_err(|_| self.warn(col, format!("{c:?} is not an IP address; row skipped"))),
        }
    }
}

fn node_table(t: &TextTable, src: &mut ClusterSource) {
    let file = src.file.clone();
    let zone_col = t
        .columns
        .iter()
        .find(|c| c.name == "ZONE" || c.name.ends_with("/ZONE"))
        .map(|c| c.name.clone());
    for row in &t.rows {
        let r = RowCx {
            file: &file,
            t,
            line: row.line,
            cells: &row.cells,
        };
        let name = strip_kind_prefix(r.cell("NAME").unwrap_or(""), &["node/", "nodes/"]);
        if is_none(name) {
            src.diagnostics
                .push(r.warn("NAME", "empty node name; row skipped".into()));
            continue;
        }
        let ip = match r.ip("INTERNAL-IP") {
            Ok(ip) => ip,
            Err(d) => {
                src.diagnostics.push(d);
                continue;
            }
        };
        let mut node = Node::new(Fact::new(name.to_owned(), r.given()));
        match ip {
            Some(ip) => node.ips.push(Fact::new(ip, r.given())),
            None => src.diagnostics.push(
                Diagnostic::note(&file, format!("node {name} has no INTERNAL-IP"))
                    .at_line(Some(row.line)),
            ),
        }
        if let Some(status) = r.cell("STATUS").filter(|s| !is_none(s)) {
            let ready = status.split(',').any(|s| s == "Ready");
            node.ready = Some(Fact::new(ready, r.given()));
        }
        if let Some(z) = zone_col
            .as_deref()
            .and_then(|c| r.cell(c))
            .filter(|z| !is_none(z))
        {
            node.zone = Some(Fact::new(z.to_owned(), r.given()));
        }
        src.nodes.push(node);
    }
}

fn pod_table(t: &TextTable, src: &mut ClusterSource) {
    let file = src.file.clone();
    for row in &t.rows {
        let r = RowCx {
            file: &file,
            t,
            line: row.line,
            cells: &row.cells,
        };
        let name = strip_kind_prefix(r.cell("NAME").unwrap_or(""), &["pod/", "pods/"]);
        if is_none(name) {
            src.diagnostics
                .push(r.warn("NAME", "empty pod name; row skipped".into()));
            continue;
        }
        let status = r.cell("STATUS").unwrap_or("");
        if FINISHED.contains(&status) {
            src.diagnostics.push(
                Diagnostic::note(
                    &file,
                    format!(
                        "pod {name} is {status}; its IP may belong to another pod now, not loaded"
                    ),
                )
                .at_line(Some(row.line)),
            );
            continue;
        }
        let ip = match r.ip("IP") {
            Ok(Some(ip)) => ip,
            Ok(None) => {
                src.diagnostics.push(
                    Diagnostic::note(&file, format!("pod {name} has no IP yet; not loaded"))
                        .at_line(Some(row.line)),
                );
                continue;
            }
            Err(d) => {
                src.diagnostics.push(d);
                continue;
            }
        };
        let mut pod = Pod::new(Fact::new(ip, r.given()));
        pod.name = Some(Fact::new(name.to_owned(), r.given()));
        if let Some(ns) = r.cell("NAMESPACE").filter(|s| !is_none(s)) {
            pod.namespace = Some(Fact::new(ns.to_owned(), r.given()));
        }
        if let Some(n) = r.cell("NODE").filter(|s| !is_none(s)) {
            pod.node = Some(Fact::new(
                strip_kind_prefix(n, &["node/"]).to_owned(),
                r.given(),
            ));
        }
        src.pods.push(pod);
    }
}

fn service_table(t: &TextTable, src: &mut ClusterSource) {
    let file = src.file.clone();
    for row in &t.rows {
        let r = RowCx {
            file: &file,
            t,
            line: row.line,
            cells: &row.cells,
        };
        if r.cell("TYPE") != Some("LoadBalancer") {
            continue;
        }
        let Some(ext) = r.cell("EXTERNAL-IP").filter(|s| !is_none(s)) else {
            continue;
        };
        for part in ext.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if !src.load_balancer.frontends.iter().any(|f| f.value == ip) => {
                    src.load_balancer.frontends.push(Fact::new(ip, r.given()));
                }
                Ok(_) => {}
                // Hostname ingresses (AWS-style) are not addresses we can match packets on.
                Err(_) => src.diagnostics.push(r.warn(
                    "EXTERNAL-IP",
                    format!("{part:?} is not an IP address; ignored"),
                )),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Byte offsets of the elements of the top-level `"items"` array, for line numbers in
/// messages. Runs on text serde_json already accepted.
fn item_offsets(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut offsets = Vec::new();
    let (mut depth, mut i) = (0usize, 0usize);
    let mut last_str: Option<(usize, usize)> = None;
    let mut key_is_items = false;
    let (mut in_items, mut expect_value) = (false, false);
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            if in_items && depth == 2 && expect_value {
                offsets.push(start);
                expect_value = false;
            }
            if depth == 1 {
                last_str = Some((start + 1, i.min(b.len())));
            }
            i += 1;
            continue;
        }
        match c {
            b'{' | b'[' => {
                if in_items && depth == 2 && expect_value {
                    offsets.push(i);
                    expect_value = false;
                }
                if depth == 1 && c == b'[' && key_is_items {
                    in_items = true;
                    expect_value = true;
                }
                depth += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if in_items && depth == 1 {
                    break;
                }
            }
            b':' if depth == 1 => {
                key_is_items = last_str.take().is_some_and(|(s, e)| &b[s..e] == b"items");
            }
            b',' => {
                if in_items && depth == 2 {
                    expect_value = true;
                }
                if depth == 1 {
                    key_is_items = false;
                }
            }
            c if c.is_ascii_whitespace() => {}
            _ => {
                if in_items && depth == 2 && expect_value {
                    offsets.push(i);
                    expect_value = false;
                }
            }
        }
        i += 1;
    }
    offsets
}

struct ItemCx<'a> {
    file: &'a str,
    path: String,
    line: Option<u32>,
}

impl ItemCx<'_> {
    fn given(&self) -> Provenance {
        Provenance::given(SourceKind::KubectlJson, self.file, self.line)
    }
    fn diag(&self, key: &str, msg: String) -> Diagnostic {
        Diagnostic::warning(self.file, msg)
            .at_line(self.line)
            .with_key(format!("{}{key}", self.path))
    }
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Parse `kubectl get … -o json`.
pub fn parse_kubectl_json(text: &str, file: &str) -> Result<ClusterSource, LoadError> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        LoadError::new(
            LoadErrorKind::Syntax,
            Diagnostic::warning(file, format!("JSON syntax: {e}"))
                .at_line(u32::try_from(e.line()).ok().filter(|l| *l > 0))
                .at_column(u32::try_from(e.column()).ok().filter(|c| *c > 0)),
        )
    })?;
    let kind = root.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut src = ClusterSource::new(SourceKind::KubectlJson, file);
    let lines = LineIndex::new(text);
    match root.get("items").and_then(Value::as_array) {
        Some(items) => {
            let default_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
            let offsets = item_offsets(text);
            for (i, item) in items.iter().enumerate() {
                let line = offsets.get(i).map(|&o| lines.line_col(text, o).0);
                let cx = ItemCx {
                    file,
                    path: format!("items[{i}]"),
                    line,
                };
                let k = item
                    .get("kind")
                    .and_then(Value::as_str)
                    .or(default_kind)
                    .unwrap_or("");
                parse_item(&cx, k, item, &mut src);
            }
        }
        None if matches!(
            kind,
            "Node" | "Pod" | "Service" | "EndpointSlice" | "Endpoints"
        ) =>
        {
            let cx = ItemCx {
                file,
                path: String::new(),
                line: Some(1),
            };
            parse_item(&cx, kind, &root, &mut src);
        }
        None => {
            return Err(LoadError::new(
                LoadErrorKind::NotRecognised,
                Diagnostic::warning(
                    file,
                    format!(
                        "JSON is not kubectl output (kind {kind:?}; expected a List or a Node, Pod, Service, EndpointSlice or Endpoints)"
                    ),
                ),
            ));
        }
    }
    Ok(src)
}

fn parse_item(cx: &ItemCx<'_>, kind: &str, item: &Value, src: &mut ClusterSource) {
    match kind {
        "Node" => json_node(cx, item, src),
        "Pod" => json_pod(cx, item, src),
        "Service" => json_service(cx, item, src),
        "EndpointSlice" => json_endpoint_slice(cx, item, src),
        "Endpoints" => json_endpoints(cx, item, src),
        _ => src.diagnostics.push(
            Diagnostic::note(cx.file, format!("{}: kind {kind:?} ignored", cx.path))
                .at_line(cx.line),
        ),
    }
}

fn json_ip(cx: &ItemCx<'_>, key: &str, s: &str, src: &mut ClusterSource) -> Option<IpAddr> {
    match s.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            src.diagnostics
                .push(cx.diag(key, format!("{s:?} is not an IP address")));
            None
        }
    }
}

fn json_node(cx: &ItemCx<'_>, item: &Value, src: &mut ClusterSource) {
    let Some(name) = str_at(item, &["metadata", "name"]).filter(|n| !n.is_empty()) else {
        src.diagnostics
            .push(cx.diag(".metadata.name", "node without a name; skipped".into()));
        return;
    };
    let mut node = Node::new(Fact::new(name.to_owned(), cx.given()));
    let addresses = item
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (j, a) in addresses.iter().enumerate() {
        if a.get("type").and_then(Value::as_str) != Some("InternalIP") {
            continue;
        }
        let Some(addr) = a.get("address").and_then(Value::as_str) else {
            continue;
        };
        if let Some(ip) = json_ip(cx, &format!(".status.addresses[{j}].address"), addr, src) {
            node.ips.push(Fact::new(ip, cx.given()));
        }
    }
    if node.ips.is_empty() {
        src.diagnostics.push(
            Diagnostic::note(cx.file, format!("node {name} has no InternalIP")).at_line(cx.line),
        );
    }
    let cidrs: Vec<(String, &str)> = match item.pointer("/spec/podCIDRs").and_then(Value::as_array)
    {
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(j, v)| v.as_str().map(|s| (format!(".spec.podCIDRs[{j}]"), s)))
            .collect(),
        None => str_at(item, &["spec", "podCIDR"])
            .map(|s| vec![(".spec.podCIDR".to_owned(), s)])
            .unwrap_or_default(),
    };
    for (key, s) in cidrs {
        match parse_cidr_text(s) {
            Ok((net, host_bits)) => {
                if host_bits {
                    src.diagnostics
                        .push(cx.diag(&key, format!("{s:?} has host bits set; using {net}")));
                }
                node.pod_cidrs.push(Fact::new(net, cx.given()));
            }
            Err(m) => src.diagnostics.push(cx.diag(&key, m)),
        }
    }
    let labels = item.pointer("/metadata/labels");
    let zone = [
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    ]
    .iter()
    .find_map(|l| labels.and_then(|m| m.get(*l)).and_then(Value::as_str));
    if let Some(z) = zone.filter(|z| !z.is_empty()) {
        node.zone = Some(Fact::new(z.to_owned(), cx.given()));
    }
    if let Some(conds) = item.pointer("/status/conditions").and_then(Value::as_array)
        && let Some(ready) = conds
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
    {
        let r = ready.get("status").and_then(Value::as_str) == Some("True");
        node.ready = Some(Fact::new(r, cx.given()));
    }
    src.nodes.push(node);
}

fn json_pod(cx: &ItemCx<'_>, item: &Value, src: &mut ClusterSource) {
    let name = str_at(item, &["metadata", "name"]).filter(|n| !n.is_empty());
    let shown = name.unwrap_or("(unnamed)");
    if let Some(phase) = str_at(item, &["status", "phase"])
        && FINISHED.contains(&phase)
    {
        src.diagnostics.push(
            Diagnostic::note(
                cx.file,
                format!("pod {shown} is {phase}; its IP may belong to another pod now, not loaded"),
            )
            .at_line(cx.line),
        );
        return;
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(list) = item.pointer("/status/podIPs").and_then(Value::as_array) {
        for (j, v) in list.iter().enumerate() {
            if let Some(s) = v.get("ip").and_then(Value::as_str)
                && let Some(ip) = json_ip(cx, &format!(".status.podIPs[{j}].ip"), s, src)
                && !ips.contains(&ip)
            {
                ips.push(ip);
            }
        }
    }
    if let Some(s) = str_at(item, &["status", "podIP"])
        && let Some(ip) = json_ip(cx, ".status.podIP", s, src)
    {
        // podIP is the primary address: put it first.
        ips.retain(|x| *x != ip);
        ips.insert(0, ip);
    }
    let Some((&primary, rest)) = ips.split_first() else {
        src.diagnostics.push(
            Diagnostic::note(cx.file, format!("pod {shown} has no IP yet; not loaded"))
                .at_line(cx.line),
        );
        return;
    };
    let mut pod = Pod::new(Fact::new(primary, cx.given()));
    pod.other_ips = rest.iter().map(|ip| Fact::new(*ip, cx.given())).collect();
    pod.name = name.map(|n| Fact::new(n.to_owned(), cx.given()));
    pod.namespace =
        str_at(item, &["metadata", "namespace"]).map(|n| Fact::new(n.to_owned(), cx.given()));
    pod.host_network = item
        .pointer("/spec/hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let node_name = str_at(item, &["spec", "nodeName"]).filter(|n| !n.is_empty());
    pod.node = node_name.map(|n| Fact::new(n.to_owned(), cx.given()));
    // status.hostIP is the node's InternalIP: a fact about the node.
    if let (Some(node_name), Some(host_ip)) = (node_name, str_at(item, &["status", "hostIP"]))
        && let Some(ip) = json_ip(cx, ".status.hostIP", host_ip, src)
    {
        let mut node = Node::new(Fact::new(node_name.to_owned(), cx.given()));
        node.ips.push(Fact::new(ip, cx.given()));
        src.nodes.push(node);
    }
    src.pods.push(pod);
}

/// An endpoint address as a pod record: the pod name from `targetRef` when it is a Pod.
fn endpoint_pod(
    cx: &ItemCx<'_>,
    key: &str,
    ip: &str,
    node: Option<&str>,
    target: Option<&Value>,
    src: &mut ClusterSource,
) -> Option<Pod> {
    let ip = json_ip(cx, key, ip, src)?;
    let mut pod = Pod::new(Fact::new(ip, cx.given()));
    if let Some(t) = target.filter(|t| t.get("kind").and_then(Value::as_str) == Some("Pod")) {
        pod.name = t
            .get("name")
            .and_then(Value::as_str)
            .map(|n| Fact::new(n.to_owned(), cx.given()));
        pod.namespace = t
            .get("namespace")
            .and_then(Value::as_str)
            .map(|n| Fact::new(n.to_owned(), cx.given()));
    }
    pod.node = node
        .filter(|n| !n.is_empty())
        .map(|n| Fact::new(n.to_owned(), cx.given()));
    Some(pod)
}

/// `discovery.k8s.io/v1` EndpointSlice: each endpoint's addresses, node and zone.
fn json_endpoint_slice(cx: &ItemCx<'_>, item: &Value, src: &mut ClusterSource) {
    let endpoints = item
        .get("endpoints")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (j, ep) in endpoints.iter().enumerate() {
        let node = ep.get("nodeName").and_then(Value::as_str);
        let addrs = ep
            .get("addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (k, a) in addrs.iter().enumerate() {
            let Some(a) = a.as_str() else { continue };
            let key = format!(".endpoints[{j}].addresses[{k}]");
            if let Some(p) = endpoint_pod(cx, &key, a, node, ep.get("targetRef"), src) {
                src.pods.push(p);
            }
        }
        if let (Some(n), Some(z)) = (
            node.filter(|n| !n.is_empty()),
            ep.get("zone")
                .and_then(Value::as_str)
                .filter(|z| !z.is_empty()),
        ) {
            let mut node = Node::new(Fact::new(n.to_owned(), cx.given()));
            node.zone = Some(Fact::new(z.to_owned(), cx.given()));
            src.nodes.push(node);
        }
    }
}

/// `v1` Endpoints: ready and not-ready addresses of every subset.
fn json_endpoints(cx: &ItemCx<'_>, item: &Value, src: &mut ClusterSource) {
    let subsets = item
        .get("subsets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (j, sub) in subsets.iter().enumerate() {
        for list in ["addresses", "notReadyAddresses"] {
            let addrs = sub
                .get(list)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for (k, a) in addrs.iter().enumerate() {
                let Some(ip) = a.get("ip").and_then(Value::as_str) else {
                    continue;
                };
                let key = format!(".subsets[{j}].{list}[{k}].ip");
                let node = a.get("nodeName").and_then(Value::as_str);
                if let Some(p) = endpoint_pod(cx, &key, ip, node, a.get("targetRef"), src) {
                    src.pods.push(p);
                }
            }
        }
    }
}

fn json_service(cx: &ItemCx<'_>, item: &Value, src: &mut ClusterSource) {
    if str_at(item, &["spec", "type"]) != Some("LoadBalancer") {
        return;
    }
    let name = str_at(item, &["metadata", "name"]).unwrap_or("(unnamed)");
    if let Some(ingress) = item
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
    {
        for (j, ing) in ingress.iter().enumerate() {
            if let Some(s) = ing.get("ip").and_then(Value::as_str)
                && let Some(ip) =
                    json_ip(cx, &format!(".status.loadBalancer.ingress[{j}].ip"), s, src)
                && !src.load_balancer.frontends.iter().any(|f| f.value == ip)
            {
                src.load_balancer.frontends.push(Fact::new(ip, cx.given()));
            }
        }
    }
    let lb = &mut src.load_balancer;
    if let Some(a) = str_at(item, &["spec", "sessionAffinity"]) {
        match a.parse::<SessionAffinity>() {
            Ok(a) => match &lb.session_affinity {
                Some(prev) if prev.value != a => src.diagnostics.push(cx.diag(
                    ".spec.sessionAffinity",
                    format!("service {name} has sessionAffinity {a:?} but an earlier LoadBalancer service has {:?}; the model uses the first", prev.value),
                )),
                Some(_) => {}
                None => lb.session_affinity = Some(Fact::new(a, cx.given())),
            },
            Err(e) => src.diagnostics.push(cx.diag(".spec.sessionAffinity", e.to_string())),
        }
    }
    let lb = &mut src.load_balancer;
    if let Some(p) = str_at(item, &["spec", "externalTrafficPolicy"]) {
        match p.parse::<ExternalTrafficPolicy>() {
            Ok(p) => match &lb.external_traffic_policy {
                Some(prev) if prev.value != p => src.diagnostics.push(cx.diag(
                    ".spec.externalTrafficPolicy",
                    format!("service {name} has externalTrafficPolicy {p:?} but an earlier LoadBalancer service has {:?}; the model uses the first", prev.value),
                )),
                Some(_) => {}
                None => lb.external_traffic_policy = Some(Fact::new(p, cx.given())),
            },
            Err(e) => src.diagnostics.push(cx.diag(".spec.externalTrafficPolicy", e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES_WIDE: &str = "\
NAME                                STATUS   ROLES   AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE             KERNEL-VERSION     CONTAINER-RUNTIME
aks-nodepool1-23454376-vmss000000   Ready    agent   27h   v1.19.7   10.220.1.4    <none>        Ubuntu 18.04.5 LTS   5.4.0-1040-azure   containerd://1.4.3+azure
aks-nodepool1-23454376-vmss000001   Ready    agent   27h   v1.19.7   10.220.1.5    <none>        Ubuntu 18.04.5 LTS   5.4.0-1040-azure   containerd://1.4.3+azure
aks-nodepool1-23454376-vmss000002   NotReady agent   27h   v1.19.7   10.220.1.6    <none>        Ubuntu 18.04.5 LTS   5.4.0-1040-azure   containerd://1.4.3+azure
";

    const PODS_WIDE: &str = "\
NAME                       READY   STATUS    RESTARTS      AGE   IP           NODE                                NOMINATED NODE   READINESS GATES
testapp-6f7947bc4b-cq567   1/1     Running   0             16s   10.100.1.4   aks-nodepool1-23454376-vmss000002   <none>           <none>
testapp-6f7947bc4b-rgm5l   1/1     Running   2 (3h ago)    16s   10.100.0.7   aks-nodepool1-23454376-vmss000000   <none>           <none>
testapp-6f7947bc4b-x7427   1/1     Running   0             27h   10.100.2.2   aks-nodepool1-23454376-vmss000001   <none>           <none>
pending-7                  0/1     Pending   0             1s    <none>       <none>                              <none>           <none>
job-x                      0/1     Completed 0             1h    10.100.2.9   aks-nodepool1-23454376-vmss000001   <none>           <none>
";

    #[test]
    fn nodes_wide() {
        let s = parse_kubectl_text(NODES_WIDE, "nodes.txt").unwrap();
        assert_eq!(s.nodes.len(), 3);
        assert_eq!(s.nodes[1].name(), "aks-nodepool1-23454376-vmss000001");
        assert_eq!(s.nodes[1].ip(), Some("10.220.1.5".parse().unwrap()));
        assert!(s.nodes[0].ready.as_ref().unwrap().value);
        assert!(!s.nodes[2].ready.as_ref().unwrap().value);
        assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
        match &s.nodes[2].ips[0].provenance {
            Provenance::Given { source } => assert_eq!(source.line, Some(4)),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn pods_wide_with_restarts_pending_and_completed() {
        let s = parse_kubectl_text(PODS_WIDE, "pods.txt").unwrap();
        let got: Vec<(&str, String, &str)> = s
            .pods
            .iter()
            .map(|p| {
                (
                    p.name().unwrap(),
                    p.ip.value.to_string(),
                    p.node_name().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "testapp-6f7947bc4b-cq567",
                    "10.100.1.4".to_owned(),
                    "aks-nodepool1-23454376-vmss000002"
                ),
                (
                    "testapp-6f7947bc4b-rgm5l",
                    "10.100.0.7".to_owned(),
                    "aks-nodepool1-23454376-vmss000000"
                ),
                (
                    "testapp-6f7947bc4b-x7427",
                    "10.100.2.2".to_owned(),
                    "aks-nodepool1-23454376-vmss000001"
                ),
            ]
        );
        assert_eq!(s.diagnostics.len(), 2);
        assert!(
            s.diagnostics
                .iter()
                .all(|d| d.severity == crate::cluster::error::Severity::Note)
        );
    }

    #[test]
    fn namespaced_zone_label_svc_and_prefixed_tables() {
        let t = "\
NAME                 TYPE           CLUSTER-IP      EXTERNAL-IP     PORT(S)        AGE   SELECTOR
service/kubernetes   ClusterIP      10.200.0.1      <none>          443/TCP        17m   <none>
service/testapp      LoadBalancer   10.200.105.65   20.185.96.169   80:31857/TCP   36s   run=testapp

NAMESPACE   NAME                           READY   STATUS    RESTARTS   AGE   IP           NODE    NOMINATED NODE   READINESS GATES
default     pod/testapp-6f7947bc4b-92g9l   1/1     Running   0          36s   10.100.2.2   node1   <none>           <none>

NAME         STATUS   ROLES   AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   ZONE
node/node1   Ready    agent   1d    v1.30.0   10.220.1.5    <none>        eastus-2
";
        let s = parse_kubectl_text(t, "all.txt").unwrap();
        assert_eq!(
            s.load_balancer.frontends[0].value,
            "20.185.96.169".parse::<IpAddr>().unwrap()
        );
        assert_eq!(s.pods[0].name(), Some("testapp-6f7947bc4b-92g9l"));
        assert_eq!(s.pods[0].namespace.as_ref().unwrap().value, "default");
        assert_eq!(s.nodes[0].name(), "node1");
        assert_eq!(s.nodes[0].zone(), Some("eastus-2"));
    }

    /// Bad text inputs: (input, Ok(expected warnings at lines) | Err(line)).
    #[test]
    fn bad_tables() {
        // The blog's pod table with the IP column elided: NODE lands under IP.
        let broken = "\
NAME                       READY   STATUS    RESTARTS   AGE   IP           NODE                                NOMINATED NODE   READINESS GATES
testapp-6f7947bc4b-92g9l   1/1     Running   0          36s   aks-nodepool1-23454376-vmss000001   <none>           <none>
testapp-ok                 1/1     Running   0          36s   10.100.0.3   n0                                  <none>           <none>
";
        let s = parse_kubectl_text(broken, "blog.txt").unwrap();
        assert_eq!(s.pods.len(), 1);
        assert_eq!(s.diagnostics.len(), 1);
        let d = &s.diagnostics[0];
        assert_eq!(d.line, Some(2));
        assert!(d.to_string().starts_with("blog.txt:2: "), "{d}");

        // Truncated table: the last row stops in the middle.
        let trunc = "NAME    STATUS   INTERNAL-IP\nn0      Ready    10.0.0.1\nn1      Rea";
        let s = parse_kubectl_text(trunc, "t.txt").unwrap();
        assert_eq!(s.nodes.len(), 2);
        assert!(s.nodes[1].ips.is_empty());

        // Missing columns: no INTERNAL-IP / NODE column at all.
        for (t, line) in [
            ("NAME   STATUS   AGE\nn0   Ready   1d\n", Some(1)),
            ("garbage\n", None),
            ("", None),
        ] {
            let e = parse_kubectl_text(t, "x.txt").unwrap_err();
            assert_eq!(e.kind, LoadErrorKind::Missing);
            assert_eq!(e.line(), line, "{t:?}");
        }

        // Bad IP cell.
        let s = parse_kubectl_text(
            "NAME   INTERNAL-IP\nn0     10.0.0.999\nn1     10.0.0.2\n",
            "b.txt",
        )
        .unwrap();
        assert_eq!(s.nodes.len(), 1);
        assert_eq!(s.diagnostics[0].line, Some(2));
        assert_eq!(s.diagnostics[0].key.as_deref(), Some("INTERNAL-IP"));
    }

    const NODES_JSON: &str = r#"{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "labels": {"topology.kubernetes.io/zone": "eastus-1", "kubernetes.io/hostname": "node0"},
                "name": "node0"
            },
            "spec": {"podCIDR": "10.100.0.0/24", "podCIDRs": ["10.100.0.0/24", "fd00:100::/64"]},
            "status": {
                "addresses": [
                    {"address": "node0", "type": "Hostname"},
                    {"address": "10.220.1.4", "type": "InternalIP"}
                ],
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        },
        {
            "kind": "Node",
            "metadata": {"name": "node1", "labels": {"failure-domain.beta.kubernetes.io/zone": "2"}},
            "spec": {"podCIDR": "10.100.1.0/33"},
            "status": {"addresses": [{"address": "10.220.1.5", "type": "InternalIP"}]}
        }
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}"#;

    #[test]
    fn nodes_json() {
        let s = parse_kubectl_json(NODES_JSON, "nodes.json").unwrap();
        assert_eq!(s.nodes.len(), 2);
        let n0 = &s.nodes[0];
        assert_eq!(n0.ip(), Some("10.220.1.4".parse().unwrap()));
        assert_eq!(n0.pod_cidrs.len(), 2);
        assert_eq!(n0.zone(), Some("eastus-1"));
        assert!(n0.ready.as_ref().unwrap().value);
        assert_eq!(s.nodes[1].zone(), Some("2"));
        // The bad CIDR of item 1 is reported with its line and JSON path.
        assert_eq!(s.diagnostics.len(), 1);
        let d = &s.diagnostics[0];
        assert_eq!(d.key.as_deref(), Some("items[1].spec.podCIDR"));
        assert_eq!(d.line, Some(20));
        match &n0.ips[0].provenance {
            Provenance::Given { source } => assert_eq!(source.line, Some(4)),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn pods_json_and_single_objects() {
        let t = r#"{"kind":"PodList","items":[
 {"metadata":{"name":"a","namespace":"default"},"spec":{"nodeName":"node0"},
  "status":{"phase":"Running","podIP":"10.100.0.7","podIPs":[{"ip":"10.100.0.7"},{"ip":"fd00:100::7"}],"hostIP":"10.220.1.4"}},
 {"metadata":{"name":"hn"},"spec":{"nodeName":"node1","hostNetwork":true},"status":{"podIP":"10.220.1.5"}},
 {"metadata":{"name":"pending"},"spec":{},"status":{"phase":"Pending"}},
 {"metadata":{"name":"bad"},"spec":{},"status":{"podIP":"nope"}}
]}"#;
        let s = parse_kubectl_json(t, "pods.json").unwrap();
        assert_eq!(s.pods.len(), 2);
        assert_eq!(
            s.pods[0].other_ips[0].value,
            "fd00:100::7".parse::<IpAddr>().unwrap()
        );
        assert!(s.pods[1].host_network);
        assert_eq!(s.nodes.len(), 1, "hostIP gives node0's address");
        assert_eq!(s.nodes[0].ip(), Some("10.220.1.4".parse().unwrap()));
        let bad = s
            .diagnostics
            .iter()
            .find(|d| d.severity == crate::cluster::error::Severity::Warning)
            .unwrap();
        assert_eq!(bad.key.as_deref(), Some("items[3].status.podIP"));
        assert_eq!(bad.line, Some(6));

        let one = r#"{"kind":"Service","metadata":{"name":"testapp"},"spec":{"type":"LoadBalancer","sessionAffinity":"ClientIP","externalTrafficPolicy":"Local"},
                     "status":{"loadBalancer":{"ingress":[{"ip":"20.185.96.169"}]}}}"#;
        let s = parse_kubectl_json(one, "svc.json").unwrap();
        assert_eq!(s.load_balancer.frontends.len(), 1);
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
    }

    #[test]
    fn endpoint_slices_and_endpoints() {
        let t = r#"{"kind":"List","items":[
 {"kind":"EndpointSlice","addressType":"IPv4","metadata":{"name":"web-x"},
  "endpoints":[{"addresses":["10.244.1.9"],"nodeName":"n1","zone":"eastus-2","targetRef":{"kind":"Pod","name":"web-1","namespace":"default"}},
               {"addresses":["10.244.2.bad"],"nodeName":"n2"}]},
 {"kind":"Endpoints","metadata":{"name":"web"},"subsets":[{"addresses":[{"ip":"10.244.1.9","nodeName":"n1","targetRef":{"kind":"Pod","name":"web-1"}}],
   "notReadyAddresses":[{"ip":"10.244.3.3","nodeName":"n3"}]}]}
]}"#;
        let s = parse_kubectl_json(t, "eps.json").unwrap();
        let pods: Vec<(String, Option<&str>, Option<&str>)> = s
            .pods
            .iter()
            .map(|p| (p.ip.value.to_string(), p.name(), p.node_name()))
            .collect();
        assert_eq!(
            pods,
            [
                ("10.244.1.9".to_owned(), Some("web-1"), Some("n1")),
                ("10.244.1.9".to_owned(), Some("web-1"), Some("n1")),
                ("10.244.3.3".to_owned(), None, Some("n3")),
            ]
        );
        assert_eq!(s.nodes.len(), 1);
        assert_eq!(s.nodes[0].zone(), Some("eastus-2"));
        let w: Vec<&str> = s
            .diagnostics
            .iter()
            .filter_map(|d| d.key.as_deref())
            .collect();
        assert_eq!(w, ["items[0].endpoints[1].addresses[0]"]);
    }

    #[test]
    fn json_errors() {
        let e = parse_kubectl_json("{\n  \"kind\": \"List\",\n  \"items\": [\n  }", "x.json")
            .unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert_eq!(e.line(), Some(4));
        let e = parse_kubectl_json("{\"kind\": \"Deployment\"}", "x.json").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NotRecognised);
        let e = parse_kubectl_json("[1,2]", "x.json").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NotRecognised);
    }

    #[test]
    fn item_offsets_skip_strings_and_nesting() {
        let t = r#"{"a":"items","items":[{"x":"]["},[1],"s",3],"b":[9]}"#;
        let offs = item_offsets(t);
        let starts: Vec<char> = offs.iter().map(|&o| t.as_bytes()[o] as char).collect();
        assert_eq!(starts, ['{', '[', '"', '3']);
    }
}
