/*
 * The built-in handlers' event loop (tools/fdpass/handler_loop.c) in a forked worker, against a
 * hand-driven master end of its channel. The test keeps the worker's socket too, to fill the
 * channel towards the master (a master that is slow to read) whenever it wants.
 */
#include "worker_testlib.h"
#include "serve.h"

#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

struct loop {
	struct fdp_channel *master;
	int wsock; /* the worker's end of the channel: the same socket the worker writes on */
	pid_t pid;
};

static void loop_start_limits(struct loop *t, const struct fdpass_handler *h,
                              const struct fdpass_limits *limits)
{
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&t->master, sv[0], NULL));
	send_hello(t->master, 0, 1, FDP_PROTO_VERSION);
	fflush(NULL);
	t->pid = fork();
	CHECK(t->pid >= 0);
	if (t->pid == 0) {
		struct fdp_worker *w;
		int status;

		close(sv[0]); /* the master end is the test's: its close must read as EOF here */
		if (fdp_worker_open(&w, sv[1], 5000) < 0)
			_exit(100);
		status = fdpass_handler_run(w, h, limits);
		fdp_worker_close(w);
		_exit(status);
	}
	t->wsock = sv[1];
	master_recv(t->master);
	CHECK_INT(msg.type, ==, FDP_PROTO_READY);
	fdp_channel_msg_release(&msg);
}

static void loop_start(struct loop *t, const struct fdpass_handler *h)
{
	loop_start_limits(t, h, NULL);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The master goes away; returns the worker's exit status. */
static int loop_stop(struct loop *t)
{
	int status;

	fdp_channel_close(t->master);
	status = fdp_test_wait(t->pid);
	close(t->wsock);
	return status;
}

/* Wait for an ACK or DONE (type) that names connection id: they come batched. */
static void expect_id(struct loop *t, unsigned type, uint64_t id)
{
	for (;;) {
		int found = 0;

		master_recv(t->master);
		for (size_t i = 0; msg.type == type && i < msg.len / 8; i++)
			found |= fdp__get64((const unsigned char *)msg.payload + 8 * i) == id;
		fdp_channel_msg_release(&msg);
		if (found)
			return;
	}
}

/* Send text on a client of the echo handler and read it back. */
static void echo_round_trip(int client, const char *text)
{
	char buf[64] = {0};
	size_t len = strlen(text), got = 0;

	CHECK_INT(send(client, text, len, MSG_NOSIGNAL), ==, len);
	while (got < len) {
		ssize_t n;

		fdp_test_wait_readable(client, 5000);
		n = read(client, buf + got, len - got);
		CHECK(n > 0);
		got += (size_t)n;
	}
	CHECK(memcmp(buf, text, len) == 0);
}

/* Bytes waiting to be read on a socket. */
static int unread(int sock)
{
	int n = -1;

	CHECK_OK(ioctl(sock, FIONREAD, &n));
	return n;
}

/*
 * Wait until process pid holds a descriptor for the same socket as sock: the worker has
 * received that connection from its channel. A process's descriptor table announces nothing,
 * so this looks every millisecond, for at most 10 s.
 */
static void wait_until_held(pid_t pid, int sock)
{
	long long deadline = now_ms() + 10000;
	char want[64], path[64];
	struct stat st;

	CHECK_OK(fstat(sock, &st));
	snprintf(want, sizeof(want), "socket:[%llu]", (unsigned long long)st.st_ino);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	for (;;) {
		DIR *d = opendir(path);
		struct dirent *e;
		int found = 0;

		CHECK(d != NULL);
		while (!found && (e = readdir(d))) {
			char link[64];
			ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);

			if (n > 0) {
				link[n] = '\0';
				found = strcmp(link, want) == 0;
			}
		}
		closedir(d);
		if (found)
			return;
		if (now_ms() > deadline)
			fdp_test_fail(__FILE__, __LINE__, "worker never received %s", want);
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

/* The first bytes of a /proc file, NUL-terminated; -1 if it cannot be read. */
static int read_proc(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/*
 * Wait until the worker sleeps in poll() (the loop sleeps in epoll_wait(): poll() is the
 * exit's flush) or has exited: returns 1 for poll() (or when /proc does not say), 0 for an
 * exit. Nothing announces either, so this looks every millisecond, for at most 10 s.
 */
static int wait_until_exit_flush(pid_t pid)
{
	long long deadline = now_ms() + 10000;

	for (;;) {
		char buf[512], *state;
		long nr;

		if (read_proc(pid, "stat", buf, sizeof(buf)) < 0 || !(state = strrchr(buf, ')')))
			return 1;
		if (state[2] == 'Z')
			return 0;
		if (read_proc(pid, "syscall", buf, sizeof(buf)) < 0)
			return 1; /* not ours to look at here: the test still holds, less sharply */
		nr = strtol(buf, NULL, 10);
		if (nr == SYS_ppoll
#ifdef SYS_poll
		    || nr == SYS_poll
#endif
		)
			return 1;
		if (now_ms() > deadline)
			fdp_test_fail(__FILE__, __LINE__, "the worker neither exits nor polls");
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

TEST(a_connection_is_not_read_until_its_ack_has_left)
{
	struct loop t;
	int c1, c2, s2;
	char x;

	loop_start(&t, &fdpass_handler_echo);
	c1 = send_conn_keep(t.master, 1, FDPASS_TAG_ECHO, NULL);
	expect_id(&t, FDP_PROTO_ACK, 1);
	echo_round_trip(c1, "a");
	/* The master stops reading: the next connection's ACK cannot leave the worker. */
	fill_towards_master(t.wsock);
	c2 = send_conn_keep(t.master, 2, FDPASS_TAG_ECHO, &s2);
	CHECK_INT(send(c2, "x", 1, MSG_NOSIGNAL), ==, 1);
	wait_until_held(t.pid, s2);
	/*
	 * Two round trips on the other connection: the worker has been round its loop since it
	 * took connection 2, so had it watched it for input, it would have read it by now.
	 */
	echo_round_trip(c1, "y");
	echo_round_trip(c1, "z");
	CHECK_INT(unread(s2), ==, 1);
	CHECK_INT(unread(c2), ==, 0);
	/* The master reads again: the ACK arrives, and only then is the connection served. */
	expect_id(&t, FDP_PROTO_ACK, 2);
	fdp_test_wait_readable(c2, 5000);
	CHECK_INT(read(c2, &x, 1), ==, 1);
	CHECK_INT(x, ==, 'x');
	CHECK_INT(loop_stop(&t), ==, 1);
	close(c1);
	close(c2);
	close(s2);
}

TEST(a_finished_connection_is_closed_only_once_its_done_has_left)
{
	struct loop t;
	int c1, c2;
	char x;

	loop_start(&t, &fdpass_handler_echo);
	c1 = send_conn_keep(t.master, 1, FDPASS_TAG_ECHO, NULL);
	c2 = send_conn_keep(t.master, 2, FDPASS_TAG_ECHO, NULL);
	expect_id(&t, FDP_PROTO_ACK, 2);
	echo_round_trip(c1, "a");
	echo_round_trip(c2, "b");
	fill_towards_master(t.wsock);
	/* The client ends connection 2; its DONE cannot leave while the master does not read. */
	CHECK_OK(shutdown(c2, SHUT_WR));
	echo_round_trip(c1, "y"); /* the worker has been round its loop since: see above */
	echo_round_trip(c1, "z");
	CHECK_INT(unread(c2), ==, 0);
	CHECK_INT(poll(&(struct pollfd){.fd = c2, .events = POLLIN}, 1, 0), ==, 0);
	/* The master reads the DONE first; the client sees the end after. */
	expect_id(&t, FDP_PROTO_DONE, 2);
	fdp_test_wait_readable(c2, 5000);
	CHECK_INT(read(c2, &x, 1), ==, 0);
	CHECK_INT(loop_stop(&t), ==, 1);
	close(c1);
	close(c2);
}

TEST(a_draining_worker_waits_for_a_slow_master_to_take_its_last_done)
{
	struct loop t;
	int c1;
	char x;

	loop_start(&t, &fdpass_handler_echo);
	c1 = send_conn_keep(t.master, 1, FDPASS_TAG_ECHO, NULL);
	expect_id(&t, FDP_PROTO_ACK, 1);
	echo_round_trip(c1, "a");
	fill_towards_master(t.wsock);
	CHECK_OK(fdp_channel_send(t.master, FDP_PROTO_DRAIN, NULL, 0, NULL, 0, 0));
	/* Its last connection ends: the worker exits, with the DONE still to leave. */
	CHECK_OK(shutdown(c1, SHUT_WR));
	CHECK_INT(wait_until_exit_flush(t.pid), ==, 1); /* not gone yet: it waits for the master */
	expect_id(&t, FDP_PROTO_DONE, 1);
	CHECK_INT(fdp_test_wait(t.pid), ==, 0);
	fdp_test_wait_readable(c1, 5000);
	CHECK_INT(read(c1, &x, 1), ==, 0);
	fdp_channel_close(t.master);
	close(t.wsock);
	close(c1);
}

/* The socket still works both ways: the client's bytes reach copy, and copy's reach it. */
static void check_still_connected(int client, int copy)
{
	char x = 0;

	CHECK_INT(send(client, "q", 1, MSG_NOSIGNAL), ==, 1);
	fdp_test_wait_readable(copy, 5000);
	CHECK_INT(read(copy, &x, 1), ==, 1);
	CHECK_INT(x, ==, 'q');
	CHECK_INT(send(copy, "r", 1, MSG_NOSIGNAL), ==, 1);
	fdp_test_wait_readable(client, 5000);
	CHECK_INT(read(client, &x, 1), ==, 1);
	CHECK_INT(x, ==, 'r');
}

TEST(connections_are_closed_not_shut_down_when_the_master_is_gone)
{
	struct loop t;
	int c1, s1, c2, s2;

	loop_start(&t, &fdpass_handler_echo);
	c1 = send_conn_keep(t.master, 1, FDPASS_TAG_ECHO, &s1);
	expect_id(&t, FDP_PROTO_ACK, 1);
	echo_round_trip(c1, "a");
	fill_towards_master(t.wsock);
	c2 = send_conn_keep(t.master, 2, FDPASS_TAG_ECHO,
	                    &s2); /* not acknowledged: the master would re-hand it */
	wait_until_held(t.pid, s2);
	CHECK_INT(loop_stop(&t), ==, 1);
	/* The copies (another worker's, say) still serve their clients. */
	check_still_connected(c1, s1);
	check_still_connected(c2, s2);
	close(c1);
	close(s1);
	close(c2);
	close(s2);
}

TEST(a_finished_connection_ends_for_the_client_though_the_master_still_holds_a_copy)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	struct loop t;
	char buf[1024];
	size_t len = 0;
	int c1, s1;

	loop_start(&t, &fdpass_handler_http);
	c1 = send_conn_keep(t.master, 1, FDPASS_TAG_HTTP, &s1);
	CHECK_INT(send(c1, req, sizeof(req) - 1, MSG_NOSIGNAL), ==, sizeof(req) - 1);
	for (;;) {
		ssize_t n;

		fdp_test_wait_readable(c1, 5000);
		n = read(c1, buf + len, sizeof(buf) - 1 - len);
		CHECK(n >= 0);
		if (n == 0)
			break; /* the worker's FIN, though s1 is still open */
		len += (size_t)n;
	}
	buf[len] = '\0';
	CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
	CHECK(strstr(buf, "Connection: close\r\n") != NULL);
	expect_id(&t, FDP_PROTO_DONE, 1);
	CHECK_INT(loop_stop(&t), ==, 1);
	close(c1);
	close(s1);
}

/* One keep-alive request and its whole answer, leaving the connection between requests. */
static void http_keep_alive_round_trip(int client)
{
	const char *req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
	char buf[1024] = {0};
	size_t got = 0;

	CHECK_INT(send(client, req, strlen(req), MSG_NOSIGNAL), ==, strlen(req));
	while (!strstr(buf, "\r\n\r\n") || !strstr(strstr(buf, "\r\n\r\n"), "\n")) {
		ssize_t n;

		fdp_test_wait_readable(client, 5000);
		n = read(client, buf + got, sizeof(buf) - 1 - got);
		CHECK(n > 0);
		got += (size_t)n;
		buf[got] = '\0';
	}
	CHECK(strstr(buf, "Connection: keep-alive") != NULL);
}

TEST(a_drain_serves_a_connection_whose_first_request_comes_after_it)
{
	const char *req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
	struct loop t;
	char buf[1024] = {0};
	int http, early;

	/* Handed over just before the drain, the client's request still on its way. */
	loop_start(&t, &fdpass_handler_http);
	early = send_conn_keep(t.master, 1, FDPASS_TAG_HTTP, NULL);
	http = send_conn_keep(t.master, 2, FDPASS_TAG_HTTP, NULL);
	expect_id(&t, FDP_PROTO_ACK, 2);
	http_keep_alive_round_trip(early); /* the worker has read everything so far */
	CHECK_OK(fdp_channel_send(t.master, FDP_PROTO_DRAIN, NULL, 0, NULL, 0, 0));
	expect_id(&t, FDP_PROTO_DONE, 1); /* the answered one, idle, goes */
	CHECK_INT(send(http, req, strlen(req), MSG_NOSIGNAL), ==, strlen(req));
	fdp_test_wait_readable(http, 5000);
	CHECK(read(http, buf, sizeof(buf) - 1) > 0);
	CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
	CHECK(strstr(buf, "Connection: close") != NULL);
	expect_id(&t, FDP_PROTO_DONE, 2);
	CHECK_INT(fdp_test_wait(t.pid), ==, 0);
	fdp_channel_close(t.master);
	close(t.wsock);
	close(early);
	close(http);
}

TEST(a_drain_closes_idle_connections_by_the_protocol_of_each)
{
	struct loop t;
	int echo, http;
	char x;

	/* An http worker with an echo connection (a listener's tag=echo) and an http one. */
	loop_start(&t, &fdpass_handler_http);
	echo = send_conn_keep(t.master, 1, FDPASS_TAG_ECHO, NULL);
	http = send_conn_keep(t.master, 2, FDPASS_TAG_HTTP, NULL);
	expect_id(&t, FDP_PROTO_ACK, 2);
	echo_round_trip(echo, "a");
	http_keep_alive_round_trip(http);
	CHECK_OK(fdp_channel_send(t.master, FDP_PROTO_DRAIN, NULL, 0, NULL, 0, 0));
	/* The idle http connection (between requests) goes at once; the echo stream ends only
	 * when its client does. */
	expect_id(&t, FDP_PROTO_DONE, 2);
	fdp_test_wait_readable(http, 5000);
	CHECK_INT(read(http, &x, 1), ==, 0);
	echo_round_trip(echo, "b");
	CHECK_OK(shutdown(echo, SHUT_WR));
	expect_id(&t, FDP_PROTO_DONE, 1);
	CHECK_INT(fdp_test_wait(t.pid), ==, 0);
	fdp_channel_close(t.master);
	close(t.wsock);
	close(echo);
	close(http);
}

/* The size of a built-in handler's input buffer: what it may hold read but unanswered. */
#define CONN_IN_SIZE sizeof(((struct fdpass_conn *)0)->in)

/* Read one whole HTTP answer (head and Content-Length body) from client; returns its length. */
static size_t http_answer_len(int client)
{
	char buf[1024] = {0};
	size_t got = 0;
	const char *end;

	while (!(end = strstr(buf, "\r\n\r\n")) ||
	       got < (size_t)(end + 4 - buf) + (size_t)atoi(strstr(buf, "Content-Length: ") + 16)) {
		ssize_t n;

		fdp_test_wait_readable(client, 5000);
		n = read(client, buf + got, sizeof(buf) - 1 - got);
		CHECK(n > 0);
		got += (size_t)n;
		buf[got] = '\0';
	}
	CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	return got;
}

/* Send from a repeating pattern (whole periods in pat) until the socket takes no more. */
static void send_until_full(int client, const char *pat, size_t patlen, size_t period, size_t *sent)
{
	for (;;) {
		size_t off = *sent % period;
		ssize_t n = send(client, pat + off, patlen - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			CHECK_INT(errno, ==, EAGAIN);
			return;
		}
		*sent += (size_t)n;
	}
}

/*
 * A client that sends without reading: send until its socket is full, then make two round
 * trips on another connection (barrier): had the worker watched client for input, it would
 * have read some of it by then (epoll reports every ready descriptor at each wait). Repeat
 * until the worker read nothing across the barrier; returns the bytes sent. s is the worker's
 * end of client; 64 MiB sent means the worker never stopped reading.
 */
static size_t send_until_not_read(int client, int s, int barrier, const char *pat, size_t patlen,
                                  size_t period)
{
	size_t sent = 0;

	for (;;) {
		int before;

		send_until_full(client, pat, patlen, period, &sent);
		before = unread(s);
		echo_round_trip(barrier, "a");
		echo_round_trip(barrier, "b");
		if (unread(s) == before)
			return sent;
		if (sent > (64u << 20))
			fdp_test_fail(__FILE__, __LINE__, "the worker read all %zu bytes", sent);
	}
}

/* The next message to the master that is not an ACK or DONE (they come in between). */
static void master_recv_other(struct loop *t)
{
	for (;;) {
		master_recv(t->master);
		if (msg.type != FDP_PROTO_ACK && msg.type != FDP_PROTO_DONE)
			return;
		fdp_channel_msg_release(&msg);
	}
}

TEST(a_reload_hands_back_an_idle_http_connection_but_not_one_whose_body_is_due)
{
	const char *post = "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345";
	const char *rest = "67890GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	unsigned char drain[FDP_PROTO_DRAIN_SIZE];
	struct fdp_conn meta;
	struct loop t;
	char buf[2048] = {0};
	int idle, mid;
	size_t got = 0;

	loop_start(&t, &fdpass_handler_http);
	idle = send_conn_keep(t.master, 1, FDPASS_TAG_HTTP, NULL);
	mid = send_conn_keep(t.master, 2, FDPASS_TAG_HTTP, NULL);
	expect_id(&t, FDP_PROTO_ACK, 2);
	http_keep_alive_round_trip(idle); /* answered: between requests */
	CHECK_INT(send(mid, post, strlen(post), MSG_NOSIGNAL), ==, strlen(post));
	http_answer_len(mid); /* answered at its head; half its body is still due */
	CHECK_OK(fdp_channel_send(t.master, FDP_PROTO_DRAIN, drain,
	                          fdp_proto_drain_encode(drain, FDP_PROTO_DRAIN_HANDBACK), NULL, 0,
	                          0));
	/* The idle one comes back, whole: its metadata and its socket. */
	master_recv_other(&t);
	CHECK_INT(msg.type, ==, FDP_PROTO_RETURN);
	CHECK_INT(msg.nfds, ==, 1);
	CHECK_OK(fdp_proto_conn_decode(msg.payload, msg.len, &meta));
	CHECK_INT(meta.id, ==, 1);
	fdp_channel_msg_release(&msg);
	/* The other stays: its body's rest is dropped, and its next request is answered here. */
	CHECK_INT(send(mid, rest, strlen(rest), MSG_NOSIGNAL), ==, strlen(rest));
	while (!strstr(buf, "HTTP/1.1 200")) {
		ssize_t n;

		fdp_test_wait_readable(mid, 5000);
		n = read(mid, buf + got, sizeof(buf) - 1 - got);
		CHECK(n > 0);
		got += (size_t)n;
	}
	expect_id(&t, FDP_PROTO_DONE, 2);
	CHECK_INT(fdp_test_wait(t.pid), ==, 0);
	fdp_channel_close(t.master);
	close(t.wsock);
	close(idle);
	close(mid);
}

TEST(a_client_that_pipelines_requests_without_reading_is_not_read_past_the_output_limit)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
	const struct fdpass_limits lim = {.max_output = 4096};
	const size_t reqlen = sizeof(req) - 1;
	static char pat[2048 * (sizeof(req) - 1)];
	size_t anslen, sent, consumed, answers, got = 0;
	struct loop t;
	int barrier, c, s;

	for (size_t i = 0; i < sizeof(pat); i += reqlen)
		memcpy(pat + i, req, reqlen);
	loop_start_limits(&t, &fdpass_handler_http, &lim);
	barrier = send_conn_keep(t.master, 1, FDPASS_TAG_ECHO, NULL);
	c = send_conn_keep(t.master, 2, FDPASS_TAG_HTTP, &s);
	expect_id(&t, FDP_PROTO_ACK, 2);
	CHECK_INT(send(c, req, reqlen, MSG_NOSIGNAL), ==, reqlen);
	anslen = http_answer_len(c); /* every answer on this connection is as long */
	sent = send_until_not_read(c, s, barrier, pat, sizeof(pat), reqlen);
	/*
	 * What the worker read, less what its buffer may hold unanswered, was answered; what of
	 * that is not in the client's socket is in the worker: at most the limit and one answer.
	 */
	consumed = sent - (size_t)unread(s);
	CHECK_INT(unread(s), >, 0);
	CHECK_INT(consumed >= CONN_IN_SIZE, ==, 1);
	answers = (consumed - CONN_IN_SIZE) / reqlen;
	CHECK_INT(answers * anslen, <=, (size_t)unread(c) + lim.max_output + anslen);
	/* The client reads: the worker reads again, and every request is answered. */
	answers = sent / reqlen;
	while (got < answers * anslen) {
		static char buf[65536];
		ssize_t n;

		fdp_test_wait_readable(c, 5000);
		n = read(c, buf, sizeof(buf));
		CHECK(n > 0);
		got += (size_t)n;
	}
	CHECK_INT(got, ==, answers * anslen);
	CHECK_INT(loop_stop(&t), ==, 1);
	close(barrier);
	close(c);
	close(s);
}

TEST(an_echo_client_that_sends_without_reading_is_not_read_past_the_output_limit)
{
	const struct fdpass_limits lim = {.max_output = 4096};
	static char pat[65536 + 251], buf[65536];
	size_t sent, consumed, got = 0;
	struct loop t;
	int barrier, c, s;

	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (char)(i % 251);
	loop_start_limits(&t, &fdpass_handler_echo, &lim);
	barrier = send_conn_keep(t.master, 1, FDPASS_TAG_ECHO, NULL);
	c = send_conn_keep(t.master, 2, FDPASS_TAG_ECHO, &s);
	expect_id(&t, FDP_PROTO_ACK, 2);
	sent = send_until_not_read(c, s, barrier, pat, sizeof(pat), 251);
	/* In the worker: the limit, and at most one read past it (its input buffer). */
	consumed = sent - (size_t)unread(s);
	CHECK_INT(unread(s), >, 0);
	CHECK_INT(consumed - (size_t)unread(c), <=, lim.max_output + 2 * CONN_IN_SIZE);
	/* The client reads: every byte comes back, in order. */
	while (got < sent) {
		ssize_t n;

		fdp_test_wait_readable(c, 5000);
		n = read(c, buf, sizeof(buf));
		CHECK(n > 0);
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != (char)((got + (size_t)i) % 251))
				fdp_test_fail(__FILE__, __LINE__, "byte %zu differs",
				              got + (size_t)i);
		got += (size_t)n;
	}
	CHECK_INT(got, ==, sent);
	CHECK_INT(loop_stop(&t), ==, 1);
	close(barrier);
	close(c);
	close(s);
}

/* Send one http request on a handed-over connection and read until the worker closes. */
static size_t http_read_to_eof(int client, const char *req, char *buf, size_t size)
{
	size_t got = 0;

	CHECK_INT(send(client, req, strlen(req), MSG_NOSIGNAL), ==, strlen(req));
	for (;;) {
		ssize_t n;

		CHECK(got < size - 1);
		fdp_test_wait_readable(client, 5000);
		n = read(client, buf + got, size - 1 - got);
		CHECK(n >= 0);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

TEST(an_http_request_for_pad_n_is_answered_with_the_worker_line_padded_to_n_bytes)
{
	static char buf[300000];
	struct loop t;
	const char *body;
	size_t got;
	int c, s;

	loop_start(&t, &fdpass_handler_http);
	c = send_conn_keep(t.master, 1, FDPASS_TAG_HTTP, &s);
	got = http_read_to_eof(c,
	                       "GET /pad/262144 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
	                       buf, sizeof(buf));
	CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(strstr(buf, "Content-Length: 262144\r\n") != NULL);
	body = strstr(buf, "\r\n\r\n") + 4;
	CHECK_INT(got - (size_t)(body - buf), ==, 262144);
	CHECK(strncmp(body, "worker=0 ", 9) == 0);
	CHECK(strchr(body, '\n') != NULL);
	/* After the line, nothing but padding. */
	CHECK_INT(strspn(strchr(body, '\n') + 1, "x"), ==,
	          (size_t)(buf + got - strchr(body, '\n') - 1));
	CHECK_INT(loop_stop(&t), ==, 1);
	close(c);
	close(s);
}

TEST(an_http_request_for_pad_beyond_one_mib_gets_the_plain_answer)
{
	static char buf[4096];
	struct loop t;
	int c, s;

	loop_start(&t, &fdpass_handler_http);
	c = send_conn_keep(t.master, 1, FDPASS_TAG_HTTP, &s);
	http_read_to_eof(c, "GET /pad/1048577 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
	                 buf, sizeof(buf));
	CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	/* The line alone: under 256 bytes, and all of it what Content-Length says. */
	CHECK_INT(strlen(strstr(buf, "\r\n\r\n") + 4), <, 256);
	CHECK_INT(strlen(strstr(buf, "\r\n\r\n") + 4), ==,
	          (size_t)atoi(strstr(buf, "Content-Length: ") + 16));
	CHECK_INT(loop_stop(&t), ==, 1);
	close(c);
	close(s);
}

TEST(an_http_request_for_sleep_n_is_answered_no_sooner_than_n_microseconds)
{
	static char buf[4096];
	struct loop t;
	long long start;
	int c, s;

	loop_start(&t, &fdpass_handler_http);
	c = send_conn_keep(t.master, 1, FDPASS_TAG_HTTP, &s);
	start = now_ms();
	http_read_to_eof(c, "GET /sleep/200000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
	                 buf, sizeof(buf));
	CHECK_INT(now_ms() - start, >=, 200);
	CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(strstr(strstr(buf, "\r\n\r\n"), "worker=0 ") != NULL);
	CHECK_INT(loop_stop(&t), ==, 1);
	close(c);
	close(s);
}
