"""The bench HTTPS receiver: keep-alive, several processes on one port (SO_REUSEPORT), logs arrivals.

Run: python bench/receiver.py PORT CERT KEY LOG [DELAY_MS] [PROCESSES]
Each request is answered 200 after DELAY_MS; "webhook-id endpoint arrival_unix_time" lines go to LOG (endpoint:
the X-Qlar-Endpoint header, or "-").
"""
import os
import socket
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    """Reads the body, answers 200 on a kept-alive connection, logs the arrival."""

    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # headers and body leave in one write (flushed after each request)
    delay = 0.0
    log = None

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle/delayed-ACK stalls

    def do_POST(self):  # noqa: N802 - the http.server naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        arrived = time.time()
        if self.delay:
            time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        Handler.log.write(f"{self.headers.get('webhook-id', '-')} {self.headers.get('X-Qlar-Endpoint', '-')} "
                          f"{arrived:.6f}\n")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    """Threaded, and sharing its port with the other receiver processes."""

    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve(port: int, cert: str, key: str, log_path: str, delay_ms: float) -> None:
    """Serve until killed."""
    Handler.delay = delay_ms / 1000
    Handler.log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Server(("127.0.0.1", port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    port, cert, key, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    processes = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    for _ in range(processes - 1):
        if os.fork() == 0:
            break
    serve(port, cert, key, f"{log}.{os.getpid()}", delay)
