"""The attack runner: start the target, send one attack script, and let deterministic oracles judge.

Runs as `python -m jobs.attack` (our code, outside any sandbox) with a JSON batch on standard input and one
JSON result per script on standard output. The target is started fresh for every script in a sandbox of its own
(core/sandbox.py: its own pid, mount, user and network namespaces, a copy-on-write view of the built checkout,
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
from typing import Any

from core import sandbox

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "ASSERTION FAILED",
                   "Guru Meditation", "panic:", "Segmentation fault")
NOISE_FRAMES = ("sigsegvHandler", "_serverAssert", "serverAssert", "_serverPanic", "serverPanic", "_valkeyAssert",
                "logStackTrace", "printCrashReport", "bugReport", "debugDelay", "__libc_start", "_start", "main",
                "aeMain", "aeProcessEvents", "processInputBuffer", "readQueryFromClient", "callHandler",
                "connSocketEventHandler", "processCommand", "call", "ValkeyModuleCommandDispatcher",
                "RedisModuleCommandDispatcher")


def _between(line: str, left: str, right: str) -> str:
    i = line.find(left)
    if i < 0:
        return ""
    j = line.find(right, i + len(left))
    return line[i + len(left):j] if j >= 0 else ""


def crash_report(text: str) -> dict:
    """What a crashed server said, parsed without a regex that could backtrack on the target's own output:
    Valkey/Redis bug reports (signal, `==> file:line 'expr' is not true`, the stack trace frames of the
    crashing thread in the `valkey-server *:port(function+0x…)[…]` form), ASan/UBSan reports (`#0 0x… in f`,
    `file:line: runtime error: …`), Python tracebacks. Returns {"kind", "detail", "frames"} or {}."""
    text = text[-400_000:]
    lines = text.splitlines()
    out: dict = {}
    for line in lines:
        if "crashed by signal:" in line:
            sig = _between(line + ",", "crashed by signal:", ",").strip()
            out = {"kind": "signal", "detail": f"signal {sig}" if sig.isdecimal() else "signal", "frames": []}
        if "==> " in line and "is not true" in line:
            out = {"kind": "assertion", "detail": line.split("==> ", 1)[1].strip()[:200], "frames": []}
        if "runtime error:" in line and not out:
            out = {"kind": "sanitizer", "detail": line.strip()[:200], "frames": []}
        if "ERROR: AddressSanitizer" in line:
            out = {"kind": "sanitizer", "detail": line.split("ERROR: ", 1)[1].strip()[:200], "frames": []}
    frames = _server_frames(lines) or _asan_frames(lines) or _python_frames(lines)
    if frames and not out:
        out = {"kind": "crash", "detail": "", "frames": []}
    if out:
        out["frames"] = frames[:8]
    return out


def _server_frames(lines: list[str]) -> list[str]:
    """The crashing thread's frames from a Valkey/Redis STACK TRACE section (EIP first, then the thread whose
    name ends in `*`, the main one), skipping the crash handler's own and libc frames."""
    try:
        start = next(i for i, ln in enumerate(lines) if "------ STACK TRACE ------" in ln)
    except StopIteration:
        return []
    frames, block_wanted = [], True
    for ln in lines[start + 1:start + 400]:
        if "STACK TRACE DONE" in ln:
            break
        stripped = ln.strip()
        if not stripped:
            continue
        if "(" not in stripped:                          # a thread header: "3914 valkey-server *", "EIP:"
            block_wanted = stripped == "EIP:" or stripped.endswith("*")
            continue
        if not block_wanted or "libc.so" in stripped or "ld-linux" in stripped:
            continue
        name = _between(stripped, "(", "+")
        if not name and "(+0x" in stripped:          # no symbol (a static function, a stripped module)
            obj = stripped.split("(", 1)[0].rsplit("/", 1)[-1]
            name = f"{obj}+{_between(stripped, '(+', ')')}"
        if name and not name.startswith(NOISE_FRAMES) and name not in frames:
            frames.append(name)
    return frames


def _asan_frames(lines: list[str]) -> list[str]:
    frames = []
    for ln in lines:
        s = ln.strip()
        if s.startswith("#") and " in " in s and " 0x" in s:
            name = s.split(" in ", 1)[1].split(" ", 1)[0]
            if name and not name.startswith(("__interceptor", "__asan", "__sanitizer", "__libc")) \
                    and name not in frames:
                frames.append(name)
        if len(frames) >= 8:
            break
    return frames


def _python_frames(lines: list[str]) -> list[str]:
    return [ln.rsplit(" in ", 1)[1].strip() for ln in lines
            if ln.strip().startswith('File "') and " in " in ln][-8:][::-1]


def signature(report: dict, fallback: str) -> str:
    """What makes two crashes the same bug: the assertion's place, or the top frames of the crashing code."""
    if report.get("kind") == "assertion":
        return "assert " + report["detail"].split(" ", 1)[0] + (" in " + report["frames"][0] if report["frames"] else "")
    if report.get("frames"):
        return " < ".join(report["frames"][:3])
    return fallback


class ProtocolError(Exception):
    pass


def _is_double(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.isascii() and not any(c.isspace() for c in text)


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
        """One reply, RESP2 or RESP3, parsed strictly (anything else is a ProtocolError: a protocol finding)."""
        if depth > 64:
            raise ProtocolError("nesting too deep")
        line = self.line()
        if not line:
            raise ProtocolError("empty reply line")
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return (kind + rest).decode("utf-8", "replace")
        if kind == b":":
            return self._int(rest, "integer")
        if kind in (b"$", b"="):                           # bulk string, verbatim string ("txt:…")
            n = self._int(rest, "bulk length")
            if n < 0:
                return None
            data = self.exact(n)
            if kind == b"=" and (n < 4 or data[3:4] != b":"):
                raise ProtocolError("bad verbatim string")
            return data.decode("utf-8", "replace")
        if kind in (b"*", b"~", b">"):                     # array, set, push
            n = self._int(rest, "aggregate length")
            return None if n < 0 else [self.reply(depth + 1) for _ in range(n)]
        if kind == b"%":                                   # map
            n = self._int(rest, "map length")
            return [[self.reply(depth + 1), self.reply(depth + 1)] for _ in range(max(n, 0))]
        if kind == b"|":                                   # attributes, then the reply they describe
            n = self._int(rest, "attribute length")
            for _ in range(max(n, 0) * 2):
                self.reply(depth + 1)
            return self.reply(depth + 1)
        if kind == b"_":
            if rest:
                raise ProtocolError("bad null")
            return None
        if kind == b"#":
            if rest not in (b"t", b"f"):
                raise ProtocolError(f"bad boolean {rest[:10]!r}")
            return rest == b"t"
        if kind == b",":
            text = rest.decode("ascii", "replace")
            if text not in ("inf", "-inf", "nan") and not _is_double(text):
                raise ProtocolError(f"bad double {rest[:40]!r}")
            return text
        if kind == b"(":
            if not re.fullmatch(rb"-?[0-9]{1,10000}", rest):
                raise ProtocolError(f"bad big number {rest[:40]!r}")
            return rest.decode()
        raise ProtocolError(f"unknown reply type {line[:40]!r}")

    @staticmethod
    def _int(rest: bytes, what: str) -> int:
        if not re.fullmatch(rb"-?[0-9]{1,19}", rest):
            raise ProtocolError(f"bad {what} {rest[:40]!r}")
        return int(rest)

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
                if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def exit_code(self) -> int | None:
        """None while it runs; else its status, 128+N when a signal ended it."""
        if self.proc is None or self.proc.poll() is None:
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


def run_script(spec: dict, commands: list[list[str]], full: bool = False, logdir: str = "/tmp") -> dict:
    """Run one attack script against a fresh target; return the oracle's verdict (oracle None: nothing)."""
    target = Target(spec, logdir)
    protocol = spec.get("protocol", "resp")
    timeout = float(spec.get("attempt_timeout_s", 15))
    result: dict[str, Any] = {"oracle": None, "message": "", "frame": "", "replies": []}
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
        current = ""
        try:
            for command in commands:
                current = str(command[0]).upper()[:40] if command else ""
                reply = send(command)
                result["replies"].append(reply if full else _short(reply))
            current = ""
            for invariant in spec.get("invariants", []):
                replies = [send(c.split()) for c in invariant]
                if replies[0] != replies[-1]:     # one finding per broken invariant, whatever broke it
                    result.update(oracle="invariant", message=f"{invariant[0]} before {_short(replies[0])} "
                                  f"!= after {_short(replies[-1])}", frame=" / ".join(invariant))
                    break
        except TimeoutError:
            result.update(oracle="hang", message=f"no reply within {timeout:g}s",
                          frame=f"hang in {current or 'the invariant'}")
        except ProtocolError as exc:
            result.update(oracle="protocol", message=f"malformed reply: {exc}",
                          frame=f"{current}: {str(exc)[:60]}")
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
        report = crash_report(out)
        if report and result["oracle"] in (None, "crash", "signal"):
            kind = {"assertion": "assertion", "sanitizer": "sanitizer"}.get(report["kind"], result["oracle"] or
                                                                              "sanitizer")
            detail = report["detail"] or ", ".join(report["frames"][:1])
            result.update(oracle=kind, message=(result["message"] + "; " if result["message"] else "") + detail)
        elif not report and result["oracle"] is None:
            mark = next((m for m in SANITIZER_MARKS if m in out[-400_000:]), "")
            if mark:
                result.update(oracle="sanitizer", message=mark)
        if result["oracle"] in ("crash", "signal", "sanitizer", "assertion"):
            result["frame"] = signature(report, result["message"])
            result["frames"] = report.get("frames", [])
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
