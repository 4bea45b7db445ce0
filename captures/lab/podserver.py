"""The lab's pod: a tiny HTTP/1.1 server that answers any method (GET with a body included),
names itself in an `X-Pod` response header and the body, and logs one JSON line per request
(peer address as the pod saw it, method, target, body length) so the lab can tie requests to
connections without reading its own captures.

usage: podserver.py NAME IP PORT LOGFILE
"""

import json
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, IP, PORT, LOG = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
MAX_BODY = 1 << 20
log = open(LOG, "a", buffering=1)


class Pod(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "testapp"
    sys_version = ""

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        peer_ip, peer_port = self.client_address[:2]
        if self.headers.get("X-Lab") != "readiness":  # the lab's own start-up probe is not traffic
            log.write(json.dumps({"t": time.time(), "pod": NAME, "peer_ip": peer_ip, "peer_port": peer_port,
                                  "method": self.command, "target": self.path, "body_len": len(body)}) + "\n")
        payload = b"" if self.command == "HEAD" else f"{NAME}\n".encode()
        self.send_response(200)
        self.send_header("X-Pod", NAME)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(f"{NAME}\n")))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - silence stderr access log
        pass

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which hangs in a namespace
        # without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = NAME, PORT


Server((IP, PORT), Pod).serve_forever()
