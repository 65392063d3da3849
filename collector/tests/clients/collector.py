"""Starts the real assent-collector binary on a free port with a fresh SQLite file, for
tests that drive it with clients we did not write."""
import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[3]
WRITE_KEY = "wk_segment_client_test_key_Ub3Mz6Yt8Ka1"
ADMIN = "adm_segment_client_test_token_Ew5Pr9Cj2"


class Collector:
    def __init__(self, directory=None, **settings):
        """`settings` become ASSENT_* variables (`warehouse_dir="/x"` is
        ASSENT_WAREHOUSE_DIR); `directory` reuses another run's database."""
        self.dir = directory or tempfile.mkdtemp()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        binary = os.environ.get("COLLECTOR_BIN", str(ROOT / "target" / "debug" / "assent-collector"))
        env = dict(
            os.environ,
            ASSENT_BIND=f"127.0.0.1:{self.port}",
            ASSENT_DATABASE_URL=f"sqlite://{self.dir}/assent.db",
            ASSENT_BOOTSTRAP_WRITE_KEY=WRITE_KEY,
            ASSENT_BOOTSTRAP_ADMIN_TOKEN=ADMIN,
            RUST_LOG="warn",
        )
        env.update({f"ASSENT_{k.upper()}": str(v) for k, v in settings.items()})
        self.env, self.binary = env, binary
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL)
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{self.url}/readyz") as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("collector did not start")

    def request(self, method, path, body=None, token=WRITE_KEY):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())

    def consent(self, subject, purposes):
        record = {
            "consentId": f"consent-{subject}", "subjectId": subject, "purposes": purposes,
            "policyVersion": "2026-01", "method": "custom", "source": "api",
            "timestamp": "2020-01-01T00:00:00Z",
        }
        return self.request("POST", "/v1/consent", record)

    def subject(self, subject):
        return self.request("GET", f"/v1/subjects/{subject}", token=ADMIN)[1]

    def cli(self, *args):
        """Runs the collector's command line on the same database; returns its output."""
        done = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    @property
    def database(self):
        return f"{self.dir}/assent.db"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)

    def kill(self):
        self.process.kill()  # SIGKILL
        self.process.wait(timeout=10)
