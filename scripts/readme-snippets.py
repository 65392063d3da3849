#!/usr/bin/env python3
"""Runs the README's snippets as a newcomer pastes them, so they stay true.

- "## The collector": starts the collector binary (argv[1]) on a fresh SQLite file and a
  free port, sets WK and ADM to the keys it printed, and runs each shell block line by
  line (the port and the binary's path put in). A `# ...` line after a command is what
  the command prints: every `"key": value` in it must appear in the output, and `...`
  stands for the rest.
- "## Python": runs the python block with this interpreter; a call commented `# True` or
  `# False` must return that.
Exits 1 on the first snippet that does not do what the README says.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def section(title):
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else len(README)]


def blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


PAIR = re.compile(r'"[^"]+":\s*("[^"]*"|true|false|null|-?\d+(?:\.\d+)?|\{[^{}]*\}|\[[^\[\]{}]*\])')


def squash(s):
    return re.sub(r"\s+", "", s)


def expect(command, output, expected):
    pairs = [m.group(0) for m in PAIR.finditer(expected)]
    if not pairs:
        raise SystemExit(f"README expectation without fields: {expected!r}")
    missing = [p for p in pairs if squash(p) not in squash(output)]
    if missing:
        raise SystemExit(f"README snippet\n  {command}\nprinted\n  {output.strip()[:500]}\nnot {missing}")


def commands(block):
    """Shell commands of a block (continuation lines joined, quotes kept), each with the
    `# ...` expectation that follows it, if any."""
    out, current, quote = [], "", None
    for line in block.splitlines():
        if not current and line.startswith("# "):
            if out:
                out[-1][1].append(line[2:])
            continue
        current += ("\n" if current else "") + line
        for ch in line:
            if quote is None and ch in "'\"":
                quote = ch
            elif ch == quote:
                quote = None
        if quote is None and not line.endswith("\\"):
            if current.strip():
                out.append((current, []))
            current = ""
    return out


def run_collector_snippets(binary):
    work = tempfile.mkdtemp()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    db = f"sqlite://{work}/assent.db"
    env = dict(os.environ, ASSENT_BIND=f"127.0.0.1:{port}", ASSENT_DATABASE_URL=db, RUST_LOG="warn",
               ASSENT_SDK_DIR=os.path.join(ROOT, "consent-ui/dist"))
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        keys = {}
        deadline = time.time() + 60
        while len(keys) < 2 and time.time() < deadline:
            line = server.stdout.readline()
            if "write key:" in line:
                keys["WK"] = line.split()[-1]
            if "compliance token:" in line:
                keys["ADM"] = line.split()[-1]
        if len(keys) < 2:
            raise SystemExit("the collector did not print its keys")
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.1)
        shell_env = dict(env, **keys)
        text = section("The collector")
        ran = 0
        for block in blocks(text, "sh"):
            for command, expected in commands(block):
                if command.startswith("export "):
                    continue  # the keys are set above, as the README says to
                command = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
                command = command.replace("target/release/assent-collector", binary)
                command = command.replace("target/venv/bin/python", sys.executable)
                command = command.replace("tools/verify_audit.py", os.path.join(ROOT, "tools/verify_audit.py"))
                result = subprocess.run(["bash", "-c", command], cwd=work, env=shell_env,
                                        capture_output=True, text=True, timeout=120)
                ran += 1
                if expected:
                    expect(command, result.stdout + result.stderr, " ".join(expected))
                elif result.returncode != 0:
                    raise SystemExit(f"README snippet failed ({result.returncode}):\n  {command}\n{result.stderr}")
        print(f"readme: {ran} collector commands ran as written")
    finally:
        server.terminate()
        server.wait()


def run_python_snippet():
    code = blocks(section("Python"), "python")[0]
    checked = []
    lines = []
    for line in code.splitlines():
        m = re.match(r"^(\s*)(client\.\w+\(.*\))\s+#\s*(True|False)\b", line)
        if m:
            lines.append(f"{m.group(1)}assert {m.group(2)} is {m.group(3)}, {m.group(2)!r}")
            checked.append(m.group(3))
        else:
            lines.append(line)
    subprocess.run([sys.executable, "-c", "\n".join(lines)], check=True, timeout=120)
    print(f"readme: the Python snippet ran, {len(checked)} results as commented")


if __name__ == "__main__":
    run_collector_snippets(os.path.abspath(sys.argv[1]))
    run_python_snippet()
    print(json.dumps({"readme": "ok"}))
