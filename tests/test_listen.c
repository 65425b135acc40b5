/* Listeners from address strings and batched accept. */
#include "harness.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void check_roundtrip(const char *in, const char *out)
{
	struct sockaddr_storage sa;
	socklen_t len;
	char buf[FDP_ADDR_STRLEN];

	CHECK_OK(fdp_addr_parse(in, &sa, &len));
	CHECK_OK(fdp_addr_format((struct sockaddr *)&sa, len, buf, sizeof(buf)));
	if (strcmp(buf, out) != 0)
		fdp_test_fail(__FILE__, __LINE__, "%s formats as %s, want %s", in, buf, out);
}

TEST(addr_parse_accepts_ipv4_ipv6_and_unix)
{
	check_roundtrip("127.0.0.1:8080", "127.0.0.1:8080");
	check_roundtrip("localhost:80", "127.0.0.1:80");
	check_roundtrip("*:0", "0.0.0.0:0");
	check_roundtrip(":65535", "0.0.0.0:65535");
	check_roundtrip("[::1]:443", "[::1]:443");
	check_roundtrip("[::]:1", "[::]:1");
	check_roundtrip("unix:/tmp/x.sock", "unix:/tmp/x.sock");
#ifndef FDP_PORTABLE
	check_roundtrip("unix:@abstract", "unix:@abstract");
#else
	{
		struct sockaddr_storage sa;
		socklen_t len;

		/* Linux's abstract names are switched off with the other Linux-only paths. */
		CHECK_INT(fdp_addr_parse("unix:@abstract", &sa, &len), ==, -EINVAL);
	}
#endif
}

TEST(addr_format_writes_every_ipv4_address_whole_and_truncates_to_a_short_buffer)
{
	struct sockaddr_storage sa;
	socklen_t len;
	char buf[FDP_ADDR_STRLEN];

	check_roundtrip("255.255.255.255:65535", "255.255.255.255:65535");
	check_roundtrip("10.0.200.9:7", "10.0.200.9:7");
	CHECK_OK(fdp_addr_parse("255.255.255.255:65535", &sa, &len));
	CHECK_INT(fdp_addr_format((struct sockaddr *)&sa, len, buf, sizeof(buf)), ==, 21);
	/* Cut to the buffer, NUL-terminated, returning what it wrote. */
	CHECK_INT(fdp_addr_format((struct sockaddr *)&sa, len, buf, 8), ==, 7);
	CHECK(strcmp(buf, "255.255") == 0);
	CHECK_INT(fdp_addr_format((struct sockaddr *)&sa, len, buf, 1), ==, 0);
	CHECK(buf[0] == '\0');
	CHECK_INT(fdp_addr_format((struct sockaddr *)&sa, len, buf, 0), ==, -EINVAL);
}

TEST(addr_parse_rejects_malformed_addresses)
{
	static const char *bad[] = {"",          "8080",           "127.0.0.1",     "127.0.0.1:",
	                            "1.2.3.4:x", "1.2.3.4:-1",     "1.2.3.4:65536", "300.1.1.1:80",
	                            "[::1]80",   "[::1]:",         "[]:80",         "::1:80",
	                            "unix:",     "host.example:80"};
	struct sockaddr_storage sa;
	socklen_t len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (fdp_addr_parse(bad[i], &sa, &len) != -EINVAL)
			fdp_test_fail(__FILE__, __LINE__, "'%s' accepted", bad[i]);
}

TEST(listen_on_port_zero_reports_the_bound_port_and_is_nonblocking_cloexec)
{
	char buf[FDP_ADDR_STRLEN];
	int fd = fdp_listen("127.0.0.1:0", 16);

	CHECK_OK(fd);
	CHECK_OK(fdp_addr_local(fd, buf, sizeof(buf)));
	CHECK(strncmp(buf, "127.0.0.1:", 10) == 0);
	CHECK(strcmp(buf, "127.0.0.1:0") != 0);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
}

TEST(listen_on_an_address_in_use_fails_with_eaddrinuse)
{
	char buf[FDP_ADDR_STRLEN];
	int fd = fdp_listen("127.0.0.1:0", 16);

	CHECK_OK(fd);
	CHECK_OK(fdp_addr_local(fd, buf, sizeof(buf)));
	CHECK_INT(fdp_listen(buf, 16), ==, -EADDRINUSE);
	close(fd);
}

TEST(listen_on_ipv6_loopback)
{
	char buf[FDP_ADDR_STRLEN];
	int fd = fdp_listen("[::1]:0", 16);

	if (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT)
		fdp_test_skip("no IPv6 loopback here");
	CHECK_OK(fd);
	CHECK_OK(fdp_addr_local(fd, buf, sizeof(buf)));
	CHECK(strncmp(buf, "[::1]:", 6) == 0);
	close(fd);
}

static int connect_to(const char *addr)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int fd;

	CHECK_OK(fdp_addr_parse(addr, &sa, &len));
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_OK(fd);
	CHECK_OK(connect(fd, (struct sockaddr *)&sa, len));
	return fd;
}

TEST(accept_batch_takes_every_waiting_connection_up_to_max)
{
	char addr[FDP_ADDR_STRLEN];
	struct fdp_accepted acc[8];
	int clients[5];
	int lfd = fdp_listen("127.0.0.1:0", 16);

	CHECK_OK(lfd);
	CHECK_OK(fdp_addr_local(lfd, addr, sizeof(addr)));
	CHECK_INT(fdp_accept_batch(lfd, acc, 8), ==, -EAGAIN);
	for (int i = 0; i < 5; i++)
		clients[i] = connect_to(addr);
	CHECK_INT(fdp_accept_batch(lfd, acc, 3), ==, 3);
	CHECK_INT(fdp_accept_batch(lfd, acc + 3, 5), ==, 2);
	for (int i = 0; i < 5; i++) {
		char peer[FDP_ADDR_STRLEN];

		CHECK(fcntl(acc[i].fd, F_GETFL) & O_NONBLOCK);
		CHECK(fcntl(acc[i].fd, F_GETFD) & FD_CLOEXEC);
		CHECK_OK(fdp_addr_format((struct sockaddr *)&acc[i].peer, acc[i].peer_len, peer,
		                         sizeof(peer)));
		CHECK(strncmp(peer, "127.0.0.1:", 10) == 0);
		close(acc[i].fd);
		close(clients[i]);
	}
	close(lfd);
}

TEST(unix_listener_accepts_and_replaces_a_stale_socket_file)
{
	char addr[256], got[FDP_ADDR_STRLEN];
	struct fdp_accepted acc;
	int lfd, c;

	snprintf(addr, sizeof(addr), "unix:%s/s.sock", fdp_test_tmpdir());
	lfd = fdp_listen(addr, 4);
	CHECK_OK(lfd);
	close(lfd); /* leaves the socket file behind, as a crashed server would */
	lfd = fdp_listen(addr, 4);
	CHECK_OK(lfd);
	CHECK_OK(fdp_addr_local(lfd, got, sizeof(got)));
	CHECK(strcmp(got, addr) == 0);
	c = connect_to(addr);
	CHECK_INT(fdp_accept_batch(lfd, &acc, 1), ==, 1);
	close(acc.fd);
	close(c);
	close(lfd);
}

static void accept_at_the_descriptor_limit(void *arg)
{
	int lfd = *(int *)arg;
	struct fdp_accepted acc;
	struct rlimit lim, low;
	int fd;

	CHECK_OK(getrlimit(RLIMIT_NOFILE, &lim));
	/* Fill the table up to a small limit so accept4() has no number left to give. */
	low = lim;
	low.rlim_cur = 64;
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &low));
	while ((fd = dup(0)) >= 0)
		;
	CHECK_INT(fdp_accept_batch(lfd, &acc, 1), ==, -EMFILE);
	/* valgrind emulates the limit by closing what the kernel accepted: nothing to check. */
	if (getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"), "vgpreload"))
		return;
	/* The connection is still queued in the kernel, not lost. */
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &lim));
	CHECK_INT(fdp_accept_batch(lfd, &acc, 1), ==, 1);
}

TEST(accept_batch_reports_emfile_and_leaves_the_connection_queued)
{
	char addr[FDP_ADDR_STRLEN];
	int lfd = fdp_listen("127.0.0.1:0", 4);
	int c;

	CHECK_OK(lfd);
	CHECK_OK(fdp_addr_local(lfd, addr, sizeof(addr)));
	c = connect_to(addr);
	CHECK_INT(fdp_test_wait(fdp_test_fork(accept_at_the_descriptor_limit, &lfd)), ==, 0);
	close(c);
	close(lfd);
}
