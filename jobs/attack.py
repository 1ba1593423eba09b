"""The attack runner: start the target, send one attack script, and let deterministic oracles judge.

Runs as `python -m jobs.attack` (our code, outside any sandbox) with a JSON batch on standard input and one
JSON result per script on standard output. The target is started fresh for every script in a sandbox of its own
(jobs/sandbox.py: its own pid, mount, user and network namespaces, a copy-on-write view of the built checkout,
cgroup and rlimits) and killed afterwards; this runner reaches it on the sandbox's loopback by entering only its
network namespace for the connect. The target can't see, signal or write this runner or its files. Oracles: the process died or was killed by a signal;
sanitizer or assertion text in its output; no reply within the per-attempt timeout; an invariant whose first
and last replies differ; a reply that is not valid protocol."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs import sandbox

SANITIZER = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|ASSERTION FAILED|"
                       r"Assertion [`'\"].*failed|assertion failed|Guru Meditation|panic:|Segmentation fault)", re.I)
FRAME = [re.compile(r"#0 0x[0-9a-f]+ in (\S+)"), re.compile(r"\bat (\w+) \("),
         re.compile(r'File "[^"]+", line \d+, in (\w+)\s*$', re.M)]


class ProtocolError(Exception):
    pass


def encode(command: list[str], protocol: str) -> bytes:
    if protocol == "lines":
        return (" ".join(command) + "\n").encode()
    out = [f"*{len(command)}\r\n".encode()]
    for arg in command:
        data = arg.encode("utf-8", "surrogateescape") if isinstance(arg, str) else bytes(arg)
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


class Reader:
    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.buf = b""
        self.deadline = deadline

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self, depth: int = 0):
        if depth > 64:
            raise ProtocolError("nesting too deep")
        line = self.line()
        if not line:
            raise ProtocolError("empty reply line")
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return (kind + rest).decode("utf-8", "replace")
        if kind == b":":
            if not re.fullmatch(rb"-?\d+", rest):
                raise ProtocolError(f"bad integer reply {rest[:40]!r}")
            return int(rest)
        if kind == b"$":
            if not re.fullmatch(rb"-?\d+", rest):
                raise ProtocolError(f"bad bulk length {rest[:40]!r}")
            n = int(rest)
            return None if n < 0 else self.exact(n).decode("utf-8", "replace")
        if kind == b"*":
            if not re.fullmatch(rb"-?\d+", rest):
                raise ProtocolError(f"bad array length {rest[:40]!r}")
            n = int(rest)
            return None if n < 0 else [self.reply(depth + 1) for _ in range(n)]
        raise ProtocolError(f"unknown reply type {line[:40]!r}")

    def text_line(self) -> str:
        while b"\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")


TARGET_PORT = 16379    # inside the target's own network namespace every port is free
START_TIMEOUT_S = 20.0  # how long a target may take to accept connections (a busy machine, a big data set)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    """One fresh target: a sandbox over a copy-on-write view of the built checkout, so nothing one attempt
    writes (a dump file, a config) is seen by the next, and nothing of this runner is visible to it."""

    def __init__(self, spec: dict, logdir: str):
        self.spec = spec
        self.limits = sandbox.Limits(**spec["limits"])
        self.box = sandbox.Box(Path(spec["cwd"]), self.limits, mode="overlay", env=spec.get("env"))
        self.port = TARGET_PORT if self.box.isolated else free_port()
        self.log_path = os.path.join(logdir, f"target-{time.monotonic_ns()}.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = self.spec["start"].replace("{port}", str(self.port))
        with open(self.log_path, "wb") as log:
            self.proc = self.box.spawn(["/bin/sh", "-c", "exec " + cmd], log)

    def connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.box.connect(self.port, 1)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def exit_code(self) -> int | None:
        """None while it runs; else its status, 128+N when a signal ended it."""
        if self.proc.poll() is None:
            return None
        return self.box.exit_code()

    def output(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 200_000))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        self.box.close()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


def frame_of(text: str) -> str:
    for pattern in FRAME:
        found = pattern.findall(text)
        if found:
            return found[-1] if pattern.flags & re.M else found[0]
    m = SANITIZER.search(text)
    return m.group(0) if m else ""


def run_script(spec: dict, commands: list[list[str]], full: bool = False, logdir: str = "/tmp") -> dict:
    """Run one attack script against a fresh target; return the oracle's verdict (oracle None: nothing)."""
    target = Target(spec, logdir)
    protocol = spec.get("protocol", "resp")
    timeout = float(spec.get("attempt_timeout_s", 15))
    result = {"oracle": None, "message": "", "frame": "", "replies": []}
    target.start()
    try:
        try:
            sock = target.connect(max(START_TIMEOUT_S, timeout))      # starting is not the attack
        except OSError as exc:
            result.update(oracle="start", message=f"target did not accept connections: {exc}")
            return result
        deadline = time.monotonic() + timeout
        reader = Reader(sock, deadline)

        def send(command):
            sock.sendall(encode(command, protocol))
            return reader.reply() if protocol == "resp" else reader.text_line()

        for command in spec.get("ready", []):
            send(command.split())
        try:
            for command in commands:
                reply = send(command)
                result["replies"].append(reply if full else _short(reply))
            for invariant in spec.get("invariants", []):
                replies = [send(c.split()) for c in invariant]
                if replies[0] != replies[-1]:
                    result.update(oracle="invariant", message=f"{invariant[0]} before {_short(replies[0])} "
                                  f"!= after {_short(replies[-1])}", frame=" / ".join(invariant))
                    break
        except TimeoutError:
            result.update(oracle="hang", message=f"no reply within {timeout:g}s", frame="hang")
        except ProtocolError as exc:
            result.update(oracle="protocol", message=f"malformed reply: {exc}", frame=str(exc)[:60])
        except (ConnectionError, OSError) as exc:
            result.update(oracle="crash", message=f"connection lost: {exc}")
        finally:
            sock.close()
        time.sleep(0.05)
        code = target.exit_code()
        out = target.output()
        if code is not None and code != 0:
            signalled = code > 128 and code - 128 in signal.Signals._value2member_map_
            name = signal.Signals(code - 128).name if signalled else f"exit {code}"
            result.update(oracle="signal" if signalled else "crash", message=f"target died ({name})")
        found = SANITIZER.search(out)
        if found and result["oracle"] in (None, "crash", "signal"):
            result.update(oracle=result["oracle"] or "sanitizer",
                          message=(result["message"] + "; " if result["message"] else "") + found.group(0))
        if result["oracle"] in ("crash", "signal", "sanitizer"):
            result["frame"] = frame_of(out) or result["message"]
            result["output_tail"] = out[-3000:]
        return result
    finally:
        target.stop()


def _short(value, limit: int = 200):
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "…"


def main() -> None:
    batch = json.load(sys.stdin)
    spec = batch["spec"]
    with tempfile.TemporaryDirectory(prefix="attack-") as logdir:    # this runner's own; no target sees it
        for script in batch["scripts"]:
            out = run_script(spec, script, full=batch.get("full", False), logdir=logdir)
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
