"""The attack runner: start the target, send one attack script, and let deterministic oracles judge.

Runs as `python -m jobs.attack` with a JSON batch on standard input and one JSON result per script on
standard output, inside a network namespace of its own where the machine allows it (only loopback, which the
target and this runner share). The target is started fresh for every script, in its own process group, under
CPU, memory and file-size limits, and killed afterwards. Oracles: the process died or was killed by a signal;
sanitizer or assertion text in its output; no reply within the per-attempt timeout; an invariant whose first
and last replies differ; a reply that is not valid protocol."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

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


def _limits(cpu_s: int, mem_mb: int):
    def apply():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb * 2**20, mem_mb * 2**20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 2**20, 512 * 2**20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    def __init__(self, spec: dict):
        self.spec = spec
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(spec["cwd"], f".attack-{self.port}.log")

    def start(self) -> None:
        cmd = self.spec["start"].replace("{port}", str(self.port))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["/bin/sh", "-c", "exec " + cmd], cwd=self.spec["cwd"], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.spec["env"],
                                     preexec_fn=_limits(self.spec.get("cpu_s", 60), self.spec.get("mem_mb", 2048)))

    def connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=1)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def output(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read()[-200_000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log.close()
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


def run_script(spec: dict, commands: list[list[str]], full: bool = False) -> dict:
    """Run one attack script against a fresh target; return the oracle's verdict (oracle None: nothing)."""
    target = Target(spec)
    protocol = spec.get("protocol", "resp")
    timeout = float(spec.get("attempt_timeout_s", 15))
    result = {"oracle": None, "message": "", "frame": "", "replies": []}
    target.start()
    try:
        try:
            sock = target.connect(min(timeout, 30))
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
        code = target.proc.poll()
        out = target.output()
        if code is not None and code != 0:
            name = signal.Signals(-code).name if code < 0 else f"exit {code}"
            result.update(oracle="crash" if code > 0 else "signal", message=f"target died ({name})")
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
    for script in batch["scripts"]:
        out = run_script(spec, script, full=batch.get("full", False))
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
