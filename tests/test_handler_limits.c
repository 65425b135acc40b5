/*
 * fdpass serve: the built-in handlers' limits (--header-timeout, --idle-timeout, the request
 * head limit, --max-output's options), on a real server over loopback. The timeouts are set
 * short by the options; every wait is for an event (an answer, a close), bounded by poll().
 */
#include "test_serve_util.h"

/* How long a test waits for something the server must do after a 1 s timeout. */
#define WAIT_MS 5000

/* Read until the server closes (or WAIT_MS passes: a failure); returns what it sent. */
static char *read_until_close(int fd, char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		ssize_t n;

		fdp_test_wait_readable(fd, WAIT_MS);
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0)
			fdp_test_fail(__FILE__, __LINE__, "read after %zu bytes: %s", len,
			              strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
		CHECK(len < size - 1);
	}
	buf[len] = '\0';
	return buf;
}

/* The server answered status with Connection: close, then closed without a reset. */
static void expect_error_and_close(int fd, const char *status)
{
	char buf[4096];

	read_until_close(fd, buf, sizeof(buf));
	if (strncmp(buf, status, strlen(status)) != 0)
		fdp_test_fail(__FILE__, __LINE__, "want %s, got: %s", status, buf);
	CHECK(strstr(buf, "\r\nConnection: close\r\n") != NULL);
	CHECK(strstr(buf, "\r\nContent-Length: ") != NULL);
}

static void start_one(struct server *s, const char *option, const char *value)
{
	server_start(s, "--workers", "1", option, value, NULL);
}

static void stop(struct server *s)
{
	CHECK_INT(server_stop(s), ==, 0);
	server_free(s);
}

TEST(a_request_head_not_complete_within_the_header_timeout_gets_408_and_a_close)
{
	struct server s;
	int fd;

	start_one(&s, "--header-timeout", "1");
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n"); /* the blank line never comes */
	expect_error_and_close(fd, "HTTP/1.1 408 Request Timeout\r\n");
	close(fd);
	stop(&s);
}

TEST(a_client_that_sends_nothing_is_closed_after_the_header_timeout_without_an_answer)
{
	struct server s;
	char buf[256];
	int fd;

	start_one(&s, "--header-timeout", "1");
	fd = tcp_connect(s.addr, NULL);
	CHECK_INT(strlen(read_until_close(fd, buf, sizeof(buf))), ==, 0);
	close(fd);
	stop(&s);
}

TEST(a_keep_alive_connection_that_sends_nothing_is_closed_after_the_idle_timeout)
{
	struct server s;
	char buf[1024];
	long long answered;
	int fd;

	start_one(&s, "--idle-timeout", "1");
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
	CHECK(http_read(fd, buf, sizeof(buf)) != NULL);
	CHECK(strstr(buf, "Connection: keep-alive") != NULL);
	answered = test_now_ms();
	CHECK_INT(strlen(read_until_close(fd, buf, sizeof(buf))), ==, 0); /* quietly */
	CHECK_INT(test_now_ms() - answered, >=, 800); /* not at once: after the timeout */
	close(fd);
	stop(&s);
}

TEST(a_request_head_larger_than_the_buffer_gets_431_and_a_graceful_close)
{
	static char req[12000];
	struct server s;
	int fd, n, err = -1;

	/* 12000 bytes, 8192 of them read: what the server never reads must not reset the answer. */
	n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: ");
	memset(req + n, 'a', sizeof(req) - 1 - (size_t)n);
	server_start(&s, "--workers", "1", NULL);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, req);
	expect_error_and_close(fd, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
	/*
	 * A close with that input unread would have sent a reset (EPIPE here, after the FIN) at
	 * once. A request served since on another connection of the one worker shows that the
	 * worker has been round its loop since the FIN: the reset would be here by now.
	 */
	http_get_worker(s.addr, NULL, NULL);
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &(socklen_t){sizeof(err)}));
	CHECK_INT(err, ==, 0);
	close(fd);
	stop(&s);
}

TEST(a_malformed_request_line_gets_400_and_a_close)
{
	static const char *const garbage[] = {
	        "\x16\x03\x01\x02", /* the start of a TLS ClientHello */
	        "hello there\r\n\r\n",
	        "GET /  HTTP/1.1\r\n\r\n",
	        "GET / HTTX/1.1\r\n\r\n",
	};
	struct server s;

	server_start(&s, "--workers", "1", NULL);
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		int fd = tcp_connect(s.addr, NULL);

		send_all(fd, garbage[i]);
		expect_error_and_close(fd, "HTTP/1.1 400 Bad Request\r\n");
		close(fd);
	}
	stop(&s);
}

TEST(requests_within_the_limits_are_still_served_after_a_refused_one)
{
	char buf[1024];
	struct server s;
	int fd;

	start_one(&s, "--header-timeout", "1");
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "BAD\x01\r\n\r\n");
	expect_error_and_close(fd, "HTTP/1.1 400 Bad Request\r\n");
	close(fd);
	/* Empty lines before a request are allowed (RFC 9112 2.2), and a pipelined pair served. */
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
	CHECK(http_read(fd, buf, sizeof(buf)) != NULL);
	CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	close(fd);
	stop(&s);
}

TEST(a_request_body_is_dropped_not_taken_for_the_next_request_head)
{
	char buf[1024];
	struct server s;
	int fd;

	server_start(&s, "--workers", "1", NULL);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n");
	CHECK(http_read(fd, buf, sizeof(buf)) != NULL);
	CHECK(strstr(buf, "Connection: keep-alive") != NULL);
	send_all(fd, "a=1&b=2GET / HTTP/1.1\r\nHost: t\r\n\r\n"); /* the body, then a request */
	CHECK(http_read(fd, buf, sizeof(buf)) != NULL);
	CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	/* A chunked body cannot be dropped without reading it: the answer ends the connection. */
	send_all(fd, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
	CHECK(http_read(fd, buf, sizeof(buf)) != NULL);
	CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(strstr(buf, "Connection: close") != NULL);
	close(fd);
	stop(&s);
}

TEST(bad_limit_options_exit_2_naming_the_option_and_what_it_accepts)
{
	static const char *const cases[][3] = {
	        {"--header-timeout", "0", "seconds from 0.001 to 3600"},
	        {"--header-timeout", "soon", "seconds from 0.001 to 3600"},
	        {"--header-timeout", "3601", "seconds from 0.001 to 3600"},
	        {"--idle-timeout", "-1", "seconds from 0.001 to 86400"},
	        {"--idle-timeout", "1x", "seconds from 0.001 to 86400"},
	        {"--max-output", "1023", "a number from 1024 to 1073741824"},
	        {"--max-output", "1k", "a number from 1024 to 1073741824"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = {"serve", "--control", "none", cases[i][0], cases[i][1], NULL};
		char *out, *err;
		int got = run_tool(args, &out, &err);

		if (got != 2 || !strstr(err, cases[i][0]) || !strstr(err, cases[i][1]) ||
		    !strstr(err, cases[i][2]))
			fdp_test_fail(__FILE__, __LINE__, "%s %s: exit %d, stderr: %s", cases[i][0],
			              cases[i][1], got, err);
		free(out);
		free(err);
	}
}

TEST(help_explains_the_limit_options_and_their_defaults)
{
	static const char *const opts[] = {"--header-timeout", "--idle-timeout", "--max-output",
	                                   "Default 10.",      "Default 60.",    "Default 262144."};
	const char *args[] = {"serve", "--help", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 0);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (!strstr(out, opts[i]))
			fdp_test_fail(__FILE__, __LINE__, "--help does not say %s", opts[i]);
	free(out);
	free(err);
}
