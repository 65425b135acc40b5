/*
 * The channel's receive parser: framing, header checks, and matching descriptors to the message
 * whose first byte they came with. No system calls but close(); see channel_reader.h.
 */
#include "channel_reader.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fdp__reader_init(struct fdp__reader *r, size_t max_payload)
{
	memset(r, 0, sizeof(*r));
	r->max_payload = max_payload;
	r->cap = FDP_CHANNEL_HEADER_SIZE + max_payload;
	/* A stream reads ahead: small messages come many to a read. */
	if (r->cap < 16384)
		r->cap = 16384;
	r->buf = malloc(r->cap);
	return r->buf ? 0 : -ENOMEM;
}

static void drop_batches(struct fdp__reader *r)
{
	for (size_t i = 0; i < r->nbatch; i++)
		fdp_close_fds(r->batch[i].fds, r->batch[i].nfds);
	r->nbatch = 0;
}

void fdp__reader_free(struct fdp__reader *r)
{
	drop_batches(r);
	free(r->buf);
	r->buf = NULL;
}

int fdp__reader_fail(struct fdp__reader *r, int err)
{
	drop_batches(r);
	r->pos = r->len = 0;
	if (!r->err)
		r->err = err;
	return r->err;
}

/* The size of the message starting at buf[pos] if its header is here, else just the header. */
static size_t current_need(const struct fdp__reader *r)
{
	if (r->len - r->pos < FDP_CHANNEL_HEADER_SIZE)
		return FDP_CHANNEL_HEADER_SIZE;
	return FDP_CHANNEL_HEADER_SIZE + fdp__get32(r->buf + r->pos + 8);
}

void fdp__reader_space(struct fdp__reader *r, unsigned char **p, size_t *space)
{
	size_t need = current_need(r);

	if (r->pos == r->len) {
		r->pos = r->len = 0;
	} else if (r->pos + need > r->cap || r->len == r->cap) {
		/* Move the partial message to the front only when it would not fit where it is. */
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	*p = r->buf + r->len;
	*space = r->cap - r->len;
}

int fdp__reader_commit(struct fdp__reader *r, size_t n, int *fds, size_t nfds)
{
	struct fdp__rbatch *b;
	uint64_t start = r->consumed + (r->len - r->pos);

	if (r->err) {
		fdp_close_fds(fds, nfds);
		return r->err;
	}
	r->len += n;
	if (nfds == 0)
		return 0;
	if (r->nbatch == FDP__READER_BATCHES || nfds > FDP_MAX_FDS || n == 0) {
		fdp_close_fds(fds, nfds);
		return fdp__reader_fail(r, -EPROTO);
	}
	b = &r->batch[r->nbatch++];
	b->start = start;
	b->end = start + n;
	b->nfds = nfds;
	memcpy(b->fds, fds, nfds * sizeof(int));
	return 0;
}

ssize_t fdp__reader_feed(struct fdp__reader *r, const void *data, size_t n, int *fds,
                         size_t nfds)
{
	unsigned char *p;
	size_t space;
	int err;

	fdp__reader_space(r, &p, &space);
	if (space > n)
		space = n;
	if (space == 0) {
		fdp_close_fds(fds, nfds);
		return nfds ? fdp__reader_fail(r, -EPROTO) : 0;
	}
	memcpy(p, data, space);
	err = fdp__reader_commit(r, space, fds, nfds);
	return err < 0 ? err : (ssize_t)space;
}

/* Remove the first batch, handing its descriptors to m. */
static void claim_batch(struct fdp__reader *r, struct fdp_channel_msg *m)
{
	m->nfds = r->batch[0].nfds;
	memcpy(m->fds, r->batch[0].fds, m->nfds * sizeof(int));
	r->nbatch--;
	memmove(&r->batch[0], &r->batch[1], r->nbatch * sizeof(r->batch[0]));
}

/* Is the header at h one a receiver with this payload limit accepts? */
static int header_ok(size_t max_payload, const unsigned char *h)
{
	return h[0] == FDP_CHANNEL_VERSION && h[1] == 0 && fdp__get16(h + 6) == 0 &&
	       fdp__get16(h + 4) <= FDP_MAX_FDS && fdp__get32(h + 8) <= max_payload;
}

void fdp__packet_drop(struct fdp__packet *pk)
{
	fdp_close_fds(pk->fds + pk->fd_next, pk->nfds - pk->fd_next);
	pk->nfds = pk->fd_next = 0;
	pk->len = pk->off = 0;
}

int fdp__packet_open(struct fdp__packet *pk, size_t max_payload, const unsigned char *p, size_t n,
                     size_t nfds)
{
	size_t off = 0, declared = 0;
	int count = 0;

	pk->p = p;
	pk->len = n;
	pk->off = 0;
	pk->nfds = nfds;
	pk->fd_next = 0;
	if (n == 0 || n > FDP_CHANNEL_HEADER_SIZE + max_payload || nfds > FDP_MAX_FDS)
		goto bad;
	/* Check everything before handing anything out: a bad packet delivers no message. */
	while (off < n) {
		const unsigned char *h = p + off;
		size_t left = n - off;

		if (left < FDP_CHANNEL_HEADER_SIZE || !header_ok(max_payload, h) ||
		    fdp__get32(h + 8) > left - FDP_CHANNEL_HEADER_SIZE)
			goto bad; /* a message cut by the packet's end, or trailing garbage */
		declared += fdp__get16(h + 4);
		off += FDP_CHANNEL_HEADER_SIZE + fdp__get32(h + 8);
		count++;
	}
	if (declared != nfds)
		goto bad;
	return count;
bad:
	fdp__packet_drop(pk);
	return -EPROTO;
}

int fdp__packet_next(struct fdp__packet *pk, struct fdp_channel_msg *m)
{
	const unsigned char *h;
	size_t nfds;

	m->nfds = 0;
	if (pk->off == pk->len)
		return 0; /* also before any packet: p is NULL then */
	h = pk->p + pk->off;
	nfds = fdp__get16(h + 4);
	m->type = fdp__get16(h + 2);
	m->payload = h + FDP_CHANNEL_HEADER_SIZE;
	m->len = fdp__get32(h + 8);
	m->nfds = nfds;
	memcpy(m->fds, pk->fds + pk->fd_next, nfds * sizeof(int));
	pk->fd_next += nfds;
	pk->off += FDP_CHANNEL_HEADER_SIZE + m->len;
	return 1;
}

int fdp__reader_next(struct fdp__reader *r, struct fdp_channel_msg *m)
{
	const unsigned char *h = r->buf + r->pos;
	size_t avail = r->len - r->pos, total, nfds;
	uint64_t start = r->consumed, end;

	if (r->err)
		return r->err;
	/* Descriptors that came wholly before this message's first byte belong to no message. */
	if (r->nbatch && r->batch[0].end <= start)
		return fdp__reader_fail(r, -EPROTO);
	if (avail < FDP_CHANNEL_HEADER_SIZE)
		return 0;
	if (!header_ok(r->max_payload, h))
		return fdp__reader_fail(r, -EPROTO);
	total = FDP_CHANNEL_HEADER_SIZE + fdp__get32(h + 8);
	if (avail < total)
		return 0;
	end = start + total;
	nfds = fdp__get16(h + 4);
	m->nfds = 0;
	if (nfds) {
		/* The batch must cover this message's first byte and hold exactly its count. */
		if (!r->nbatch || r->batch[0].start > start || r->batch[0].nfds != nfds)
			return fdp__reader_fail(r, -EPROTO);
		claim_batch(r, m);
	}
	/* A batch that ends inside this message came with no message's first byte. */
	if (r->nbatch && r->batch[0].end <= end) {
		fdp_close_fds(m->fds, m->nfds);
		m->nfds = 0;
		return fdp__reader_fail(r, -EPROTO);
	}
	m->type = fdp__get16(h + 2);
	m->payload = h + FDP_CHANNEL_HEADER_SIZE;
	m->len = total - FDP_CHANNEL_HEADER_SIZE;
	r->pos += total;
	r->consumed = end;
	return 1;
}

int fdp__reader_eof(struct fdp__reader *r)
{
	if (r->err)
		return r->err;
	if (r->len != r->pos || r->nbatch)
		return fdp__reader_fail(r, -EPROTO);
	return 0;
}
