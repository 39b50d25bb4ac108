"""A round-robin HTTP/1.1 proxy for tests: each request goes to the next backend in turn, so a
client talking to one URL alternates between hub replicas. Bodies stream both ways; the Host
header is kept, so the replicas build URLs that point back at the proxy.

    python3 rr_proxy.py PORT BACKEND_PORT [BACKEND_PORT ...]
"""

import http.client
import itertools
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
CHUNK = 1 << 20


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    backends = None
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def body_chunks(self):
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        else:
            left = int(self.headers.get("content-length") or 0)
            while left > 0:
                chunk = self.rfile.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def forward(self):
        with Proxy.lock:
            port = next(Proxy.backends)
        upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP_BY_HOP:
                upstream.putheader(k, v)
        chunked = "content-length" not in self.headers and self.command in ("POST", "PUT", "PATCH")
        if chunked:
            upstream.putheader("Transfer-Encoding", "chunked")
        upstream.endheaders()
        for chunk in self.body_chunks():
            upstream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            upstream.send(b"0\r\n\r\n")
        resp = upstream.getresponse()
        self.send_response_only(resp.status, resp.reason)
        length = resp.getheader("content-length")
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        relay_chunked = length is None and self.command != "HEAD" and resp.status not in (204, 304)
        if relay_chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command != "HEAD":
            while chunk := resp.read(CHUNK):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if relay_chunked else chunk)
            if relay_chunked:
                self.wfile.write(b"0\r\n\r\n")
        upstream.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = forward


if __name__ == "__main__":
    port, backends = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
    Proxy.backends = itertools.cycle(backends)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Proxy).serve_forever()
