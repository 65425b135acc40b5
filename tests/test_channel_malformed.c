/*
 * Malformed input written raw to the socket: every case gives -EPROTO, closes every descriptor
 * involved (the harness checks the count), breaks the channel, and reads nothing past it. A bad
 * SOCK_SEQPACKET packet delivers none of its messages, not even valid ones before the fault.
 */
#include "channel_testlib.h"

#include <sys/ioctl.h>

/* A channel header, little-endian, as a list of byte initialisers. */
#define H(ver, flags, type, nfds, res, len)                                                        \
	ver, flags, LE16(type), LE16(nfds), LE16(res), LE16((len)&0xffff), LE16((len) >> 16)
#define LE16(v) ((v)&0xff), (((v) >> 8) & 0xff)

enum { BOTH, STREAM_ONLY, PACKET_ONLY };

struct chunk {
	unsigned char bytes[40];
	size_t len;
	size_t nfds;
};

struct bad_input {
	const char *name;
	int which;
	size_t max_payload;
	int good_first; /* a valid message precedes the bad one and must still arrive */
	int eof;        /* the writer closes after the chunks */
	struct chunk c[3];
};

static const struct bad_input table[] = {
        {"wrong version", BOTH, 0, 0, 0, {{{H(2, 0, 1, 0, 0, 0)}, 12, 0}}},
        {"version zero", BOTH, 0, 1, 0, {{{H(0, 0, 1, 0, 0, 0)}, 12, 0}}},
        {"reserved flags set", BOTH, 0, 0, 0, {{{H(1, 0x80, 1, 0, 0, 0)}, 12, 0}}},
        {"reserved field set", BOTH, 0, 0, 0, {{{H(1, 0, 1, 0, 1, 0)}, 12, 0}}},
        {"more than 253 fds declared", BOTH, 0, 0, 0, {{{H(1, 0, 1, 254, 0, 0)}, 12, 0}}},
        {"length over the limit", BOTH, 16, 0, 0, {{{H(1, 0, 1, 0, 0, 17)}, 12 + 17, 0}}},
        {"length one over the default limit", BOTH, 0, 0, 0, {{{H(1, 0, 1, 0, 0, 65537u)}, 12, 0}}},
        {"length 2^32 - 1", BOTH, 0, 0, 0, {{{H(1, 0, 1, 0, 0, 0xffffffffu)}, 12, 0}}},
        {"fd declared, none attached", BOTH, 0, 0, 0, {{{H(1, 0, 1, 1, 0, 0)}, 12, 0}}},
        {"no fd declared, one attached", BOTH, 0, 0, 0, {{{H(1, 0, 1, 0, 0, 0)}, 12, 1}}},
        {"no fd declared, one attached after a good one",
         BOTH,
         0,
         1,
         0,
         {{{H(1, 0, 1, 0, 0, 2), 'h', 'i'}, 14, 1}}},
        {"two fds declared, one attached", BOTH, 0, 0, 0, {{{H(1, 0, 1, 2, 0, 0)}, 12, 1}}},
        {"one fd declared, three attached", BOTH, 0, 0, 0, {{{H(1, 0, 1, 1, 0, 0)}, 12, 3}}},
        {"packet shorter than a header", PACKET_ONLY, 0, 0, 0, {{{1, 0, 1, 0, 0}, 5, 2}}},
        {"packet longer than its header says",
         PACKET_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 0, 0, 2), 'a', 'b', 'c'}, 15, 0}}},
        {"packet shorter than its header says",
         PACKET_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 0, 0, 10), 'a', 'b', 'c'}, 15, 0}}},
        {"packet over the limit",
         PACKET_ONLY,
         8,
         0,
         0,
         {{{H(1, 0, 1, 0, 0, 20),
            'a',
            'b',
            'c',
            'd',
            'e',
            'f',
            'g',
            'h',
            'i',
            'j',
            'k',
            'l',
            'm',
            'n',
            'o',
            'p',
            'q',
            'r',
            's',
            't'},
           32,
           1}}},
        {"empty packet carrying fds", PACKET_ONLY, 0, 0, 0, {{{0}, 0, 2}}},
        {"packed messages declaring more fds than the packet carries",
         PACKET_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 1, 0, 0), H(1, 0, 2, 1, 0, 0)}, 24, 1}}},
        {"packed messages declaring fewer fds than the packet carries",
         PACKET_ONLY,
         0,
         1,
         0,
         {{{H(1, 0, 1, 1, 0, 0), H(1, 0, 2, 0, 0, 0)}, 24, 2}}},
        {"packed message cut by the packet's end",
         PACKET_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 1, 0, 0), H(1, 0, 2, 0, 0, 5), 'a', 'b'}, 26, 1}, {{'c', 'd', 'e'}, 3, 0}}},
        {"packed header cut by the packet's end",
         PACKET_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 0, 0, 1), 'a', 1, 0, 2, 0}, 18, 0}}},
        {"trailing garbage after packed messages",
         PACKET_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 2, 0, 0), H(1, 0, 2, 0, 0, 0), 0}, 25, 2}}},
        {"second packed message with a bad version",
         PACKET_ONLY,
         0,
         1,
         0,
         {{{H(1, 0, 1, 1, 0, 0), H(2, 0, 2, 0, 0, 0)}, 24, 1}}},
        {"packet of two messages over the payload limit",
         PACKET_ONLY,
         4,
         0,
         0,
         {{{H(1, 0, 1, 0, 0, 4), 'a', 'b', 'c', 'd', H(1, 0, 2, 0, 0, 0)}, 28, 0}}},
        {"fds on a middle byte of the header",
         STREAM_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 1, 0, 0)}, 3, 0}, {{1, 0, 0, 0, 0, 0, 0, 0, 0}, 9, 1}}},
        {"fds on the payload",
         STREAM_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 0, 0, 8), 'a', 'b'}, 14, 0}, {{'c', 'd', 'e', 'f', 'g', 'h'}, 6, 1}}},
        {"fds twice for one message",
         STREAM_ONLY,
         0,
         0,
         0,
         {{{H(1, 0, 1, 1, 0, 4), 'a'}, 13, 1}, {{'b', 'c', 'd'}, 3, 1}}},
        {"fds on the payload of a good message",
         STREAM_ONLY,
         0,
         1,
         0,
         {{{H(1, 0, 1, 0, 0, 4), 'a'}, 13, 0}, {{'b', 'c', 'd'}, 3, 2}}},
        {"message cut short by end of file",
         STREAM_ONLY,
         0,
         0,
         1,
         {{{H(1, 0, 1, 0, 0, 8), 'a', 'b', 'c'}, 15, 0}}},
        {"header cut short by end of file", STREAM_ONLY, 0, 0, 1, {{{1, 0, 1, 0, 0}, 5, 0}}},
        {"fds then end of file", STREAM_ONLY, 0, 0, 1, {{{1}, 1, 1}}},
};

static void send_chunk(int sock, const struct chunk *c)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct iovec iov = {(void *)c->bytes, c->len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[4];

	if (c->nfds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * c->nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * c->nfds);
		for (size_t i = 0; i < c->nfds; i++)
			CHECK((fds[i] = dup(0)) >= 0);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * c->nfds);
	}
	CHECK_INT(sendmsg(sock, &mh, MSG_NOSIGNAL), ==, c->len);
	fdp_close_fds(fds, c->nfds);
}

static void run_case(const struct bad_input *b, int type)
{
	static const unsigned char good[] = {H(1, 0, 5, 0, 0, 2), 'o', 'k'};
	struct fdp_channel_config cfg = {.size = sizeof(cfg), .max_payload = b->max_payload};
	struct fdp_channel *rx;
	struct fdp_channel_msg m;
	int sv[2], pending = 0;

	fprintf(stderr, "case: %s over %s\n", b->name,
	        type == SOCK_STREAM ? "stream" : "seqpacket");
	CHECK_OK(fdp_socketpair(type, sv));
	CHECK_OK(fdp_channel_open(&rx, sv[1], &cfg));
	if (b->good_first)
		CHECK_INT(send(sv[0], good, sizeof(good), MSG_NOSIGNAL), ==, sizeof(good));
	for (int i = 0; i < 3 && (b->c[i].len || b->c[i].nfds); i++)
		send_chunk(sv[0], &b->c[i]);
	if (b->good_first) {
		CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
		CHECK_INT(m.type, ==, 5);
		CHECK_INT(m.len, ==, 2);
	}
	if (b->eof) {
		close(sv[0]);
		sv[0] = -1;
	}
	CHECK_INT(fdp_channel_recv(rx, &m), ==, -EPROTO);
	CHECK_INT(m.nfds, ==, 0);
	/* Broken for good: a valid message after it is not read, and sends fail too. */
	if (sv[0] >= 0) {
		CHECK_INT(send(sv[0], good, sizeof(good), MSG_NOSIGNAL), ==, sizeof(good));
		CHECK_INT(fdp_channel_recv(rx, &m), ==, -EPROTO);
		CHECK(ioctl(fdp_channel_fd(rx), FIONREAD, &pending) == 0);
		CHECK_INT(pending, >=, (int)sizeof(good));
		close(sv[0]);
	}
	CHECK_INT(fdp_channel_send(rx, 1, NULL, 0, NULL, 0, 0), ==, -EPROTO);
	fdp_channel_close(rx);
}

TEST(malformed_inputs_give_eproto_close_every_fd_and_read_nothing_past_them)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].which != PACKET_ONLY)
			run_case(&table[i], SOCK_STREAM);
		if (table[i].which != STREAM_ONLY)
			run_case(&table[i], SOCK_SEQPACKET);
	}
}

TEST(unclaimed_fds_of_a_partial_message_close_with_the_channel)
{
	static const struct chunk first = {{H(1, 0, 1, 2, 0, 4)}, 5, 2};
	struct fdp_channel *rx;
	struct fdp_channel_msg m;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	CHECK_OK(fdp_channel_open(&rx, sv[1], NULL));
	send_chunk(sv[0], &first);
	CHECK_INT(fdp_channel_recv(rx, &m), ==, -EAGAIN); /* holds 2 fds for a message not whole */
	fdp_channel_close(rx);
	close(sv[0]);
}

TEST(zero_length_packet_from_a_live_peer_is_eproto_not_end_of_file)
{
	struct fdp_channel *rx;
	struct fdp_channel_msg m;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&rx, sv[1], NULL));
	CHECK_INT(send(sv[0], "", 0, MSG_NOSIGNAL), ==, 0); /* a packet of no bytes, peer alive */
	CHECK_INT(fdp_channel_recv(rx, &m), ==, -EPROTO);
	fdp_channel_close(rx);
	close(sv[0]);
}

TEST(seqpacket_peer_that_shuts_down_its_sending_side_is_end_of_file)
{
	struct fdp_channel *rx;
	struct fdp_channel_msg m;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&rx, sv[1], NULL));
	CHECK(shutdown(sv[0], SHUT_WR) == 0);
	CHECK_INT(fdp_channel_recv(rx, &m), ==, 0);
	fdp_channel_close(rx);
	close(sv[0]);
}

TEST(seqpacket_peer_that_closes_is_end_of_file)
{
	struct fdp_channel *rx;
	struct fdp_channel_msg m;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&rx, sv[1], NULL));
	close(sv[0]);
	CHECK_INT(fdp_channel_recv(rx, &m), ==, 0);
	fdp_channel_close(rx);
}
