/*
 * fdp-load's open loop (--rate): the benchmarks compare servers at one offered load with it,
 * so it must start connections on its schedule, never ahead of it, and say which had to wait
 * for a free slot. Against a tiny echo server forked here, which can answer late on purpose.
 * And its --keys: the routing benchmark needs the request targets it promises, in turn.
 */
#include "test_serve_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct echo {
	int fd;        /* the listener (the child's; closed in the parent once forked) */
	int delay_ms;  /* each answer waits this long */
	int http;      /* answer HTTP instead (http_one()) */
	pid_t pid;
	char addr[32]; /* 127.0.0.1:PORT */
};

/* One connection: the 4-byte big-endian length and that many bytes, echoed, then closed. */
static void echo_one(int c, int delay_ms)
{
	char buf[4096];
	size_t have = 0, want = 4;

	while (have < want) {
		ssize_t n = read(c, buf + have, sizeof(buf) - have);

		if (n <= 0)
			return;
		have += (size_t)n;
		if (have >= 4 && want == 4) {
			uint32_t len;

			memcpy(&len, buf, 4);
			want = 4 + ntohl(len);
			if (want > sizeof(buf))
				return;
		}
	}
	if (delay_ms) {
		struct timespec t = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};

		nanosleep(&t, NULL);
	}
	if (write(c, buf, have) < 0)
		return;
}

/*
 * One HTTP request: its head read whole, then a 200 whose body tags the answer with the
 * request's target, "GET /K" answered "worker=K", which fdp-load counts per K.
 */
static void http_one(int c)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ";
	char buf[4096], body[32], out[256];
	size_t have = 0;
	int blen, olen;

	while (have < 4 || memcmp(buf + have - 4, "\r\n\r\n", 4) != 0) {
		ssize_t n = read(c, buf + have, 1); /* a byte at a time: the head's end exactly */

		if (n <= 0 || ++have == sizeof(buf))
			return;
	}
	if (have < 6 || memcmp(buf, "GET /", 5) != 0)
		return;
	blen = snprintf(body, sizeof(body), "worker=%ld\n", strtol(buf + 5, NULL, 10));
	olen = snprintf(out, sizeof(out), "%s%d\r\n\r\n%s", head, blen, body);
	if (write(c, out, (size_t)olen) < 0)
		return;
}

static void echo_serve(void *arg)
{
	struct echo *e = arg;

	for (;;) {
		int c = accept(e->fd, NULL, NULL);

		if (c < 0)
			continue;
		if (e->http)
			http_one(c);
		else
			echo_one(c, e->delay_ms);
		close(c);
	}
}

static void echo_start(struct echo *e, int delay_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);

	e->delay_ms = delay_ms;
	e->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(e->fd >= 0);
	CHECK_OK(bind(e->fd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(e->fd, 128));
	CHECK_OK(getsockname(e->fd, (struct sockaddr *)&sa, &len));
	snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%u", ntohs(sa.sin_port));
	e->pid = fdp_test_fork(echo_serve, e);
	close(e->fd);
}

static void echo_stop(struct echo *e)
{
	CHECK_OK(kill(e->pid, SIGKILL));
	CHECK_INT(waitpid(e->pid, NULL, 0), ==, e->pid);
}

/* Run fdp-load with args (and --json) against e; its JSON output, malloc'd. */
static char *load_run(const struct echo *e, const char *const *args)
{
	const char *argv[32] = {"--json"};
	char *out, *err;
	int n = 1, status;

	for (; *args; args++)
		argv[n++] = *args;
	argv[n++] = e->addr;
	argv[n] = NULL;
	status = run_program(FDP_LOAD, argv, &out, &err);
	if (status != 0)
		fdp_test_fail(__FILE__, __LINE__, "fdp-load failed (status %d): %s%s", status, out, err);
	free(err);
	return out;
}

/* The number after "key": in json, or fail. */
static double json_num(const char *json, const char *key)
{
	char pat[64];
	const char *at;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	at = strstr(json, pat);
	if (!at)
		fdp_test_fail(__FILE__, __LINE__, "no %s in %s", key, json);
	return strtod(at + strlen(pat), NULL);
}

/* fdp-load with args against an echo server whose answers wait delay_ms: its JSON. */
static char *load_against(int delay_ms, const char *const *args)
{
	struct echo e = {0};
	char *out;

	echo_start(&e, delay_ms);
	out = load_run(&e, args);
	echo_stop(&e);
	return out;
}

TEST(an_open_loop_starts_its_connections_no_faster_than_its_rate)
{
	const char *args[] = {"--rate", "400", "-n", "100", "-c", "16", NULL};
	char *out = load_against(0, args);

	CHECK_INT((long long)json_num(out, "completed"), ==, 100);
	CHECK(json_num(out, "rate") == 400.0);
	/* The last of 100 is due 99/400 s after the first. */
	CHECK(json_num(out, "seconds") >= 99.0 / 400);
	free(out);
}

TEST(an_open_loop_counts_a_connection_due_while_every_slot_is_busy_as_late)
{
	const char *args[] = {"--rate", "1000", "-n", "5", "-c", "1", NULL};
	/* One slot, answers after 20 ms, one connection due every 1 ms: all but the first wait. */
	char *out = load_against(20, args);

	CHECK_INT((long long)json_num(out, "completed"), ==, 5);
	CHECK_INT((long long)json_num(out, "late"), ==, 4);
	/* Timed from when it was due: the last waited for the four before it. */
	CHECK(json_num(out, "max") >= 4 * 20000.0);
	free(out);
}

TEST(keys_send_each_of_their_targets_in_turn)
{
	const char *args[] = {"--check", "http", "--keys", "3", "-n", "7", "-c", "1", NULL};
	struct echo e = {.http = 1};
	char *out;

	echo_start(&e, 0);
	out = load_run(&e, args);
	echo_stop(&e);
	CHECK_INT((long long)json_num(out, "completed"), ==, 7);
	/* Targets /0 /1 /2 /0 /1 /2 /0, each answered with its own number. */
	CHECK(strstr(out, "\"workers\":[3,2,2]") != NULL);
	free(out);
}

TEST(keys_need_the_http_check)
{
	const char *argv[] = {"--keys", "2", "-n", "1", "127.0.0.1:9", NULL};
	char *out, *err;

	CHECK_INT(run_program(FDP_LOAD, argv, &out, &err), ==, 2);
	CHECK(strstr(err, "--keys needs --check http") != NULL);
	free(out);
	free(err);
}
