/*
 * libFuzzer target for the channel's receive parsers. The input is a script of reads:
 *   byte 0: bit 0 packet mode (SOCK_SEQPACKET), bits 1-2 pick the payload limit;
 *   then chunks of [length u8][descriptor count u8 (mod 6)][length bytes], each one read
 *   that returned those bytes with that many descriptors (duplicates of /dev/null). In packet
 *   mode a chunk is one packet: one or more whole messages sharing the descriptors.
 * After every read the target takes out whole messages, takes some of their descriptors and
 * releases the rest. At the end nothing may be left open: every descriptor the parser was
 * given is closed exactly once, whether it was delivered or the input was rejected.
 */
#include "channel_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int devnull = -1;
static unsigned char given[4096]; /* descriptor numbers handed to the parser this input */

/* A descriptor is open that should not be: say which, then crash. */
static void fdp__fuzz_leak(int fd)
{
	char path[64], target[256] = "?";
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	fprintf(stderr, "leaked fd %d: %s\n", fd, target);
	abort();
}

/* m must lie in buf[0..cap) and keep to the limit; take some descriptors, release the rest. */
static void check_message(struct fdp_channel_msg *m, const unsigned char *buf, size_t cap,
                          size_t max_payload)
{
	const unsigned char *p = m->payload;

	if (m->nfds > FDP_MAX_FDS || m->len > max_payload || m->type > 0xffff)
		abort();
	if (m->len && (p < buf || p + m->len > buf + cap))
		abort();
	for (size_t i = 0; i < m->nfds; i++) {
		if (fcntl(m->fds[i], F_GETFD) < 0 || m->fds[i] == devnull)
			abort(); /* a descriptor handed out was closed, or is not one we sent */
		for (size_t j = 0; j < i; j++)
			if (m->fds[j] == m->fds[i])
				abort(); /* handed out twice */
	}
	for (size_t i = 0; i < m->nfds; i += 2) {
		int fd = fdp_channel_msg_take_fd(m, i);

		if (fd < 0 || fdp_channel_msg_take_fd(m, i) != -EBADF)
			abort();
		close(fd);
	}
	fdp_channel_msg_release(m);
}

/* Take every whole message out; returns < 0 once the reader is broken. */
static int drain(struct fdp__reader *r)
{
	static struct fdp_channel_msg m;
	int n;

	while ((n = fdp__reader_next(r, &m)) == 1)
		check_message(&m, r->buf, r->cap, r->max_payload);
	if (n < 0 && fdp__reader_next(r, &m) != n)
		abort(); /* broken must stay broken */
	return n;
}

/* nfds fresh descriptors into fds, each noted as given. */
static void make_fds(int *fds, size_t nfds)
{
	for (size_t i = 0; i < nfds; i++) {
		fds[i] = fcntl(devnull, F_DUPFD_CLOEXEC, 0);
		if (fds[i] < 0)
			abort();
		if (fds[i] >= (int)sizeof(given))
			abort(); /* more open than any input makes: a leak across inputs */
		given[fds[i]] = 1;
	}
}

/*
 * One packet of len bytes with nfds descriptors, as channel_recv.c takes it: open it, then
 * hand out its messages (all checked before any is handed out). Returns < 0 once broken.
 */
static int one_packet(size_t max_payload, const uint8_t *data, size_t len, size_t nfds)
{
	static struct fdp__packet pk;
	static struct fdp_channel_msg m;
	unsigned char *p;
	int n;

	make_fds(pk.fds, nfds);
	if (len == 0) { /* end of file, with descriptors an illegal one */
		fdp_close_fds(pk.fds, nfds);
		return -1;
	}
	/* A copy of exactly the packet's size, so that AddressSanitizer sees any read past it. */
	if (!(p = malloc(len)))
		abort();
	memcpy(p, data, len);
	n = fdp__packet_open(&pk, max_payload, p, len, nfds);
	if (n < 0) {
		if (n != -EPROTO || pk.nfds || fdp__packet_next(&pk, &m) != 0 || m.nfds)
			abort();
		free(p);
		return -1;
	}
	while (fdp__packet_next(&pk, &m) == 1) {
		check_message(&m, p, len, max_payload);
		n--;
		if (m.nfds)
			abort(); /* check_message() released it */
	}
	free(p);
	if (n != 0 || pk.fd_next != pk.nfds)
		abort(); /* as many messages as open promised, every descriptor handed out */
	return 0;
}

/* One read of len bytes with nfds descriptors, as the channel's socket code would do it. */
static int one_read(struct fdp__reader *r, const uint8_t *p, size_t len, size_t nfds)
{
	int fds[8];

	make_fds(fds, nfds);
	if (len == 0) { /* end of file, with descriptors an illegal one */
		fdp_close_fds(fds, nfds);
		if (nfds)
			return fdp__reader_fail(r, -EPROTO);
		fdp__reader_eof(r);
		return -1;
	}
	while (len > 0) {
		ssize_t n = fdp__reader_feed(r, p, len, fds, nfds);

		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
		nfds = 0;
		if (len && drain(r) < 0)
			return -1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {FDP_CHANNEL_MAX_PAYLOAD, 16, 0, 300};
	struct fdp__reader r;
	size_t i = 1, limit;
	int packet;

	if (size < 1)
		return 0;
	if (devnull < 0 && (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		abort();
	packet = data[0] & 1;
	limit = limits[(data[0] >> 1) & 3];
	if (fdp__reader_init(&r, limit) < 0)
		abort();
	while (i + 2 <= size) {
		size_t len = data[i], nfds = data[i + 1] % 6;

		i += 2;
		if (len > size - i)
			len = size - i;
		if (packet ? one_packet(limit, data + i, len, nfds) < 0
		           : one_read(&r, data + i, len, nfds) < 0 || drain(&r) < 0)
			break;
		i += len;
	}
	if (!r.err)
		fdp__reader_eof(&r);
	fdp__reader_free(&r);
	for (int fd = 0; fd < (int)sizeof(given); fd++)
		if (given[fd] && (given[fd] = 0, fcntl(fd, F_GETFD) >= 0))
			fdp__fuzz_leak(fd);
	if (fcntl(devnull, F_GETFD) < 0)
		abort(); /* closed something it never owned */
	return 0;
}
