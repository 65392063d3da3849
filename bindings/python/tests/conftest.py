"""Test helpers for the Python binding: a recording collector on a random loopback
port, and a fixture that gives each test a fresh client in a fresh folder and shuts it
down afterwards (the binding's equivalent of a test reset)."""
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import assent_core


class Recorder:
    def __init__(self):
        self.requests = []
        self.script = []
        self.seen = set()
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                body = json.loads(raw)
                with recorder.lock:
                    status = recorder.script.pop(0) if recorder.script else 200
                    accepted = duplicates = 0
                    if status == 200:
                        for event in body.get("batch", []):
                            if event["messageId"] in recorder.seen:
                                duplicates += 1
                            else:
                                recorder.seen.add(event["messageId"])
                                accepted += 1
                    recorder.requests.append(
                        {"path": self.path, "auth": self.headers.get("Authorization"), "status": status, "body": body}
                    )
                answer = json.dumps({"accepted": accepted, "duplicates": duplicates, "rejected": []}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self):
        return [e for r in self.requests if r["status"] == 200 for e in r["body"].get("batch", [])]

    def consent(self):
        return [c for r in self.requests if r["status"] == 200 for c in r["body"].get("consent", [])]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def make_config(url, storage_dir, **overrides):
    fields = dict(
        collector_url=url,
        write_key="py-write-key",
        storage_dir=str(storage_dir),
        app_id="com.example.python",
        policy_version="2026-01",
        flush_at=1000,
        flush_interval_ms=3_600_000,
    )
    fields.update(overrides)
    return assent_core.ClientConfig(**fields)


@pytest.fixture
def new_client(tmp_path, recorder):
    """Builds clients on the recorder; every one is shut down when the test ends."""
    made = []

    def build(storage_dir=None, **overrides):
        client = assent_core.AssentClient(make_config(recorder.url, storage_dir or tmp_path / "sdk", **overrides))
        made.append(client)
        return client

    yield build
    for client in made:
        client.shutdown()
