#!/usr/bin/env python3
"""A keep-alive HTTP/1.1 load client for the fault suite (fdp-load only does Connection: close).

Each of -c threads opens one connection and sends requests on it back to back, one at a time,
reading each response (status line, headers, Content-Length body) before the next. A response
that says "Connection: close" is a graceful end: the thread reconnects and that is no error.
Anything else that ends a connection is an error, counted by kind, and the thread reconnects:

  eof      the server closed the connection before any byte of the response (the request was
           sent on a connection the server had decided to close: the keep-alive race)
  reset    ECONNRESET/EPIPE while sending or reading
  short    end of file in the middle of a response
  timeout  no complete response within -T seconds
  refused  a new connection refused
  wrong    not a 2xx HTTP/1.x response with Content-Length
  other    any other socket error

With --idle, each thread instead opens one connection, sends nothing and holds it for -d
seconds: clients that tie up a server's descriptors (the suite's `ulimit -n` case).

Runs for -d seconds, then prints one JSON object (requests, errors, errors by kind, graceful
closes, connections opened) and exits 0 when there was no error, 1 otherwise.
Only loopback targets: it is a test client.
"""
import argparse
import errno
import json
import socket
import threading
import time

KINDS = ("eof", "reset", "short", "timeout", "refused", "wrong", "other")


class Failure(Exception):
    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


def kind_of(exc):
    if isinstance(exc, Failure):
        return exc.kind
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    return "other"


def read_response(sock, buf):
    """One response from sock (buf: bytes already read past the last one). Returns
    (keep_open, rest). Raises Failure for a connection that ends early or a bad response."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise Failure("eof" if not buf else "short")
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].startswith(b"2"):
        raise Failure("wrong")
    length, close = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = b"close" in value
    if length is None:
        raise Failure("wrong")
    while len(buf) < length:
        data = sock.recv(65536)
        if not data:
            raise Failure("short")
        buf += data
    return not close, buf[length:]


def idle_client(args, deadline, stats, lock):
    try:
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    except Exception as exc:  # pylint: disable=broad-except
        with lock:
            stats["error_kinds"][kind_of(exc)] += 1
        return
    with lock:
        stats["connections"] += 1
    # Held until the deadline; what the server does with it meanwhile is not judged here.
    time.sleep(max(0.0, deadline - time.monotonic()))
    sock.close()


def client(args, deadline, stats, lock):
    request = b"GET / HTTP/1.1\r\nHost: fault-suite\r\nConnection: keep-alive\r\n\r\n"
    mine = dict.fromkeys(KINDS, 0)
    requests = graceful = opened = 0
    while time.monotonic() < deadline:
        try:
            sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
        except Exception as exc:  # pylint: disable=broad-except
            mine[kind_of(exc)] += 1
            continue
        opened += 1
        buf = b""
        try:
            while time.monotonic() < deadline:
                sock.sendall(request)
                keep, buf = read_response(sock, buf)
                requests += 1
                if not keep:
                    graceful += 1
                    break
        except Exception as exc:  # pylint: disable=broad-except
            # A failure in the request in flight at the deadline still counts: it was sent.
            mine[kind_of(exc)] += 1
        finally:
            sock.close()
    with lock:
        stats["requests"] += requests
        stats["graceful_closes"] += graceful
        stats["connections"] += opened
        for k in KINDS:
            stats["error_kinds"][k] += mine[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", type=int, default=16, help="connections (threads)")
    ap.add_argument("-d", type=float, default=3.0, help="seconds")
    ap.add_argument("-T", "--timeout", type=float, default=5.0, help="per-operation timeout")
    ap.add_argument("--idle", action="store_true", help="hold connections, send nothing")
    ap.add_argument("target", help="127.0.0.1:PORT")
    args = ap.parse_args()
    args.host, _, port = args.target.rpartition(":")
    args.port = int(port)
    if not args.host.startswith("127.") and args.host != "localhost":
        ap.error("loopback targets only")
    stats = {"requests": 0, "graceful_closes": 0, "connections": 0,
             "error_kinds": dict.fromkeys(KINDS, 0)}
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + args.d
    threads = [threading.Thread(target=idle_client if args.idle else client, args=(args, deadline, stats, lock))
               for _ in range(args.c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["seconds"] = round(time.monotonic() - start, 3)
    stats["errors"] = sum(stats["error_kinds"].values())
    print(json.dumps(stats, separators=(",", ":")))
    return 1 if stats["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
