/*
 * The runtime's messages between the master and a worker, carried as typed channel messages
 * (include/fdpass.h, channel layer): the one codec, used by the master, the worker side and
 * the tests. Every integer is little-endian, as in the channel header. The byte layout is
 * documented in docs/PROTOCOL.md, part 2; keep them in step.
 *
 *   master -> worker                         worker -> master
 *   HELLO  {version, index, generation}      READY  {pid}
 *   CONN   {id, listener, tag, peer} + fd    ACK    {id...}   (batched)
 *   DRAIN  {flags}                           DONE   {id...}   (batched)
 *   LISTEN {listener, tag, slot, size}       RETURN {id, listener, tag, peer} + fd
 *          + socket, state map               ACCEPTS {flags}
 *
 * LISTEN and ACCEPTS are kernel dispatch's (docs/STEERING.md): a worker that says ACCEPTS is
 * given its slot's listening socket of each kernel listener and accepts there itself.
 */
#ifndef FDP_PROTO_H
#define FDP_PROTO_H

/* The runtime's protocol is above the mechanism (docs/ARCHITECTURE.md, the layers). */
#ifdef FDP_LAYER_MECH
#error "the mechanism may not use the runtime protocol"
#endif

#include "fdpass_runtime.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define FDP_PROTO_VERSION 1

enum fdp_proto_type {
	FDP_PROTO_HELLO = 0x100,
	FDP_PROTO_READY = 0x101,
	FDP_PROTO_CONN = 0x102,
	FDP_PROTO_ACK = 0x103,
	FDP_PROTO_DONE = 0x104,
	FDP_PROTO_DRAIN = 0x105,
	FDP_PROTO_RETURN = 0x106,
	FDP_PROTO_ACCEPTS = 0x107,
	FDP_PROTO_LISTEN = 0x108,
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

/* DRAIN: u32 flags (an empty DRAIN, from an older master, has none). */
#define FDP_PROTO_DRAIN_SIZE     4
#define FDP_PROTO_DRAIN_HANDBACK 0x1 /* a successor serves next: hand idle connections back */

/* RETURN: a connection handed back, laid out as a CONN; one fd. */

/* ACCEPTS: u32 flags, none defined yet (sent as zero). */
#define FDP_PROTO_ACCEPTS_SIZE 4

/*
 * LISTEN: u16 listener, u16 tag, u32 slot, u32 the state's size, u32 flags (absent: 0); the
 * socket, the state map. With FDP_PROTO_LISTEN_STEAL the socket is another slot's: the worker
 * does not wait on it, but may take a connection that waits there while that slot's worker
 * has stopped accepting (docs/STEERING.md, "Stealing").
 */
#define FDP_PROTO_LISTEN_SIZE  16
#define FDP_PROTO_LISTEN_MIN   12
#define FDP_PROTO_LISTEN_STEAL 0x1
struct fdp_proto_listen {
	unsigned listener, tag;
	uint32_t slot;       /* the socket's slot in the state's per-slot arrays */
	uint32_t state_size; /* sizeof(struct fdp__steer_state) of the master that sent it */
	uint32_t flags;
};

/*
 * The id of a connection a worker accepted itself (on a LISTEN socket): bit 63 set, which no
 * master's id has (they count from 1). Such an id is never in an ACK or DONE; a RETURN may
 * carry one, and the master gives the connection an id of its own.
 */
#define FDP_PROTO_OWN_ID FDP_CONN_OWN

/*
 * Kernel dispatch's shared state: the value of a one-element BPF array map (BPF_F_MMAPABLE)
 * mapped by the master, read by the steering program for every new connection, and mapped by
 * each worker that accepts on a slot socket (LISTEN carries the map's descriptor). Every word
 * is read and written whole: aligned 32-bit loads and stores, atomic adds; no locks. The
 * layout is part of the protocol (docs/PROTOCOL.md): fields are only ever appended.
 */
#define FDP_PROTO_STEER_SLOTS   1024 /* a group's most slots: the master's most workers */
#define FDP_PROTO_STEER_BUCKETS 4096 /* hash-ip's table, a power of 2 */
struct fdp__steer_state {
	uint32_t rr;                             /* round-robin: the next connection's number */
	uint32_t slots;                          /* the group's slot count (information only) */
	uint32_t live[FDP_PROTO_STEER_SLOTS];    /* non-zero: the slot takes new connections */
	uint32_t count[FDP_PROTO_STEER_SLOTS];   /* least-conn: the slot's open connections */
	uint32_t table[FDP_PROTO_STEER_BUCKETS]; /* hash-ip: bucket -> slot */
	/* The worker's, per slot: connections it accepted itself and has not reported done,
	 * and how many it ever accepted (wrapping; the master reads its progress from it). */
	uint32_t open[FDP_PROTO_STEER_SLOTS];
	uint32_t accepted[FDP_PROTO_STEER_SLOTS];
	/* Connections other workers took from the slot's queue (stealing; wrapping). */
	uint32_t stolen[FDP_PROTO_STEER_SLOTS];
		/* The worker's, per slot: when it last came for connections (monotonic µs, wrapping). */
	uint32_t beat[FDP_PROTO_STEER_SLOTS];
};

/*
 * A slot whose beat is older than this while its counts show a queue (count above open) is
 * stalled: other workers take from its queue.
 */
#define FDP_PROTO_STEER_STALL_US 50

/* A state of size bytes has field: the fields of an older master's state are a prefix. */
#define FDP_PROTO_STATE_HAS(size, field)                                                          \
	((size) >= offsetof(struct fdp__steer_state, field) +                                      \
	                   sizeof(((struct fdp__steer_state *)0)->field))

/* ACK and DONE: an array of 8-byte ids; at most this many in one message. */
#define FDP_PROTO_MAX_IDS 512

/*
 * How many descriptors a message of this type carries: CONN and RETURN exactly one, LISTEN
 * two, every other known type none. Unknown types return -1: a newer peer may say more, and its message is skipped.
 */
int fdp_proto_fds(unsigned type);

/*
 * fdp_proto_fds() as a channel's max_fds (struct fdp_channel_config): a known type may carry
 * exactly as many descriptors as it has, an unknown one any number (it is skipped unread).
 */
size_t fdp_proto_max_fds(void *arg, unsigned type);

/*
 * Check a received message of a known type against its layout (size, descriptor count, ids):
 * 0 when it is well formed or of an unknown type, -EPROTO when not.
 */
int fdp_proto_check(unsigned type, const void *payload, size_t len, size_t nfds);

/* HELLO: u16 version, u16 zero, u32 index, u32 generation, u32 zero. Returns the length. */
size_t fdp_proto_hello_encode(unsigned char buf[FDP_PROTO_HELLO_SIZE],
                              const struct fdp_proto_hello *h);
/* 0, or -EPROTO for a payload too short to be a HELLO. */
int fdp_proto_hello_decode(const void *payload, size_t len, struct fdp_proto_hello *h);

/* READY: u32 pid. Returns the length. */
size_t fdp_proto_ready_encode(unsigned char buf[FDP_PROTO_READY_SIZE], uint32_t pid);
/* 0, or -EPROTO for a payload that is not 4 bytes. */
int fdp_proto_ready_decode(const void *payload, size_t len, uint32_t *pid);

/*
 * CONN: u64 id, u16 listener, u16 tag, u16 peer_len, u16 zero, peer bytes (a peer longer than
 * a sockaddr_storage is sent as none). Returns the length, at most FDP_PROTO_CONN_MAX.
 */
size_t fdp_proto_conn_encode(unsigned char *buf, uint64_t id, unsigned listener, unsigned tag,
                             const void *peer, socklen_t peer_len);
/* Fill conn from a CONN payload: 0, or -EPROTO when it is malformed. */
int fdp_proto_conn_decode(const void *payload, size_t len, struct fdp_conn *conn);

/* DRAIN: u32 flags. Returns the length. */
size_t fdp_proto_drain_encode(unsigned char buf[FDP_PROTO_DRAIN_SIZE], uint32_t flags);
/* The flags of a DRAIN payload: 0 for an empty one (an older master's). Never fails. */
uint32_t fdp_proto_drain_flags(const void *payload, size_t len);

/* ACCEPTS: u32 flags. Returns the length. */
size_t fdp_proto_accepts_encode(unsigned char buf[FDP_PROTO_ACCEPTS_SIZE], uint32_t flags);

/* LISTEN. Returns the length. Decode: 0, or -EPROTO for a payload shorter than 12 bytes. */
size_t fdp_proto_listen_encode(unsigned char buf[FDP_PROTO_LISTEN_SIZE],
                               const struct fdp_proto_listen *l);
int fdp_proto_listen_decode(const void *payload, size_t len, struct fdp_proto_listen *l);

/* ACK and DONE: n ids (n <= FDP_PROTO_MAX_IDS) into buf (8 * n bytes). Returns the length. */
size_t fdp_proto_ids_encode(unsigned char *buf, const uint64_t *ids, size_t n);
/* The number of ids in an ACK or DONE payload (1..FDP_PROTO_MAX_IDS), or -EPROTO. */
int fdp_proto_ids_count(const void *payload, size_t len);
/* Id i of an ACK or DONE payload already counted by fdp_proto_ids_count(). */
uint64_t fdp_proto_id(const void *payload, size_t i);

#endif
