"""A tiny RESP key-value server for the adversarial tests, with planted bugs the PR under test adds:

- SETRANGE with a negative offset prints an assertion and aborts (a crash, SIGABRT);
- WAIT with a timeout above 10000 spins forever (a hang);
- DEBUG RELOAD silently truncates values longer than 1000 bytes (corruption only a digest check sees).
`--clean` turns every planted bug off. Standard library only; one client at a time is plenty."""

import hashlib
import os
import socket
import sys
import time

CLEAN = "--clean" in sys.argv
PORT = int(sys.argv[sys.argv.index("--port") + 1])
data: dict[bytes, bytes] = {}


def bulk(b):
    return b"$-1\r\n" if b is None else b"$%d\r\n%s\r\n" % (len(b), b)


def err(text):
    return b"-ERR " + text.encode() + b"\r\n"


def handle(args):
    name = args[0].upper()
    if name == b"PING":
        return b"+PONG\r\n"
    if name == b"COMMAND":
        names = [b"PING", b"SET", b"GET", b"DEL", b"APPEND", b"SETRANGE", b"WAIT", b"DEBUG"]
        return b"*%d\r\n" % len(names) + b"".join(bulk(n) for n in names)
    if name == b"SET" and len(args) == 3:
        data[args[1]] = args[2]
        return b"+OK\r\n"
    if name == b"GET" and len(args) == 2:
        return bulk(data.get(args[1]))
    if name == b"DEL" and len(args) >= 2:
        return b":%d\r\n" % sum(1 for k in args[1:] if data.pop(k, None) is not None)
    if name == b"APPEND" and len(args) == 3:
        data[args[1]] = data.get(args[1], b"") + args[2]
        return b":%d\r\n" % len(data[args[1]])
    if name == b"SETRANGE" and len(args) == 4:
        try:
            offset = int(args[2])
        except ValueError:
            return err("value is not an integer")
        if offset < 0:
            if not CLEAN:
                sys.stderr.write("=== ASSERTION FAILED ===\nt_string.c:77 'offset >= 0' is not true\n"
                                 "at setrangeCommand (t_string.c:77)\n")
                sys.stderr.flush()
                os.abort()
            return err("offset is out of range")
        if offset > 1_000_000:
            return err("string exceeds maximum allowed size")
        old = data.get(args[1], b"")
        old = old + b"\x00" * max(0, offset - len(old))
        data[args[1]] = old[:offset] + args[3] + old[offset + len(args[3]):]
        return b":%d\r\n" % len(data[args[1]])
    if name == b"WAIT" and len(args) == 3:
        try:
            timeout = int(args[2])
        except ValueError:
            return err("timeout is not an integer")
        if timeout > 10000 and not CLEAN:
            while True:
                time.sleep(1)
        return b":0\r\n"
    if name == b"DEBUG" and len(args) == 2:
        sub = args[1].upper()
        if sub == b"DIGEST":
            h = hashlib.sha1()
            for k in sorted(data):
                h.update(k + b"\x00" + data[k] + b"\x01")
            return b"+" + h.hexdigest().encode() + b"\r\n"
        if sub == b"RELOAD":
            for k in list(data):
                if len(data[k]) > 1000 and not CLEAN:
                    data[k] = data[k][:1000]
            return b"+OK\r\n"
    return err("unknown command or wrong number of arguments")


def parse(buf):
    """One RESP array from buf: (args, rest) or (None, buf) when incomplete."""
    if not buf.startswith(b"*"):
        line, sep, rest = buf.partition(b"\n")
        return (line.strip().split(), rest) if sep else (None, buf)
    end = buf.find(b"\r\n")
    if end < 0:
        return None, buf
    n, pos, args = int(buf[1:end]), end + 2, []
    for _ in range(n):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None, buf
        size = int(buf[pos + 1:end])
        if len(buf) < end + 2 + size + 2:
            return None, buf
        args.append(buf[end + 2:end + 2 + size])
        pos = end + 2 + size + 2
    return args, buf[pos:]


def main():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PORT))
    server.listen()
    while True:
        conn, _ = server.accept()
        buf = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buf += chunk
            while True:
                args, buf = parse(buf)
                if args is None:
                    break
                if args:
                    conn.sendall(handle(args))
        conn.close()


if __name__ == "__main__":
    main()
