/*
 * fdpass serve --policy route end to end: the sharded key-value example under load, a worker
 * killed mid-load, slow, silent, oversize and garbage clients, the HTTP extractors, the map,
 * per-listener policies, and the command line. Every reply of the kv example names the shard
 * that gave it, and each test checks it against the ring computed here: a key must only ever
 * reach its own slot.
 */
#include "route_testlib.h"

TEST(kv_100k_requests_from_concurrent_clients_are_never_misrouted)
{
	struct server s;
	char *st;

	server_start(&s, "--workers", "4", "--policy", "route", "--route-key", "line:2", "--exec",
	             KV, NULL);
	/* 16 clients x 3125 keys x (SET + GET) = 100 000 requests, each on its own connection. */
	run_load(&s, 3125, 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "\nroute ", "hashed"), ==, 100000);
	CHECK_INT(status_num(st, "\nroute ", "closed"), ==, 0);
	CHECK_INT(status_num(st, "master ", "handed"), ==, 100000);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(kv_worker_killed_mid_load_loses_its_keys_but_no_key_moves)
{
	struct server s;

	server_start(&s, "--workers", "4", "--policy", "route", "--route-key", "line:2", "--exec",
	             KV, NULL);
	run_load(&s, 1500, 1);
	CHECK_INT(route_count(&s, "defaulted"), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* ---- slow, silent, oversize and garbage clients ------------------------------------------ */

static void slow_client(void *arg)
{
	const char *addr = arg, *line = "SET slowkey slowvalue\n";
	char reply[64], want[64];
	int fd = tcp_connect(addr, NULL);
	size_t len = strlen(line);
	ssize_t n;

	/* About 2 s in all: the sleeps are the behaviour under test, not synchronisation. */
	for (size_t i = 0; i < len; i++) {
		CHECK_INT(send(fd, line + i, 1, MSG_NOSIGNAL), ==, 1);
		poll(NULL, 0, (int)(2000 / len));
	}
	n = read(fd, reply, sizeof(reply) - 1);
	CHECK(n > 0);
	reply[n] = '\0';
	snprintf(want, sizeof(want), "STORED %u\n", expected_slot("slowkey", LOAD_WORKERS));
	CHECK(strcmp(reply, want) == 0);
	close(fd);
	fdp__hashring_free(&ring);
}

TEST(slow_client_sending_its_key_byte_by_byte_is_routed_and_delays_no_one)
{
	struct server s;
	char reply[128], key[32], line[64];
	long long worst = 0;
	unsigned fast = 0;
	pid_t slow;
	int status;

	server_start(&s, "--workers", "4", "--policy", "route", "--route-key", "line:2", "--exec",
	             KV, NULL);
	slow = fdp_test_fork(slow_client, s.addr);
	/* Fast clients meanwhile: none may wait for the slow one. */
	while (waitpid(slow, &status, WNOHANG) == 0) {
		long long t0 = test_now_ms();

		snprintf(key, sizeof(key), "fast%u", fast++);
		snprintf(line, sizeof(line), "SET %s x\n", key);
		CHECK_OK(kv_request(s.addr, NULL, line, reply, sizeof(reply)));
		if (test_now_ms() - t0 > worst)
			worst = test_now_ms() - t0;
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(fast, >, 100);
	CHECK_INT(worst, <, 500);
	CHECK_INT(route_count(&s, "hashed"), ==, fast + 1);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp__hashring_free(&ring);
}

/* Read until EOF or reset; returns the bytes read (0 when closed without an answer). */
static ssize_t read_to_end(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return (ssize_t)len;
}

TEST(silent_client_is_closed_at_the_deadline)
{
	struct server s;
	char buf[64];
	long long t0;
	int fd;

	server_start(&s, "--workers", "2", "--policy", "route", "--route-key", "line:2",
	             "--route-timeout", "0.3", "--exec", KV, NULL);
	t0 = test_now_ms();
	fd = tcp_connect(s.addr, NULL);
	fdp_test_wait_readable(fd, 5000);
	CHECK_INT(read_to_end(fd, buf, sizeof(buf)), ==, 0);
	CHECK_INT(test_now_ms() - t0, >=, 250);
	close(fd);
	CHECK_INT(route_count(&s, "timeout"), ==, 1);
	CHECK_INT(route_count(&s, "closed"), ==, 1);
	CHECK_INT(route_count(&s, "waiting"), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(silent_client_goes_to_the_default_worker_at_the_deadline)
{
	struct server s;
	char buf[64];
	int fd;

	server_start(&s, "--workers", "3", "--policy", "route", "--route-key", "line:2",
	             "--route-timeout", "0.2", "--route-fail", "default:2", "--exec", KV, NULL);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "GET"); /* no key yet */
	wait_route_count(&s, "defaulted", 1);
	send_all(fd, " somekey\n"); /* the default worker reads the stream from its first byte */
	CHECK(read_to_end(fd, buf, sizeof(buf)) > 0);
	CHECK(strcmp(buf, "MISSING 2\n") == 0);
	close(fd);
	CHECK_INT(route_count(&s, "timeout"), ==, 1);
	CHECK_INT(route_count(&s, "closed"), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

static void oversize(const char *fail, const char *want_reply)
{
	struct server s;
	char line[256], reply[128];
	int fd;

	server_start(&s, "--workers", "2", "--policy", "route", "--route-key", "line:2",
	             "--route-max-bytes", "64", "--route-fail", fail, "--exec", KV, NULL);
	snprintf(line, sizeof(line), "SET %0100d v\n", 7); /* a key running past byte 64 */
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, line);
	read_to_end(fd, reply, sizeof(reply));
	close(fd);
	CHECK(strcmp(reply, want_reply) == 0);
	CHECK_INT(route_count(&s, "too_big"), ==, 1);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(oversize_head_is_closed_or_defaulted_as_configured)
{
	oversize("close", "");
	oversize("default:1", "STORED 1\n");
}

static void garbage(const char *fail, long long defaulted)
{
	static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	struct server s;
	char buf[512];
	int fd;

	server_start(&s, "--workers", "2", "--handler", "http", "--policy", "route", "--route-key",
	             "http-host", "--route-fail", fail, NULL);
	fd = tcp_connect(s.addr, NULL);
	CHECK_INT(send(fd, tls, sizeof(tls) - 1, MSG_NOSIGNAL), ==, sizeof(tls) - 1);
	if (!defaulted) {
		fdp_test_wait_readable(fd, 5000);
		CHECK_INT(read_to_end(fd, buf, sizeof(buf)), ==, 0);
	} else {
		wait_route_count(&s, "defaulted", 1);
	}
	close(fd);
	CHECK_INT(route_count(&s, "rejected"), ==, 1);
	CHECK_INT(route_count(&s, "defaulted"), ==, defaulted);
	CHECK_INT(route_count(&s, "closed"), ==, 1 - defaulted);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(garbage_head_is_rejected_at_once_and_closed_or_defaulted_as_configured)
{
	garbage("close", 0);
	garbage("default:0", 1);
}

/* ---- HTTP, the map, listeners ----------------------------------------------------------- */

static int http_worker(const char *addr, const char *path, const char *host)
{
	char req[256], buf[2048];
	const char *body, *w;
	int fd = tcp_connect(addr, NULL);

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
	         host);
	send_all(fd, req);
	body = http_read(fd, buf, sizeof(buf));
	close(fd);
	CHECK(body && (w = strstr(body, "worker=")));
	return atoi(w + 7);
}

TEST(http_host_and_http_path_route_each_request_to_its_slot)
{
	struct server s;
	char host[96], upper[64], path[32];
	unsigned seen = 0;

	server_start(&s, "--workers", "4", "--handler", "http", "--policy", "route", "--route-key",
	             "http-host", NULL);
	for (unsigned i = 0; i < 24; i++) {
		unsigned want;

		snprintf(host, sizeof(host), "site%u.example", i);
		snprintf(upper, sizeof(upper), "SITE%u.Example:8080", i);
		want = expected_slot(host, 4);
		seen |= 1u << want;
		CHECK_INT(http_worker(s.addr, "/", host), ==, want);
		CHECK_INT(http_worker(s.addr, "/other", upper), ==, want); /* same host */
	}
	CHECK_INT(seen, ==, 0xf);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);

	server_start(&s, "--workers", "4", "--handler", "http", "--policy", "route", "--route-key",
	             "http-path", NULL);
	for (unsigned i = 0; i < 24; i++) {
		snprintf(path, sizeof(path), "/room/%u", i);
		CHECK_INT(http_worker(s.addr, path, "any"), ==, expected_slot(path, 4));
		snprintf(host, sizeof(host), "%s?q=%u", path, i);
		CHECK_INT(http_worker(s.addr, host, "other"), ==, expected_slot(path, 4));
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp__hashring_free(&ring);
}

TEST(route_map_pins_keys_and_prefixes_and_hashes_the_rest)
{
	struct server s;
	char map[512], reply[64], want[64];
	FILE *f;

	snprintf(map, sizeof(map), "%s/route.map", fdp_test_tmpdir());
	f = fopen(map, "w");
	CHECK(f);
	fputs("# pinned\nalice 3\nuser:* 1\nuser:vip 2\n", f);
	fclose(f);
	server_start(&s, "--workers", "4", "--policy", "route", "--route-key", "line:2",
	             "--route-map", map, "--exec", KV, NULL);
	CHECK_OK(kv_request(s.addr, NULL, "SET alice a\n", reply, sizeof(reply)));
	CHECK(strcmp(reply, "STORED 3\n") == 0);
	CHECK_OK(kv_request(s.addr, NULL, "SET user:42 a\n", reply, sizeof(reply)));
	CHECK(strcmp(reply, "STORED 1\n") == 0);
	CHECK_OK(kv_request(s.addr, NULL, "SET user:vip a\n", reply, sizeof(reply)));
	CHECK(strcmp(reply, "STORED 2\n") == 0);
	CHECK_OK(kv_request(s.addr, NULL, "SET bob a\n", reply, sizeof(reply)));
	snprintf(want, sizeof(want), "STORED %u\n", expected_slot("bob", 4));
	CHECK(strcmp(reply, want) == 0);
	CHECK_INT(route_count(&s, "mapped"), ==, 3);
	CHECK_INT(route_count(&s, "hashed"), ==, 1);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp__hashring_free(&ring);
}

TEST(each_listener_keeps_its_own_policy_and_tag)
{
	struct server s;
	char addr2[64], buf[64];
	const char *line;
	int fd;

	/* The first listener serves http round-robin; the second routes by line and echoes. */
	server_start(&s, "--workers", "3", "--handler", "http", "--listen",
	             "127.0.0.1:0,policy=route,tag=echo", "--route-key", "line:1", NULL);
	line = strstr(s.log, "listening on ");
	line = strstr(line + 1, "listening on ");
	CHECK(line);
	sscanf(line + 13, "%63s", addr2);
	for (unsigned i = 0; i < 6; i++)
		CHECK_INT(http_worker(s.addr, "/", "h"), ==, i % 3);
	fd = tcp_connect(addr2, NULL);
	send_all(fd, "ping\n");
	shutdown(fd, SHUT_WR);
	CHECK_INT(read_to_end(fd, buf, sizeof(buf)), ==, 5);
	CHECK(strcmp(buf, "ping\n") == 0);
	close(fd);
	CHECK_INT(route_count(&s, "hashed"), ==, 1);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(waiting_clients_past_the_cap_wait_in_the_backlog)
{
	struct server s;
	char reply[64], *st;
	int a, b, c;

	server_start(&s, "--workers", "2", "--policy", "route", "--route-key", "line:2",
	             "--route-max-pending", "2", "--exec", KV, NULL);
	a = tcp_connect(s.addr, NULL);
	b = tcp_connect(s.addr, NULL);
	wait_route_count(&s, "waiting", 2);
	c = tcp_connect(s.addr, NULL); /* queued by the kernel, not accepted */
	send_all(c, "SET third x\n");
	st = server_status(&s);
	CHECK_INT(status_num(st, "master ", "accepted"), ==, 2);
	free(st);
	close(a); /* its place frees: the third is accepted and routed */
	CHECK_INT(read_to_end(c, reply, sizeof(reply)), >, 0);
	CHECK(strncmp(reply, "STORED ", 7) == 0);
	CHECK_INT(route_count(&s, "eof"), ==, 1);
	CHECK_INT(route_count(&s, "overflow"), ==, 0);
	close(b);
	close(c);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* Run fdpass serve with args; it must exit 2 with stderr naming opt and containing what. */
static void expect_usage_error(const char *const *args, const char *opt, const char *what)
{
	const char *argv[16] = {"serve", "--control", "none"};
	char *out, *err;
	int n = 3, got;

	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	got = run_tool(argv, &out, &err);
	if (got != 2 || !strstr(err, opt) || !strstr(err, what))
		fdp_test_fail(__FILE__, __LINE__, "%s: exit %d, stderr: %s", opt, got, err);
	free(out);
	free(err);
}

#define R "--policy", "route", "--route-key"

TEST(bad_route_options_exit_2_naming_the_option)
{
	expect_usage_error((const char *[]){"--policy", "route", NULL}, "--route-key", "");
	expect_usage_error((const char *[]){R, "line:0", NULL}, "--route-key", "line:0");
	expect_usage_error((const char *[]){R, "nope", NULL}, "--route-key", "nope");
	expect_usage_error((const char *[]){"--route-key", "line", NULL}, "--policy route", "");
	expect_usage_error((const char *[]){R, "line", "--route-timeout", "0", NULL},
	                   "--route-timeout", "0.001 to 3600");
	expect_usage_error((const char *[]){R, "line", "--route-max-bytes", "x", NULL},
	                   "--route-max-bytes", "1 to 16777216");
	expect_usage_error((const char *[]){R, "prefix:100", "--route-max-bytes", "10", NULL},
	                   "--route-key", "prefix:100");
	expect_usage_error((const char *[]){R, "line", "--route-max-pending", "0", NULL},
	                   "--route-max-pending", "1 to 1000000");
	expect_usage_error((const char *[]){R, "line", "--route-fail", "retry", NULL},
	                   "--route-fail", "close or default:N");
	expect_usage_error(
	        (const char *[]){R, "line", "--workers", "2", "--route-fail", "default:5", NULL},
	        "--route-fail", "out of range");
	expect_usage_error((const char *[]){R, "line", "--route-map", "/nonexistent/m", NULL},
	                   "--route-map", "/nonexistent/m");
	expect_usage_error((const char *[]){"--listen", "127.0.0.1:0,policy=magic", NULL},
	                   "--listen", "magic");
	expect_usage_error((const char *[]){"--listen", "127.0.0.1:0,tag=ftp", NULL}, "--listen",
	                   "ftp");
	expect_usage_error((const char *[]){"--listen", "127.0.0.1:0,defer=yes", NULL},
	                   "--listen", "defer=on|off");
	expect_usage_error((const char *[]){"--listen", "unix:/nonexistent/s,defer=on", NULL},
	                   "--listen", "a TCP address with defer=on");
}

TEST(help_explains_the_route_options)
{
	static const char *const opts[] = {
	        "--route-key",         "--route-map",  "--route-timeout", "--route-max-bytes",
	        "--route-max-pending", "--route-fail", "policy=",         "tag=",
	        "defer="};
	const char *args[] = {"serve", "--help", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 0);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		CHECK(strstr(out, opts[i]) != NULL);
	free(out);
	free(err);
}

TEST(a_burst_of_clients_past_the_cap_waits_in_the_backlog_and_none_is_closed)
{
	enum { CLIENTS = 8 };
	struct server s;
	char reply[64], line[32];
	int fds[CLIENTS];

	server_start(&s, "--workers", "2", "--policy", "route", "--route-key", "line:2",
	             "--route-max-pending", "2", "--exec", KV, NULL);
	/* All connected before any says a word: one accept batch could take them all. */
	for (int i = 0; i < CLIENTS; i++)
		fds[i] = tcp_connect(s.addr, NULL);
	wait_route_count(&s, "waiting", 2);
	for (int i = 0; i < CLIENTS; i++) {
		snprintf(line, sizeof(line), "SET burst%d x\n", i);
		send_all(fds[i], line);
	}
	for (int i = 0; i < CLIENTS; i++) {
		CHECK_INT(read_to_end(fds[i], reply, sizeof(reply)), >, 0);
		CHECK(strncmp(reply, "STORED ", 7) == 0);
		close(fds[i]);
	}
	CHECK_INT(route_count(&s, "overflow"), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
