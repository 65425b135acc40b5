/* Channels end to end over real sockets: order, framing, descriptors, backpressure, teardown. */
#include "channel_internal.h"
#include "channel_testlib.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

static void order_kept(int type, size_t read_max)
{
	struct fdp_channel *tx, *rx;
	struct sources s;
	unsigned sent = 0, got = 0;

	sources_open(&s);
	channel_pair(type, &tx, &rx, NULL);
	fdp__channel_set_read_max(rx, read_max);
	/* Rounds of sends, some batched with MORE, each drained before the next. */
	for (unsigned round = 0; round < 6; round++) {
		for (unsigned k = 0; k < 40; k++, sent++)
			CHECK_OK(send_nth(tx, &s, sent, k % 3 ? FDP_CHANNEL_MORE : 0));
		pump(tx, rx, &s, &got, sent);
	}
	CHECK_INT(fdp_channel_queued(tx), ==, 0);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
	sources_close(&s);
}

TEST(order_kept_with_and_without_fds_over_seqpacket)
{
	order_kept(SOCK_SEQPACKET, 0);
}

TEST(order_kept_with_and_without_fds_over_stream)
{
	order_kept(SOCK_STREAM, 0);
}

TEST(stream_reader_reading_one_byte_at_a_time_gets_every_message_whole)
{
	order_kept(SOCK_STREAM, 1);
}

TEST(stream_reader_reading_odd_sizes_gets_every_message_whole)
{
	order_kept(SOCK_STREAM, 7);
	order_kept(SOCK_STREAM, 13);
}

TEST(stream_sender_puts_each_messages_fds_on_its_first_byte)
{
	struct fdp_channel *tx;
	struct sources s;
	int sv[2];
	size_t total = 0, off = 0, start = 0;
	unsigned next = 0, n = 30;

	sources_open(&s);
	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	CHECK_OK(fdp_channel_open(&tx, sv[0], NULL));
	for (unsigned i = 0; i < n; i++) {
		CHECK_OK(send_nth(tx, &s, i, FDP_CHANNEL_MORE));
		total += FDP_CHANNEL_HEADER_SIZE + msg_len(i);
	}
	CHECK_OK(fdp_channel_flush_wait(tx, 10000));
	/* A raw reader with a one-byte buffer: descriptors must come exactly at message starts. */
	for (; off < total; off++) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * 8)];
		} ctl;
		char byte;
		struct iovec iov = {&byte, 1};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = ctl.buf,
		                    .msg_controllen = sizeof(ctl.buf)};
		size_t nfds = 0;

		CHECK_INT(recvmsg(sv[1], &mh, MSG_CMSG_CLOEXEC), ==, 1);
		CHECK(!(mh.msg_flags & MSG_CTRUNC));
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t k = 0; k < nfds; k++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
		if (off == start) {
			CHECK_INT(nfds, ==, msg_nfds(next));
			start += FDP_CHANNEL_HEADER_SIZE + msg_len(next++);
		} else {
			CHECK_INT(nfds, ==, 0);
		}
	}
	CHECK_INT(next, ==, n);
	fdp_channel_close(tx);
	close(sv[1]);
	sources_close(&s);
}

TEST(stream_writer_interrupted_by_full_socket_resumes_without_duplicating_fds)
{
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;
	static unsigned char big[60000];
	int sv[2], small = 4096, fds[2], r;
	unsigned got = 0;

	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	CHECK(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	CHECK_OK(fdp_channel_open(&tx, sv[0], NULL));
	CHECK_OK(fdp_channel_open(&rx, sv[1], NULL));
	for (size_t k = 0; k < sizeof(big); k++)
		big[k] = (unsigned char)k;
	for (unsigned i = 0; i < 3; i++) {
		CHECK((fds[0] = dup(0)) >= 0 && (fds[1] = dup(0)) >= 0);
		CHECK_OK(fdp_channel_send(tx, 7, big, sizeof(big), fds, 2, 0));
	}
	/* The first message did not fit: it was cut short and waits with the others. */
	CHECK_INT(fdp_channel_queued(tx), ==, 3);
	CHECK(fdp_channel_wants_write(tx));
	while (got < 3) {
		struct pollfd p[2] = {{sv[1], POLLIN, 0}, {sv[0], POLLOUT, 0}};

		r = fdp_channel_flush(tx);
		CHECK(r == 0 || r == -EAGAIN);
		/* The reader checks that no descriptors come anywhere but a message's start. */
		while ((r = fdp_channel_recv(rx, &m)) == 1) {
			CHECK_INT(m.len, ==, sizeof(big));
			CHECK(memcmp(m.payload, big, sizeof(big)) == 0);
			CHECK_INT(m.nfds, ==, 2);
			fdp_channel_msg_release(&m);
			got++;
		}
		CHECK_INT(r, ==, -EAGAIN);
		if (got < 3)
			CHECK(poll(p, fdp_channel_wants_write(tx) ? 2 : 1, 10000) > 0);
	}
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}

static void backpressure(int type)
{
	struct fdp_channel_config cfg = {.size = sizeof(cfg), .high_water = 32};
	struct fdp_channel *tx, *rx;
	struct sources s;
	unsigned sent = 0, got = 0;
	int r;

	sources_open(&s);
	channel_pair(type, &tx, &rx, &cfg);
	/* Nobody reads: the socket fills, then the queue, then the sender is told to back off. */
	while ((r = send_nth(tx, &s, sent, 0)) == 0) {
		sent++;
		CHECK(sent < 1000000);
	}
	CHECK_INT(r, ==, -ENOBUFS);
	CHECK_INT(fdp_channel_queued(tx), ==, 32);
	CHECK_INT(send_nth(tx, &s, sent, FDP_CHANNEL_MORE), ==, -ENOBUFS);
	CHECK_INT(fdp_channel_queued(tx), ==, 32);
	/* The reader wakes up: every accepted message arrives, in order, none twice. */
	pump(tx, rx, &s, &got, sent);
	CHECK_INT(fdp_channel_queued(tx), ==, 0);
	CHECK_OK(send_nth(tx, &s, sent++, 0));
	pump(tx, rx, &s, &got, sent);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
	sources_close(&s);
}

TEST(stalled_reader_backpressure_then_all_arrive_in_order_over_seqpacket)
{
	backpressure(SOCK_SEQPACKET);
}

TEST(stalled_reader_backpressure_then_all_arrive_in_order_over_stream)
{
	backpressure(SOCK_STREAM);
}

static void wait_for_kill(void *arg)
{
	int *pipe_rd = arg;
	char c;

	(void)!read(*pipe_rd, &c, 1);
}

static void peer_dies(int type)
{
	struct fdp_channel_config cfg = {.size = sizeof(cfg), .high_water = 16};
	struct fdp_channel *tx;
	struct sources s;
	int sv[2], gate[2], r;
	unsigned sent = 0;
	pid_t pid;

	sources_open(&s);
	CHECK(pipe2(gate, O_CLOEXEC) == 0);
	CHECK_OK(fdp_socketpair(type, sv));
	pid = fdp_test_fork(wait_for_kill, &gate[0]);
	close(sv[1]);
	CHECK_OK(fdp_channel_open(&tx, sv[0], &cfg));
	while (send_nth(tx, &s, sent, 0) == 0)
		sent++;
	CHECK_INT(fdp_channel_queued(tx), ==, 16);
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK_INT(fdp_test_wait(pid), ==, 128 + SIGKILL);
	/* Every queued descriptor is closed (the harness checks the count) and sends fail. */
	r = fdp_channel_flush(tx);
	CHECK(r == -EPIPE || r == -ECONNRESET);
	CHECK_INT(fdp_channel_queued(tx), ==, 0);
	CHECK(!fdp_channel_wants_write(tx));
	CHECK_INT(send_nth(tx, &s, sent, 0), ==, r);
	fdp_channel_close(tx);
	close(gate[0]);
	close(gate[1]);
	sources_close(&s);
}

TEST(peer_dies_with_messages_queued_closes_every_queued_fd_over_seqpacket)
{
	peer_dies(SOCK_SEQPACKET);
}

TEST(peer_dies_with_messages_queued_closes_every_queued_fd_over_stream)
{
	peer_dies(SOCK_STREAM);
}

TEST(send_to_dead_peer_hands_the_message_back)
{
	struct fdp_channel *tx;
	int sv[2], fd;

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&tx, sv[0], NULL));
	close(sv[1]);
	CHECK((fd = dup(0)) >= 0);
	CHECK_INT(fdp_channel_send(tx, 1, "x", 1, &fd, 1, 0), ==, -EPIPE);
	CHECK(fcntl(fd, F_GETFD) >= 0); /* still ours */
	close(fd);
	fdp_channel_close(tx);
}

TEST(closing_a_channel_closes_every_queued_fd)
{
	struct fdp_channel_config cfg = {.size = sizeof(cfg), .high_water = 8};
	struct fdp_channel *tx, *rx;
	struct sources s;
	unsigned sent = 0;

	sources_open(&s);
	for (int t = 0; t < 2; t++) {
		channel_pair(t ? SOCK_STREAM : SOCK_SEQPACKET, &tx, &rx, &cfg);
		while (send_nth(tx, &s, sent, 0) == 0)
			sent++;
		CHECK_INT(fdp_channel_queued(tx), ==, 8);
		fdp_channel_close(tx);
		fdp_channel_close(rx);
	}
	sources_close(&s);
}

TEST(closing_a_channel_closes_received_but_unclaimed_fds)
{
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;
	struct sources s;

	sources_open(&s);
	for (int t = 0; t < 2; t++) {
		channel_pair(t ? SOCK_STREAM : SOCK_SEQPACKET, &tx, &rx, NULL);
		for (unsigned i = 0; i < 12; i++)
			CHECK_OK(send_nth(tx, &s, i, 0));
		/* One receive takes in more than one message: the rest wait inside the channel. */
		CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
		check_nth(&m, &s, 0);
		CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
		check_nth(&m, &s, 1);
		fdp_channel_close(rx);
		fdp_channel_close(tx);
	}
	sources_close(&s);
}

TEST(released_message_closes_the_fds_not_taken)
{
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;
	int fds[3], fd;

	channel_pair(SOCK_SEQPACKET, &tx, &rx, NULL);
	for (int i = 0; i < 3; i++)
		CHECK((fds[i] = dup(0)) >= 0);
	CHECK_OK(fdp_channel_send(tx, 9, NULL, 0, fds, 3, 0));
	CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
	CHECK_INT(m.nfds, ==, 3);
	CHECK((fd = fdp_channel_msg_take_fd(&m, 1)) >= 0);
	CHECK_INT(fdp_channel_msg_take_fd(&m, 1), ==, -EBADF);
	CHECK_INT(fdp_channel_msg_take_fd(&m, 3), ==, -EBADF);
	fdp_channel_msg_release(&m);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}

TEST(send_refuses_bad_arguments_and_caller_keeps_fds)
{
	struct fdp_channel_config cfg = {.size = sizeof(cfg), .max_payload = 16};
	struct fdp_channel *tx, *rx;
	static int fds[FDP_MAX_FDS + 1];
	char payload[17] = "";

	channel_pair(SOCK_SEQPACKET, &tx, &rx, &cfg);
	CHECK_INT(fdp_channel_send(tx, 1, payload, 17, NULL, 0, 0), ==, -EMSGSIZE);
	CHECK_INT(fdp_channel_send(tx, 0x10000, payload, 1, NULL, 0, 0), ==, -EINVAL);
	CHECK_INT(fdp_channel_send(tx, 1, NULL, 1, NULL, 0, 0), ==, -EINVAL);
	CHECK_INT(fdp_channel_send(tx, 1, payload, 1, fds, FDP_MAX_FDS + 1, 0), ==, -EINVAL);
	fds[0] = -1;
	CHECK_INT(fdp_channel_send(tx, 1, payload, 1, fds, 1, 0), ==, -EBADF);
	CHECK_INT(fdp_channel_send(tx, 1, payload, 16, NULL, 0, 0), ==, 0);
	CHECK_INT(fdp_channel_queued(tx), ==, 0);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}

TEST(open_refuses_a_datagram_socket_and_closes_it)
{
	struct fdp_channel *ch = (struct fdp_channel *)1;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_DGRAM, sv));
	CHECK_INT(fdp_channel_open(&ch, sv[0], NULL), ==, -EINVAL);
	CHECK(ch == NULL);
	CHECK(fcntl(sv[0], F_GETFD) < 0);
	close(sv[1]);
}

TEST(more_flag_queues_until_flush)
{
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;
	struct sources s;
	unsigned got = 0;

	sources_open(&s);
	channel_pair(SOCK_SEQPACKET, &tx, &rx, NULL);
	for (unsigned i = 0; i < 10; i++)
		CHECK_OK(send_nth(tx, &s, i, FDP_CHANNEL_MORE));
	CHECK_INT(fdp_channel_queued(tx), ==, 10);
	CHECK(fdp_channel_wants_write(tx));
	CHECK_INT(fdp_channel_recv(rx, &m), ==, -EAGAIN);
	CHECK_INT(fdp_channel_flush(tx), ==, 0);
	CHECK(!fdp_channel_wants_write(tx));
	pump(tx, rx, &s, &got, 10);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
	sources_close(&s);
}

struct drain {
	struct fdp_channel *rx;
	unsigned count;
};

static void drain_in_child(void *arg)
{
	struct drain *d = arg;
	struct fdp_channel *rx = d->rx;
	struct fdp_channel_msg m;
	unsigned got = 0;
	int r;

	while (got < d->count && (r = fdp_channel_recv(rx, &m)) != 0) {
		struct pollfd p = {fdp_channel_fd(rx), POLLIN, 0};

		if (r == 1) {
			fdp_channel_msg_release(&m);
			got++;
		} else if (r == -EAGAIN)
			CHECK(poll(&p, 1, 10000) == 1);
		else
			CHECK_OK(r);
	}
}

TEST(flush_wait_times_out_then_completes_when_the_reader_drains)
{
	struct fdp_channel_config cfg = {.size = sizeof(cfg), .high_water = 64};
	struct fdp_channel *tx, *rx;
	struct sources s;
	unsigned sent = 0;
	pid_t pid;

	sources_open(&s);
	channel_pair(SOCK_STREAM, &tx, &rx, &cfg);
	while (send_nth(tx, &s, sent, 0) == 0)
		sent++;
	CHECK_INT(fdp_channel_flush_wait(tx, 20), ==, -ETIMEDOUT);
	CHECK_INT(fdp_channel_queued(tx), ==, 64);
	pid = fdp_test_fork(drain_in_child, &(struct drain){rx, sent});
	fdp_channel_close(rx);
	CHECK_INT(fdp_channel_flush_wait(tx, 20000), ==, 0);
	CHECK_INT(fdp_channel_queued(tx), ==, 0);
	fdp_channel_close(tx);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	sources_close(&s);
}

TEST(peer_close_reads_as_end_of_file)
{
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;

	for (int t = 0; t < 2; t++) {
		channel_pair(t ? SOCK_STREAM : SOCK_SEQPACKET, &tx, &rx, NULL);
		CHECK_OK(fdp_channel_send(tx, 3, "abc", 3, NULL, 0, 0));
		fdp_channel_close(tx);
		CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
		CHECK_INT(m.type, ==, 3);
		CHECK_INT(fdp_channel_recv(rx, &m), ==, 0);
		CHECK_INT(fdp_channel_recv(rx, &m), ==, 0);
		fdp_channel_close(rx);
	}
}

TEST(peer_closing_with_our_messages_unread_still_delivers_its_own_then_end_of_file)
{
	struct fdp_channel *a, *b;
	struct fdp_channel_msg m;

	for (int t = 0; t < 2; t++) {
		channel_pair(t ? SOCK_STREAM : SOCK_SEQPACKET, &a, &b, NULL);
		CHECK_OK(fdp_channel_send(b, 7, "ack", 3, NULL, 0, 0));
		CHECK_OK(fdp_channel_send(a, 8, "conn", 4, NULL, 0, 0)); /* never read by b */
		/* The kernel now says ECONNRESET to a: before the queued message, or for EOF. */
		fdp_channel_close(b);
		CHECK_INT(fdp_channel_recv(a, &m), ==, 1);
		CHECK_INT(m.type, ==, 7);
		CHECK(m.len == 3 && memcmp(m.payload, "ack", 3) == 0);
		CHECK_INT(fdp_channel_recv(a, &m), ==, 0);
		CHECK_INT(fdp_channel_recv(a, &m), ==, 0);
		fdp_channel_close(a);
	}
}

static void exfull_in_child(void *arg)
{
	int sock = *(int *)arg, base = fdp_test_fd_count();
	struct fdp_channel *rx;
	struct fdp_channel_msg m;
	struct rlimit rl;

	CHECK_OK(fdp_channel_open(&rx, sock, NULL));
	/* Room for a few descriptors only: the kernel drops the rest and says MSG_CTRUNC. */
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = 64;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	CHECK_INT(fdp_test_fd_count(), <, 40);
	CHECK_INT(fdp_channel_recv(rx, &m), ==, -EXFULL);
	CHECK_INT(fdp_test_fd_count(), ==, base);
	CHECK_INT(fdp_channel_recv(rx, &m), ==, -EXFULL);
	fdp_channel_close(rx);
}

TEST(fds_dropped_by_the_kernel_close_everything_and_break_the_channel)
{
	struct fdp_channel *tx;
	static int fds[100];
	int sv[2];
	pid_t pid;

	/* valgrind keeps RLIMIT_NOFILE to itself: the kernel would never drop anything. */
	if (fdp_test_under_valgrind())
		fdp_test_skip("valgrind keeps RLIMIT_NOFILE to itself");
	for (int t = 0; t < 2; t++) {
		CHECK_OK(fdp_socketpair(t ? SOCK_STREAM : SOCK_SEQPACKET, sv));
		CHECK_OK(fdp_channel_open(&tx, sv[0], NULL));
		for (int i = 0; i < 100; i++)
			CHECK((fds[i] = dup(0)) >= 0);
		CHECK_OK(fdp_channel_send(tx, 1, "x", 1, fds, 100, 0));
		pid = fdp_test_fork(exfull_in_child, &sv[1]);
		CHECK_INT(fdp_test_wait(pid), ==, 0);
		close(sv[1]);
		fdp_channel_close(tx);
	}
}
