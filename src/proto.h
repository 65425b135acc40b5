/*
 * The runtime's messages between the master and a worker, carried as typed channel messages
 * (include/fdpass.h, channel layer). Every integer is little-endian, as in the channel header.
 * The byte layout is documented in docs/PROTOCOL.md, part 2; keep them in step.
 *
 *   master -> worker                         worker -> master
 *   HELLO  {version, index, generation}      READY  {pid}
 *   CONN   {id, listener, tag, peer} + fd    ACK    {id...}   (batched)
 *   DRAIN  {}                                DONE   {id...}   (batched)
 */
#ifndef FDP_PROTO_H
#define FDP_PROTO_H

#include <endian.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define FDP_PROTO_VERSION 1

enum fdp_proto_type {
	FDP_PROTO_HELLO = 0x100,
	FDP_PROTO_READY = 0x101,
	FDP_PROTO_CONN = 0x102,
	FDP_PROTO_ACK = 0x103,
	FDP_PROTO_DONE = 0x104,
	FDP_PROTO_DRAIN = 0x105,
};

/* HELLO: 16 bytes. */
#define FDP_PROTO_HELLO_SIZE 16
struct fdp_proto_hello {
	uint16_t version;
	uint32_t index;
	uint32_t generation;
};

/* READY: 4 bytes. */
#define FDP_PROTO_READY_SIZE 4

/* CONN: 16 bytes of header, then peer_len bytes of the peer's struct sockaddr; one fd. */
#define FDP_PROTO_CONN_HEADER 16
#define FDP_PROTO_CONN_MAX    (FDP_PROTO_CONN_HEADER + sizeof(struct sockaddr_storage))

/* ACK and DONE: an array of 8-byte ids; at most this many in one message. */
#define FDP_PROTO_MAX_IDS 512

static inline void fdp__put16(unsigned char *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void fdp__put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void fdp__put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint16_t fdp__get16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t fdp__get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t fdp__get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* HELLO: u16 version, u16 zero, u32 index, u32 generation, u32 zero. */
static inline void fdp_proto_hello_encode(unsigned char *p, const struct fdp_proto_hello *h)
{
	memset(p, 0, FDP_PROTO_HELLO_SIZE);
	fdp__put16(p, h->version);
	fdp__put32(p + 4, h->index);
	fdp__put32(p + 8, h->generation);
}

static inline int fdp_proto_hello_decode(const void *payload, size_t len, struct fdp_proto_hello *h)
{
	const unsigned char *p = payload;

	if (len < FDP_PROTO_HELLO_SIZE)
		return -1;
	h->version = fdp__get16(p);
	h->index = fdp__get32(p + 4);
	h->generation = fdp__get32(p + 8);
	return 0;
}

/* CONN: u64 id, u16 listener, u16 tag, u16 peer_len, u16 zero, peer bytes. Returns length. */
static inline size_t fdp_proto_conn_encode(unsigned char *p, uint64_t id, unsigned listener,
                                           unsigned tag, const void *peer, socklen_t peer_len)
{
	if (peer_len > sizeof(struct sockaddr_storage))
		peer_len = 0;
	fdp__put64(p, id);
	fdp__put16(p + 8, (uint16_t)listener);
	fdp__put16(p + 10, (uint16_t)tag);
	fdp__put16(p + 12, (uint16_t)peer_len);
	fdp__put16(p + 14, 0);
	if (peer_len)
		memcpy(p + FDP_PROTO_CONN_HEADER, peer, peer_len);
	return FDP_PROTO_CONN_HEADER + peer_len;
}

#endif
