//! Real captures: HTTP over loopback recorded by tcpdump (kernel-made packets, with TCP options,
//! on `lo` as Ethernet and on `any` as Linux SLL2) and by dumpcap (pcapng), then compared with
//! tshark's `http.request`.
//! Also `tcpdump -w - | hoptrace report -` as a live pipe. Needs root, tcpdump and tshark; skips
//! with a message otherwise. Traffic stays on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn skip_reason() -> Option<&'static str> {
    if !is_root() {
        Some("skipped: capturing needs root")
    } else if !have("tcpdump") {
        Some("skipped: tcpdump is not installed (apt-get install tcpdump)")
    } else if !have("tshark") {
        Some("skipped: tshark is not installed (apt-get install tshark)")
    } else {
        None
    }
}

/// A minimal HTTP/1.1 server: answers every request (Content-Length or chunked body read and
/// discarded) with a small body, keeping connections open until the client closes.
fn serve(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || handle(stream));
        }
    });
}

fn handle(stream: TcpStream) {
    let mut out = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line.to_ascii_lowercase());
        }
        if head
            .iter()
            .any(|l| l.starts_with("transfer-encoding: chunked"))
        {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut skip = vec![0u8; n + 2];
                r.read_exact(&mut skip).unwrap();
                if n == 0 {
                    break;
                }
            }
        } else if let Some(cl) = head.iter().find_map(|l| l.strip_prefix("content-length:")) {
            let mut body = vec![0u8; cl.trim().parse().unwrap()];
            r.read_exact(&mut body).unwrap();
        }
        let close = head.iter().any(|l| l.starts_with("connection: close"));
        let body = format!("answer to {}", head[0].trim());
        // A HEAD response announces the length but carries no body.
        let sent = if head[0].starts_with("head ") {
            ""
        } else {
            body.as_str()
        };
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{sent}",
            body.len()
        )
        .unwrap();
        if close {
            return;
        }
    }
}

/// Talk HTTP to the server: keep-alive with a GET body, pipelining, chunked, close.
/// Returns the number of requests sent.
fn traffic(port: u16) -> usize {
    let read_responses = |s: &mut TcpStream, n: usize, last_is_head: bool| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        for i in 0..n {
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            if !(last_is_head && i == n - 1) {
                let mut b = vec![0u8; len];
                r.read_exact(&mut b).unwrap();
            }
        }
    };
    let h = format!("Host: 127.0.0.1:{port}\r\n");
    let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for req in [
        format!("GET /live/one HTTP/1.1\r\n{h}\r\n"),
        format!("GET /live/yo HTTP/1.1\r\n{h}Content-Length: 2\r\n\r\nYO"),
        format!("POST /live/form HTTP/1.1\r\n{h}Content-Length: 7\r\n\r\na=1&b=2"),
    ] {
        a.write_all(req.as_bytes()).unwrap();
        read_responses(&mut a, 1, false);
    }
    let mut b = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let pipelined = format!(
        "GET /p/1 HTTP/1.1\r\n{h}\r\nGET /p/2?q=x HTTP/1.1\r\n{h}\r\nHEAD /p/3 HTTP/1.1\r\n{h}\r\n"
    );
    b.write_all(pipelined.as_bytes()).unwrap();
    read_responses(&mut b, 3, true);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(
        format!("POST /chunked HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
            .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    c.write_all(b"3\r\nefg\r\n0\r\n\r\n").unwrap();
    read_responses(&mut c, 1, false);
    let mut d = TcpStream::connect(("127.0.0.1", port)).unwrap();
    d.write_all(format!("GET /bye HTTP/1.1\r\n{h}Connection: close\r\n\r\n").as_bytes())
        .unwrap();
    read_responses(&mut d, 1, false);
    drop((a, b, c, d));
    std::thread::sleep(Duration::from_millis(500));
    8
}

/// Start tcpdump and wait until it listens.
fn tcpdump(args: &[&str], stdout: Stdio) -> Child {
    // Immediate mode: packets are handed over at once, not when a TPACKET_V3 block retires
    // (which can lose the last block when tcpdump is interrupted).
    let mut child = Command::new("tcpdump")
        .arg("--immediate-mode")
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("listening on") {
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    // "listening on" is printed slightly before the capture ring is live.
    std::thread::sleep(Duration::from_millis(700));
    child
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

type Key = (String, u16, String, String);

fn tshark_requests(path: &Path, port: u16) -> Vec<Key> {
    let out = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "tcp.reassemble_out_of_order:TRUE",
            "-d",
            &format!("tcp.port=={port},http"),
            "-r",
        ])
        .arg(path)
        .args([
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
        ])
        .args(["-e", "http.request.method", "-e", "http.request.uri"])
        .output()
        .unwrap();
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        for (m, u) in f[2].split(',').zip(f[3].split(',')) {
            v.push((
                f[0].to_string(),
                f[1].parse().unwrap(),
                m.to_string(),
                u.to_string(),
            ));
        }
    }
    v.sort();
    v
}

fn our_requests(cap: &hoptrace::capture::Capture) -> Vec<Key> {
    let mut v: Vec<Key> = cap
        .requests
        .iter()
        .map(|r| {
            (
                r.client.ip().to_string(),
                r.client.port(),
                String::from_utf8_lossy(r.method()).into_owned(),
                String::from_utf8_lossy(r.target()).into_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// tcpdump occasionally loses loopback packets on this busy machine. On a capture that kept
/// everything hoptrace's list must equal tshark's; after a loss hoptrace may find more (it
/// resumes at the next request line, tshark does not), never fewer. Returns whether packets
/// were lost.
fn compare_with_tshark(path: &Path, port: u16, ours: &[Key]) -> bool {
    let cap = hoptrace::capture::Capture::open(0, path, Default::default()).unwrap();
    let lost = cap.connections.iter().any(|c| {
        c.reassembly().iter().any(|s| s.gaps > 0)
            || !c.tcp.closed()
            || c.client_isn().is_none()
            || c.server_isn().is_none()
    });
    let theirs = tshark_requests(path, port);
    let ok = if lost {
        theirs.iter().all(|t| ours.contains(t))
    } else {
        ours == theirs
    };
    if !ok {
        // Keep the capture for inspection.
        let _ = std::fs::copy(path, path.with_extension("mismatch"));
    }
    assert!(
        ok,
        "{} (lost packets: {lost}): hoptrace {ours:?} vs tshark {theirs:?}",
        path.display()
    );
    lost
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capture_live");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn loopback_captures_match_tshark() {
    if let Some(why) = skip_reason() {
        eprintln!("{why}");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener);
    let filter = format!("tcp port {port}");
    let lo = scratch("lo.pcap");
    let any = scratch("any-ns.pcap");
    let mut t1 = tcpdump(
        &[
            "-i",
            "lo",
            "-U",
            "-s",
            "0",
            "-w",
            lo.to_str().unwrap(),
            &filter,
        ],
        Stdio::null(),
    );
    let mut t2 = tcpdump(
        &[
            "-i",
            "any",
            "-y",
            "LINUX_SLL2",
            "--time-stamp-precision",
            "nano",
            "-U",
            "-w",
            any.to_str().unwrap(),
            &filter,
        ],
        Stdio::null(),
    );
    // dumpcap (Wireshark's capturer) writes pcapng: SHB/IDB options, if_tsresol, statistics.
    let ng = scratch("lo-dumpcap.pcapng");
    let _ = std::fs::remove_file(&ng);
    let mut t3 = Command::new("dumpcap")
        .args(["-q", "-i", "lo", "-f", &filter, "-w", ng.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let sent = traffic(port);
    stop(&mut t1);
    stop(&mut t2);
    stop(&mut t3);
    t1.wait().unwrap();
    t2.wait().unwrap();
    t3.wait().unwrap();
    let mut complete = 0;
    for (path, link) in [(&lo, 1), (&any, 276), (&ng, 1)] {
        let cap = hoptrace::capture::Capture::open(0, path, Default::default()).unwrap();
        assert_eq!(cap.interfaces[0].link_type, link, "{}", path.display());
        assert!(
            cap.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            cap.warnings
        );
        let ours = our_requests(&cap);
        let lost = compare_with_tshark(path, port, &ours);
        if lost || ours.len() < sent {
            eprintln!(
                "note: {} lost packets ({} of {sent} requests)",
                path.display(),
                ours.len()
            );
            continue;
        }
        complete += 1;
        let head = cap.requests.iter().find(|r| r.method() == b"HEAD").unwrap();
        assert_eq!(
            head.response.as_ref().map(|r| (r.status, r.body_len)),
            Some((200, 0))
        );
        let yo = cap
            .requests
            .iter()
            .find(|r| r.target() == b"/live/yo")
            .unwrap();
        assert_eq!(yo.body_len, 2);
        for c in &cap.connections {
            assert!(
                c.client_isn().is_some() && c.server_isn().is_some(),
                "{}: {c:?}",
                path.display()
            );
        }
    }
    assert!(complete >= 1, "every capture lost packets");
}

#[test]
fn tcpdump_pipe_into_report_stdin() {
    if let Some(why) = skip_reason() {
        eprintln!("{why}");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener);
    let mut dump = tcpdump(
        &["-i", "lo", "-U", "-w", "-", &format!("tcp port {port}")],
        Stdio::piped(),
    );
    let mut report = Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(["report", "--format", "ndjson", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Tee the stream: hoptrace reads it live, tshark reads the same bytes from a file after.
    let copy = scratch("pipe.pcap");
    let (mut from, mut to) = (dump.stdout.take().unwrap(), report.stdin.take().unwrap());
    let mut file = std::fs::File::create(&copy).unwrap();
    let tee = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = from.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).unwrap();
            to.write_all(&buf[..n]).unwrap();
        }
    });
    let sent = traffic(port);
    stop(&mut dump);
    dump.wait().unwrap();
    tee.join().unwrap();
    let out = report.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut ours: Vec<Key> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["capture"], "stdin");
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (
                v["client"]["ip"].as_str().unwrap().to_string(),
                v["client"]["port"].as_u64().unwrap() as u16,
                s("method"),
                s("target"),
            )
        })
        .collect();
    ours.sort();
    let lost = compare_with_tshark(&copy, port, &ours);
    if lost || ours.len() < sent {
        eprintln!(
            "note: tcpdump lost packets: {} of {sent} requests captured",
            ours.len()
        );
    }
    assert!(!ours.is_empty());
}
