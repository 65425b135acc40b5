/*
 * libFuzzer target for the runtime protocol's codec (src/runtime/proto). The input is
 *   byte 0: the message type, 0x100 + (byte mod 11): the nine known types and two unknown ones;
 *   byte 1: the descriptor count, byte mod 3;
 *   the rest: the payload.
 * fdp_proto_check() must refuse a wrong descriptor count, pass any unknown type, and otherwise
 * agree with the type's decoder. Whatever decodes must keep the decoder's promises and survive
 * a round trip: encoded again and decoded again, it gives the same fields.
 */
#include "proto.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_hello(const unsigned char *p, size_t len)
{
	struct fdp_proto_hello h, again;
	unsigned char buf[FDP_PROTO_HELLO_SIZE];
	int r = fdp_proto_hello_decode(p, len, &h);

	if (r < 0)
		return r;
	if (fdp_proto_hello_encode(buf, &h) != sizeof(buf) ||
	    fdp_proto_hello_decode(buf, sizeof(buf), &again) < 0)
		abort();
	if (again.version != h.version || again.index != h.index ||
	    again.generation != h.generation)
		abort();
	return 0;
}

static int fuzz_ready(const unsigned char *p, size_t len)
{
	unsigned char buf[FDP_PROTO_READY_SIZE];
	uint32_t pid, again;
	int r = fdp_proto_ready_decode(p, len, &pid);

	if (r < 0)
		return r;
	/* READY has no spare bytes: its encoding is the very payload it came from. */
	if (fdp_proto_ready_encode(buf, pid) != sizeof(buf) || memcmp(buf, p, sizeof(buf)) ||
	    fdp_proto_ready_decode(buf, sizeof(buf), &again) < 0 || again != pid)
		abort();
	return 0;
}

static int fuzz_conn(const unsigned char *p, size_t len)
{
	static unsigned char buf[FDP_PROTO_CONN_MAX];
	struct fdp_conn c, again;
	size_t n;
	int r = fdp_proto_conn_decode(p, len, &c);

	if (r < 0)
		return r;
	/* The worker copies peer_len bytes of c.peer: it must lie inside both. */
	if (c.peer_len > sizeof(struct sockaddr_storage) ||
	    c.peer_len > len - FDP_PROTO_CONN_HEADER)
		abort();
	n = fdp_proto_conn_encode(buf, c.id, c.listener, c.tag, &c.peer, c.peer_len);
	if (n != FDP_PROTO_CONN_HEADER + c.peer_len || fdp_proto_conn_decode(buf, n, &again) < 0)
		abort();
	if (again.id != c.id || again.listener != c.listener || again.tag != c.tag ||
	    again.peer_len != c.peer_len || memcmp(&again.peer, &c.peer, c.peer_len))
		abort();
	return 0;
}

/* What the count must be: 1 to FDP_PROTO_MAX_IDS whole ids, nothing else. */
static int ids_expected(size_t len)
{
	if (len == 0 || len % 8 || len / 8 > FDP_PROTO_MAX_IDS)
		return -EPROTO;
	return (int)(len / 8);
}

static int fuzz_ids(const unsigned char *p, size_t len)
{
	static uint64_t ids[FDP_PROTO_MAX_IDS];
	static unsigned char buf[8 * FDP_PROTO_MAX_IDS];
	int n = fdp_proto_ids_count(p, len);

	if (n != ids_expected(len))
		abort();
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		ids[i] = fdp_proto_id(p, (size_t)i);
	/* Ids have no spare bytes either: encoded again they are the payload. */
	if (fdp_proto_ids_encode(buf, ids, (size_t)n) != len || memcmp(buf, p, len) ||
	    fdp_proto_ids_count(buf, len) != n)
		abort();
	for (int i = 0; i < n; i++)
		if (fdp_proto_id(buf, (size_t)i) != ids[i])
			abort();
	return 0;
}

/* LISTEN: at least 12 bytes; what decodes survives a round trip. */
static int fuzz_listen(const unsigned char *p, size_t len)
{
	struct fdp_proto_listen l, again;
	unsigned char buf[FDP_PROTO_LISTEN_SIZE];

	if (fdp_proto_listen_decode(p, len, &l) < 0) {
		if (len >= FDP_PROTO_LISTEN_MIN)
			abort();
		return -EPROTO;
	}
	if (len < FDP_PROTO_LISTEN_MIN || l.listener > 0xffff || l.tag > 0xffff ||
	    (len < FDP_PROTO_LISTEN_SIZE && l.flags))
		abort();
	if (fdp_proto_listen_encode(buf, &l) != FDP_PROTO_LISTEN_SIZE ||
	    fdp_proto_listen_decode(buf, sizeof(buf), &again) < 0 || again.listener != l.listener ||
	    again.tag != l.tag || again.slot != l.slot || again.state_size != l.state_size ||
	    again.flags != l.flags)
		abort();
	return 0;
}

/* Decode a payload of a type with the right descriptor count: its decoder's verdict. */
static int fuzz_decode(unsigned type, const unsigned char *p, size_t len)
{
	switch (type) {
	case FDP_PROTO_HELLO:
		return fuzz_hello(p, len);
	case FDP_PROTO_READY:
		return fuzz_ready(p, len);
	case FDP_PROTO_CONN:
	case FDP_PROTO_RETURN: /* laid out as a CONN */
		return fuzz_conn(p, len);
	case FDP_PROTO_ACK:
	case FDP_PROTO_DONE:
		return fuzz_ids(p, len) < 0 ? -EPROTO : 0;
	case FDP_PROTO_ACCEPTS:
		return len == FDP_PROTO_ACCEPTS_SIZE ? 0 : -EPROTO;
	case FDP_PROTO_LISTEN:
		return fuzz_listen(p, len);
	default:
		return 0; /* DRAIN and the unknown types: any payload */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned type;
	size_t nfds, len;
	unsigned char *p;
	int want, r;

	if (size < 2)
		return 0;
	type = FDP_PROTO_HELLO + data[0] % 11;
	nfds = data[1] % 3;
	len = size - 2;
	/* A copy of exactly the payload's size, so that AddressSanitizer sees any read past it. */
	if (!(p = malloc(len)) && len)
		abort();
	if (len)
		memcpy(p, data + 2, len);
	want = fdp_proto_fds(type);
	r = fdp_proto_check(type, p, len, nfds);
	if (r != 0 && r != -EPROTO)
		abort();
	if (want >= 0 && nfds != (size_t)want) {
		if (r != -EPROTO)
			abort();
	} else if (fuzz_decode(type, p, len) != r) {
		abort(); /* the check and the decoder disagree on the layout */
	}
	free(p);
	return 0;
}
