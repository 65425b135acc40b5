/*
 * The channel's receive parser, separate from the socket so that tests and the fuzzer can drive
 * it with any split of bytes and descriptors. The socket code reads into the reader's buffer
 * (fdp__reader_space(), then fdp__reader_commit() with the descriptors that came with those
 * bytes) and takes whole messages out with fdp__reader_next().
 *
 * Descriptors are matched to messages by stream position: every batch of descriptors remembers
 * the byte range [start, end) of the read that delivered it. The sender puts a message's
 * descriptors on the message's first byte, so the batch for a message that declares nfds must
 * cover that message's first byte and hold exactly nfds descriptors; a batch that no message
 * start claims is a protocol error. Linux ends a stream read right after the bytes that carry
 * descriptors but may return earlier descriptor-less bytes with them, so a batch may cover the
 * starts of several messages; only one of them (the one declaring nfds) may claim it.
 *
 * A SOCK_SEQPACKET packet needs no reassembly: fdp__packet_open() checks the whole packet (one
 * or more whole messages, descriptors adding up) before fdp__packet_next() hands any of it out.
 */
#ifndef FDP_CHANNEL_READER_H
#define FDP_CHANNEL_READER_H

#include "fdpass.h"

#include <stdint.h>
#include <sys/types.h>

/* Batches waiting for their message. Linux delivers at most one per read; more is an attack. */
#define FDP__READER_BATCHES 4

struct fdp__rbatch {
	uint64_t start, end; /* stream offsets of the read that delivered them */
	size_t nfds;
	int fds[FDP_MAX_FDS];
};

struct fdp__reader {
	unsigned char *buf;
	size_t cap;        /* 12 + max_payload at least: a whole message always fits */
	size_t pos, len;   /* unread bytes are buf[pos..len) */
	uint64_t consumed; /* stream offset of buf[pos] */
	size_t max_payload;
	int err; /* negative errno once broken; sticky */
	size_t nbatch;
	struct fdp__rbatch batch[FDP__READER_BATCHES];
};

/* Set up an empty stream reader. Returns 0 or -ENOMEM. */
int fdp__reader_init(struct fdp__reader *r, size_t max_payload);

/* Free the buffer and close every descriptor still held. */
void fdp__reader_free(struct fdp__reader *r);

/*
 * Where the next read goes: *p and *space get room for at least the rest of the current
 * message (compacting the buffer if needed).
 */
void fdp__reader_space(struct fdp__reader *r, unsigned char **p, size_t *space);

/*
 * Account for n > 0 bytes just read at the place fdp__reader_space() gave, and the nfds
 * descriptors that came with them; the reader owns fds[0..nfds) now (closes them on error).
 * Returns 0, or -EPROTO (everything closed, reader broken) when too many batches wait.
 */
int fdp__reader_commit(struct fdp__reader *r, size_t n, int *fds, size_t nfds);

/*
 * Copy data into the reader as if one read returned it with fds (for tests and the fuzzer).
 * Takes as much as fits in fdp__reader_space() and returns the count taken (take whole
 * messages out with fdp__reader_next() and feed the rest again), or -EPROTO as commit. The
 * reader owns fds afterwards in every case.
 */
ssize_t fdp__reader_feed(struct fdp__reader *r, const void *data, size_t n, int *fds,
                         size_t nfds);

/*
 * The next whole message: returns 1 with *m filled (payload points into the buffer until the
 * next fdp__reader_space(); m owns its descriptors), 0 when more bytes are needed, or -EPROTO
 * for malformed input (every descriptor held is closed; the reader stays broken).
 */
int fdp__reader_next(struct fdp__reader *r, struct fdp_channel_msg *m);

/*
 * One received SOCK_SEQPACKET packet: whole messages back to back, and the packet's descriptors
 * in message order, each message taking as many as its header declares.
 */
struct fdp__packet {
	const unsigned char *p;
	size_t len, off;      /* the next message starts at p[off] */
	size_t nfds, fd_next; /* fds[fd_next..nfds) are not handed out yet */
	int fds[FDP_MAX_FDS];
};

/*
 * Take the packet of n bytes at p (not copied: it must outlive the packet's messages) that came
 * with pk->fds[0..nfds), which pk owns from here on. Returns the number of messages, or -EPROTO
 * with every descriptor closed and pk empty: the packet must be at most 12 + max_payload bytes,
 * be one or more whole messages with valid headers, and their nfds must add up to nfds.
 */
int fdp__packet_open(struct fdp__packet *pk, size_t max_payload, const unsigned char *p, size_t n,
                     size_t nfds);

/* The packet's next message into *m (payload points into the packet): 1, or 0 when none is left. */
int fdp__packet_next(struct fdp__packet *pk, struct fdp_channel_msg *m);

/* Close the descriptors not handed out yet and leave the packet empty. */
void fdp__packet_drop(struct fdp__packet *pk);

/* The peer closed: 0 if nothing is left over, else -EPROTO (a message cut short). */
int fdp__reader_eof(struct fdp__reader *r);

/* Break the reader with err: close every descriptor it holds, drop its bytes. Returns err. */
int fdp__reader_fail(struct fdp__reader *r, int err);

#endif
