/*
 * The message layer: one sendmsg()/recvmsg() carrying data and descriptors, with every check
 * the usual hand-written send_fd()/recv_fd() skips (docs/API.md, the message layer).
 */
#include "fdpass.h"
#include "compat.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * Room for a full SCM_RIGHTS message plus the other control messages a socket may add on its
 * own (SCM_CREDENTIALS with SO_PASSCRED, a pidfd, a security label), so MSG_CTRUNC only ever
 * means the kernel dropped descriptors, never that this buffer was short for them.
 */
#define FDP_CTL_SPACE (CMSG_SPACE(sizeof(int) * FDP_MAX_FDS) + 512)

union fdp_ctl {
	struct cmsghdr align;
	char buf[FDP_CTL_SPACE];
};

const char *fdp_version(void)
{
#define FDP_STR_(x) #x
#define FDP_STR(x)  FDP_STR_(x)
	return FDP_STR(FDPASS_VERSION_MAJOR) "." FDP_STR(FDPASS_VERSION_MINOR) "." FDP_STR(
	        FDPASS_VERSION_PATCH);
}

const char *fdp_strerror(int err)
{
	switch (-err) {
	case EXFULL:
		return "descriptors dropped by the kernel (receiver at its descriptor limit?)";
	case EPROTO:
		return "protocol error: malformed message";
	default:
		return strerror(err < 0 ? -err : err);
	}
}

void fdp_close_fds(int *fds, size_t n)
{
	int saved = errno;

	for (size_t i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
	errno = saved;
}

/* The socket's type (SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM), or a negative errno. */
static int sock_type(int sock)
{
	int type;
	socklen_t len = sizeof(type);

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	return type;
}

/*
 * A send of zero bytes is a message only where the kernel makes it one. A stream socket sends
 * nothing for zero bytes, so descriptors with them would be silently dropped; a zero-length
 * record on SOCK_SEQPACKET reads as end of file; only a zero-length datagram is a message of its
 * own. Returns 0 when a send of zero bytes with nfds descriptors is allowed on sock.
 */
static int empty_send_allowed(int sock, size_t nfds)
{
	int type = sock_type(sock);

	if (type < 0)
		return type;
	if (type == SOCK_DGRAM || (type == SOCK_SEQPACKET && nfds))
		return 0;
	return -EINVAL;
}

ssize_t fdp_msg_send(int sock, const struct fdp_msg *m, int flags)
{
	union fdp_ctl ctl;
	struct iovec iov = {m->data, m->len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (m->nfds > FDP_MAX_FDS || (m->len && !m->data) || (m->nfds && !m->fds))
		return -EINVAL;
	if (m->len == 0) {
		int r = empty_send_allowed(sock, m->nfds);

		if (r < 0)
			return r;
	}
	if (m->nfds) {
		struct cmsghdr *c;
		size_t size = sizeof(int) * m->nfds;

		/* Zero the padding too: it goes to the kernel and valgrind rightly checks it. */
		memset(ctl.buf, 0, CMSG_SPACE(size));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(size);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(size);
		memcpy(CMSG_DATA(c), m->fds, size);
	}
	do
		n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/*
 * Move the descriptors of every SCM_RIGHTS control message into m->fds, closing those beyond
 * its capacity. Other control messages are skipped. Returns the number stored.
 */
static size_t take_fds(struct msghdr *mh, struct fdp_msg *m, size_t cap)
{
	size_t stored = 0;
	char *end = (char *)mh->msg_control + mh->msg_controllen;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		unsigned char *data = CMSG_DATA(c);
		size_t len, count;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		/* Some systems leave cmsg_len untruncated on MSG_CTRUNC: trust only the buffer. */
		len = c->cmsg_len - CMSG_LEN(0);
		if (data + len > (unsigned char *)end)
			len = (size_t)((unsigned char *)end - data);
		count = len / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;

			memcpy(&fd, data + i * sizeof(int), sizeof(fd));
			/* Without MSG_CMSG_CLOEXEC: one that cannot be made close-on-exec is
			 * dropped. */
			if (!FDP_HAVE_MSG_CMSG_CLOEXEC && fdp__set_cloexec(fd) < 0) {
				close(fd);
				m->flags |= FDP_MSG_FDS_DROPPED;
				continue;
			}
			if (stored < cap) {
				m->fds[stored++] = fd;
			} else {
				close(fd);
				m->flags |= FDP_MSG_FDS_DROPPED;
			}
		}
	}
	return stored;
}

/*
 * recvmsg() returned 0 bytes and no descriptor: end of file, or an empty message? Only a
 * datagram socket has empty messages (and no end of file). A zero-length SOCK_SEQPACKET record
 * is what the kernel returns at end of file too, so it reads as one. A stream read with no room
 * returns 0 whether data is waiting or the peer is gone: a peek tells them apart, and a caller
 * who gave no room for data waiting gets -EINVAL. Returns 1, 0 or a negative errno.
 */
static int empty_recv(int sock, size_t room)
{
	int type = sock_type(sock);
	char byte;
	ssize_t n;

	if (type < 0)
		return type;
	if (type == SOCK_DGRAM)
		return 1;
	if (type != SOCK_STREAM || room)
		return 0;
	do
		n = recv(sock, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n == 0 ? 0 : -EINVAL;
}

int fdp_msg_recv(int sock, struct fdp_msg *m, int flags)
{
	union fdp_ctl ctl;
	char none;
	struct iovec iov = {m->len ? m->data : &none, m->len};
	struct msghdr mh;
	size_t nfds_in = m->nfds, cap = m->fds ? m->nfds : 0;
	ssize_t n;

	if (m->len && !m->data)
		return -EINVAL;
	m->flags = 0;
	do {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(sock, &mh, flags | FDP__MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno; /* nothing received: m keeps its capacities for the next try */
	m->nfds = take_fds(&mh, m, cap);
	if (mh.msg_flags & MSG_TRUNC)
		m->flags |= FDP_MSG_DATA_TRUNC;
	if (mh.msg_flags & MSG_CTRUNC) {
		fdp_close_fds(m->fds, m->nfds);
		m->nfds = 0;
		m->len = (size_t)n;
		return -EXFULL;
	}
	/*
	 * Descriptors make a message of zero bytes; credentials do not, since a stream socket with
	 * SO_PASSCRED attaches them to its end of file too.
	 */
	if (n == 0 && m->nfds == 0 && m->flags == 0) {
		int r = empty_recv(sock, m->len);

		if (r < 0) {
			m->nfds = nfds_in; /* nothing taken: m keeps its capacities */
			return r;
		}
		m->len = 0;
		return r;
	}
	m->len = (size_t)n;
	return 1;
}

int fdp_send_fd(int sock, int fd)
{
	/* One zero byte: what most C programs, Go and Perl's IO::FDPass send with a descriptor. */
	char byte = 0;
	struct fdp_msg m = {.data = &byte, .len = 1, .fds = &fd, .nfds = 1};
	ssize_t n = fdp_msg_send(sock, &m, 0);

	return n < 0 ? (int)n : 0;
}

int fdp_recv_fd(int sock)
{
	char byte;
	int fd = -1;
	struct fdp_msg m = {.data = &byte, .len = 1, .fds = &fd, .nfds = 1};
	int r = fdp_msg_recv(sock, &m, 0);

	if (r < 0)
		return r;
	if (r == 0)
		return -EPIPE;
	if (m.nfds != 1 || m.flags) {
		fdp_close_fds(m.fds, m.nfds);
		return -EBADMSG;
	}
	return fd;
}
