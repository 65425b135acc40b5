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
	int packet; /* SOCK_SEQPACKET: every commit is exactly one message */
	int err;    /* negative errno once broken; sticky */
	size_t nbatch;
	struct fdp__rbatch batch[FDP__READER_BATCHES];
};

/* Set up an empty reader. Returns 0 or -ENOMEM. */
int fdp__reader_init(struct fdp__reader *r, size_t max_payload, int packet);

/* Free the buffer and close every descriptor still held. */
void fdp__reader_free(struct fdp__reader *r);

/*
 * Where the next read goes: *p and *space get room for at least the rest of the current
 * message (compacting the buffer if needed). In packet mode the buffer must be empty and the
 * space is exactly 12 + max_payload: a packet that does not fit is truncated (MSG_TRUNC).
 */
void fdp__reader_space(struct fdp__reader *r, unsigned char **p, size_t *space);

/*
 * Account for n > 0 bytes just read at the place fdp__reader_space() gave, and the nfds
 * descriptors that came with them; the reader owns fds[0..nfds) now (closes them on error).
 * Returns 0, or -EPROTO (everything closed, reader broken) when too many batches wait.
 */
int fdp__reader_commit(struct fdp__reader *r, size_t n, const int *fds, size_t nfds);

/*
 * Copy data into the reader as if one read returned it with fds (for tests and the fuzzer).
 * Takes as much as fits in fdp__reader_space() and returns the count taken (take whole
 * messages out with fdp__reader_next() and feed the rest again), or -EPROTO as commit. The
 * reader owns fds afterwards in every case.
 */
ssize_t fdp__reader_feed(struct fdp__reader *r, const void *data, size_t n, const int *fds,
                         size_t nfds);

/*
 * The next whole message: returns 1 with *m filled (payload points into the buffer until the
 * next fdp__reader_space(); m owns its descriptors), 0 when more bytes are needed, or -EPROTO
 * for malformed input (every descriptor held is closed; the reader stays broken).
 */
int fdp__reader_next(struct fdp__reader *r, struct fdp_channel_msg *m);

/*
 * Parse one SOCK_SEQPACKET packet of n bytes at p that came with fds[0..nfds) into *m (payload
 * points into p). Returns 1, or -EPROTO having closed the descriptors: the packet must be
 * exactly one message whose header declares exactly nfds descriptors.
 */
int fdp__packet_parse(size_t max_payload, const unsigned char *p, size_t n, const int *fds,
                      size_t nfds, struct fdp_channel_msg *m);

/* The peer closed: 0 if nothing is left over, else -EPROTO (a message cut short). */
int fdp__reader_eof(struct fdp__reader *r);

/* Break the reader with err: close every descriptor it holds, drop its bytes. Returns err. */
int fdp__reader_fail(struct fdp__reader *r, int err);

#endif
