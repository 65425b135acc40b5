/*
 * Kernel steering (src/runtime/master/steer/, docs/STEERING.md): a SO_REUSEPORT group of one
 * listening socket per slot and a BPF program choosing the slot of each new connection. Every
 * test connects real clients over loopback and sees which slot's socket the connection landed
 * on. Loading the program needs root (CAP_BPF): the tests skip otherwise.
 */
#include "harness.h"
#include "steer.h"

#include "fdpass.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static struct fdp__steer *open_group(const char *addr, unsigned slots,
                                     enum fdp__steer_policy policy)
{
	struct fdp__steer *g;
	char err[256];
	int rc;

	if (geteuid() != 0)
		fdp_test_skip("loading a BPF program needs root (CAP_BPF)");
	rc = fdp__steer_open(&g, addr, slots, policy, 0, err, sizeof(err));
	if (rc == -EPERM || rc == -ENOSYS)
		fdp_test_skip(err);
	if (rc == -EADDRNOTAVAIL && strchr(addr, ':') && addr[0] == '[')
		fdp_test_skip("no IPv6 loopback here");
	if (rc < 0)
		fdp_test_fail(__FILE__, __LINE__, "fdp__steer_open: %d: %s", rc, err);
	return g;
}

/* The group's port, in network order. */
static in_port_t group_port(struct fdp__steer *g)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);

	CHECK(getsockname(fdp__steer_fd(g, 0), (struct sockaddr *)&sa, &len) == 0);
	if (sa.ss_family == AF_INET6)
		return ((struct sockaddr_in6 *)&sa)->sin6_port;
	return ((struct sockaddr_in *)&sa)->sin_port;
}

/* A client connected to the group from 127.0.0.<host> (0: the kernel's choice of source). */
static int connect4(struct fdp__steer *g, unsigned host)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = group_port(g)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (host) {
		struct sockaddr_in from = {.sin_family = AF_INET};

		from.sin_addr.s_addr = htonl(0x7f000000u | host);
		CHECK(bind(fd, (struct sockaddr *)&from, sizeof(from)) == 0);
	}
	CHECK(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0);
	return fd;
}

static int connect6(struct fdp__steer *g)
{
	struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = group_port(g)};
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	to.sin6_addr = in6addr_loopback;
	CHECK(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0);
	return fd;
}

/*
 * The slot whose socket got the one connection just made: wait until one slot's socket is
 * readable, check that it is the only one, and accept the connection from it into *fd.
 */
static unsigned landed_fd(struct fdp__steer *g, int *fd)
{
	unsigned n = fdp__steer_slots(g), slot = n;
	struct pollfd p[16];
	int r;

	CHECK(n <= 16);
	for (unsigned i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = fdp__steer_fd(g, i), .events = POLLIN};
	while ((r = poll(p, n, 5000)) < 0 && errno == EINTR)
		;
	CHECK_INT(r, ==, 1);
	for (unsigned i = 0; i < n; i++)
		if (p[i].revents & POLLIN)
			slot = i;
	CHECK(slot < n);
	*fd = accept4(fdp__steer_fd(g, slot), NULL, NULL, SOCK_CLOEXEC);
	CHECK(*fd >= 0);
	return slot;
}

static unsigned landed(struct fdp__steer *g)
{
	int fd;
	unsigned slot = landed_fd(g, &fd);

	close(fd);
	return slot;
}

/*
 * Connect from 127.0.0.<host>, and the slot the connection landed on. The client closes first,
 * as a client does after its answer: the TIME_WAIT stays on the client's side. (A server-side
 * TIME_WAIT met by a later SYN of the same ports can make the kernel run the program twice for
 * one connection, which would shift round-robin by one: docs/STEERING.md.)
 */
static unsigned connect_landed(struct fdp__steer *g, unsigned host)
{
	int c = connect4(g, host), fd;
	unsigned slot = landed_fd(g, &fd);

	close(c);
	close(fd);
	return slot;
}

/* How many connections are waiting on the slot's socket: accept (and close) them all. */
static int drain(struct fdp__steer *g, unsigned slot)
{
	int fds[64], n = fdp__steer_rescue(g, slot, fds, 64);

	if (n == -EAGAIN)
		return 0;
	CHECK_OK(n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return n;
}

static unsigned bucket4(unsigned host)
{
	struct sockaddr_in a = {.sin_family = AF_INET};

	a.sin_addr.s_addr = htonl(0x7f000000u | host);
	return fdp__steer_bucket((struct sockaddr *)&a);
}

TEST(open_refuses_no_slots_too_many_slots_and_a_unix_address)
{
	struct fdp__steer *g = (struct fdp__steer *)&g;
	char err[128];

	CHECK_INT(fdp__steer_open(&g, "127.0.0.1:0", 0, FDP__STEER_ROUND_ROBIN, 0, err, sizeof(err)),
	          ==, -EINVAL);
	CHECK(g == NULL);
	CHECK(strstr(err, "slots") != NULL);
	CHECK_INT(fdp__steer_open(&g, "127.0.0.1:0", FDP__STEER_MAX_SLOTS + 1,
	                          FDP__STEER_ROUND_ROBIN, 0, err, sizeof(err)),
	          ==, -EINVAL);
	CHECK_INT(fdp__steer_open(&g, "unix:/tmp/x.sock", 2, FDP__STEER_ROUND_ROBIN, 0, err,
	                          sizeof(err)),
	          ==, -EINVAL);
	CHECK(strstr(err, "not a TCP address") != NULL);
	CHECK_INT(fdp__steer_open(&g, "127.0.0.1:0", 2, (enum fdp__steer_policy)99, 0, err,
	                          sizeof(err)),
	          ==, -EINVAL);
}

TEST(open_on_a_port_held_by_another_listener_fails_with_eaddrinuse_and_leaves_nothing_open)
{
	struct fdp__steer *g;
	char addr[64], err[256];
	int held = fdp_listen("127.0.0.1:0", 16), before, rc;

	CHECK_OK(held);
	CHECK_OK(fdp_addr_local(held, addr, sizeof(addr)));
	if (geteuid() != 0)
		fdp_test_skip("loading a BPF program needs root (CAP_BPF)");
	before = fdp_test_fd_count();
	rc = fdp__steer_open(&g, addr, 2, FDP__STEER_ROUND_ROBIN, 0, err, sizeof(err));
	CHECK_INT(rc, ==, -EADDRINUSE);
	CHECK(strstr(err, addr) != NULL);
	CHECK_INT(fdp_test_fd_count(), ==, before);
	close(held);
}

/* A listening socket on 127.0.0.1, port picked, bound with SO_REUSEPORT or without. */
static int listener4(int reuseport)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (reuseport)
		CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(fd, 64) == 0);
	return fd;
}

TEST(open_fd_makes_a_reuseport_listener_slot_0_and_steers_over_it_and_the_new_slots)
{
	struct fdp__steer *g;
	char err[256];
	unsigned got[3] = {0};
	int fd = listener4(1), rc;

	if (geteuid() != 0)
		fdp_test_skip("loading a BPF program needs root (CAP_BPF)");
	rc = fdp__steer_open_fd(&g, fd, 3, FDP__STEER_ROUND_ROBIN, err, sizeof(err));
	if (rc == -EPERM || rc == -ENOSYS)
		fdp_test_skip(err);
	CHECK_OK(rc);
	CHECK_INT(fdp__steer_fd(g, 0), ==, fd);
	for (int i = 0; i < 30; i++)
		got[connect_landed(g, 0)]++;
	for (unsigned s = 0; s < 3; s++)
		CHECK_INT(got[s], ==, 10);
	fdp__steer_close(g); /* closes fd too */
}

TEST(open_fd_refuses_a_listener_without_reuseport_and_leaves_it_to_the_caller)
{
	struct fdp__steer *g = (struct fdp__steer *)1;
	char err[256];
	int fd = listener4(0), before = fdp_test_fd_count();

	CHECK_INT(fdp__steer_open_fd(&g, fd, 2, FDP__STEER_LEAST_CONN, err, sizeof(err)), ==,
	          -EINVAL);
	CHECK(g == NULL);
	CHECK(strstr(err, "without SO_REUSEPORT") != NULL);
	CHECK_INT(fdp_test_fd_count(), ==, before);
	CHECK(fcntl(fd, F_GETFD) >= 0); /* still open, still the caller's */
	close(fd);
}

TEST(a_socket_kept_past_a_detached_group_can_start_a_new_group)
{
	struct fdp__steer *g, *g2;
	char err[256];
	int fd = listener4(1), kept, second, rc;

	if (geteuid() != 0)
		fdp_test_skip("loading a BPF program needs root (CAP_BPF)");
	kept = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* as systemd keeps its copy */
	rc = fdp__steer_open_fd(&g, fd, 2, FDP__STEER_ROUND_ROBIN, err, sizeof(err));
	if (rc == -EPERM || rc == -ENOSYS)
		fdp_test_skip(err);
	CHECK_OK(rc);
	/* Still in the first group's array: a second group cannot take it. */
	second = fcntl(kept, F_DUPFD_CLOEXEC, 0);
	CHECK_INT(fdp__steer_open_fd(&g2, second, 2, FDP__STEER_HASH, err, sizeof(err)), ==,
	          -EBUSY);
	close(second); /* the caller's again after a failure */
	fdp__steer_detach(g);
	fdp__steer_close(g);
	CHECK_OK(fdp__steer_open_fd(&g, kept, 2, FDP__STEER_ROUND_ROBIN, err, sizeof(err)));
	CHECK_INT(connect_landed(g, 0) < 2, ==, 1);
	fdp__steer_close(g);
}

TEST(resize_grows_a_group_and_its_program_takes_the_new_slots_in_turn)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN);
	unsigned got[4] = {0};
	char err[256];

	CHECK_OK(fdp__steer_resize(g, 4, FDP__STEER_ROUND_ROBIN, err, sizeof(err)));
	CHECK_INT(fdp__steer_slots(g), ==, 4);
	CHECK_INT(fdp__steer_active(g), ==, 4);
	CHECK_INT(fdp__steer_slot_live(g, 2), ==, 0); /* new slots start out */
	CHECK_OK(fdp__steer_slot_in(g, 2));
	CHECK_OK(fdp__steer_slot_in(g, 3));
	for (int i = 0; i < 400; i++)
		got[connect_landed(g, 0)]++;
	for (unsigned s = 0; s < 4; s++)
		CHECK_INT(got[s], ==, 100);
	fdp__steer_close(g);
}

TEST(resize_shrinks_the_program_to_the_first_slots_and_keeps_the_other_sockets)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 4, FDP__STEER_ROUND_ROBIN);
	unsigned got[4] = {0};
	char err[256];

	CHECK_OK(fdp__steer_resize(g, 2, FDP__STEER_ROUND_ROBIN, err, sizeof(err)));
	CHECK_INT(fdp__steer_slots(g), ==, 4); /* their queues stay the master's to empty */
	for (int i = 0; i < 200; i++)
		got[connect_landed(g, 0)]++;
	CHECK_INT(got[0], ==, 100);
	CHECK_INT(got[1], ==, 100);
	CHECK_INT(got[2] + got[3], ==, 0);
	fdp__steer_close(g);
}

TEST(resize_changes_the_policy)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN);
	char err[256];

	CHECK_OK(fdp__steer_resize(g, 2, FDP__STEER_HASH_IP, err, sizeof(err)));
	CHECK_INT(fdp__steer_policy(g), ==, FDP__STEER_HASH_IP);
	for (unsigned h = 2; h < 10; h++) {
		unsigned want = fdp__steer_state(g)->table[bucket4(h)];

		CHECK_INT(connect_landed(g, h), ==, want);
	}
	fdp__steer_close(g);
}

TEST(undo_puts_back_the_program_count_and_table_the_last_resize_replaced)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_HASH_IP);
	uint32_t table[FDP__STEER_BUCKETS];
	unsigned got[3] = {0};
	char err[256];

	memcpy(table, fdp__steer_state(g)->table, sizeof(table));
	CHECK_INT(fdp__steer_undo(g), ==, -ENOENT); /* nothing to undo yet */
	CHECK_OK(fdp__steer_resize(g, 3, FDP__STEER_ROUND_ROBIN, err, sizeof(err)));
	CHECK_OK(fdp__steer_slot_in(g, 2));
	CHECK_OK(fdp__steer_undo(g));
	CHECK_INT(fdp__steer_active(g), ==, 2);
	CHECK_INT(fdp__steer_policy(g), ==, FDP__STEER_HASH_IP);
	CHECK_INT(fdp__steer_state(g)->slots, ==, 2);
	CHECK(memcmp(table, fdp__steer_state(g)->table, sizeof(table)) == 0);
	for (unsigned h = 2; h < 10; h++) {
		unsigned s = connect_landed(g, h);

		CHECK_INT(s, ==, table[bucket4(h)]); /* the hash-ip program again */
		got[s]++;
	}
	CHECK_INT(got[2], ==, 0);
	CHECK_INT(fdp__steer_undo(g), ==, -ENOENT); /* once */
	fdp__steer_close(g);
}

TEST(an_undo_that_cannot_attach_keeps_the_new_program_and_leaves_nothing_to_undo)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC), first, sock;
	unsigned got[3] = {0};
	char err[256];

	CHECK(null >= 0);
	CHECK_OK(fdp__steer_resize(g, 3, FDP__STEER_ROUND_ROBIN, err, sizeof(err)));
	CHECK_OK(fdp__steer_slot_in(g, 2));
	/* A program attaches through the group's first socket: a file in its place refuses it. */
	first = fdp__steer_fd(g, 0);
	sock = fcntl(first, F_DUPFD_CLOEXEC, 0);
	CHECK(sock >= 0);
	CHECK(dup3(null, first, O_CLOEXEC) == first);
	CHECK_INT(fdp__steer_undo(g), ==, -ENOTSOCK);
	CHECK_INT(fdp__steer_active(g), ==, 3);
	CHECK_INT(fdp__steer_state(g)->slots, ==, 3);
	CHECK_INT(fdp__steer_keep(g), ==, 0); /* no program kept to undo with */
	CHECK_INT(fdp__steer_undo(g), ==, -ENOENT);
	/* The socket back: the new program still picks among the three slots. */
	CHECK(dup3(sock, first, O_CLOEXEC) == first);
	close(sock);
	close(null);
	for (unsigned h = 2; h < 8; h++)
		got[connect_landed(g, h)]++;
	CHECK_INT(got[0], ==, 2);
	CHECK_INT(got[1], ==, 2);
	CHECK_INT(got[2], ==, 2);
	fdp__steer_close(g);
}

TEST(a_resize_whose_program_cannot_load_leaves_hash_ips_table_as_the_old_program_reads_it)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 3, FDP__STEER_HASH_IP);
	uint32_t table[FDP__STEER_BUCKETS];
	struct rlimit old, none;
	char err[256];
	int lowest = dup(0);

	memcpy(table, fdp__steer_state(g)->table, sizeof(table));
	CHECK(lowest >= 0);
	close(lowest);
	/* No new descriptor: a shrink needs no socket, but its program does. */
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
	none = (struct rlimit){.rlim_cur = (rlim_t)lowest, .rlim_max = old.rlim_max};
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &none));
	CHECK_INT(fdp__steer_resize(g, 2, FDP__STEER_HASH_IP, err, sizeof(err)), ==, -EMFILE);
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
	CHECK_INT(fdp__steer_active(g), ==, 3);
	CHECK_INT(fdp__steer_state(g)->slots, ==, 3);
	CHECK(memcmp(table, fdp__steer_state(g)->table, sizeof(table)) == 0);
	fdp__steer_close(g);
}

TEST(keep_closes_the_program_a_resize_replaced_and_leaves_nothing_to_undo)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN);
	int before = fdp_test_fd_count();
	char err[256];

	CHECK_OK(fdp__steer_resize(g, 2, FDP__STEER_LEAST_CONN, err, sizeof(err)));
	CHECK_INT(fdp_test_fd_count(), ==, before + 1); /* the old program, for an undo */
	fdp__steer_keep(g);
	CHECK_INT(fdp_test_fd_count(), ==, before);
	CHECK_INT(fdp__steer_undo(g), ==, -ENOENT);
	CHECK_INT(fdp__steer_policy(g), ==, FDP__STEER_LEAST_CONN);
	fdp__steer_close(g);
}

TEST(round_robin_spreads_1000_connections_evenly_over_4_slot_sockets)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 4, FDP__STEER_ROUND_ROBIN);
	unsigned got[4] = {0};

	for (int i = 0; i < 1000; i++)
		got[connect_landed(g, 0)]++;
	for (unsigned s = 0; s < 4; s++)
		CHECK_INT(got[s], ==, 250);
	fdp__steer_close(g);
}

TEST(round_robin_takes_the_slots_in_turn)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 3, FDP__STEER_ROUND_ROBIN);
	unsigned first = connect_landed(g, 0);

	for (unsigned i = 1; i < 9; i++)
		CHECK_INT(connect_landed(g, 0), ==, (first + i) % 3);
	fdp__steer_close(g);
}

TEST(every_policy_counts_each_connection_against_the_slot_it_picked)
{
	static const enum fdp__steer_policy policies[] = {FDP__STEER_ROUND_ROBIN, FDP__STEER_HASH,
	                                                  FDP__STEER_HASH_IP, FDP__STEER_LEAST_CONN};

	for (size_t p = 0; p < sizeof(policies) / sizeof(policies[0]); p++) {
		struct fdp__steer *g = open_group("127.0.0.1:0", 3, policies[p]);
		unsigned got[3] = {0};

		for (unsigned i = 0; i < 12; i++)
			got[connect_landed(g, i + 2)]++;
		/* The workers read count - open as what waits in a slot's queue. */
		for (unsigned s = 0; s < 3; s++)
			CHECK_INT(fdp__steer_count(g, s), ==, got[s]);
		fdp__steer_close(g);
	}
}

TEST(hash_ip_sends_each_client_address_to_the_same_slot_every_time)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 4, FDP__STEER_HASH_IP);
	struct fdp__steer_state *st = fdp__steer_state(g);
	unsigned used = 0;

	for (unsigned host = 1; host <= 24; host++) {
		unsigned want = st->table[bucket4(host)];

		CHECK(want < 4);
		used |= 1u << want;
		for (int i = 0; i < 5; i++)
			CHECK_INT(connect_landed(g, host), ==, want);
	}
	/* 24 addresses over the ring's 4 slots: more than one slot serves them. */
	CHECK_INT(__builtin_popcount(used), >=, 2);
	fdp__steer_close(g);
}

TEST(hash_ip_table_change_moves_a_client_to_its_new_slot)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 4, FDP__STEER_HASH_IP);
	unsigned b = bucket4(7);

	for (unsigned slot = 0; slot < 4; slot++) {
		CHECK_OK(fdp__steer_table_set(g, b, slot));
		CHECK_INT(connect_landed(g, 7), ==, slot);
		CHECK_INT(connect_landed(g, 7), ==, slot);
	}
	fdp__steer_close(g);
}

TEST(hash_ip_hashes_an_ipv6_client_address)
{
	struct fdp__steer *g = open_group("[::1]:0", 4, FDP__STEER_HASH_IP);
	struct sockaddr_in6 me = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	unsigned b = fdp__steer_bucket((struct sockaddr *)&me);

	CHECK(b < FDP__STEER_BUCKETS);
	for (unsigned slot = 0; slot < 4; slot++) {
		int c;

		CHECK_OK(fdp__steer_table_set(g, b, 3 - slot));
		c = connect6(g);
		CHECK_INT(landed(g), ==, 3 - slot);
		close(c);
	}
	fdp__steer_close(g);
}

TEST(hash_ip_table_from_ring_moves_only_a_dead_slots_buckets)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 4, FDP__STEER_HASH_IP);
	struct fdp__steer_state *st = fdp__steer_state(g);
	static uint32_t before[FDP__STEER_BUCKETS];
	struct fdp__hashring ring;
	unsigned per[4] = {0}, host;

	memcpy(before, st->table, sizeof(before));
	for (unsigned b = 0; b < FDP__STEER_BUCKETS; b++)
		per[before[b]]++;
	for (unsigned s = 0; s < 4; s++) /* the ring's arcs are even to within a third */
		CHECK_INT(per[s], >, FDP__STEER_BUCKETS / 4 * 2 / 3);
	CHECK_OK(fdp__hashring_build(&ring, 4, FDP__RING_POINTS));
	CHECK_OK(fdp__steer_slot_out(g, 2));
	CHECK_OK(fdp__steer_table_from_ring(g, &ring));
	for (unsigned b = 0; b < FDP__STEER_BUCKETS; b++) {
		CHECK(st->table[b] != 2);
		if (before[b] != 2)
			CHECK_INT(st->table[b], ==, before[b]);
	}
	/* A client of the dead slot lands where the new table says. */
	for (host = 1; host < 255 && before[bucket4(host)] != 2; host++)
		;
	CHECK(host < 255);
	CHECK_INT(connect_landed(g, host), ==, st->table[bucket4(host)]);
	fdp__hashring_free(&ring);
	fdp__steer_close(g);
}

TEST(least_conn_picks_the_slot_with_the_smallest_count)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 4, FDP__STEER_LEAST_CONN);
	static const uint32_t counts[][4] = {{5, 3, 7, 9}, {2, 9, 0, 9}, {8, 8, 8, 1}, {0, 4, 4, 4}};

	for (unsigned t = 0; t < 4; t++) {
		unsigned want = 0;

		for (unsigned s = 0; s < 4; s++) {
			CHECK_OK(fdp__steer_count_set(g, s, counts[t][s]));
			if (counts[t][s] < counts[t][want])
				want = s;
		}
		CHECK_INT(connect_landed(g, 0), ==, want);
		/* The program counted the connection against the slot it picked. */
		CHECK_INT(fdp__steer_count(g, want), ==, counts[t][want] + 1);
	}
	fdp__steer_close(g);
}

TEST(least_conn_evens_out_the_counts_of_a_burst)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 4, FDP__STEER_LEAST_CONN);
	unsigned got[4] = {0};

	CHECK_OK(fdp__steer_count_set(g, 0, 6));
	for (int i = 0; i < 30; i++)
		got[connect_landed(g, 0)]++;
	/* 6 + 30 connections over 4 slots: 9 each, so slot 0 got 3 and the others 9. */
	CHECK_INT(got[0], ==, 3);
	for (unsigned s = 1; s < 4; s++)
		CHECK_INT(got[s], ==, 9);
	for (unsigned s = 0; s < 4; s++)
		CHECK_INT(fdp__steer_count(g, s), ==, 9);
	fdp__steer_close(g);
}

TEST(least_conn_skips_a_slot_taken_out)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 3, FDP__STEER_LEAST_CONN);

	CHECK_OK(fdp__steer_count_set(g, 0, 10));
	CHECK_OK(fdp__steer_count_set(g, 1, 0));
	CHECK_OK(fdp__steer_count_set(g, 2, 5));
	CHECK_OK(fdp__steer_slot_out(g, 1));
	CHECK_INT(connect_landed(g, 0), ==, 2);
	CHECK_OK(fdp__steer_slot_in(g, 1));
	CHECK_INT(connect_landed(g, 0), ==, 1);
	fdp__steer_close(g);
}

TEST(count_resync_sets_a_drifted_count_to_open_plus_queued)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_LEAST_CONN);
	int c[2], fd;

	CHECK_OK(fdp__steer_count_set(g, 1, 1000)); /* slot 0 gets both connections */
	c[0] = connect4(g, 0);
	c[1] = connect4(g, 0);
	for (int i = 0; i < 100 && fdp__steer_queued(g, 0) < 2; i++)
		usleep(1000); /* the handshake's last ACK is processed by then on loopback */
	CHECK_INT(fdp__steer_queued(g, 0), ==, 2);
	CHECK_INT(fdp__steer_count(g, 0), ==, 2);
	CHECK_OK(fdp__steer_count_set(g, 0, 9)); /* a drift */
	CHECK_INT(fdp__steer_count_resync(g, 0, 3), ==, 3 + 2 - 9);
	CHECK_INT(fdp__steer_count(g, 0), ==, 5);
	CHECK_INT(fdp__steer_count_resync(g, 1, 0), ==, -1000);
	CHECK_INT(fdp__steer_count(g, 1), ==, 0);
	CHECK_INT(fdp__steer_count_resync(g, 2, 0), ==, -EINVAL);
	CHECK_INT(fdp__steer_rescue(g, 0, &fd, 1), ==, 1);
	close(fd);
	CHECK_INT(drain(g, 0), ==, 1);
	close(c[0]);
	close(c[1]);
	fdp__steer_close(g);
}

static void add_in_child(void *arg)
{
	struct fdp__steer_state *st = arg;

	__atomic_fetch_add(&st->count[1], 5, __ATOMIC_RELAXED);
}

TEST(a_forked_process_updates_the_counts_the_program_reads)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_LEAST_CONN);

	CHECK_OK(fdp__steer_count_set(g, 0, 3));
	CHECK_INT(fdp_test_wait(fdp_test_fork(add_in_child, fdp__steer_state(g))), ==, 0);
	CHECK_INT(fdp__steer_count(g, 1), ==, 5);
	/* 3 against 5: the program sees the child's add. */
	CHECK_INT(connect_landed(g, 0), ==, 0);
	fdp__steer_close(g);
}

TEST(a_slot_taken_out_gets_no_new_connection_while_its_queued_ones_remain_acceptable)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN);
	int c[16], fds[8], n;

	/* Four connections, round-robin: two wait on each slot's socket. */
	for (int i = 0; i < 4; i++)
		c[i] = connect4(g, 0);
	for (int i = 0; i < 100 && fdp__steer_queued(g, 0) + fdp__steer_queued(g, 1) < 4; i++)
		usleep(1000); /* the handshake's last ACK is processed by then on loopback */
	CHECK_INT(fdp__steer_queued(g, 1), ==, 2);
	CHECK_OK(fdp__steer_slot_out(g, 1));
	CHECK_INT(fdp__steer_slot_live(g, 1), ==, 0);
	for (int i = 4; i < 16; i++)
		c[i] = connect4(g, 0);
	/* The twelve new ones all went to slot 0, and slot 1 still holds its two. */
	for (int i = 0; i < 100 && fdp__steer_queued(g, 0) < 14; i++)
		usleep(1000);
	CHECK_INT(fdp__steer_queued(g, 0), ==, 14);
	CHECK_INT(fdp__steer_queued(g, 1), ==, 2);
	n = fdp__steer_rescue(g, 1, fds, 8);
	CHECK_INT(n, ==, 2);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	CHECK_INT(fdp__steer_rescue(g, 1, fds, 8), ==, -EAGAIN);
	CHECK_INT(drain(g, 0), ==, 14);
	for (int i = 0; i < 16; i++)
		close(c[i]);
	fdp__steer_close(g);
}

TEST(a_rescued_connection_carries_the_clients_bytes)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN);
	int c0 = connect4(g, 0), c1 = connect4(g, 0), fd;
	unsigned slot;
	char b = 0;

	/* One connection on each slot; slot 1's is rescued as its worker would have served it. */
	CHECK(write(c0, "a", 1) == 1 && write(c1, "b", 1) == 1);
	CHECK_OK(fdp__steer_slot_out(g, 1));
	fdp_test_wait_readable(fdp__steer_fd(g, 1), 5000);
	CHECK_INT(fdp__steer_rescue(g, 1, &fd, 1), ==, 1);
	fdp_test_wait_readable(fd, 5000);
	CHECK(read(fd, &b, 1) == 1);
	CHECK(b == 'a' || b == 'b');
	CHECK(write(fd, "!", 1) == 1);
	close(fd);
	slot = landed(g); /* the other one is on slot 0 */
	CHECK_INT(slot, ==, 0);
	close(c0);
	close(c1);
	fdp__steer_close(g);
}

TEST(a_slot_put_back_gets_connections_again)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN);
	unsigned got[2] = {0};

	CHECK_OK(fdp__steer_slot_out(g, 0));
	for (int i = 0; i < 6; i++)
		CHECK_INT(connect_landed(g, 0), ==, 1);
	CHECK_OK(fdp__steer_slot_in(g, 0));
	for (int i = 0; i < 6; i++)
		got[connect_landed(g, 0)]++;
	CHECK_INT(got[0], ==, 3);
	CHECK_INT(got[1], ==, 3);
	fdp__steer_close(g);
}

TEST(with_every_slot_taken_out_the_kernel_still_queues_each_connection_on_one_of_them)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 3, FDP__STEER_ROUND_ROBIN);

	for (unsigned s = 0; s < 3; s++)
		CHECK_OK(fdp__steer_slot_out(g, s));
	for (int i = 0; i < 6; i++)
		CHECK_INT(connect_landed(g, 0), <, 3);
	fdp__steer_close(g);
}

TEST(hash_policy_keeps_a_connection_off_a_slot_taken_out)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_HASH);
	unsigned got[2] = {0};

	for (int i = 0; i < 40; i++)
		got[connect_landed(g, 0)]++;
	CHECK(got[0] > 0 && got[1] > 0); /* 40 source ports over 2 slots */
	CHECK_OK(fdp__steer_slot_out(g, 0));
	for (int i = 0; i < 20; i++)
		CHECK_INT(connect_landed(g, 0), ==, 1);
	fdp__steer_close(g);
}

TEST(slot_calls_refuse_a_slot_out_of_range)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN);
	int fd;

	CHECK_INT(fdp__steer_fd(g, 2), ==, -EINVAL);
	CHECK_INT(fdp__steer_slot_out(g, 2), ==, -EINVAL);
	CHECK_INT(fdp__steer_slot_in(g, 2), ==, -EINVAL);
	CHECK_INT(fdp__steer_count_set(g, 2, 1), ==, -EINVAL);
	CHECK_INT(fdp__steer_table_set(g, 0, 2), ==, -EINVAL);
	CHECK_INT(fdp__steer_table_set(g, FDP__STEER_BUCKETS, 0), ==, -EINVAL);
	CHECK_INT(fdp__steer_rescue(g, 2, &fd, 1), ==, -EINVAL);
	CHECK_INT(fdp__steer_rescue(g, 0, &fd, 1), ==, -EAGAIN);
	fdp__steer_close(g);
}

TEST(a_group_of_the_most_slots_loads)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", FDP__STEER_MAX_SLOTS, FDP__STEER_LEAST_CONN);
	int c;

	for (unsigned s = 0; s < FDP__STEER_MAX_SLOTS; s++)
		CHECK_OK(fdp__steer_count_set(g, s, s == 777 ? 0 : 1));
	c = connect4(g, 0);
	fdp_test_wait_readable(fdp__steer_fd(g, 777), 5000);
	CHECK_INT(drain(g, 777), ==, 1);
	close(c);
	fdp__steer_close(g);
}

/* A one-value mmap-able BPF array of value_size bytes, as an older master made its state. */
static int state_map(uint32_t value_size)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = value_size;
	attr.max_entries = 1;
	attr.map_flags = BPF_F_MMAPABLE;
	return (int)syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
}

/* Adopt g's sockets, program and socket array (duplicates) with the state map state_fd. */
static int adopt_with(struct fdp__steer **out, struct fdp__steer *g, int state_fd)
{
	int fds[2] = {fcntl(fdp__steer_fd(g, 0), F_DUPFD_CLOEXEC, 0),
	              fcntl(fdp__steer_fd(g, 1), F_DUPFD_CLOEXEC, 0)};
	int rc = fdp__steer_adopt(out, fds, 2, FDP__STEER_ROUND_ROBIN,
	                          fcntl(fdp__steer_prog_fd(g), F_DUPFD_CLOEXEC, 0),
	                          fcntl(fdp__steer_sockarray_fd(g), F_DUPFD_CLOEXEC, 0), state_fd);

	return rc;
}

TEST(adopting_an_older_masters_shorter_state_maps_what_it_has_and_says_its_size)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN), *a = NULL;
	size_t old = offsetof(struct fdp__steer_state, beat); /* a state without beat[] */
	int state_fd = state_map((uint32_t)old);

	CHECK(state_fd >= 0);
	CHECK_OK(adopt_with(&a, g, state_fd));
	CHECK_INT(fdp__steer_state_size(a), ==, old); /* what LISTEN then tells its workers */
	fdp__steer_state(a)->stolen[1] = 7;          /* its last word is mapped */
	CHECK_INT(fdp__steer_state_size(g), ==, sizeof(struct fdp__steer_state));
	fdp__steer_close(a);
	fdp__steer_close(g);
}

TEST(adopting_a_state_older_than_any_this_library_shares_fails_with_eproto)
{
	struct fdp__steer *g = open_group("127.0.0.1:0", 2, FDP__STEER_ROUND_ROBIN), *a = NULL;
	int state_fd = state_map(64), fds[2];

	CHECK(state_fd >= 0);
	fds[0] = fcntl(fdp__steer_fd(g, 0), F_DUPFD_CLOEXEC, 0);
	fds[1] = fcntl(fdp__steer_fd(g, 1), F_DUPFD_CLOEXEC, 0);
	CHECK_INT(fdp__steer_adopt(&a, fds, 2, FDP__STEER_ROUND_ROBIN, -1, -1, state_fd), ==,
	          -EPROTO);
	CHECK(a == NULL);
	/* Refused: nothing was taken, the caller still owns what it gave. */
	close(fds[0]);
	close(fds[1]);
	close(state_fd);
	fdp__steer_close(g);
}
