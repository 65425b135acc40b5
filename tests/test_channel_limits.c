/*
 * Kernel limits a channel meets while sending: a packet larger than the socket's send buffer,
 * and too many descriptors in flight (ETOOMANYREFS). Neither may lose a message or spin.
 */
#include "channel_testlib.h"

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>

TEST(send_refuses_a_packet_larger_than_the_send_buffer_and_caller_keeps_fds)
{
	static unsigned char big[12000];
	struct fdp_channel *tx, *rx;
	struct fdp_channel_msg m;
	int sv[2], small = 4096, fd; /* Linux doubles it: 8192 */

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	CHECK_OK(fdp_channel_open(&tx, sv[0], NULL));
	CHECK_OK(fdp_channel_open(&rx, sv[1], NULL));
	CHECK_OK(fdp_channel_send(tx, 1, "a", 1, NULL, 0, FDP_CHANNEL_MORE));
	CHECK((fd = dup(0)) >= 0);
	/* The kernel would say EMSGSIZE only at the flush, with the message already accepted. */
	CHECK_INT(fdp_channel_send(tx, 2, big, sizeof(big), &fd, 1, 0), ==, -EMSGSIZE);
	CHECK(fcntl(fd, F_GETFD) >= 0); /* still ours */
	close(fd);
	/* Nothing else was lost and the channel still works. */
	CHECK_OK(fdp_channel_send(tx, 3, big, 4000, NULL, 0, 0));
	CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
	CHECK_INT(m.type, ==, 1);
	CHECK_INT(fdp_channel_recv(rx, &m), ==, 1);
	CHECK_INT(m.type, ==, 3);
	CHECK_INT(m.len, ==, 4000);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}

/* Give up CAP_SYS_RESOURCE and CAP_SYS_ADMIN, which exempt a process from ETOOMANYREFS. */
static void drop_fd_limit_exemption(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	CHECK(syscall(SYS_capget, &h, d) == 0);
	d[0].effective &= ~((1u << CAP_SYS_RESOURCE) | (1u << CAP_SYS_ADMIN));
	CHECK(syscall(SYS_capset, &h, d) == 0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Put 200 descriptors in flight on a socketpair nobody reads. The kernel counts descriptors in
 * flight per user, and other processes of this user add to the count at any moment: being far
 * over the limit, then far under it, keeps the test independent of them.
 */
static void ballast_send(int sv[2])
{
	static int fds[200]; /* 200 references to descriptor 0 */
	struct fdp_msg m = {.data = "b", .len = 1, .fds = fds, .nfds = 200};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_INT(fdp_msg_send(sv[0], &m, 0), ==, 1);
}

static void too_many_refs_in_child(void *arg)
{
	static struct fdp_channel_msg m;
	struct fdp_channel *tx, *rx;
	struct rlimit rl;
	int type = *(int *)arg, ballast[2];
	long long t0;

	ballast_send(ballast);
	/* 64 descriptors in flight allowed, 200 there: the kernel refuses any more. */
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = (rlim_t)fdp_test_fd_count() + 64;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	drop_fd_limit_exemption();
	channel_pair(type, &tx, &rx, NULL);
	/* The messages are accepted: queued behind the refusal, in order, none dropped. */
	for (unsigned i = 0; i < 6; i++) {
		int fd = dup(0);

		CHECK(fd >= 0);
		CHECK_OK(fdp_channel_send(tx, i, NULL, 0, &fd, 1, i % 2 ? FDP_CHANNEL_MORE : 0));
	}
	CHECK_INT(fdp_channel_queued(tx), ==, 6);
	/* flush says so and keeps everything; the channel is not broken. The socket may well be
	 * writable, so a caller backs off on a timer rather than wait for POLLOUT. */
	CHECK_INT(fdp_channel_flush(tx), ==, -ETOOMANYREFS);
	CHECK_INT(fdp_channel_queued(tx), ==, 6);
	CHECK(fdp_channel_wants_write(tx));
	/* flush_wait sleeps and retries: it times out having kept everything. */
	t0 = now_ms();
	CHECK_INT(fdp_channel_flush_wait(tx, 50), ==, -ETIMEDOUT);
	CHECK_INT(now_ms() - t0, >=, 45);
	CHECK_INT(fdp_channel_queued(tx), ==, 6);
	/* The ballast goes (closing its reader frees what was in flight): everything leaves. */
	close(ballast[0]);
	close(ballast[1]);
	CHECK_OK(fdp_channel_flush_wait(tx, 30000));
	CHECK_INT(fdp_channel_queued(tx), ==, 0);
	for (unsigned i = 0; i < 6; i++) {
		struct pollfd p = {fdp_channel_fd(rx), POLLIN, 0};
		int r;

		while ((r = fdp_channel_recv(rx, &m)) == -EAGAIN)
			CHECK(poll(&p, 1, 10000) == 1);
		CHECK_INT(r, ==, 1);
		CHECK_INT(m.type, ==, i);
		CHECK_INT(m.nfds, ==, 1);
		fdp_channel_msg_release(&m);
	}
	fdp_channel_close(tx);
	fdp_channel_close(rx);
}

static void too_many_refs(int type)
{
	pid_t pid;

	/* valgrind keeps RLIMIT_NOFILE to itself: the kernel would never refuse anything. */
	if (fdp_test_under_valgrind())
		fdp_test_skip("valgrind keeps RLIMIT_NOFILE to itself");
	pid = fdp_test_fork(too_many_refs_in_child, &type);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
}

TEST(too_many_fds_in_flight_keeps_the_queue_and_flush_wait_backs_off_over_seqpacket)
{
	too_many_refs(SOCK_SEQPACKET);
}

TEST(too_many_fds_in_flight_keeps_the_queue_and_flush_wait_backs_off_over_stream)
{
	too_many_refs(SOCK_STREAM);
}

TEST(shrinking_the_send_buffer_after_open_packs_smaller_packets)
{
	struct fdp_channel *tx, *rx;
	struct sources s;
	int small = 4096; /* Linux doubles it: 8192, so packets of at most 2048 bytes */
	unsigned sent = 0, got = 0;

	sources_open(&s);
	channel_pair(SOCK_SEQPACKET, &tx, &rx, NULL);
	CHECK(setsockopt(fdp_channel_fd(tx), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	/* Packed as at open, the first packet would be far over 8192 bytes. */
	for (; sent < 60; sent++)
		CHECK_OK(send_nth(tx, &s, sent, FDP_CHANNEL_MORE));
	CHECK_INT(fdp_channel_flush(tx), ==, -EAGAIN);
	pump(tx, rx, &s, &got, sent);
	fdp_channel_close(tx);
	fdp_channel_close(rx);
	sources_close(&s);
}
