/*
 * The receive parser alone, fed the way the kernel may split a stream: every cut of a valid
 * stream into reads, descriptors coming with the read that holds their message's first byte.
 * Inputs the fuzzer found interesting are kept here as regression tests.
 */
#include "channel_reader.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#define NMSG 4

/* Four messages: (type, nfds, payload) = (1,1,"abc") (2,0,"") (3,2,"hello") (4,0,"z"). */
static size_t build_stream(unsigned char *out, size_t *starts)
{
	static const struct {
		unsigned type, nfds;
		const char *payload;
	} msgs[NMSG] = {{1, 1, "abc"}, {2, 0, ""}, {3, 2, "hello"}, {4, 0, "z"}};
	size_t n = 0;

	for (int i = 0; i < NMSG; i++) {
		size_t len = strlen(msgs[i].payload);
		unsigned char h[12] = {1,
		                       0,
		                       (unsigned char)msgs[i].type,
		                       0,
		                       (unsigned char)msgs[i].nfds,
		                       0,
		                       0,
		                       0,
		                       (unsigned char)len,
		                       0,
		                       0,
		                       0};

		starts[i] = n;
		memcpy(out + n, h, sizeof(h));
		memcpy(out + n + 12, msgs[i].payload, len);
		n += 12 + len;
	}
	return n;
}

static const size_t want_nfds[NMSG] = {1, 0, 2, 0};

/* Feed bytes [a, b) as one read, with the fds of every message starting in it. */
static void feed_range(struct fdp__reader *r, const unsigned char *s, size_t a, size_t b,
                       const size_t *starts)
{
	int fds[4];
	size_t nfds = 0;

	/* Linux ends a read after one batch: a read may hold only one start with descriptors. */
	for (int i = 0; i < NMSG; i++)
		if (starts[i] >= a && starts[i] < b)
			for (size_t k = 0; k < want_nfds[i]; k++)
				CHECK((fds[nfds++] = dup(0)) >= 0);
	CHECK_INT(fdp__reader_feed(r, s + a, b - a, fds, nfds), ==, b - a);
}

static int drain(struct fdp__reader *r, int *got)
{
	struct fdp_channel_msg m;
	int n;

	while ((n = fdp__reader_next(r, &m)) == 1) {
		CHECK_INT(m.type, ==, *got + 1);
		CHECK_INT(m.nfds, ==, want_nfds[*got]);
		fdp_channel_msg_release(&m);
		(*got)++;
	}
	return n;
}

/* Does [a, b) hold the starts of two messages with descriptors? Then it cannot be one read. */
static int impossible_read(size_t a, size_t b, const size_t *starts)
{
	int with = 0;

	for (int i = 0; i < NMSG; i++)
		with += starts[i] >= a && starts[i] < b && want_nfds[i];
	return with > 1;
}

TEST(reader_gets_every_message_for_every_cut_into_three_reads)
{
	unsigned char s[128];
	size_t starts[NMSG], n = build_stream(s, starts);

	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j < n; j++) {
			struct fdp__reader r;
			int got = 0;

			if (impossible_read(0, i, starts) || impossible_read(i, j, starts) ||
			    impossible_read(j, n, starts))
				continue;
			CHECK_OK(fdp__reader_init(&r, 64));
			feed_range(&r, s, 0, i, starts);
			CHECK_INT(drain(&r, &got), ==, 0);
			if (j > i)
				feed_range(&r, s, i, j, starts);
			CHECK_INT(drain(&r, &got), ==, 0);
			feed_range(&r, s, j, n, starts);
			CHECK_INT(drain(&r, &got), ==, 0);
			CHECK_INT(got, ==, NMSG);
			CHECK_INT(fdp__reader_eof(&r), ==, 0);
			fdp__reader_free(&r);
		}
}

TEST(reader_rejects_fds_one_byte_after_a_message_start)
{
	unsigned char s[128];
	size_t starts[NMSG], n = build_stream(s, starts);
	struct fdp__reader r;
	int fd, got = 0;

	CHECK_OK(fdp__reader_init(&r, 64));
	CHECK_INT(fdp__reader_feed(&r, s, 1, NULL, 0), ==, 1);
	CHECK((fd = dup(0)) >= 0);
	CHECK_INT(fdp__reader_feed(&r, s + 1, n - 1, &fd, 1), ==, n - 1);
	CHECK_INT(drain(&r, &got), ==, -EPROTO);
	CHECK_INT(got, ==, 0);
	fdp__reader_free(&r);
}

TEST(reader_moves_a_message_that_straddles_the_buffer_end)
{
	unsigned char s[128];
	size_t starts[NMSG], n = build_stream(s, starts);
	struct fdp__reader r;

	CHECK_OK(fdp__reader_init(&r, 16));
	/* Many rounds through a 16 KiB buffer: messages straddle the end and are moved back. */
	for (int round = 0; round < 2000; round++) {
		int got = 0;

		for (size_t a = 0; a < n; a += 5) {
			size_t b = a + 5 < n ? a + 5 : n;

			feed_range(&r, s, a, b, starts);
			CHECK_INT(drain(&r, &got), ==, 0);
		}
		CHECK_INT(got, ==, NMSG);
	}
	fdp__reader_free(&r);
}

/* Open bytes [a, b) of the stream as one packet with the fds its messages declare. */
static int open_packet(struct fdp__packet *pk, size_t max_payload, const unsigned char *s, size_t a,
                       size_t b, const size_t *starts, size_t extra_fds)
{
	size_t nfds = 0;

	for (int i = 0; i < NMSG; i++)
		if (starts[i] >= a && starts[i] < b)
			for (size_t k = 0; k < want_nfds[i]; k++)
				CHECK((pk->fds[nfds++] = dup(0)) >= 0);
	for (size_t k = 0; k < extra_fds; k++)
		CHECK((pk->fds[nfds++] = dup(0)) >= 0);
	return fdp__packet_open(pk, max_payload, s + a, b - a, nfds);
}

/* Take every message out of an open packet, checking they are messages first, first + 1, ... */
static void drain_packet(struct fdp__packet *pk, const unsigned char *s, int first, int count)
{
	struct fdp_channel_msg m;
	int got = 0;

	while (fdp__packet_next(pk, &m) == 1) {
		CHECK_INT(m.type, ==, first + got + 1);
		CHECK_INT(m.nfds, ==, want_nfds[first + got]);
		CHECK((const unsigned char *)m.payload > s);
		for (size_t k = 0; k < m.nfds; k++)
			CHECK(fcntl(m.fds[k], F_GETFD) >= 0);
		fdp_channel_msg_release(&m);
		got++;
	}
	CHECK_INT(got, ==, count);
	CHECK_INT(fdp__packet_next(pk, &m), ==, 0);
	CHECK_INT(m.nfds, ==, 0);
}

TEST(packet_of_one_message_each_gives_that_message)
{
	static struct fdp__packet pk;
	unsigned char s[128];
	size_t starts[NMSG], n = build_stream(s, starts);

	for (int i = 0; i < NMSG; i++) {
		size_t end = i + 1 < NMSG ? starts[i + 1] : n;

		CHECK_INT(open_packet(&pk, 64, s, starts[i], end, starts, 0), ==, 1);
		drain_packet(&pk, s, i, 1);
	}
}

TEST(packet_of_several_messages_hands_out_fds_in_message_order)
{
	static struct fdp__packet pk;
	unsigned char s[128];
	size_t starts[NMSG], n = build_stream(s, starts);

	/* Every run of consecutive messages, as one packet. */
	for (int i = 0; i < NMSG; i++)
		for (int j = i + 1; j <= NMSG; j++) {
			size_t end = j < NMSG ? starts[j] : n;

			CHECK_INT(open_packet(&pk, 64, s, starts[i], end, starts, 0), ==, j - i);
			drain_packet(&pk, s, i, j - i);
		}
}

TEST(packet_dropped_half_way_closes_the_fds_not_handed_out)
{
	static struct fdp__packet pk;
	unsigned char s[128];
	size_t starts[NMSG], n = build_stream(s, starts);
	struct fdp_channel_msg m;

	CHECK_INT(open_packet(&pk, 64, s, 0, n, starts, 0), ==, NMSG);
	CHECK_INT(fdp__packet_next(&pk, &m), ==, 1);
	fdp_channel_msg_release(&m);
	fdp__packet_drop(&pk); /* message 3's two descriptors: the harness checks they closed */
	CHECK_INT(fdp__packet_next(&pk, &m), ==, 0);
}

TEST(packet_whose_fds_do_not_add_up_or_whose_bytes_do_not_frame_is_refused)
{
	static struct fdp__packet pk;
	unsigned char s[128], junk[128];
	size_t starts[NMSG], n = build_stream(s, starts);
	struct fdp_channel_msg m;

	/* One descriptor too many, or one too few (message 3's second is missing). */
	CHECK_INT(open_packet(&pk, 64, s, 0, n, starts, 1), ==, -EPROTO);
	CHECK_INT(fdp__packet_next(&pk, &m), ==, 0);
	CHECK((pk.fds[0] = dup(0)) >= 0 && (pk.fds[1] = dup(0)) >= 0);
	CHECK_INT(fdp__packet_open(&pk, 64, s, n, 2), ==, -EPROTO);
	/* The last message cut one byte short, a header cut short, trailing garbage. */
	CHECK_INT(open_packet(&pk, 64, s, 0, n - 1, starts, 0), ==, -EPROTO);
	CHECK_INT(open_packet(&pk, 64, s, 0, starts[3] + 5, starts, 0), ==, -EPROTO);
	memcpy(junk, s, n);
	junk[n] = 1;
	CHECK_INT(open_packet(&pk, 64, junk, 0, n + 1, starts, 0), ==, -EPROTO);
	/* A bad header in the middle refuses the messages before it too. */
	memcpy(junk, s, n);
	junk[starts[2] + 1] = 0x80;
	CHECK_INT(open_packet(&pk, 64, junk, 0, n, starts, 0), ==, -EPROTO);
	/* Longer than one message of the largest payload: bigger than any receiver buffer. */
	CHECK_INT(open_packet(&pk, 8, s, 0, n, starts, 0), ==, -EPROTO);
	CHECK_INT(open_packet(&pk, 64, s, 0, 0, starts, 0), ==, -EPROTO);
	CHECK_INT(fdp__packet_next(&pk, &m), ==, 0);
}

TEST(reader_refuses_more_batches_than_messages_can_claim)
{
	unsigned char h[12] = {1, 0, 1, 0, 1, 0, 0, 0, 200, 0, 0, 0};
	struct fdp__reader r;
	int fd;

	CHECK_OK(fdp__reader_init(&r, 1000));
	CHECK((fd = dup(0)) >= 0);
	CHECK_INT(fdp__reader_feed(&r, h, 12, &fd, 1), ==, 12);
	for (int i = 1; i < FDP__READER_BATCHES; i++) {
		CHECK((fd = dup(0)) >= 0);
		CHECK_INT(fdp__reader_feed(&r, h, 1, &fd, 1), ==, 1);
	}
	CHECK((fd = dup(0)) >= 0);
	CHECK_INT(fdp__reader_feed(&r, h, 1, &fd, 1), ==, -EPROTO);
	fdp__reader_free(&r);
}
