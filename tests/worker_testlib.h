/*
 * The master end of a worker's channel, driven by hand: greet the worker, hand it connections,
 * read what it says, and fill the channel towards the master so that nothing more leaves the
 * worker until the test reads (a master that is slow to read).
 */
#ifndef FDP_WORKER_TESTLIB_H
#define FDP_WORKER_TESTLIB_H

#include "harness.h"
#include "fdpass_runtime.h"
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* The type of the filler messages: one neither side knows, so a runtime would skip it. */
#define FILLER_TYPE 0x1ff

static struct fdp_channel_msg msg;

static inline void send_hello(struct fdp_channel *ch, unsigned index, unsigned gen,
                              unsigned version)
{
	unsigned char hello[FDP_PROTO_HELLO_SIZE];

	fdp_proto_hello_encode(hello, &(struct fdp_proto_hello){(uint16_t)version, index, gen});
	CHECK_OK(fdp_channel_send(ch, FDP_PROTO_HELLO, hello, sizeof(hello), NULL, 0, 0));
}

/* Receive the next message other than filler into msg, waiting up to 5 s for it. */
static inline void master_recv(struct fdp_channel *ch)
{
	for (;;) {
		struct pollfd p = {.fd = fdp_channel_fd(ch), .events = POLLIN};
		int r;

		while ((r = fdp_channel_recv(ch, &msg)) == -EAGAIN)
			CHECK_INT(poll(&p, 1, 5000), ==, 1);
		CHECK_INT(r, ==, 1);
		if (msg.type != FILLER_TYPE)
			return;
		fdp_channel_msg_release(&msg);
	}
}

/* Read everything the master end has now (filler, here) without waiting. */
static inline void master_read_all(struct fdp_channel *ch)
{
	struct pollfd p = {.fd = fdp_channel_fd(ch), .events = POLLIN};
	int r;

	/* The channel may say -EAGAIN once after a batch with more in the socket: ask poll(). */
	do {
		while ((r = fdp_channel_recv(ch, &msg)) == 1)
			fdp_channel_msg_release(&msg);
		CHECK_INT(r, ==, -EAGAIN);
	} while (poll(&p, 1, 0) == 1);
}

/* Is fd's O_NONBLOCK set? */
static inline int nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	CHECK(fl >= 0);
	return (fl & O_NONBLOCK) != 0;
}

/*
 * Hand the worker one end of a fresh socketpair as connection id, with protocol tag; returns
 * the client's end. With keep, *keep gets a copy of the handed-over end, as the master keeps
 * one until the ACK.
 */
static inline int send_conn_keep(struct fdp_channel *master, uint64_t id, unsigned tag, int *keep)
{
	unsigned char buf[FDP_PROTO_CONN_MAX];
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(4242)};
	int sv[2];
	size_t len;

	peer.sin_addr.s_addr = htonl(0x7f000002);
	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	CHECK_OK(fcntl(sv[1], F_SETFL, O_NONBLOCK)); /* as the master hands connections over */
	if (keep)
		CHECK((*keep = fcntl(sv[1], F_DUPFD_CLOEXEC, 0)) >= 0);
	len = fdp_proto_conn_encode(buf, id, 1, tag, &peer, sizeof(peer));
	CHECK_OK(fdp_channel_send(master, FDP_PROTO_CONN, buf, len, &sv[1], 1, 0));
	return sv[0];
}

/*
 * Fill the worker-to-master direction of a SOCK_SEQPACKET channel by writing filler messages
 * on the worker's socket until even an empty one does not fit: after this the worker's sends
 * say -EAGAIN until the master end reads (master_recv() skips the filler).
 */
static inline void fill_towards_master(int worker_sock)
{
	static unsigned char big[FDP_CHANNEL_HEADER_SIZE + 4096];
	size_t sizes[] = {sizeof(big), FDP_CHANNEL_HEADER_SIZE};

	for (size_t k = 0; k < 2; k++) {
		size_t payload = sizes[k] - FDP_CHANNEL_HEADER_SIZE;

		/* The header, little-endian: version, flags, type, nfds, reserved, length. */
		memset(big, 0, FDP_CHANNEL_HEADER_SIZE);
		big[0] = 1;
		big[2] = FILLER_TYPE & 0xff;
		big[3] = FILLER_TYPE >> 8;
		big[8] = (unsigned char)(payload & 0xff);
		big[9] = (unsigned char)(payload >> 8);
		while (send(worker_sock, big, sizes[k], MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
			;
		CHECK_INT(errno, ==, EAGAIN);
	}
}

/*
 * fdp_worker_accept() of a worker watched in ep (fdp_worker_watch()), as an event loop calls
 * it: on -EAGAIN wait on ep (bounded) and pass each event to fdp_worker_event(), which must
 * say each is the worker's. *saw (if not NULL) is set when one had data.u64 want.
 */
static inline int accept_watched(struct fdp_worker *w, int ep, struct fdp_conn *c,
                                 uint64_t want, int *saw)
{
	for (int tries = 0; tries < 20; tries++) {
		struct epoll_event evs[8];
		int fd = fdp_worker_accept(w, c), n;

		if (fd != -EAGAIN)
			return fd;
		n = epoll_wait(ep, evs, 8, 500);
		for (int i = 0; i < n; i++) {
			CHECK_INT(fdp_worker_event(w, &evs[i]), ==, 1);
			if (saw && evs[i].data.u64 == want)
				*saw = 1;
		}
	}
	return -EAGAIN;
}

/*
 * A worker watched in ep reads what the master has sent it already (a LISTEN): an accept says
 * -EAGAIN, and no event of the worker's is left in ep. No wait: it is all in the channel's
 * socket by now.
 */
static inline void read_sent_watched(struct fdp_worker *w, int ep)
{
	struct epoll_event evs[8];
	struct fdp_conn c;
	int n;

	do {
		CHECK_INT(fdp_worker_accept(w, &c), ==, -EAGAIN);
		n = epoll_wait(ep, evs, 8, 0);
		for (int i = 0; i < n; i++)
			CHECK_INT(fdp_worker_event(w, &evs[i]), ==, 1);
	} while (n > 0);
}

#endif
