/*
 * A channel's configuration: the size field that lets the struct grow without breaking older
 * programs, and the per-type limit on descriptors a received message may carry.
 */
#include "channel_testlib.h"

#include <stddef.h>

static const int types[] = {SOCK_SEQPACKET, SOCK_STREAM};

/* Type 7 may carry no descriptor, type 8 one; every other type any number. */
static size_t seven_none_eight_one(void *arg, unsigned type)
{
	CHECK(arg == (void *)types);
	return type == 7 ? 0 : type == 8 ? 1 : FDP_MAX_FDS;
}

/* Wait for and receive the next message on ch. */
static int recv_wait(struct fdp_channel *ch, struct fdp_channel_msg *m)
{
	int r;

	while ((r = fdp_channel_recv(ch, m)) == -EAGAIN)
		fdp_test_wait_readable(fdp_channel_fd(ch), 10000);
	return r;
}

static void send_with_pipe_end(struct fdp_channel *ch, unsigned type)
{
	int p[2];

	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK_OK(fdp_channel_send(ch, type, "x", 1, &p[1], 1, 0)); /* the channel owns p[1] */
	close(p[0]);
}

TEST(channel_takes_a_message_with_as_many_descriptors_as_its_type_allows)
{
	static struct fdp_channel_msg m;
	struct fdp_channel_config cfg = {.size = sizeof(cfg),
	                                 .max_fds = seven_none_eight_one,
	                                 .max_fds_arg = (void *)types};

	for (size_t t = 0; t < 2; t++) {
		struct fdp_channel *tx, *rx;

		channel_pair(types[t], &tx, &rx, &cfg);
		send_with_pipe_end(tx, 8);
		CHECK_OK(fdp_channel_send(tx, 7, "y", 1, NULL, 0, 0));
		CHECK_INT(recv_wait(rx, &m), ==, 1);
		CHECK_INT(m.type, ==, 8);
		CHECK_INT(m.nfds, ==, 1);
		fdp_channel_msg_release(&m);
		CHECK_INT(recv_wait(rx, &m), ==, 1);
		CHECK_INT(m.type, ==, 7);
		CHECK_INT(m.nfds, ==, 0);
		fdp_channel_close(tx);
		fdp_channel_close(rx);
	}
}

TEST(channel_refuses_a_message_with_more_descriptors_than_its_type_allows)
{
	static struct fdp_channel_msg m;
	struct fdp_channel_config cfg = {.size = sizeof(cfg),
	                                 .max_fds = seven_none_eight_one,
	                                 .max_fds_arg = (void *)types};

	for (size_t t = 0; t < 2; t++) {
		struct fdp_channel *tx, *rx;
		int before;

		channel_pair(types[t], &tx, &rx, &cfg);
		send_with_pipe_end(tx, 7);
		CHECK_OK(fdp_channel_flush_wait(tx, 10000));
		before = fdp_test_fd_count();
		CHECK_INT(recv_wait(rx, &m), ==, -EPROTO);
		CHECK_INT(m.nfds, ==, 0);
		CHECK_INT(fdp_test_fd_count(), <=, before); /* the descriptor was closed */
		CHECK_INT(fdp_channel_recv(rx, &m), ==, -EPROTO); /* and the channel is broken */
		fdp_channel_close(tx);
		fdp_channel_close(rx);
	}
}

TEST(channel_with_fds_none_refuses_any_descriptor)
{
	static struct fdp_channel_msg m;
	struct fdp_channel_config cfg = {.size = sizeof(cfg), .max_fds = fdp_channel_fds_none};
	struct fdp_channel *tx, *rx;

	channel_pair(SOCK_SEQPACKET, &tx, &rx, &cfg);
	CHECK_OK(fdp_channel_send(tx, 1, "a", 1, NULL, 0, 0));
	send_with_pipe_end(tx, 2);
	CHECK_INT(recv_wait(rx, &m), ==, 1);
	CHECK_INT(m.type, ==, 1);
	CHECK_INT(recv_wait(rx, &m), ==, -EPROTO);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}

/* fdp_channel_open() with cfg on a fresh socketpair; the other end is closed. */
static int open_with(const struct fdp_channel_config *cfg)
{
	struct fdp_channel *ch;
	int sv[2], r;

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	close(sv[1]);
	r = fdp_channel_open(&ch, sv[0], cfg); /* takes sv[0], also on failure */
	if (r == 0)
		fdp_channel_close(ch);
	else
		CHECK(ch == NULL);
	return r;
}

TEST(channel_open_refuses_a_config_without_its_size)
{
	struct fdp_channel_config cfg = {.max_payload = 100};

	CHECK_INT(open_with(&cfg), ==, -EINVAL);
}

TEST(channel_open_takes_a_config_of_the_first_published_size)
{
	struct fdp_channel_config cfg = {
	        .size = offsetof(struct fdp_channel_config, max_fds_arg) + sizeof(void *)};

	CHECK_INT(open_with(&cfg), ==, 0);
}

/* A newer program's config: this library's struct, then fields it does not know. */
struct newer_config {
	struct fdp_channel_config known;
	uint64_t later_field;
};

TEST(channel_open_takes_a_newer_config_whose_unknown_fields_are_zero)
{
	struct newer_config cfg = {.known = {.size = sizeof(cfg)}};

	CHECK_INT(open_with(&cfg.known), ==, 0);
}

TEST(channel_open_refuses_a_newer_config_whose_unknown_fields_are_set)
{
	struct newer_config cfg = {.known = {.size = sizeof(cfg)}, .later_field = 1};

	CHECK_INT(open_with(&cfg.known), ==, -EINVAL);
}
