/* Lending descriptors to a channel (FDP_CHANNEL_LEND) and counting what has left. */
#include "harness.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static void pair(struct fdp_channel **tx, struct fdp_channel **rx)
{
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(tx, sv[0], NULL));
	CHECK_OK(fdp_channel_open(rx, sv[1], NULL));
}

static int is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

TEST(lent_fd_arrives_and_stays_open_in_the_sender)
{
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	pair(&tx, &rx);
	CHECK_OK(fdp_channel_send(tx, 7, NULL, 0, &fd, 1, FDP_CHANNEL_LEND));
	CHECK_INT(fdp_channel_queued(tx), ==, 0);
	CHECK(is_open(fd));
	CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
	CHECK_INT(m.nfds, ==, 1);
	fdp_channel_msg_release(&m);
	close(fd);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}

TEST(closing_a_channel_leaves_lent_fds_open_and_closes_given_ones)
{
	struct fdp_channel *tx, *rx;
	int lent = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int given = open("/dev/null", O_RDONLY | O_CLOEXEC);

	pair(&tx, &rx);
	CHECK_OK(fdp_channel_send(tx, 1, NULL, 0, &lent, 1, FDP_CHANNEL_MORE | FDP_CHANNEL_LEND));
	CHECK_OK(fdp_channel_send(tx, 1, NULL, 0, &given, 1, FDP_CHANNEL_MORE));
	CHECK_INT(fdp_channel_queued(tx), ==, 2);
	fdp_channel_close(tx);
	CHECK(is_open(lent));
	CHECK(!is_open(given));
	close(lent);
	fdp_channel_close(rx);
}

TEST(sent_counts_messages_once_they_have_wholly_left)
{
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;

	pair(&tx, &rx);
	CHECK_INT(fdp_channel_sent(tx), ==, 0);
	for (int i = 0; i < 5; i++)
		CHECK_OK(fdp_channel_send(tx, 1, "x", 1, NULL, 0, FDP_CHANNEL_MORE));
	CHECK_INT(fdp_channel_sent(tx), ==, 0); /* queued is not sent */
	CHECK_INT(fdp_channel_flush(tx), ==, 0);
	CHECK_INT(fdp_channel_sent(tx), ==, 5);
	CHECK_OK(fdp_channel_send(tx, 1, "y", 1, NULL, 0, 0));
	CHECK_INT(fdp_channel_sent(tx), ==, 6);
	for (int i = 0; i < 6; i++) {
		CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
		fdp_channel_msg_release(&m);
	}
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}

TEST(send_refuses_unknown_flags)
{
	struct fdp_channel *tx, *rx;

	pair(&tx, &rx);
	CHECK_INT(fdp_channel_send(tx, 1, NULL, 0, NULL, 0, 0x100), ==, -EINVAL);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}
