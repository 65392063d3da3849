#!/usr/bin/env python3
"""Memory under distinct credentials: the release collector on a fresh SQLite file gets 6,000
requests with distinct 256 KB Authorization headers, then 6,000 with distinct 300-byte
ones; prints the answers counted by status line and the process RSS before and after.
Run with `make bench-credentials` (it builds the release binary first)."""
import os
import socket
import subprocess
import tempfile
import time

d = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, ASSENT_BIND=f"127.0.0.1:{port}", ASSENT_DATABASE_URL=f"sqlite://{d}/r.db",
           ASSENT_RATE_LIMIT_PER_SECOND="1000", ASSENT_RATE_LIMIT_BURST="2000", RUST_LOG="warn")
p = subprocess.Popen(["target/release/assent-collector", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def rss():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) // 1024
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError: time.sleep(0.1)
time.sleep(0.5)
before = rss()
def send(n, size):
    statuses = {}
    for i in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        hdr = f"Bearer {i:08d}" + "x" * size
        try:
            c.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: {hdr}\r\nConnection: close\r\n\r\n".encode())
        except OSError:
            pass
        try:
            line = c.recv(64).split(b"\r\n")[0].decode()
        except OSError:
            line = "reset"
        statuses[line] = statuses.get(line, 0) + 1
        c.close()
    return statuses
t0 = time.time()
st = send(6000, 256 * 1024)
print(f"6000 distinct 256 KB credentials in {time.time()-t0:.1f} s: {st}; RSS {before} -> {rss()} MiB")
st = send(6000, 300)
print(f"6000 distinct 300-byte credentials: {st}; RSS now {rss()} MiB")
p.terminate(); p.wait()
