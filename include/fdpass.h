/*
 * fdpass: hand open descriptors between processes over Unix-domain sockets.
 *
 * The mechanism's one header (libfdpass): the message layer, socket helpers, listeners and
 * channels, grouped by layer, bottom up. A program that only passes descriptors needs nothing
 * else; the pre-forked server built on them has its own header, fdpass_runtime.h, and library,
 * libfdpass_runtime. Conventions for every function:
 *   - returns >= 0 on success and a negative errno value (-EAGAIN, -EPROTO, ...) on failure;
 *   - never prints, never exits, never touches signal dispositions;
 *   - every descriptor it creates or receives is close-on-exec;
 *   - its comment says who owns each descriptor afterwards.
 */
#ifndef FDPASS_H
#define FDPASS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden symbols: exactly what this header declares is exported. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define FDPASS_VERSION_MAJOR 0
#define FDPASS_VERSION_MINOR 1
#define FDPASS_VERSION_PATCH 0

/* The version of the library actually linked, as "MAJOR.MINOR.PATCH". */
const char *fdp_version(void);

/* Short text for a negative errno value returned by fdpass (never NULL, never freed). */
const char *fdp_strerror(int err);

/* ---------------------------------------------------------------------------------------------
 * Message layer: one sendmsg()/recvmsg() carrying data and 0..FDP_MAX_FDS descriptors.
 *
 * On the wire a message is exactly the caller's bytes with its descriptors in one SCM_RIGHTS
 * control message: nothing is added or removed, so any program that passes descriptors with
 * sendmsg() is a peer (Python's socket.send_fds, Perl's IO::FDPass, sd_notify). The rules that
 * used to be kept by a hidden byte are kept in the open:
 *   - zero bytes with descriptors is a message on SOCK_SEQPACKET and SOCK_DGRAM, and refused
 *     with -EINVAL on SOCK_STREAM, where the kernel would silently drop the descriptors;
 *   - zero bytes without descriptors is a message only on SOCK_DGRAM (an empty datagram); it is
 *     refused elsewhere, since a stream sends nothing and a SOCK_SEQPACKET peer would read end
 *     of file;
 *   - a receive is end of file only when it got zero bytes and no descriptor on a
 *     SOCK_STREAM or SOCK_SEQPACKET socket; a datagram socket has no end of file.
 *
 * On SOCK_SEQPACKET and SOCK_DGRAM one call is one message. On SOCK_STREAM the kernel keeps no
 * message boundaries: use a channel (below), which frames messages, rather than this layer.
 * ------------------------------------------------------------------------------------------- */

/* Linux's SCM_MAX_FD: the most descriptors one message may carry. */
#define FDP_MAX_FDS 253

/* Flags reported in fdp_msg.flags after a receive. */
#define FDP_MSG_FDS_DROPPED 0x1 /* more descriptors arrived than fit; the extras were closed */
#define FDP_MSG_DATA_TRUNC  0x2 /* more data arrived than fit (MSG_TRUNC); the rest is lost */

/*
 * A message: data and descriptors. For a send, len and nfds are the counts to send. For a
 * receive, len and nfds are the capacities of data and fds on entry and the counts received on
 * return, and flags reports FDP_MSG_* conditions.
 */
struct fdp_msg {
	void *data;
	size_t len;
	int *fds;
	size_t nfds;
	unsigned flags;
};

/*
 * Send one message: m->len bytes of m->data and m->nfds descriptors, in one sendmsg() with
 * MSG_NOSIGNAL. Descriptors are duplicated into the message, so the caller still owns m->fds
 * afterwards and normally closes them. flags are extra sendmsg() flags (MSG_DONTWAIT). Returns
 * the number of data bytes sent (m->len unless a SOCK_STREAM send was short, in which case the
 * descriptors went with the first byte and must not be sent again); -EINVAL, with nothing sent,
 * for more than FDP_MAX_FDS descriptors or an empty send the socket's type does not allow
 * (above); -EAGAIN when the socket is full, -EPIPE when the peer is gone, or another -errno
 * from sendmsg().
 */
ssize_t fdp_msg_send(int sock, const struct fdp_msg *m, int flags);

/*
 * Receive one message into m (capacities in m->len and m->nfds). EINTR is retried. Returns 1
 * with a message (m->len data bytes, possibly 0, and m->nfds descriptors, now owned by the
 * caller, all close-on-exec), 0 at end of file (the peer closed), or a negative errno:
 *   -EAGAIN     nothing to read on a non-blocking socket (or with MSG_DONTWAIT in flags);
 *   -EXFULL     the kernel dropped descriptors (MSG_CTRUNC: the receiver is at RLIMIT_NOFILE,
 *               or a security module refused one); every descriptor of this call was closed,
 *               m->len holds the data that came with them, m->nfds is 0;
 *   -EINVAL     m->len is 0 on a SOCK_STREAM socket that has data waiting (with no room for a
 *               byte, a message without descriptors cannot be told from end of file).
 * Descriptors beyond the caller's capacity are closed and FDP_MSG_FDS_DROPPED is set; data
 * beyond it is lost and FDP_MSG_DATA_TRUNC is set. Control messages that are not SCM_RIGHTS
 * (SCM_CREDENTIALS, ...) are skipped. When nothing was received (-EAGAIN, -EINVAL, another
 * errno of recvmsg()), m->len and m->nfds keep their capacities, so m can be passed again.
 */
int fdp_msg_recv(int sock, struct fdp_msg *m, int flags);

/*
 * Send one descriptor with one zero byte of data: the classic send_fd() that IO::FDPass, Go and
 * most C programs speak. The caller still owns fd. Returns 0, or a negative errno as
 * fdp_msg_send(). A peer that wants another byte (Python's multiprocessing.reduction wants the
 * count of descriptors) is served by fdp_msg_send() with that byte.
 */
int fdp_send_fd(int sock, int fd);

/*
 * Receive one message and return the single descriptor it carries, now owned by the caller and
 * close-on-exec. The message may carry zero or one byte of data, of any value (so it takes what
 * fdp_send_fd(), Python's socket.send_fds() and multiprocessing send). Returns -EPIPE at end of
 * file, -EBADMSG (closing everything received) if the message carries more than one byte on
 * SOCK_SEQPACKET or SOCK_DGRAM or a number of descriptors other than one, or an error of
 * fdp_msg_recv().
 */
int fdp_recv_fd(int sock);

/* ---------------------------------------------------------------------------------------------
 * Socket helpers. Every socket returned is close-on-exec and owned by the caller.
 * ------------------------------------------------------------------------------------------- */

/*
 * A connected pair of Unix sockets of the given type (SOCK_SEQPACKET, SOCK_STREAM or
 * SOCK_DGRAM, optionally ORed with SOCK_NONBLOCK). Stores them in sv[0] and sv[1]. Returns 0
 * or a negative errno.
 */
int fdp_socketpair(int type, int sv[2]);

/*
 * Listen on a named Unix socket of the given type (SOCK_STREAM or SOCK_SEQPACKET, optionally
 * ORed with SOCK_NONBLOCK). A name starting with '@' is a Linux abstract name; any other name is
 * a filesystem path, created with exactly the permission bits in mode (never looser at any
 * moment). A stale socket file at path (no one accepting on it) is replaced; a live one gives
 * -EADDRINUSE. Returns the listening socket, or a negative errno (-ENAMETOOLONG for a name that
 * does not fit in sockaddr_un).
 */
int fdp_unix_listen(const char *name, int type, mode_t mode, int backlog);

/* Connect to a named Unix socket (same naming as fdp_unix_listen()). Returns the socket. */
int fdp_unix_connect(const char *name, int type);

/* The credentials of the process at the other end of a connected Unix socket. */
struct fdp_cred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* Fill cred with the peer's pid, uid and gid as of connect()/socketpair(). Returns 0. */
int fdp_peer_cred(int sock, struct fdp_cred *cred);

/* Close every descriptor in fds[0..n) that is >= 0 and set it to -1. Keeps errno. */
void fdp_close_fds(int *fds, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Channel layer: framed, typed messages carrying 0..FDP_MAX_FDS descriptors over a
 * SOCK_SEQPACKET (one or more whole messages per packet) or SOCK_STREAM socket, non-blocking,
 * with an output queue that never drops a message. The byte layout is in docs/PROTOCOL.md.
 * ------------------------------------------------------------------------------------------- */

#define FDP_CHANNEL_VERSION     1
#define FDP_CHANNEL_HEADER_SIZE 12
#define FDP_CHANNEL_MAX_PAYLOAD (64 * 1024) /* default payload limit */
#define FDP_CHANNEL_HIGH_WATER  1024        /* default queued messages before backpressure */
#define FDP_CHANNEL_MORE        0x1         /* fdp_channel_send(): queue only, more follow */
#define FDP_CHANNEL_LEND        0x2         /* fdp_channel_send(): the caller keeps the fds */

struct fdp_channel;

/*
 * Limits of a channel; a zero field takes the default. size is sizeof(struct
 * fdp_channel_config) as the caller was compiled: it lets a newer library take an older
 * program's struct (and refuse a newer one's whose new fields it cannot honour).
 */
struct fdp_channel_config {
	size_t size;
	size_t max_payload; /* largest payload sent or accepted */
	size_t high_water;  /* queued messages past which fdp_channel_send() says -ENOBUFS */
	/*
	 * How many descriptors a received message of this type may carry; NULL: FDP_MAX_FDS for
	 * every type (fdp_channel_fds_none: none, for a channel that must carry none). A message
	 * with more is malformed: fdp_channel_recv() closes them and breaks the channel with
	 * -EPROTO. Called on the receiving thread for each message that carries any.
	 */
	size_t (*max_fds)(void *arg, unsigned type);
	void *max_fds_arg;
};

/* A max_fds for struct fdp_channel_config that allows no descriptor on any message. */
size_t fdp_channel_fds_none(void *arg, unsigned type);

/*
 * A received message. payload stays valid until the next fdp_channel_recv() on its channel or
 * its close. fds[0..nfds) belong to the message: take the ones to keep, then release it.
 */
struct fdp_channel_msg {
	unsigned type;
	const void *payload;
	size_t len;
	size_t nfds;
	int fds[FDP_MAX_FDS]; /* owned by the message until taken or released */
};

/*
 * Make a channel on a connected SOCK_SEQPACKET or SOCK_STREAM Unix socket. The channel takes
 * ownership of sock (also on failure: it is closed) and makes it non-blocking. cfg may be NULL
 * (every default) and is not kept; max_fds_arg must stay valid while the channel is open.
 * Returns 0 and sets *out, or a negative errno (-EINVAL for another socket type, a
 * max_payload over 1 GiB or a cfg->size this library does not know; *out then NULL).
 */
int fdp_channel_open(struct fdp_channel **out, int sock, const struct fdp_channel_config *cfg);

/*
 * Close the socket, every descriptor still queued for sending, and every descriptor received
 * but not yet handed out in a message (a message already returned owns its own). Never blocks:
 * to send what is queued first, call fdp_channel_flush_wait(). NULL is a no-op.
 */
void fdp_channel_close(struct fdp_channel *ch);

/*
 * The socket to wait on: always for readability (then call fdp_channel_recv() until -EAGAIN),
 * and for writability only while fdp_channel_wants_write() says so. The channel owns it.
 */
int fdp_channel_fd(const struct fdp_channel *ch);

/* Non-zero while messages wait in the output queue (wait for writability, then flush). */
int fdp_channel_wants_write(const struct fdp_channel *ch);

/* The number of messages waiting in the output queue. */
size_t fdp_channel_queued(const struct fdp_channel *ch);

/*
 * The number of messages that have wholly left since the channel was opened. The message
 * accepted when sent + queued was N is on its way once this passes N: the point after which
 * descriptors lent with FDP_CHANNEL_LEND may be closed.
 */
uint64_t fdp_channel_sent(const struct fdp_channel *ch);

/*
 * Send a message of the given type (0..65535) with len bytes of payload and nfds descriptors.
 * Returns 0 when the message is accepted: written, or queued in order behind earlier ones; the
 * channel then owns fds[0..nfds) and closes them once they are on their way. With
 * FDP_CHANNEL_MORE it is only queued, to leave with later ones in as few system calls as
 * possible. With FDP_CHANNEL_LEND the descriptors are only lent: the channel never closes them,
 * and the caller keeps them open until the message has left (see fdp_channel_sent()) or the
 * channel is closed. That saves a dup() for a caller that keeps its copy anyway, as the master
 * does until a worker acknowledges a connection.
 *
 * On any negative return the message was not accepted and the caller still owns fds (also when
 * the socket failed for good while this message was leaving, unless its descriptors had
 * already gone with its first byte: then it was accepted, and the channel is broken):
 * -ENOBUFS when the queue is at its high-water mark (backpressure: try another peer or later),
 * -EMSGSIZE for a payload over the limit (or, on SOCK_SEQPACKET, a message larger than the
 * socket's send buffer can take in one packet), -EINVAL for more than FDP_MAX_FDS descriptors
 * (-EBADF for a negative one), -EPIPE (or the socket's error, or the -EPROTO that broke it) once
 * the channel is broken. A descriptor that is not open makes the kernel refuse the message with
 * -EBADF and breaks the channel. Sends never raise SIGPIPE.
 */
int fdp_channel_send(struct fdp_channel *ch, unsigned type, const void *payload, size_t len,
                     const int *fds, size_t nfds, int flags);

/*
 * Write queued messages without blocking, in as few system calls and packets as the socket
 * type allows (on SOCK_SEQPACKET consecutive messages share a packet, several packets go per
 * sendmmsg(); on SOCK_STREAM gathered sendmsg()). Returns 0 when the queue is empty, -EAGAIN
 * when some remain (wait for writability), -ETOOMANYREFS when this user has more descriptors
 * in flight than RLIMIT_NOFILE allows (nothing is lost and the channel still works, but the
 * socket may stay writable: retry after a delay rather than on writability, which would spin),
 * -ENOMEM (retry later), or a negative errno when the channel is broken (-EPIPE, -ECONNRESET:
 * the peer is gone; everything queued was closed).
 */
int fdp_channel_flush(struct fdp_channel *ch);

/*
 * Flush, waiting with poll() until the queue is empty or timeout_ms passes (-1: no limit).
 * While the kernel says -ETOOMANYREFS it sleeps and retries (1 ms, doubling to 64 ms). Returns
 * 0, -ETIMEDOUT (the rest stays queued), or another error of fdp_channel_flush().
 */
int fdp_channel_flush_wait(struct fdp_channel *ch, int timeout_ms);

/*
 * Receive the next message without blocking. Returns 1 with a message in *m (its descriptors
 * now owned by m, close-on-exec), 0 at end of file, -EAGAIN when no whole message is available
 * yet (call again when the socket is readable: until -EAGAIN, as messages may be buffered),
 * -EPROTO for malformed input (docs/PROTOCOL.md section 4) or -EXFULL when the kernel dropped
 * descriptors (this process is at RLIMIT_NOFILE). After -EPROTO or -EXFULL every descriptor
 * involved is closed and the channel is broken: nothing more is read or sent. A peer that
 * closed with messages of ours unread (the kernel's ECONNRESET) reads the same as one that
 * did not: every message it sent, then end of file. *m need not be initialised; whatever it
 * held is overwritten, so release a message before reusing it.
 */
int fdp_channel_recv(struct fdp_channel *ch, struct fdp_channel_msg *m);

/* Take descriptor i out of m: the caller owns the result; -EBADF if none is there. */
int fdp_channel_msg_take_fd(struct fdp_channel_msg *m, size_t i);

/* Close every descriptor m still owns (those not taken) and leave it owning none. */
void fdp_channel_msg_release(struct fdp_channel_msg *m);

/* ---------------------------------------------------------------------------------------------
 * Listeners: TCP and Unix listening sockets from an address string, and batched accept.
 *
 * Address strings: "HOST:PORT" (IPv4; HOST may be a dotted quad, "localhost", or "*" or empty
 * for every address), "[HOST]:PORT" (IPv6, numeric; "[::]" for every address), "unix:PATH"
 * (a Unix stream socket; "unix:@NAME" for a Linux abstract name). Port 0 asks the kernel for a
 * free port; fdp_addr_local() tells which one it gave.
 * ------------------------------------------------------------------------------------------- */

#include <sys/socket.h>

/* Longest text fdp_addr_format() writes, with its NUL. */
#define FDP_ADDR_STRLEN 128

/* Parse an address string into sa (room for sizeof(*sa)); -EINVAL if it is not one. */
int fdp_addr_parse(const char *addr, struct sockaddr_storage *sa, socklen_t *len);

/* Write sa as an address string ("127.0.0.1:80", "[::1]:80", "unix:/p"); returns its length. */
int fdp_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/*
 * Listen on an address string with the given backlog: a non-blocking, close-on-exec socket
 * with SO_REUSEADDR (a Unix path gets mode 0666, and a stale socket file is replaced). Returns
 * the socket, owned by the caller, or -EINVAL for a malformed address, -EADDRINUSE, -EACCES, ...
 */
int fdp_listen(const char *addr, int backlog);

/* The address a listening socket is bound to, as an address string; returns its length. */
int fdp_addr_local(int sock, char *buf, size_t size);

/* One accepted connection: the socket (owned by whoever holds the struct) and its peer. */
struct fdp_accepted {
	int fd;
	socklen_t peer_len;
	struct sockaddr_storage peer;
};

/*
 * Accept up to max connections from a non-blocking listener with accept4(), each
 * non-blocking and close-on-exec. Returns how many were accepted (1..max), or, when none was,
 * a negative errno: -EAGAIN (none waiting: wait for readability), -EMFILE/-ENFILE (out of
 * descriptors: stop accepting for a while rather than spin; the connections stay queued in
 * the kernel), or another error. ECONNABORTED and EINTR are retried. max 0 returns 0.
 */
int fdp_accept_batch(int listener, struct fdp_accepted *out, size_t max);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* FDPASS_H */
