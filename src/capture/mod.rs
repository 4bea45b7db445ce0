//! Capture engine: pcap/pcapng bytes → packets → TCP connections → HTTP/1.x requests.
