/*
 * fdpass: hand open descriptors between processes over Unix-domain sockets.
 *
 * One public header, grouped by layer (bottom up). Conventions for every function:
 *   - returns >= 0 on success and a negative errno value (-EAGAIN, -EPROTO, ...) on failure;
 *   - never prints, never exits, never touches signal dispositions;
 *   - every descriptor it creates or receives is close-on-exec;
 *   - its comment says who owns each descriptor afterwards.
 */
#ifndef FDPASS_H
#define FDPASS_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
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
 * On the wire every message starts with one marker byte (FDP_MSG_MARK) followed by the caller's
 * data, so a message always carries at least one byte of ordinary data (a recvmsg() of 0 bytes
 * then unambiguously means end of file) and a message with no data is still a message. The
 * marker is added on send and removed on receive; callers never see it.
 *
 * On SOCK_SEQPACKET and SOCK_DGRAM one call is one message. On SOCK_STREAM the kernel keeps no
 * message boundaries: use a channel (below), which frames messages, rather than this layer.
 * ------------------------------------------------------------------------------------------- */

/* Linux's SCM_MAX_FD: the most descriptors one message may carry. */
#define FDP_MAX_FDS 253

/* The marker byte that opens every message of the message layer. */
#define FDP_MSG_MARK 0xFD

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
 * Send one message: the marker byte, m->len bytes of m->data, and m->nfds descriptors, in one
 * sendmsg() with MSG_NOSIGNAL. Descriptors are duplicated into the message, so the caller still
 * owns m->fds afterwards and normally closes them. flags are extra sendmsg() flags
 * (MSG_DONTWAIT). Returns the number of data bytes sent (m->len unless a SOCK_STREAM send was
 * short, in which case the descriptors went with the first byte and must not be sent again);
 * -EINVAL for more than FDP_MAX_FDS descriptors (before any system call), -EAGAIN when the
 * socket is full, -EPIPE when the peer is gone, or another -errno from sendmsg().
 */
ssize_t fdp_msg_send(int sock, const struct fdp_msg *m, int flags);

/*
 * Receive one message into m (capacities in m->len and m->nfds). EINTR is retried. Returns 1
 * with a message (m->len data bytes, m->nfds descriptors, now owned by the caller, all
 * close-on-exec), 0 at end of file (the peer closed), or a negative errno:
 *   -EAGAIN     nothing to read on a non-blocking socket (or with MSG_DONTWAIT in flags);
 *   -EXFULL     the kernel dropped descriptors (MSG_CTRUNC: the receiver is at RLIMIT_NOFILE,
 *               or a security module refused one); every descriptor of this call was closed,
 *               m->len holds the data that came with them, m->nfds is 0;
 *   -EPROTO     the message did not start with the marker byte; its descriptors were closed.
 * Descriptors beyond the caller's capacity are closed and FDP_MSG_FDS_DROPPED is set; data
 * beyond it is lost and FDP_MSG_DATA_TRUNC is set. Control messages that are not SCM_RIGHTS
 * (SCM_CREDENTIALS, ...) are skipped.
 */
int fdp_msg_recv(int sock, struct fdp_msg *m, int flags);

/*
 * Send one descriptor with no data (one marker byte on the wire). The caller still owns fd.
 * Returns 0, or a negative errno as fdp_msg_send().
 */
int fdp_send_fd(int sock, int fd);

/*
 * Receive one message and return the single descriptor it carries, now owned by the caller and
 * close-on-exec. Returns -EPIPE at end of file, -EBADMSG (closing everything received) if the
 * message carries data or a number of descriptors other than one, or an error of
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

#ifdef __cplusplus
}
#endif

#endif /* FDPASS_H */
