/*
 * Packing on SOCK_SEQPACKET: a flush puts consecutive queued messages into one packet, their
 * descriptors in message order, within FDP_MAX_FDS descriptors and the packet byte limit. A raw
 * reader checks the packets on the wire; a channel reader checks what the application gets.
 */
#include "channel_testlib.h"

/* One packet as it came off the wire. */
struct raw_packet {
	unsigned char data[70000];
	size_t len;
	int fds[FDP_MAX_FDS];
	size_t nfds;
};

/* Read one packet without waiting; returns 1, or 0 when the socket is empty. */
static int raw_recv(int sock, struct raw_packet *p)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * FDP_MAX_FDS)];
	} ctl;
	struct iovec iov = {p->data, sizeof(p->data)};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

	if (n < 0 && errno == EAGAIN)
		return 0;
	CHECK(n > 0);
	CHECK(!(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)));
	p->len = (size_t)n;
	p->nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		CHECK(c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS);
		CHECK_INT(p->nfds, ==, 0); /* one SCM_RIGHTS message per packet */
		p->nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(p->fds, CMSG_DATA(c), p->nfds * sizeof(int));
	}
	return 1;
}

/*
 * Walk the messages of p, checking each is the next expected (message *next of the testlib
 * stream, with its descriptors in order); close the descriptors. Returns the message count.
 */
static unsigned raw_check(struct raw_packet *p, const struct sources *s, unsigned *next)
{
	size_t off = 0, fd = 0;
	unsigned count = 0;

	while (off < p->len) {
		const unsigned char *h = p->data + off;
		size_t len = (size_t)h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16;
		size_t nfds = (size_t)h[4] | (size_t)h[5] << 8;
		unsigned i = (*next)++;

		CHECK_INT(off + FDP_CHANNEL_HEADER_SIZE + len, <=, p->len);
		CHECK_INT(h[2] | h[3] << 8, ==, i & 0xffff);
		CHECK_INT(len, ==, msg_len(i));
		CHECK_INT(nfds, ==, msg_nfds(i));
		for (size_t k = 0; k < nfds; k++, fd++) {
			struct stat st;

			CHECK(fstat(p->fds[fd], &st) == 0);
			CHECK_INT(st.st_ino, ==, s->ino[(i + k) % NSOURCES]);
		}
		off += FDP_CHANNEL_HEADER_SIZE + len;
		count++;
	}
	CHECK_INT(fd, ==, p->nfds);
	fdp_close_fds(p->fds, p->nfds);
	return count;
}

/* A channel sending on a SOCK_SEQPACKET pair whose other end is read raw. */
static struct fdp_channel *raw_pair(int *raw, int sndbuf, const struct fdp_channel_config *cfg)
{
	struct fdp_channel *tx;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	if (sndbuf)
		CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
	CHECK_OK(fdp_channel_open(&tx, sv[0], cfg));
	*raw = sv[1];
	return tx;
}

TEST(flush_packs_queued_messages_with_and_without_fds_into_one_packet)
{
	static struct raw_packet p;
	struct fdp_channel *tx;
	struct sources s;
	unsigned next = 0;
	int raw;

	sources_open(&s);
	tx = raw_pair(&raw, 0, NULL);
	/* Payloads of 0 to 5000 bytes, 0 to 3 descriptors: 18 messages, under 64 KiB in all. */
	for (unsigned i = 0; i < 18; i++)
		CHECK_OK(send_nth(tx, &s, i, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_flush(tx));
	CHECK_INT(raw_recv(raw, &p), ==, 1);
	CHECK_INT(raw_check(&p, &s, &next), ==, 18);
	CHECK_INT(raw_recv(raw, &p), ==, 0);
	fdp_channel_close(tx);
	close(raw);
	sources_close(&s);
}

TEST(packed_messages_arrive_in_order_with_their_own_fds)
{
	struct fdp_channel *tx, *rx;
	struct sources s;
	unsigned sent = 0, got = 0;

	sources_open(&s);
	channel_pair(SOCK_SEQPACKET, &tx, &rx, NULL);
	/* Bursts of every size from 1 to 40, each flushed as a whole. */
	for (unsigned burst = 1; burst <= 40; burst++) {
		for (unsigned k = 0; k < burst; k++, sent++)
			CHECK_OK(send_nth(tx, &s, sent, k + 1 < burst ? FDP_CHANNEL_MORE : 0));
		pump(tx, rx, &s, &got, sent);
	}
	fdp_channel_close(tx);
	fdp_channel_close(rx);
	sources_close(&s);
}

/* Message i of a stream of one-descriptor, empty messages: what the 253 limit is about. */
static int send_one_fd(struct fdp_channel *tx, const struct sources *s, unsigned i, int flags)
{
	int fd = fcntl(s->fds[i % NSOURCES], F_DUPFD_CLOEXEC, 0);
	int r;

	CHECK(fd >= 0);
	r = fdp_channel_send(tx, i, NULL, 0, &fd, 1, flags);
	if (r < 0)
		close(fd);
	return r;
}

TEST(packing_keeps_to_253_fds_per_packet)
{
	static struct raw_packet p;
	struct fdp_channel *tx;
	struct sources s;
	unsigned i = 0, fd = 0;
	int raw;

	sources_open(&s);
	tx = raw_pair(&raw, 0, NULL);
	for (unsigned k = 0; k < 300; k++)
		CHECK_OK(send_one_fd(tx, &s, k, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_flush(tx));
	/* 253 in the first packet, the other 47 in the second, each with its own descriptor. */
	for (size_t want = 253; want; want = i < 300 ? 300 - i : 0) {
		CHECK_INT(raw_recv(raw, &p), ==, 1);
		CHECK_INT(p.len, ==, want * FDP_CHANNEL_HEADER_SIZE);
		CHECK_INT(p.nfds, ==, want);
		for (size_t k = 0; k < p.nfds; k++, i++) {
			struct stat st;

			CHECK_INT(p.data[k * FDP_CHANNEL_HEADER_SIZE + 2], ==, i & 0xff);
			CHECK(fstat(p.fds[k], &st) == 0);
			CHECK_INT(st.st_ino, ==, s.ino[i % NSOURCES]);
		}
		fd += (unsigned)p.nfds;
		fdp_close_fds(p.fds, p.nfds);
	}
	CHECK_INT(fd, ==, 300);
	CHECK_INT(raw_recv(raw, &p), ==, 0);
	fdp_channel_close(tx);
	close(raw);
	sources_close(&s);
}

TEST(three_hundred_one_fd_messages_flushed_at_once_all_arrive)
{
	static struct fdp_channel_msg m;
	struct fdp_channel *tx, *rx;
	struct sources s;
	unsigned got = 0;
	int r;

	sources_open(&s);
	channel_pair(SOCK_SEQPACKET, &tx, &rx, NULL);
	for (unsigned k = 0; k < 300; k++)
		CHECK_OK(send_one_fd(tx, &s, k, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_flush(tx));
	while ((r = fdp_channel_recv(rx, &m)) == 1) {
		struct stat st;

		CHECK_INT(m.type, ==, got);
		CHECK_INT(m.nfds, ==, 1);
		CHECK(fstat(m.fds[0], &st) == 0);
		CHECK_INT(st.st_ino, ==, s.ino[got % NSOURCES]);
		fdp_channel_msg_release(&m);
		got++;
	}
	CHECK_INT(r, ==, -EAGAIN);
	CHECK_INT(got, ==, 300);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
	sources_close(&s);
}

TEST(packing_keeps_to_the_byte_limit_and_a_larger_message_goes_alone)
{
	static struct raw_packet p;
	static unsigned char big[20000];
	struct fdp_channel *tx;
	int raw, sndbuf = 32768; /* Linux doubles it: 65536, a quarter of it is 16384 */
	size_t sizes[8], n = 0;

	tx = raw_pair(&raw, sndbuf, NULL);
	/* 3 x (12 + 5000) fit in 16384 bytes, a fourth would not; 12 + 20000 is over on its own. */
	for (int k = 0; k < 4; k++)
		CHECK_OK(fdp_channel_send(tx, 1, big, 5000, NULL, 0, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_send(tx, 2, big, sizeof(big), NULL, 0, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_send(tx, 3, NULL, 0, NULL, 0, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_send(tx, 3, NULL, 0, NULL, 0, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_flush(tx));
	while (raw_recv(raw, &p) == 1)
		sizes[n++] = p.len;
	/* The fourth 5012-byte message cannot join the big one: it leaves alone too. */
	CHECK_INT(n, ==, 4);
	CHECK_INT(sizes[0], ==, 3 * 5012);
	CHECK_INT(sizes[1], ==, 5012);
	CHECK_INT(sizes[2], ==, 12 + sizeof(big));
	CHECK_INT(sizes[3], ==, 2 * 12);
	fdp_channel_close(tx);
	close(raw);
}

TEST(packets_stay_within_one_message_of_the_payload_limit)
{
	static struct raw_packet p;
	struct fdp_channel_config cfg = {.size = sizeof(cfg), .max_payload = 100};
	struct fdp_channel *tx;
	struct sources s;
	unsigned next = 0, count[4] = {0}, n = 0;
	int raw;

	sources_open(&s);
	tx = raw_pair(&raw, 0, &cfg);
	/* Empty one-descriptor messages of 12 bytes: 9 fit in 12 + 100 bytes, 10 would not. */
	for (unsigned k = 0; k < 20; k++)
		CHECK_OK(send_one_fd(tx, &s, k, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_flush(tx));
	while (raw_recv(raw, &p) == 1) {
		CHECK_INT(p.len, <=, 112);
		CHECK(n < 4);
		count[n++] = (unsigned)p.nfds;
		for (size_t k = 0; k < p.nfds; k++, next++)
			CHECK_INT(p.data[k * FDP_CHANNEL_HEADER_SIZE + 2], ==, next);
		fdp_close_fds(p.fds, p.nfds);
	}
	CHECK_INT(n, ==, 3);
	CHECK_INT(count[0], ==, 9);
	CHECK_INT(count[1], ==, 9);
	CHECK_INT(count[2], ==, 2);
	fdp_channel_close(tx);
	close(raw);
	sources_close(&s);
}

TEST(one_at_a_time_sends_one_message_per_packet)
{
	static struct raw_packet p;
	struct fdp_channel *tx;
	struct sources s;
	unsigned next = 0;
	int raw;

	sources_open(&s);
	tx = raw_pair(&raw, 0, NULL);
	for (unsigned i = 0; i < 12; i++) {
		CHECK_OK(send_nth(tx, &s, i, 0));
		CHECK_INT(fdp_channel_queued(tx), ==, 0);
	}
	for (unsigned i = 0; i < 12; i++) {
		CHECK_INT(raw_recv(raw, &p), ==, 1);
		CHECK_INT(raw_check(&p, &s, &next), ==, 1);
	}
	CHECK_INT(raw_recv(raw, &p), ==, 0);
	fdp_channel_close(tx);
	close(raw);
	sources_close(&s);
}

TEST(closing_a_channel_half_way_through_a_packet_closes_the_fds_not_handed_out)
{
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;
	struct sources s;

	sources_open(&s);
	channel_pair(SOCK_SEQPACKET, &tx, &rx, NULL);
	for (unsigned i = 0; i < 12; i++)
		CHECK_OK(send_nth(tx, &s, i, FDP_CHANNEL_MORE));
	CHECK_OK(fdp_channel_flush(tx));
	CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
	check_nth(&m, &s, 0);
	CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
	check_nth(&m, &s, 1);
	fdp_channel_close(rx); /* messages 2..11 and their descriptors wait in the packet */
	fdp_channel_close(tx);
	sources_close(&s);
}
