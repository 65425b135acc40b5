/* Channel internals shared by channel.c (open, send, flush) and channel_recv.c; tests reach for
 * fdp__channel_set_read_max(). Not part of the public API. */
#ifndef FDP_CHANNEL_INTERNAL_H
#define FDP_CHANNEL_INTERNAL_H

#include "fdpass.h"
#include "channel_reader.h"

#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "compat.h"

#if !FDP_HAVE_SENDMMSG
#define mmsghdr fdp__mmsghdr /* the system's may exist, but goes unused */
struct mmsghdr {
	struct msghdr msg_hdr;
	unsigned msg_len;
};
#endif

#define OUT_INLINE    64   /* header + payloads up to 52 bytes stay in the ring slot */
#define OUT_FDS       4    /* descriptors kept in the ring slot; more are malloc'd */
#define WRITE_BATCH   64   /* packets (SEQPACKET) or iovecs (STREAM) per system call */
#define WRITE_IOV     1024 /* SEQPACKET: messages per sendmmsg(), all packets together (UIO_MAXIOV) */
#define PACK_MAX      (64 * 1024) /* SEQPACKET: bytes of packed messages per packet, at most */
#define MAX_PAYLOAD   (1u << 30)
#define CTL_SPACE_FDS (CMSG_SPACE(sizeof(int) * FDP_MAX_FDS))

struct out_msg {
	unsigned char *heap; /* header + payload when they do not fit in inl */
	int *fds_heap;       /* descriptors when more than OUT_FDS */
	uint32_t size;       /* header + payload bytes */
	uint16_t nfds;       /* 0 once they are on their way (closed) */
	uint8_t lent;        /* FDP_CHANNEL_LEND: the caller owns fds; never close them */
	int fds[OUT_FDS];
	unsigned char inl[OUT_INLINE];
};

/* SOCK_SEQPACKET receive: packets taken by one recvmmsg() and not yet handed out. */
#define RECV_BATCH 16

union ctl_in {
	struct cmsghdr align;
	char buf[CTL_SPACE_FDS + 512]; /* room for SCM_CREDENTIALS and friends besides */
};

struct inbox {
	unsigned char *buf; /* RECV_BATCH slots of 12 + max_payload bytes, made on first use */
	union ctl_in *ctl;
	struct mmsghdr mm[RECV_BATCH];
	struct iovec iov[RECV_BATCH];
	unsigned count, next; /* mm[next..count) are not opened yet */
	int drained; /* the last recvmmsg() found fewer packets than slots: the socket is empty */
	struct fdp__packet cur; /* the packet whose messages are being handed out */
};

struct fdp_channel {
	int sock;
	int packet; /* SOCK_SEQPACKET */
	int err;    /* negative errno once broken: nothing more is sent */
	int eof;
	size_t max_payload, high_water, read_max;
	size_t (*max_fds)(void *arg, unsigned type); /* NULL: any number up to FDP_MAX_FDS */
	void *max_fds_arg;
	size_t pack_max; /* SEQPACKET: a packet of several messages stays within this many bytes */
	struct iovec *iov; /* SEQPACKET: WRITE_IOV of them, made on first use */
	struct out_msg *q; /* ring of queued messages */
	size_t qcap, qhead, qlen;
	uint64_t sent;   /* messages that have wholly left (fdp_channel_sent()) */
	size_t head_off; /* bytes of the first queued message already written (STREAM) */
	unsigned char *ctl;
	size_t ctl_cap;
	struct fdp__reader rd;
	struct inbox in;
};

/*
 * Limit every recvmsg() of the channel to max bytes (0: no limit), so a test can make a stream
 * channel read one byte at a time and see messages and descriptors split at every position.
 */
void fdp__channel_set_read_max(struct fdp_channel *ch, size_t max);

/* The channel is broken: remember why (the first error sticks) and close everything queued. */
int fdp__channel_break(struct fdp_channel *ch, int err);

/* Close the descriptors of packets received but not handed out, and free the inbox. */
void fdp__inbox_free(struct fdp_channel *ch);

#endif
