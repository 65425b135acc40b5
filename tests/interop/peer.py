r"""A program that knows nothing of fdpass, passing descriptors the ways Python programs do.

Run by tests/test_interop.c with its end of a Unix socket as descriptor 3:

    peer.py send NBYTES NFDS    socket.send_fds: NBYTES of the pattern with NFDS write ends of
                                one pipe, then read the pipe: byte i must come through fd i
    peer.py recv NBYTES NFDS    socket.recv_fds: expect exactly that, write byte i through fd i
    peer.py send-classic        socket.send_fds(sock, [b"\0"], [fd]), then read the pipe
    peer.py recv-classic        socket.recv_fds: expect b"\0" and one descriptor, write through it
    peer.py mp-send NFDS        multiprocessing.reduction.sendfds, then read the pipe as above
    peer.py mp-recv NFDS        multiprocessing.reduction.recvfds, then write as above
    peer.py empty-datagram      send one datagram of zero bytes and no descriptor
    peer.py notify-send PATH    an sd_notify-style datagram to PATH: text, SCM_RIGHTS and
                                SCM_CREDENTIALS, as systemd's sd_pid_notify_with_fds() sends
    peer.py notify-recv PID     receive such a datagram as systemd does (SO_PASSCRED is set by
                                the test): credentials of PID first, then the descriptor

Every mode also checks that it leaves its own descriptor table as it found it, and exits 0 only
when everything held. A wrong answer raises, which exits non-zero with the reason on stderr.
"""
import array
import os
import signal
import socket
import struct
import sys
from multiprocessing import reduction

NOTIFY_TEXT = b"FDSTORE=1\nFDNAME=x\n"


def pattern(n):
    """The bytes both sides expect: the C test computes (i * 7 + 1) & 0xff."""
    return bytes((i * 7 + 1) & 0xFF for i in range(n))


def open_fds():
    return sorted(os.listdir("/proc/self/fd"))


def read_all(fd):
    out = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return out
        out += chunk


def write_indices(fds):
    """Write byte i through descriptor i, closing each: the descriptors must work."""
    for i, fd in enumerate(fds):
        if os.write(fd, bytes([i & 0xFF])) != 1:
            raise AssertionError(f"short write through descriptor {i}")
        os.close(fd)


def send_and_check(send, nfds):
    """Pass nfds write ends of a fresh pipe with send(), then check each was written through."""
    r, w = os.pipe()
    fds = [w] + [os.dup(w) for _ in range(nfds - 1)]
    send(fds)
    for fd in fds:
        os.close(fd)
    got = read_all(r)
    os.close(r)
    want = bytes(i & 0xFF for i in range(nfds))
    if got != want:
        raise AssertionError(f"through the pipe: {got!r}, wanted {want!r}")


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: {got!r}, wanted {want!r}")


def main():
    signal.alarm(30)  # never outlive a test that failed on the other side
    sock = socket.socket(fileno=3)
    mode, args = sys.argv[1], sys.argv[2:]
    before = open_fds()

    if mode == "send":
        nbytes, nfds = int(args[0]), int(args[1])
        send_and_check(lambda fds: socket.send_fds(sock, [pattern(nbytes)], fds), nfds)
    elif mode == "recv":
        nbytes, nfds = int(args[0]), int(args[1])
        msg, fds, flags, _ = socket.recv_fds(sock, nbytes + 16, nfds + 1)
        expect("data", msg, pattern(nbytes))
        expect("descriptor count", len(fds), nfds)
        expect("flags", flags, 0)
        write_indices(fds)
    elif mode == "send-classic":
        send_and_check(lambda fds: socket.send_fds(sock, [b"\0"], fds), 1)
    elif mode == "recv-classic":
        msg, fds, flags, _ = socket.recv_fds(sock, 16, 2)
        expect("data", msg, b"\0")
        expect("descriptor count", len(fds), 1)
        expect("flags", flags, 0)
        write_indices(fds)
    elif mode == "mp-send":
        nfds = int(args[0])
        send_and_check(lambda fds: reduction.sendfds(sock, fds), nfds)
    elif mode == "mp-recv":
        write_indices(reduction.recvfds(sock, int(args[0])))
    elif mode == "empty-datagram":
        expect("bytes sent", sock.send(b""), 0)
    elif mode == "notify-send":
        path = args[0]
        out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        creds = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())

        def send(fds):
            ancillary = [
                (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds)),
                (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds),
            ]
            out.sendmsg([NOTIFY_TEXT], ancillary, 0, path)

        send_and_check(send, 1)
        out.close()
    elif mode == "notify-recv":
        pid = int(args[0])
        space = socket.CMSG_SPACE(struct.calcsize("3i")) + socket.CMSG_SPACE(4 * 8)
        msg, ancdata, flags, _ = sock.recvmsg(4096, space)
        expect("text", msg, NOTIFY_TEXT)
        expect("flags", flags, 0)
        expect("control messages", [(lv, ty) for lv, ty, _ in ancdata],
               [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS),
                (socket.SOL_SOCKET, socket.SCM_RIGHTS)])
        cpid, uid, gid = struct.unpack("3i", ancdata[0][2])
        expect("sender's credentials", (cpid, uid, gid), (pid, os.getuid(), os.getgid()))
        fds = array.array("i")
        fds.frombytes(ancdata[1][2])
        expect("descriptor count", len(fds), 1)
        write_indices(list(fds))
    else:
        raise SystemExit(f"peer.py: unknown mode {mode!r}")

    expect("descriptors left open", open_fds(), before)
    sock.close()


if __name__ == "__main__":
    main()
