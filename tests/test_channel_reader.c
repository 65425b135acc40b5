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
			CHECK_OK(fdp__reader_init(&r, 64, 0));
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

	CHECK_OK(fdp__reader_init(&r, 64, 0));
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

	CHECK_OK(fdp__reader_init(&r, 16, 0));
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

TEST(reader_in_packet_mode_takes_one_message_per_packet)
{
	unsigned char s[128];
	size_t starts[NMSG], n = build_stream(s, starts);
	struct fdp__reader r;
	int got = 0;

	CHECK_OK(fdp__reader_init(&r, 64, 1));
	for (int i = 0; i < NMSG; i++) {
		size_t end = i + 1 < NMSG ? starts[i + 1] : n;

		feed_range(&r, s, starts[i], end, starts);
		CHECK_INT(drain(&r, &got), ==, 0);
	}
	CHECK_INT(got, ==, NMSG);
	/* Two messages in one packet is not a packet. */
	feed_range(&r, s, starts[1], starts[3], starts);
	CHECK_INT(drain(&r, &got), ==, -EPROTO);
	fdp__reader_free(&r);
}

TEST(reader_refuses_more_batches_than_messages_can_claim)
{
	unsigned char h[12] = {1, 0, 1, 0, 1, 0, 0, 0, 200, 0, 0, 0};
	struct fdp__reader r;
	int fd;

	CHECK_OK(fdp__reader_init(&r, 1000, 0));
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
