/*
 * The routing tests' shared pieces (test_route_serve.c, test_route_dispatchers.c): the ring a
 * key must land on, the sharded key-value example's requests, and its load of concurrent
 * clients, each reply checked against the ring.
 */
#ifndef FDP_ROUTE_TESTLIB_H
#define FDP_ROUTE_TESTLIB_H

#include "route.h"
#include "test_serve_util.h"

#include <netinet/in.h>

#define KV FDPASS_BINARY_DIR "/examples/kv/kv_worker"

static struct fdp__hashring ring;

static inline unsigned expected_slot(const char *key, unsigned workers)
{
	if (ring.slots != workers) {
		fdp__hashring_free(&ring);
		CHECK_OK(fdp__hashring_build(&ring, workers, FDP__RING_POINTS));
	}
	return fdp__hashring_slot(&ring, fdp__route_hash(key, strlen(key)));
}

/* One command over a fresh connection; the reply line in reply, or -1 if none came. */
static inline int kv_request(const char *addr, const char *src, const char *line, char *reply, size_t size)
{
	int fd = tcp_connect(addr, src);
	size_t len = 0;
	ssize_t n;

	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
		close(fd);
		return -1;
	}
	while (len + 1 < size && (n = read(fd, reply + len, size - 1 - len)) > 0)
		len += (size_t)n;
	reply[len] = '\0';
	close(fd);
	return len && reply[len - 1] == '\n' ? 0 : -1;
}

/* Poll the status until the route line's key reaches want (bounded: fails after 10 s). */
static inline void wait_route_count(struct server *s, const char *key, long long want)
{
	long long deadline = test_now_ms() + 10000;

	for (;;) {
		char *st = server_status(s);
		long long v = status_num(st, "\nroute ", key);

		free(st);
		if (v >= want)
			return;
		if (test_now_ms() > deadline)
			fdp_test_fail(__FILE__, __LINE__, "route %s stayed at %lld, want %lld", key,
			              v, want);
		poll(NULL, 0, 5);
	}
}

static inline long long route_count(struct server *s, const char *key)
{
	char *st = server_status(s);
	long long v = status_num(st, "\nroute ", key);

	free(st);
	return v;
}

/* ---- load: many clients, many short connections ------------------------------------------ */

#define LOAD_WORKERS 4
#define LOAD_CLIENTS 16

struct load {
	const char *addr;
	unsigned client, keys;
	int progress_fd; /* a byte is written here after the first 500 requests */
	int allow_loss;  /* a worker is killed meanwhile: its keys may be lost */
};

/* SET then GET each of this client's keys; every answer must come from the key's slot. */
static inline void load_client(void *arg)
{
	const struct load *l = arg;
	char src[32], key[64], line[160], want[160], reply[256];
	unsigned lost = 0;

	snprintf(src, sizeof(src), "127.0.0.%u", 2 + l->client);
	for (unsigned i = 0; i < l->keys; i++) {
		unsigned slot;

		snprintf(key, sizeof(key), "user:%u:%u", l->client, i);
		slot = expected_slot(key, LOAD_WORKERS);
		snprintf(line, sizeof(line), "SET %s v%u-%u\n", key, l->client, i);
		if (kv_request(l->addr, src, line, reply, sizeof(reply)) < 0) {
			CHECK(l->allow_loss); /* a connection its killed worker had taken */
			lost++;
			continue;
		}
		snprintf(want, sizeof(want), "STORED %u\n", slot);
		if (strcmp(reply, want))
			fdp_test_fail(__FILE__, __LINE__, "%s: got \"%s\", want \"%s\"", line,
			              reply, want);
		snprintf(line, sizeof(line), "GET %s\n", key);
		if (kv_request(l->addr, src, line, reply, sizeof(reply)) < 0) {
			CHECK(l->allow_loss);
			lost++;
			continue;
		}
		snprintf(want, sizeof(want), "VALUE %u v%u-%u\n", slot, l->client, i);
		if (strcmp(reply, want)) {
			snprintf(want, sizeof(want), "MISSING %u\n", slot);
			if (!l->allow_loss || strcmp(reply, want))
				fdp_test_fail(__FILE__, __LINE__, "%s: got \"%s\"", line, reply);
			lost++;
		}
		if (i == 500 && l->progress_fd >= 0)
			CHECK_INT(write(l->progress_fd, "x", 1), ==, 1);
	}
	/* Only what the killed worker held may be lost: a small share of one slot's keys. */
	CHECK_INT(lost, <, l->keys / 2);
	fdp__hashring_free(&ring);
}

/* The mid-load event of run_load(): worker slot 1 killed, its replacement ready. */
static inline void kill_worker_1(struct server *s)
{
	char *st = server_status(s);
	pid_t victim[LOAD_WORKERS];

	CHECK_INT(status_pids(st, victim, LOAD_WORKERS), ==, LOAD_WORKERS);
	free(st);
	kill(victim[1], SIGKILL);
	server_wait_log(s, "killed by signal 9", 10000);
	server_wait_log(s, "worker 1 pid", 10000); /* its replacement is ready */
}

/*
 * LOAD_CLIENTS clients, keys keys each; mid (unless NULL) runs once the first client has made
 * 500 requests. allow_loss: mid kills a worker, whose connections in hand may be lost.
 */
static inline void run_load_with(struct server *s, unsigned keys, int allow_loss,
                                 void (*mid)(struct server *))
{
	struct load l[LOAD_CLIENTS];
	pid_t pids[LOAD_CLIENTS];
	int progress[2];

	CHECK_OK(pipe2(progress, O_CLOEXEC));
	for (unsigned c = 0; c < LOAD_CLIENTS; c++) {
		l[c] = (struct load){s->addr, c, keys, progress[1], allow_loss};
		pids[c] = fdp_test_fork(load_client, &l[c]);
	}
	close(progress[1]);
	if (mid) {
		char buf[1];

		fdp_test_wait_readable(progress[0], 30000);
		CHECK_INT(read(progress[0], buf, 1), ==, 1);
		mid(s);
	}
	for (unsigned c = 0; c < LOAD_CLIENTS; c++)
		CHECK_INT(fdp_test_wait(pids[c]), ==, 0);
	close(progress[0]);
}

static inline void run_load(struct server *s, unsigned keys, int kill_one)
{
	run_load_with(s, keys, kill_one, kill_one ? kill_worker_1 : NULL);
}

#endif
