/*
 * The runtime protocol's codec: encode and decode of every message between master and worker
 * (docs/PROTOCOL.md, part 2). Nothing else in fdpass reads or writes these bytes.
 */
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <string.h>

int fdp_proto_fds(unsigned type)
{
	switch (type) {
	case FDP_PROTO_CONN:
	case FDP_PROTO_RETURN:
		return 1;
	case FDP_PROTO_LISTEN:
		return 2;
	case FDP_PROTO_HELLO:
	case FDP_PROTO_READY:
	case FDP_PROTO_ACCEPTS:
	case FDP_PROTO_ACK:
	case FDP_PROTO_DONE:
	case FDP_PROTO_DRAIN:
		return 0;
	default:
		return -1;
	}
}

size_t fdp_proto_max_fds(void *arg, unsigned type)
{
	int n = fdp_proto_fds(type);

	return n < 0 ? FDP_MAX_FDS : (size_t)n;
}

int fdp_proto_check(unsigned type, const void *payload, size_t len, size_t nfds)
{
	int want = fdp_proto_fds(type);
	struct fdp_conn conn;
	struct fdp_proto_hello h;
	struct fdp_proto_listen l;
	uint32_t pid;

	if (want < 0)
		return 0;
	if (nfds != (size_t)want)
		return -EPROTO;
	switch (type) {
	case FDP_PROTO_HELLO:
		return fdp_proto_hello_decode(payload, len, &h);
	case FDP_PROTO_READY:
		return fdp_proto_ready_decode(payload, len, &pid);
	case FDP_PROTO_CONN:
	case FDP_PROTO_RETURN:
		return fdp_proto_conn_decode(payload, len, &conn);
	case FDP_PROTO_ACK:
	case FDP_PROTO_DONE:
		return fdp_proto_ids_count(payload, len) < 0 ? -EPROTO : 0;
	case FDP_PROTO_LISTEN:
		return fdp_proto_listen_decode(payload, len, &l);
	case FDP_PROTO_ACCEPTS:
		return len == FDP_PROTO_ACCEPTS_SIZE ? 0 : -EPROTO;
	default:
		return 0; /* DRAIN: any payload (flags or none), for a newer master to say more */
	}
}

size_t fdp_proto_hello_encode(unsigned char buf[FDP_PROTO_HELLO_SIZE],
                              const struct fdp_proto_hello *h)
{
	memset(buf, 0, FDP_PROTO_HELLO_SIZE);
	fdp__put16(buf, h->version);
	fdp__put32(buf + 4, h->index);
	fdp__put32(buf + 8, h->generation);
	return FDP_PROTO_HELLO_SIZE;
}

int fdp_proto_hello_decode(const void *payload, size_t len, struct fdp_proto_hello *h)
{
	const unsigned char *p = payload;

	/* Longer is fine: a newer master may append fields. */
	if (len < FDP_PROTO_HELLO_SIZE)
		return -EPROTO;
	h->version = fdp__get16(p);
	h->index = fdp__get32(p + 4);
	h->generation = fdp__get32(p + 8);
	return 0;
}

size_t fdp_proto_ready_encode(unsigned char buf[FDP_PROTO_READY_SIZE], uint32_t pid)
{
	fdp__put32(buf, pid);
	return FDP_PROTO_READY_SIZE;
}

int fdp_proto_ready_decode(const void *payload, size_t len, uint32_t *pid)
{
	if (len != FDP_PROTO_READY_SIZE)
		return -EPROTO;
	*pid = fdp__get32(payload);
	return 0;
}

size_t fdp_proto_conn_encode(unsigned char *buf, uint64_t id, unsigned listener, unsigned tag,
                             const void *peer, socklen_t peer_len)
{
	if (peer_len > sizeof(struct sockaddr_storage))
		peer_len = 0;
	fdp__put64(buf, id);
	fdp__put16(buf + 8, (uint16_t)listener);
	fdp__put16(buf + 10, (uint16_t)tag);
	fdp__put16(buf + 12, (uint16_t)peer_len);
	fdp__put16(buf + 14, 0);
	if (peer_len)
		memcpy(buf + FDP_PROTO_CONN_HEADER, peer, peer_len);
	return FDP_PROTO_CONN_HEADER + peer_len;
}

int fdp_proto_conn_decode(const void *payload, size_t len, struct fdp_conn *conn)
{
	const unsigned char *p = payload;
	size_t peer_len;

	if (len < FDP_PROTO_CONN_HEADER)
		return -EPROTO;
	peer_len = fdp__get16(p + 12);
	if (peer_len > sizeof(conn->peer) || FDP_PROTO_CONN_HEADER + peer_len > len)
		return -EPROTO;
	memset(conn, 0, sizeof(*conn));
	conn->id = fdp__get64(p);
	conn->listener = fdp__get16(p + 8);
	conn->tag = fdp__get16(p + 10);
	conn->peer_len = (socklen_t)peer_len;
	memcpy(&conn->peer, p + FDP_PROTO_CONN_HEADER, peer_len);
	return 0;
}

size_t fdp_proto_drain_encode(unsigned char buf[FDP_PROTO_DRAIN_SIZE], uint32_t flags)
{
	fdp__put32(buf, flags);
	return FDP_PROTO_DRAIN_SIZE;
}

uint32_t fdp_proto_drain_flags(const void *payload, size_t len)
{
	return len >= FDP_PROTO_DRAIN_SIZE ? fdp__get32(payload) : 0;
}

size_t fdp_proto_accepts_encode(unsigned char buf[FDP_PROTO_ACCEPTS_SIZE], uint32_t flags)
{
	fdp__put32(buf, flags);
	return FDP_PROTO_ACCEPTS_SIZE;
}

size_t fdp_proto_listen_encode(unsigned char buf[FDP_PROTO_LISTEN_SIZE],
                               const struct fdp_proto_listen *l)
{
	fdp__put16(buf, (uint16_t)l->listener);
	fdp__put16(buf + 2, (uint16_t)l->tag);
	fdp__put32(buf + 4, l->slot);
	fdp__put32(buf + 8, l->state_size);
	fdp__put32(buf + 12, l->flags);
	return FDP_PROTO_LISTEN_SIZE;
}

int fdp_proto_listen_decode(const void *payload, size_t len, struct fdp_proto_listen *l)
{
	const unsigned char *p = payload;

	/* Longer is fine: a newer master may append fields; flags came later. */
	if (len < FDP_PROTO_LISTEN_MIN)
		return -EPROTO;
	l->listener = fdp__get16(p);
	l->tag = fdp__get16(p + 2);
	l->slot = fdp__get32(p + 4);
	l->state_size = fdp__get32(p + 8);
	l->flags = len >= FDP_PROTO_LISTEN_SIZE ? fdp__get32(p + 12) : 0;
	return 0;
}

size_t fdp_proto_ids_encode(unsigned char *buf, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fdp__put64(buf + 8 * i, ids[i]);
	return 8 * n;
}

int fdp_proto_ids_count(const void *payload, size_t len)
{
	if (len == 0 || len % 8 != 0 || len / 8 > FDP_PROTO_MAX_IDS)
		return -EPROTO;
	return (int)(len / 8);
}

uint64_t fdp_proto_id(const void *payload, size_t i)
{
	return fdp__get64((const unsigned char *)payload + 8 * i);
}
