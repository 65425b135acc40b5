/*
 * Channel receive: reading the socket into the parser (channel_reader.c) and handing out whole
 * messages. On SOCK_SEQPACKET one recvmmsg() takes up to RECV_BATCH packets at once, and each
 * packet holds one or more whole messages (a sender packs a burst's messages together).
 */
#include "fdpass.h"
#include "channel_internal.h"
#include "compat.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Move the descriptors of every SCM_RIGHTS control message into fds (capacity FDP_MAX_FDS),
 * skipping other control messages. Returns the count, or -EPROTO (all closed) for more than
 * one message may carry.
 */
static int collect_fds(struct msghdr *mh, int *fds)
{
	unsigned char *end = (unsigned char *)mh->msg_control + mh->msg_controllen;
	size_t n = 0, extra = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		unsigned char *data = CMSG_DATA(c);
		size_t len;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		/* Some systems leave cmsg_len untruncated on MSG_CTRUNC: trust only the buffer. */
		len = c->cmsg_len - CMSG_LEN(0);
		if (data + len > end)
			len = (size_t)(end - data);
		for (size_t i = 0; i < len / sizeof(int); i++) {
			int fd;

			memcpy(&fd, data + i * sizeof(int), sizeof(fd));
			if (!FDP_HAVE_MSG_CMSG_CLOEXEC)
				fdp__set_cloexec(fd);
			if (n < FDP_MAX_FDS) {
				fds[n++] = fd;
			} else {
				close(fd);
				extra++;
			}
		}
	}
	if (extra) {
		fdp_close_fds(fds, n);
		return -EPROTO;
	}
	return (int)n;
}

/* Close the descriptors of the packets received but not handed out yet. */
static void inbox_drop(struct inbox *in)
{
	int fds[FDP_MAX_FDS];

	fdp__packet_drop(&in->cur);
	for (; in->next < in->count; in->next++) {
		int n = collect_fds(&in->mm[in->next].msg_hdr, fds);

		if (n > 0)
			fdp_close_fds(fds, (size_t)n);
	}
	in->next = in->count = 0;
}

void fdp__inbox_free(struct fdp_channel *ch)
{
	inbox_drop(&ch->in);
	free(ch->in.buf);
	free(ch->in.ctl);
	ch->in.buf = NULL;
	ch->in.ctl = NULL;
}

/* A receive went wrong for good: close everything received and queued; nothing more is read. */
static int recv_break(struct fdp_channel *ch, int err)
{
	err = fdp__reader_fail(&ch->rd, err);
	inbox_drop(&ch->in);
	fdp__channel_break(ch, err);
	return err;
}

/*
 * Check what came with one recvmsg(): descriptors into fds, then the kernel's flags. Returns
 * the descriptor count, or a negative errno with everything closed and the channel broken.
 */
static int take_control(struct fdp_channel *ch, struct msghdr *mh, int *fds)
{
	int nfds = collect_fds(mh, fds);

	if (nfds < 0)
		return recv_break(ch, nfds);
	if (mh->msg_flags & MSG_CTRUNC) {
		/* The kernel dropped descriptors (RLIMIT_NOFILE, a security module): a message
		 * arrived without its descriptors and nothing past it can be trusted. */
		fdp_close_fds(fds, (size_t)nfds);
		return recv_break(ch, -EXFULL);
	}
	return nfds;
}

/*
 * A peer that exits with messages of ours unread makes the kernel report ECONNRESET once:
 * before what the peer sent and is still queued (SOCK_SEQPACKET), or in place of end of file
 * (SOCK_STREAM). What the peer sent is intact either way, and a master must read a dying
 * worker's last acknowledgements: so the error is read past, once per call, and the caller
 * gets the peer's messages, then end of file.
 */
static int read_past_reset(int *resets)
{
	return errno == EINTR || (errno == ECONNRESET && (*resets)++ == 0);
}

/* Take up to RECV_BATCH packets in one system call. Returns the count or a negative errno. */
static int inbox_fill(struct fdp_channel *ch)
{
	struct inbox *in = &ch->in;
	size_t slot = FDP_CHANNEL_HEADER_SIZE + ch->max_payload;
	unsigned batch = FDP_HAVE_SENDMMSG ? RECV_BATCH : 1;
	int n, resets = 0;

	/* Virtual space mostly: the kernel touches only the bytes that packets fill. */
	if (!in->buf && !(in->buf = malloc(RECV_BATCH * slot)))
		return -ENOMEM;
	if (!in->ctl && !(in->ctl = malloc(RECV_BATCH * sizeof(*in->ctl))))
		return -ENOMEM;
	for (unsigned i = 0; i < batch; i++) {
		in->iov[i].iov_base = in->buf + i * slot;
		in->iov[i].iov_len = slot;
		memset(&in->mm[i], 0, sizeof(in->mm[i]));
		in->mm[i].msg_hdr.msg_iov = &in->iov[i];
		in->mm[i].msg_hdr.msg_iovlen = 1;
		in->mm[i].msg_hdr.msg_control = in->ctl[i].buf;
		in->mm[i].msg_hdr.msg_controllen = sizeof(in->ctl[i].buf);
	}
	do {
#if FDP_HAVE_SENDMMSG
		n = recvmmsg(ch->sock, in->mm, batch, FDP__MSG_CMSG_CLOEXEC | MSG_DONTWAIT, NULL);
#else
		ssize_t got =
		        recvmsg(ch->sock, &in->mm[0].msg_hdr, FDP__MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

		n = got < 0 ? -1 : 1;
		in->mm[0].msg_len = got < 0 ? 0 : (unsigned)got;
#endif
	} while (n < 0 && read_past_reset(&resets));
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	in->count = (unsigned)n;
	in->next = 0;
	in->drained = (unsigned)n < batch;
	return n;
}

/*
 * A SOCK_SEQPACKET read of 0 bytes is end of file, or a zero-length packet: the kernel returns
 * the same for both. Only a peer that has closed, or shut down its sending side, makes the
 * socket hang up (POLLHUP; POLLRDHUP for the half-close, where the system has it), so ask
 * poll(); a live peer that sends an empty packet sends a malformed one (every packet holds a
 * header).
 */
#ifndef POLLRDHUP
#define POLLRDHUP 0
#endif
static int peer_closed(int sock)
{
	struct pollfd p = {.fd = sock, .events = POLLIN | POLLRDHUP};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP));
}

/*
 * Make the next received packet the current one. Returns 1, 0 at end of file, or a negative
 * errno with everything closed and the channel broken.
 */
static int inbox_open(struct fdp_channel *ch)
{
	struct inbox *in = &ch->in;
	struct mmsghdr *mm = &in->mm[in->next++];
	int nfds = take_control(ch, &mm->msg_hdr, in->cur.fds), r;

	if (nfds < 0)
		return nfds;
	if (mm->msg_len == 0 && nfds == 0) {
		if (!peer_closed(ch->sock))
			return recv_break(ch, -EPROTO);
		ch->eof = 1; /* recvmmsg() fills the slots after end of file with more of it */
		inbox_drop(in);
		return 0;
	}
	if (mm->msg_hdr.msg_flags & MSG_TRUNC) {
		fdp_close_fds(in->cur.fds, (size_t)nfds);
		return recv_break(ch, -EPROTO);
	}
	r = fdp__packet_open(&in->cur, ch->max_payload, mm->msg_hdr.msg_iov->iov_base, mm->msg_len,
	                     (size_t)nfds);
	return r < 0 ? recv_break(ch, r) : 1;
}

static int recv_packet(struct fdp_channel *ch, struct fdp_channel_msg *m)
{
	for (;;) {
		int r;

		if (ch->rd.err)
			return ch->rd.err;
		if (fdp__packet_next(&ch->in.cur, m))
			return 1;
		if (ch->in.next < ch->in.count) {
			r = inbox_open(ch);
			if (r <= 0)
				return r;
			continue;
		}
		if (ch->eof)
			return 0;
		/*
		 * The last batch found the socket empty: say so without another system call. Data
		 * that came since raised a new readiness edge, so even edge-triggered loops wake.
		 */
		if (ch->in.drained) {
			ch->in.drained = 0;
			return -EAGAIN;
		}
		r = inbox_fill(ch);
		if (r < 0)
			return r;
	}
}

/* STREAM: one recvmsg() into the reader. Returns 1 (bytes in), 0 (end of file) or a negative errno.
 */
static int read_some(struct fdp_channel *ch)
{
	union ctl_in ctl;
	int fds[FDP_MAX_FDS];
	struct iovec iov;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	unsigned char *p;
	size_t space;
	ssize_t n;
	int nfds, resets = 0;

	fdp__reader_space(&ch->rd, &p, &space);
	if (ch->read_max && space > ch->read_max)
		space = ch->read_max;
	iov.iov_base = p;
	iov.iov_len = space;
	do {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(ch->sock, &mh, FDP__MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && read_past_reset(&resets));
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	nfds = take_control(ch, &mh, fds);
	if (nfds < 0)
		return nfds;
	if (n == 0 && nfds == 0)
		return 0;
	if (n == 0) { /* descriptors with no byte to ride on */
		fdp_close_fds(fds, (size_t)nfds);
		return recv_break(ch, -EPROTO);
	}
	nfds = fdp__reader_commit(&ch->rd, (size_t)n, fds, (size_t)nfds);
	return nfds < 0 ? recv_break(ch, nfds) : 1;
}

/* A message with more descriptors than its type may carry is malformed (config max_fds). */
static int check_fds(struct fdp_channel *ch, struct fdp_channel_msg *m)
{
	if (m->nfds == 0 || !ch->max_fds || m->nfds <= ch->max_fds(ch->max_fds_arg, m->type))
		return 1;
	fdp_channel_msg_release(m);
	return recv_break(ch, -EPROTO);
}

static int recv_stream(struct fdp_channel *ch, struct fdp_channel_msg *m)
{
	for (;;) {
		int r = fdp__reader_next(&ch->rd, m);

		if (r != 0)
			return r < 0 ? recv_break(ch, r) : r;
		if (ch->eof) {
			r = fdp__reader_eof(&ch->rd);
			return r < 0 ? recv_break(ch, r) : 0;
		}
		r = read_some(ch);
		if (r == 0)
			ch->eof = 1;
		else if (r < 0)
			return r;
	}
}

int fdp_channel_recv(struct fdp_channel *ch, struct fdp_channel_msg *m)
{
	int r;

	m->nfds = 0;
	r = ch->packet ? recv_packet(ch, m) : recv_stream(ch, m);
	return r == 1 ? check_fds(ch, m) : r;
}

int fdp_channel_msg_take_fd(struct fdp_channel_msg *m, size_t i)
{
	int fd;

	if (i >= m->nfds || m->fds[i] < 0)
		return -EBADF;
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}

void fdp_channel_msg_release(struct fdp_channel_msg *m)
{
	fdp_close_fds(m->fds, m->nfds);
	m->nfds = 0;
}
