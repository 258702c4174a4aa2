"""Fault injection on loopback: an HTTP proxy that fails a share of requests with 503 and stalls
others, in front of a real server (moto's S3)."""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class FaultyProxy:
    def __init__(self, upstream: str, *, fail: float = 0.3, stall: float = 0.05, stall_s: float = 1.0, seed: int = 0):
        target = urlparse(upstream)
        rng = random.Random(seed)
        lock = threading.Lock()
        self.counts = {"requests": 0, "failed": 0, "stalled": 0}
        counts = self.counts

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with lock:
                    counts["requests"] += 1
                    roll = rng.random()
                if roll < fail:
                    with lock:
                        counts["failed"] += 1
                    payload = b"<Error><Code>SlowDown</Code><Message>injected fault</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":  # a HEAD response has no body
                        self.wfile.write(payload)
                    return
                if roll < fail + stall:
                    with lock:
                        counts["stalled"] += 1
                    time.sleep(stall_s)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                # a HEAD answer has no body but states the object's size: pass that on
                length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
