#!/usr/bin/env python3
"""A runtime worker for `fdpass serve --exec` (docs/PROTOCOL.md part 2) that hangs on purpose.

The first process to start (the one that creates the flag file $HUNG_FLAG) says READY and then
never reads its channel again: alive, but hung, as a worker stuck in a loop or stopped in a
debugger would be. The master has to notice within --ack-timeout, kill it and hand its
connections to another worker. Every other process is a plain HTTP worker: it acknowledges
each connection at once, reads the request, answers 200 with Connection: close and closes.
It serves one connection at a time; that is enough for the suite's handful of requests.
"""
import os
import signal
import socket
import struct

HEADER = struct.Struct("<BBHHHI")  # version, flags, type, nfds, reserved, length
HELLO, READY, CONN, ACK, DONE, DRAIN = range(0x100, 0x106)
ch = socket.socket(fileno=int(os.environ["FDPASS_CHANNEL_FD"]))  # SOCK_SEQPACKET


def send(mtype, payload=b""):
    ch.send(HEADER.pack(1, 0, mtype, 0, 0, len(payload)) + payload)


def messages():
    """Yield (type, payload, fds) for every message of every packet, until the master is gone."""
    while True:
        data, fds, _, _ = socket.recv_fds(ch, HEADER.size + 65536, 253)
        if not data:
            return
        off = 0
        while off < len(data):  # a packet holds one or more whole messages
            _, _, mtype, nfds, _, n = HEADER.unpack_from(data, off)
            start = off + HEADER.size
            yield mtype, data[start:start + n], fds[:nfds]
            off, fds = start + n, fds[nfds:]


def first_process():
    """True for exactly one process of the server's lifetime: the one that made the flag."""
    try:
        os.close(os.open(os.environ["HUNG_FLAG"], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True
    except FileExistsError:
        return False


def serve(client, index, conn_id):
    client.setblocking(True)
    client.settimeout(5)
    request = b""
    try:
        while b"\r\n\r\n" not in request:
            data = client.recv(4096)
            if not data:
                return
            request += data
        body = b"worker=%d pid=%d id=%d\n" % (index, os.getpid(), conn_id)
        client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                       % (len(body), body))
    except OSError:
        pass


def main():
    hang = first_process()
    index = 0
    for mtype, payload, fds in messages():
        if mtype == HELLO:
            _, _, index, _, _ = struct.unpack_from("<HHIII", payload)
            send(READY, struct.pack("<I", os.getpid()))
            if hang:
                while True:  # hung: alive, never reading the channel again
                    signal.pause()
        elif mtype == CONN:
            conn_id = struct.unpack_from("<Q", payload)[0]
            send(ACK, struct.pack("<Q", conn_id))  # before reading the client
            with socket.socket(fileno=fds[0]) as client:
                serve(client, index, conn_id)
                send(DONE, struct.pack("<Q", conn_id))  # before the close
        elif mtype == DRAIN:
            break
        else:
            for fd in fds:
                os.close(fd)


if __name__ == "__main__":
    main()
