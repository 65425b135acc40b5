/*
 * Channels: framed, typed messages with descriptors over a SOCK_SEQPACKET or SOCK_STREAM Unix
 * socket. The wire format is in docs/PROTOCOL.md; the receive parser is in channel_reader.c.
 *
 * Output is a ring of queued messages, written in order when the socket takes them and never
 * dropped on EAGAIN (nginx's channel drops them: its own "TODO: NGX_AGAIN"). A message's
 * header and a small payload live inside its ring slot, so the common message costs no malloc.
 * A message's descriptors are closed right after the system call that carried them: on a
 * stream that is the call that wrote the message's first byte, and a later partial write of the
 * same message goes without them, so descriptors are never sent twice.
 *
 * On SOCK_SEQPACKET a flush packs consecutive queued messages into one packet, with all their
 * descriptors in the packet's one SCM_RIGHTS message, in message order. The kernel's cost is per
 * packet (an skb, its memory accounting, the SCM work, a wake-up: about 5 us), not per
 * descriptor, so a burst of one-descriptor messages costs a fraction of one packet each.
 */
#include "fdpass.h"
#include "channel_internal.h"
#include "channel_reader.h"
#include "compat.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static unsigned char *out_data(struct out_msg *o)
{
	return o->heap ? o->heap : o->inl;
}

static int *out_fds(struct out_msg *o)
{
	return o->fds_heap ? o->fds_heap : o->fds;
}

/* The slot is done with its descriptors: close them, unless the caller only lent them. */
static void out_drop_fds(struct out_msg *o)
{
	if (!o->lent)
		fdp_close_fds(out_fds(o), o->nfds);
	o->nfds = 0;
}

/* Free a slot's memory; with close_fds, drop the descriptors it still holds. */
static void out_free(struct out_msg *o, int close_fds)
{
	if (close_fds)
		out_drop_fds(o);
	free(o->heap);
	free(o->fds_heap);
	o->heap = NULL;
	o->fds_heap = NULL;
	o->nfds = 0;
}

static struct out_msg *q_at(struct fdp_channel *ch, size_t i)
{
	return &ch->q[(ch->qhead + i) & (ch->qcap - 1)];
}

static void q_pop(struct fdp_channel *ch)
{
	out_free(q_at(ch, 0), 1);
	ch->qhead = (ch->qhead + 1) & (ch->qcap - 1);
	ch->qlen--;
	ch->head_off = 0;
}

static int q_grow(struct fdp_channel *ch)
{
	size_t cap = ch->qcap ? ch->qcap * 2 : 16; /* a power of two: slots wrap with a mask */
	struct out_msg *q = malloc(cap * sizeof(*q));

	if (!q)
		return -ENOMEM;
	for (size_t i = 0; i < ch->qlen; i++)
		q[i] = *q_at(ch, i);
	free(ch->q);
	ch->q = q;
	ch->qcap = cap;
	ch->qhead = 0;
	return 0;
}

int fdp__channel_break(struct fdp_channel *ch, int err)
{
	if (!ch->err)
		ch->err = err;
	while (ch->qlen)
		q_pop(ch);
	return ch->err;
}

/*
 * The most bytes a packet of several messages may hold. Never more than one message of the
 * largest payload (12 + max_payload: what the receiver's buffer holds, the peers agreeing on
 * the limit), nor PACK_MAX, nor a quarter of the send buffer, so packed packets never meet
 * the kernel's per-packet limit (sk_sndbuf - 32) and several fit in the socket at once. A
 * message larger than this still goes alone, as one packet.
 */
static size_t pack_limit(int sock, size_t max_payload)
{
	size_t limit = FDP_CHANNEL_HEADER_SIZE + max_payload;
	int sndbuf = 0;
	socklen_t len = sizeof(sndbuf);

	if (limit > PACK_MAX)
		limit = PACK_MAX;
	if (getsockopt(sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0 && sndbuf > 0 &&
	    (size_t)sndbuf / 4 < limit)
		limit = (size_t)sndbuf / 4;
	return limit;
}

/* The first published layout of struct fdp_channel_config ends with max_fds_arg. */
#define CONFIG_SIZE_MIN (offsetof(struct fdp_channel_config, max_fds_arg) + sizeof(void *))

size_t fdp_channel_fds_none(void *arg, unsigned type)
{
	return 0;
}

int fdp_channel_open(struct fdp_channel **out, int sock, const struct fdp_channel_config *given)
{
	struct fdp_channel_config c = {0}, *cfg = NULL;
	struct fdp_channel *ch;
	int type = 0, flags, err;
	socklen_t len = sizeof(type);

	*out = NULL;
	if (given) {
		err = fdp__config_copy(&c, sizeof(c), given, CONFIG_SIZE_MIN);
		if (err < 0)
			goto fail;
		cfg = &c;
	}
	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
		err = -errno;
		goto fail;
	}
	err = -EINVAL;
	if (type != SOCK_STREAM && type != SOCK_SEQPACKET)
		goto fail;
	if (cfg && (cfg->max_payload > MAX_PAYLOAD))
		goto fail;
	flags = fcntl(sock, F_GETFL);
	if (flags < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0) {
		err = -errno;
		goto fail;
	}
	err = -ENOMEM;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		goto fail;
	ch->sock = sock;
	ch->packet = type == SOCK_SEQPACKET;
	ch->max_payload = cfg && cfg->max_payload ? cfg->max_payload : FDP_CHANNEL_MAX_PAYLOAD;
	ch->high_water = cfg && cfg->high_water ? cfg->high_water : FDP_CHANNEL_HIGH_WATER;
	ch->max_fds = cfg ? cfg->max_fds : NULL;
	ch->max_fds_arg = cfg ? cfg->max_fds_arg : NULL;
	if (ch->packet)
		ch->pack_max = pack_limit(sock, ch->max_payload);
	/* A SOCK_SEQPACKET channel parses packets where recvmmsg() put them (channel_recv.c). */
	err = ch->packet ? 0 : fdp__reader_init(&ch->rd, ch->max_payload);
	if (err < 0) {
		free(ch);
		goto fail;
	}
	*out = ch;
	return 0;
fail:
	close(sock);
	return err;
}

void fdp_channel_close(struct fdp_channel *ch)
{
	if (!ch)
		return;
	fdp__channel_break(ch, -EPIPE);
	fdp__inbox_free(ch);
	fdp__reader_free(&ch->rd);
	free(ch->q);
	free(ch->ctl);
	free(ch->iov);
	close(ch->sock);
	free(ch);
}

int fdp_channel_fd(const struct fdp_channel *ch)
{
	return ch->sock;
}

uint64_t fdp_channel_sent(const struct fdp_channel *ch)
{
	return ch->sent;
}

int fdp_channel_wants_write(const struct fdp_channel *ch)
{
	return ch->qlen > 0;
}

size_t fdp_channel_queued(const struct fdp_channel *ch)
{
	return ch->qlen;
}

void fdp__channel_set_read_max(struct fdp_channel *ch, size_t max)
{
	ch->read_max = max;
}

/* Queue a message at the tail; it owns fds from here on. */
static int q_push(struct fdp_channel *ch, unsigned type, const void *payload, size_t len,
                  const int *fds, size_t nfds, int lent)
{
	struct out_msg *o;
	unsigned char *d;

	if (ch->qlen == ch->qcap && q_grow(ch) < 0)
		return -ENOMEM;
	o = q_at(ch, ch->qlen);
	memset(o, 0, offsetof(struct out_msg, fds));
	o->size = (uint32_t)(FDP_CHANNEL_HEADER_SIZE + len);
	if (o->size > OUT_INLINE && !(o->heap = malloc(o->size)))
		return -ENOMEM;
	if (nfds > OUT_FDS && !(o->fds_heap = malloc(nfds * sizeof(int)))) {
		out_free(o, 0);
		return -ENOMEM;
	}
	d = out_data(o);
	d[0] = FDP_CHANNEL_VERSION;
	d[1] = 0;
	fdp__put16(d + 2, type);
	fdp__put16(d + 4, (unsigned)nfds);
	fdp__put16(d + 6, 0);
	fdp__put32(d + 8, (uint32_t)len);
	if (len)
		memcpy(d + FDP_CHANNEL_HEADER_SIZE, payload, len);
	if (nfds)
		memcpy(out_fds(o), fds, nfds * sizeof(int));
	o->nfds = (uint16_t)nfds;
	o->lent = lent != 0;
	ch->qlen++;
	return 0;
}

/*
 * Fill ctl (zeroed: it goes to the kernel) with one SCM_RIGHTS message carrying the nfds
 * descriptors of the n messages from queue position first on, in order.
 */
static size_t put_rights(struct fdp_channel *ch, unsigned char *ctl, size_t first, size_t n,
                         size_t nfds)
{
	struct msghdr mh = {.msg_control = ctl, .msg_controllen = CMSG_SPACE(nfds * sizeof(int))};
	struct cmsghdr *c;
	unsigned char *d;

	memset(ctl, 0, mh.msg_controllen);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	d = CMSG_DATA(c);
	for (size_t i = first; i < first + n; i++) {
		struct out_msg *o = q_at(ch, i);

		memcpy(d, out_fds(o), o->nfds * sizeof(int));
		d += o->nfds * sizeof(int);
	}
	return mh.msg_controllen;
}

static int ctl_reserve(struct fdp_channel *ch, size_t need)
{
	unsigned char *p;

	if (need <= ch->ctl_cap)
		return 0;
	p = realloc(ch->ctl, need); /* malloc's alignment suits struct cmsghdr */
	if (!p)
		return -ENOMEM;
	ch->ctl = p;
	ch->ctl_cap = need;
	return 0;
}

/* An errno from a send that means "the socket is full, later". */
static int is_wait(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS;
}

/*
 * STREAM: one sendmsg() gathering the queue from its head up to (not including) the next
 * message that carries descriptors, as imsg does, so every message's descriptors ride on its
 * own first byte. Returns the bytes written or a negative errno.
 */
static ssize_t write_stream(struct fdp_channel *ch)
{
	struct iovec iov[WRITE_BATCH];
	struct msghdr mh = {.msg_iov = iov};
	struct out_msg *first = q_at(ch, 0);
	size_t n = 0;
	ssize_t w;

	if (ch->head_off == 0 && first->nfds) {
		if (ctl_reserve(ch, CTL_SPACE_FDS) < 0)
			return -ENOMEM;
		mh.msg_control = ch->ctl;
		mh.msg_controllen = put_rights(ch, ch->ctl, 0, 1, first->nfds);
	}
	for (size_t i = 0; i < ch->qlen && n < WRITE_BATCH; i++) {
		struct out_msg *o = q_at(ch, i);
		size_t off = i == 0 ? ch->head_off : 0;

		if (i > 0 && o->nfds)
			break;
		iov[n].iov_base = out_data(o) + off;
		iov[n].iov_len = o->size - off;
		n++;
	}
	mh.msg_iovlen = n;
	do
		w = sendmsg(ch->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	/* Anything written means the descriptors went with it; they must never go again. */
	if (mh.msg_control)
		out_drop_fds(first);
	for (size_t left = (size_t)w; left > 0;) {
		struct out_msg *o = q_at(ch, 0);
		size_t rest = o->size - ch->head_off;

		if (left < rest) {
			ch->head_off += left;
			break;
		}
		left -= rest;
		q_pop(ch);
		ch->sent++;
	}
	return w;
}

/* One packet being planned: n messages from queue position first on, carrying nfds. */
struct pack {
	size_t first, n, nfds;
};

/*
 * Group the queue's head into at most max packets of consecutive whole messages, each within
 * FDP_MAX_FDS descriptors and ch->pack_max bytes (a larger message goes alone), and all of them
 * within WRITE_IOV messages. Returns the number of packets; *ctl_size gets their control bytes.
 */
static size_t plan_packets(struct fdp_channel *ch, struct pack *pk, size_t max, size_t *ctl_size)
{
	size_t npk = 0, i = 0;

	*ctl_size = 0;
	while (npk < max && i < ch->qlen && i < WRITE_IOV) {
		struct pack *p = &pk[npk++];
		size_t bytes = 0;

		p->first = i;
		p->n = p->nfds = 0;
		do {
			struct out_msg *o = q_at(ch, i);

			if (p->n &&
			    (bytes + o->size > ch->pack_max || p->nfds + o->nfds > FDP_MAX_FDS))
				break;
			bytes += o->size;
			p->nfds += o->nfds;
			p->n++;
		} while (++i < ch->qlen && i < WRITE_IOV);
		if (p->nfds)
			*ctl_size += CMSG_SPACE(p->nfds * sizeof(int));
	}
	return npk;
}

/*
 * SEQPACKET: one sendmmsg() of up to WRITE_BATCH packets, each packing one or more whole
 * messages and all their descriptors. Returns the number of messages sent or a negative errno.
 */
static ssize_t write_packets(struct fdp_channel *ch)
{
	struct mmsghdr mm[WRITE_BATCH];
	struct pack pk[WRITE_BATCH];
	size_t npk, ctl_size, off = 0, popped = 0;
	int sent;

	if (!ch->iov && !(ch->iov = malloc(WRITE_IOV * sizeof(*ch->iov))))
		return -ENOMEM;
	npk = plan_packets(ch, pk, FDP_HAVE_SENDMMSG ? WRITE_BATCH : 1, &ctl_size);
	if (npk == 0)
		return 0; /* nothing queued */
	if (ctl_reserve(ch, ctl_size) < 0)
		return -ENOMEM;
	memset(mm, 0, npk * sizeof(mm[0]));
	for (size_t k = 0; k < npk; k++) {
		struct msghdr *mh = &mm[k].msg_hdr;

		for (size_t i = pk[k].first; i < pk[k].first + pk[k].n; i++) {
			struct out_msg *o = q_at(ch, i);

			ch->iov[i].iov_base = out_data(o);
			ch->iov[i].iov_len = o->size;
		}
		mh->msg_iov = &ch->iov[pk[k].first];
		mh->msg_iovlen = pk[k].n;
		if (pk[k].nfds) {
			mh->msg_control = ch->ctl + off;
			mh->msg_controllen =
			        put_rights(ch, ch->ctl + off, pk[k].first, pk[k].n, pk[k].nfds);
			off += mh->msg_controllen;
		}
	}
#if FDP_HAVE_SENDMMSG
	do
		sent = sendmmsg(ch->sock, mm, (unsigned)npk, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (sent < 0 && errno == EINTR);
#else
	do
		sent = sendmsg(ch->sock, &mm[0].msg_hdr, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -1 : 1;
	while (sent < 0 && errno == EINTR);
#endif
	if (sent < 0)
		return -errno;
	for (int k = 0; k < sent; k++)
		popped += pk[k].n;
	for (size_t i = 0; i < popped; i++)
		q_pop(ch);
	ch->sent += popped;
	return (ssize_t)popped;
}

/* Write until the queue is empty (0) or the socket is full (-EAGAIN); other errors as is. */
static int chan_write(struct fdp_channel *ch)
{
	while (ch->qlen) {
		ssize_t r = ch->packet ? write_packets(ch) : write_stream(ch);

		/* The send buffer shrank since open (SO_SNDBUF): pack smaller and try again. */
		if (r == -EMSGSIZE && ch->packet) {
			size_t limit = pack_limit(ch->sock, ch->max_payload);

			if (limit < ch->pack_max) {
				ch->pack_max = limit;
				continue;
			}
		}
		if (r < 0)
			return is_wait((int)-r) ? -EAGAIN : (int)r;
	}
	return 0;
}

/* Errors after which nothing can be sent again. */
static int is_fatal(int err)
{
	return err != -EAGAIN && err != -ETOOMANYREFS && err != -ENOMEM;
}

int fdp_channel_flush(struct fdp_channel *ch)
{
	int r;

	if (ch->err)
		return ch->err;
	r = chan_write(ch);
	if (r < 0 && is_fatal(r))
		return fdp__channel_break(ch, r);
	return r;
}

/*
 * SEQPACKET: can one packet of this payload ever leave? Linux refuses a packet over
 * sk_sndbuf - 32 bytes with EMSGSIZE, which would break the channel with the message already
 * accepted and everything behind it queued. Asked only of messages larger than a packed packet
 * (the send buffer is at least four of those, as of open); the caller may have resized it.
 */
static int fits_sndbuf(struct fdp_channel *ch, size_t len)
{
	int sndbuf = 0;
	socklen_t optlen = sizeof(sndbuf);

	if (getsockopt(ch->sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, &optlen) < 0)
		return 1; /* let the send say what is wrong */
	return FDP_CHANNEL_HEADER_SIZE + len + 32 <= (size_t)sndbuf;
}

int fdp_channel_send(struct fdp_channel *ch, unsigned type, const void *payload, size_t len,
                     const int *fds, size_t nfds, int flags)
{
	int r;

	if (type > 0xffff || nfds > FDP_MAX_FDS || (len && !payload) || (nfds && !fds) ||
	    (flags & ~(FDP_CHANNEL_MORE | FDP_CHANNEL_LEND)))
		return -EINVAL;
	for (size_t i = 0; i < nfds; i++)
		if (fds[i] < 0)
			return -EBADF;
	if (len > ch->max_payload)
		return -EMSGSIZE;
	if (ch->err)
		return ch->err;
	if (ch->packet && FDP_CHANNEL_HEADER_SIZE + len > ch->pack_max && !fits_sndbuf(ch, len))
		return -EMSGSIZE;
	if (ch->qlen >= ch->high_water) {
		/* Make room if the peer has been reading; else push back on the caller. */
		r = fdp_channel_flush(ch);
		if (r < 0 && is_fatal(r))
			return r;
		if (ch->qlen >= ch->high_water)
			return -ENOBUFS;
	}
	r = q_push(ch, type, payload, len, fds, nfds, flags & FDP_CHANNEL_LEND);
	if (r < 0)
		return r;
	if (flags & FDP_CHANNEL_MORE)
		return 0;
	r = chan_write(ch);
	if (r >= 0 || !is_fatal(r))
		return 0; /* written or queued: accepted */
	/*
	 * The socket failed for good. Whatever is still queued is at least this message (it is at
	 * the tail, and earlier ones go first): hand it back, so the caller keeps its descriptors
	 * as every negative return promises. Part of it may have left: the peer then holds a
	 * truncated message, which it closes as malformed. But a message whose first byte left
	 * took its descriptors with it, and the channel closed its own (given, not lent) copies
	 * then: those are gone, so it was accepted, and is lost with the peer, as one that had
	 * wholly left.
	 */
	if (ch->qlen == 0 || (ch->qlen == 1 && ch->head_off && !q_at(ch, 0)->lent)) {
		fdp__channel_break(ch, r);
		return 0;
	}
	out_free(q_at(ch, ch->qlen - 1), 0);
	if (--ch->qlen == 0)
		ch->head_off = 0;
	fdp__channel_break(ch, r);
	return r;
}

/*
 * -ETOOMANYREFS: this user has more descriptors in flight in Unix sockets than RLIMIT_NOFILE
 * (Linux's too_many_unix_fds()). The socket stays writable, so waiting for POLLOUT would spin;
 * nothing signals when receivers have taken enough, so retry on a doubling timer instead.
 */
#define REFS_RETRY_MIN_MS 1
#define REFS_RETRY_MAX_MS 64

int fdp_channel_flush_wait(struct fdp_channel *ch, int timeout_ms)
{
	long long deadline = timeout_ms >= 0 ? fdp__now_ms() + timeout_ms : 0;
	int backoff = REFS_RETRY_MIN_MS;

	for (;;) {
		struct pollfd p = {.fd = ch->sock, .events = POLLOUT};
		int r = fdp_channel_flush(ch), wait = -1;

		if (r != -EAGAIN && r != -ETOOMANYREFS)
			return r;
		if (timeout_ms >= 0) {
			long long left = deadline - fdp__now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			wait = left > 0x7fffffff ? 0x7fffffff : (int)left;
		}
		if (r == -ETOOMANYREFS) {
			wait = wait >= 0 && wait < backoff ? wait : backoff;
			backoff = backoff < REFS_RETRY_MAX_MS ? backoff * 2 : backoff;
			p.fd = -1; /* a pure sleep: poll() ignores negative descriptors */
		} else {
			backoff = REFS_RETRY_MIN_MS;
		}
		if (poll(&p, 1, wait) < 0 && errno != EINTR)
			return -errno;
	}
}
