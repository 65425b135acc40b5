/*
 * Helpers shared by the channel tests: a recognisable stream of messages (message i has type i,
 * a payload derived from i, and i % 4 descriptors, each a duplicate of a known pipe so the
 * receiver can tell which open file it got), and a pump that moves them across.
 */
#ifndef FDP_CHANNEL_TESTLIB_H
#define FDP_CHANNEL_TESTLIB_H

#include "fdpass.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NSOURCES 5

/* Open files whose identity (st_ino) the receiver checks against. */
struct sources {
	int fds[NSOURCES];
	ino_t ino[NSOURCES];
	int spare[NSOURCES];
};

static inline void sources_open(struct sources *s)
{
	for (int i = 0; i < NSOURCES; i++) {
		int p[2];
		struct stat st;

		CHECK(pipe2(p, O_CLOEXEC) == 0);
		s->fds[i] = p[0];
		s->spare[i] = p[1];
		CHECK(fstat(p[0], &st) == 0);
		s->ino[i] = st.st_ino;
	}
}

static inline void sources_close(struct sources *s)
{
	fdp_close_fds(s->fds, NSOURCES);
	fdp_close_fds(s->spare, NSOURCES);
}

static inline size_t msg_nfds(unsigned i)
{
	return i % 4;
}

static inline size_t msg_len(unsigned i)
{
	static const size_t lens[] = {0, 4, 52, 53, 300, 5000};

	return lens[i % (sizeof(lens) / sizeof(lens[0]))];
}

static inline unsigned char msg_byte(unsigned i, size_t k)
{
	return (unsigned char)(i * 7 + k * 13 + 1);
}

/* Send message i (with its fresh duplicates); returns what fdp_channel_send() returned. */
static inline int send_nth(struct fdp_channel *ch, const struct sources *s, unsigned i, int flags)
{
	unsigned char payload[5000];
	int fds[4];
	size_t nfds = msg_nfds(i), len = msg_len(i);
	int r;

	for (size_t k = 0; k < len; k++)
		payload[k] = msg_byte(i, k);
	for (size_t k = 0; k < nfds; k++)
		CHECK((fds[k] = fcntl(s->fds[(i + k) % NSOURCES], F_DUPFD_CLOEXEC, 0)) >= 0);
	r = fdp_channel_send(ch, i & 0xffff, payload, len, fds, nfds, flags);
	if (r < 0)
		fdp_close_fds(fds, nfds); /* not accepted: still ours */
	return r;
}

/* Check that m is message i, whole and with its own descriptors; then release it. */
static inline void check_nth(struct fdp_channel_msg *m, const struct sources *s, unsigned i)
{
	const unsigned char *p = m->payload;

	CHECK_INT(m->type, ==, i & 0xffff);
	CHECK_INT(m->len, ==, msg_len(i));
	for (size_t k = 0; k < m->len; k++)
		CHECK_INT(p[k], ==, msg_byte(i, k));
	CHECK_INT(m->nfds, ==, msg_nfds(i));
	for (size_t k = 0; k < m->nfds; k++) {
		struct stat st;

		CHECK(fstat(m->fds[k], &st) == 0);
		CHECK_INT(st.st_ino, ==, s->ino[(i + k) % NSOURCES]);
		CHECK_INT(fcntl(m->fds[k], F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
	}
	fdp_channel_msg_release(m);
	CHECK_INT(m->nfds, ==, 0);
}

/*
 * Move messages from tx to rx until `expect` have arrived, checking each is the next in order
 * (starting at *next). Flushes tx whenever it wants to write; polls instead of sleeping.
 */
static inline void pump(struct fdp_channel *tx, struct fdp_channel *rx, const struct sources *s,
                        unsigned *next, unsigned expect)
{
	static struct fdp_channel_msg m;

	while (*next < expect) {
		struct pollfd p[2] = {{fdp_channel_fd(rx), POLLIN, 0},
		                      {fdp_channel_fd(tx), POLLOUT, 0}};
		int r;

		if (fdp_channel_wants_write(tx)) {
			r = fdp_channel_flush(tx);
			CHECK(r == 0 || r == -EAGAIN);
		}
		while ((r = fdp_channel_recv(rx, &m)) == 1)
			check_nth(&m, s, (*next)++);
		CHECK_INT(r, ==, -EAGAIN);
		if (*next < expect)
			CHECK(poll(p, fdp_channel_wants_write(tx) ? 2 : 1, 10000) > 0);
	}
}

/* A pair of channels over a fresh socketpair of the given type. */
static inline void channel_pair(int type, struct fdp_channel **a, struct fdp_channel **b,
                                const struct fdp_channel_config *cfg)
{
	int sv[2];

	CHECK_OK(fdp_socketpair(type, sv));
	CHECK_OK(fdp_channel_open(a, sv[0], cfg));
	CHECK_OK(fdp_channel_open(b, sv[1], cfg));
}

#endif
