/* fdpass serve: dispatch. Real processes on loopback; every wait bounded by the log or I/O. */
#include "test_serve_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#define NCLIENTS 120

TEST(many_concurrent_clients_all_get_answers_and_every_worker_serves_some)
{
	struct server s;
	int fds[NCLIENTS], per_worker[4] = {0};
	char buf[1024];

	server_start(&s, "--workers", "4", NULL);
	/* All connected and all asking before any answer is read: the server holds them all. */
	for (int i = 0; i < NCLIENTS; i++)
		fds[i] = tcp_connect(s.addr, NULL);
	for (int i = 0; i < NCLIENTS; i++)
		send_all(fds[i], "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	for (int i = 0; i < NCLIENTS; i++) {
		const char *body = http_read(fds[i], buf, sizeof(buf));
		int w;

		CHECK(body != NULL);
		CHECK(strncmp(body, "worker=", 7) == 0);
		w = atoi(body + 7);
		CHECK(w >= 0 && w < 4);
		per_worker[w]++;
		close(fds[i]);
	}
	for (int w = 0; w < 4; w++)
		CHECK_INT(per_worker[w], >, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(round_robin_hands_connections_out_exactly_in_turn)
{
	struct server s;
	int first;

	server_start(&s, "--workers", "3", "--policy", "round-robin", NULL);
	first = http_get_worker(s.addr, NULL, NULL);
	for (int i = 1; i < 30; i++)
		CHECK_INT(http_get_worker(s.addr, NULL, NULL), ==, (first + i) % 3);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* Open a keep-alive connection, make one request, and say which worker answered. */
static int open_held(const char *addr, int *fd)
{
	char buf[1024];
	const char *body;

	*fd = tcp_connect(addr, NULL);
	send_all(*fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
	body = http_read(*fd, buf, sizeof(buf));
	CHECK(body != NULL);
	return atoi(strstr(body, "worker=") + 7);
}

/* Close a connection once the server has closed its side (its DONE is then on its way). */
static void close_held(int fd)
{
	char c;

	shutdown(fd, SHUT_WR);
	CHECK_INT(read(fd, &c, 1), ==, 0);
	close(fd);
}

TEST(least_conn_keeps_open_connections_balanced_under_skewed_lengths)
{
	enum { N = 240, W = 3 };
	struct server s;
	int fds[N], open_[W] = {0};
	char *st;

	server_start(&s, "--workers", "3", "--policy", "least-conn", NULL);
	/*
	 * Every third connection is short, the rest stay open: under round-robin one worker
	 * would get every short one and end with nothing open while the others pile up.
	 */
	for (int i = 0; i < N; i++) {
		int w = open_held(s.addr, &fds[i]);

		if (i % 3 == 0) {
			close_held(fds[i]);
			fds[i] = -1;
		} else {
			open_[w]++;
		}
	}
	st = server_status(&s);
	int lo = open_[0], hi = open_[0];
	for (int w = 0; w < W; w++) {
		char prefix[32];

		snprintf(prefix, sizeof(prefix), "\nworker index=%d ", w);
		CHECK_INT(status_num(st, prefix, "open"), ==, open_[w]);
		lo = open_[w] < lo ? open_[w] : lo;
		hi = open_[w] > hi ? open_[w] : hi;
	}
	fprintf(stderr, "open per worker: %d %d %d\n", open_[0], open_[1], open_[2]);
	CHECK(lo > 0);
	CHECK_INT(hi * 10, <=, lo * 12);
	free(st);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(hash_ip_sends_one_address_to_one_worker_also_after_it_is_replaced)
{
	static const char *const sources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5",
	                                      "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"};
	int slot[8], used[4] = {0}, nused = 0;
	struct server s;
	pid_t victim;
	char msg[64];

	server_start(&s, "--workers", "4", "--policy", "hash-ip", NULL);
	for (int i = 0; i < 8; i++) {
		slot[i] = http_get_worker(s.addr, sources[i], NULL);
		for (int k = 0; k < 5; k++)
			CHECK_INT(http_get_worker(s.addr, sources[i], NULL), ==, slot[i]);
		nused += !used[slot[i]]++;
	}
	CHECK_INT(nused, >, 1); /* the hash spreads addresses */
	/* Kill the worker that serves the first address; its replacement takes it back. */
	http_get_worker(s.addr, sources[0], &victim);
	kill(victim, SIGKILL);
	snprintf(msg, sizeof(msg), "pid %d killed by signal 9", (int)victim);
	server_wait_log(&s, msg, 10000);
	snprintf(msg, sizeof(msg), "worker %d pid ", slot[0]);
	server_wait_log(&s, msg, 10000); /* "worker N pid P generation 2 started" */
	for (int i = 0; i < 8; i++) {
		pid_t pid;

		CHECK_INT(http_get_worker(s.addr, sources[i], &pid), ==, slot[i]);
		if (i == 0)
			CHECK(pid != victim);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* The slot hash-ip gives each of n loopback addresses 127.0.1.1... with this many workers. */
static void hash_ip_slots(const char *workers, int *slot, int n)
{
	struct server s;

	server_start(&s, "--workers", workers, "--policy", "hash-ip", NULL);
	for (int i = 0; i < n; i++) {
		char src[32];

		snprintf(src, sizeof(src), "127.0.1.%d", i + 1);
		slot[i] = http_get_worker(s.addr, src, NULL);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(hash_ip_moves_few_clients_when_a_worker_is_added)
{
	enum { N = 64 };
	int before[N], after[N], moved = 0, to_new = 0;

	hash_ip_slots("4", before, N);
	hash_ip_slots("5", after, N);
	for (int i = 0; i < N; i++) {
		moved += after[i] != before[i];
		to_new += after[i] == 4;
	}
	fprintf(stderr, "%d of %d addresses moved, %d to the new slot\n", moved, N, to_new);
	/* Consistent hashing: about 1/5 move, and only to the new slot (a modulo moves ~4/5). */
	CHECK_INT(moved, >, 0);
	CHECK_INT(moved, <=, N * 3 / 8);
	CHECK_INT(moved, ==, to_new);
}

TEST(http_answers_a_request_whose_lines_end_in_a_bare_lf_and_closes_for_http_1_0)
{
	struct server s;
	char buf[1024];
	const char *body;
	int fd;

	server_start(&s, "--workers", "1", NULL);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "GET / HTTP/1.0\nHost: t\n\n");
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body && strstr(body, "worker=0 "));
	CHECK(strstr(buf, "Connection: close\r\n") != NULL);
	CHECK_INT(read(fd, buf, sizeof(buf)), ==, 0); /* and the server closed */
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(http_answers_with_its_whole_worker_line_and_the_length_of_that_line)
{
	struct server s;
	struct sockaddr_in me;
	socklen_t mlen = sizeof(me);
	char buf[1024], want[256];
	const char *body;
	unsigned long long id;
	int fd, pid, head;

	server_start(&s, "--workers", "1", NULL);
	fd = tcp_connect(s.addr, NULL);
	CHECK_OK(getsockname(fd, (struct sockaddr *)&me, &mlen));
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body != NULL);
	CHECK(sscanf(body, "worker=0 pid=%d generation=1 conn=1 id=%llu ", &pid, &id) == 2);
	CHECK_INT(pid, >, 1);
	/* Every field, in order, the peer being this client's own address. */
	snprintf(want, sizeof(want),
	         "worker=0 pid=%d generation=1 conn=1 id=%llu listener=0 peer=127.0.0.1:%u\n", pid,
	         id, (unsigned)ntohs(me.sin_port));
	if (strcmp(body, want) != 0)
		fdp_test_fail(__FILE__, __LINE__, "answered '%s', want '%s'", body, want);
	head = (int)(body - buf);
	snprintf(want, sizeof(want),
	         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	         "Connection: close\r\n\r\n",
	         strlen(body));
	CHECK_INT(head, ==, (int)strlen(want));
	CHECK(strncmp(buf, want, (size_t)head) == 0);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* Send one request on fd and say whether the answer keeps the connection open. */
static int answer_keeps_alive(int fd, const char *request)
{
	char buf[1024];

	send_all(fd, request);
	CHECK(http_read(fd, buf, sizeof(buf)) != NULL);
	if (strstr(buf, "\r\nConnection: keep-alive\r\n"))
		return 1;
	CHECK(strstr(buf, "\r\nConnection: close\r\n") != NULL);
	CHECK_INT(read(fd, buf, sizeof(buf)), ==, 0); /* and the server closed */
	return 0;
}

TEST(http_keeps_alive_unless_a_connection_header_or_http_1_0_says_close)
{
	static const struct {
		const char *request;
		int keeps;
	} cases[] = {
	        {"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 1},
	        {"GET / HTTP/1.1\r\nCONNECTION: Close\r\n\r\n", 0},
	        {"GET / HTTP/1.1\r\nHost: t\r\nconnection: TE, close\r\n\r\n", 0},
	        {"GET / HTTP/1.0\r\nHost: t\r\n\r\n", 0},
	        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1},
	        {"GET / HTTP/1.0\nconnection: keep-alive\n\n", 1},
	        {"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 0},
	        {"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 0},
	        {"POST / HTTP/1.1\r\ncontent-length:  0 \r\n\r\n", 1},
	};
	struct server s;

	server_start(&s, "--workers", "1", NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = tcp_connect(s.addr, NULL);
		int keeps = answer_keeps_alive(fd, cases[i].request);

		if (keeps != cases[i].keeps)
			fdp_test_fail(__FILE__, __LINE__, "case %zu: keeps alive %d, want %d", i,
			              keeps, cases[i].keeps);
		/* One kept alive serves a second request on the same connection. */
		if (keeps)
			CHECK_INT(answer_keeps_alive(fd, "GET / HTTP/1.1\r\n\r\n"), ==, 1);
		close(fd);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(serves_on_several_listeners_including_unix_and_ipv6)
{
	char unix_addr[256], v6[64] = "", buf[1024];
	const char *body;
	struct server s;
	int fd, v6fd = fdp_listen("[::1]:0", 1);

	/* A free IPv6 loopback port, if this machine has IPv6 at all. */
	if (v6fd >= 0) {
		CHECK_OK(fdp_addr_local(v6fd, v6, sizeof(v6)));
		close(v6fd);
	}
	snprintf(unix_addr, sizeof(unix_addr), "unix:%s/http.sock", fdp_test_tmpdir());
	if (v6[0])
		server_start(&s, "--workers", "2", "--listen", unix_addr, "--listen", v6, NULL);
	else
		server_start(&s, "--workers", "2", "--listen", unix_addr, NULL);
	fd = fdp_unix_connect(unix_addr + 5, SOCK_STREAM);
	CHECK_OK(fd);
	send_all(fd, "GET / HTTP/1.0\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body && strstr(body, " listener=1 "));
	close(fd);
	if (v6[0]) {
		fd = tcp_connect(v6, NULL);
		send_all(fd, "GET / HTTP/1.0\r\n\r\n");
		body = http_read(fd, buf, sizeof(buf));
		CHECK(body && strstr(body, " listener=2 peer=[::1]:"));
		close(fd);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(access(unix_addr + 5, F_OK) < 0); /* the listener's socket file is removed */
	server_free(&s);
}

/* GET / over the Unix socket path; returns the worker index. */
static int unix_get_worker(const char *path)
{
	char buf[1024];
	const char *body;
	int fd = fdp_unix_connect(path, SOCK_STREAM);

	CHECK_OK(fd);
	send_all(fd, "GET / HTTP/1.0\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	close(fd);
	CHECK(body && strstr(body, "worker="));
	return atoi(strstr(body, "worker=") + 7);
}

TEST(hash_ip_spreads_unix_socket_clients_round_robin)
{
	char unix_addr[256];
	struct server s;
	int first;

	snprintf(unix_addr, sizeof(unix_addr), "unix:%s/hash.sock", fdp_test_tmpdir());
	server_start(&s, "--workers", "3", "--policy", "hash-ip", "--listen", unix_addr, NULL);
	first = unix_get_worker(unix_addr + 5);
	for (int i = 1; i < 6; i++)
		CHECK_INT(unix_get_worker(unix_addr + 5), ==, (first + i) % 3);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
