/*
 * fdpass serve --policy route --dispatchers N: dispatcher processes accept and route in place
 * of the master. Every key still reaches its own slot (the kv example's replies name it), the
 * master routes none itself, a dispatcher that dies is started again, a worker that stops
 * reading loses nothing a dispatcher handed it, reloads fail no request, a reload's new
 * routing reaches the new dispatchers, and a stop leaves no process behind.
 */
#include "route_testlib.h"

/* The pids of the dispatchers the status lists (state running), in line order. */
static int dispatcher_pids(struct server *s, pid_t *pids, int max)
{
	char *st = server_status(s);
	int n = 0;

	for (const char *l = strstr(st, "\ndispatcher tag="); l && n < max;
	     l = strstr(l + 1, "\ndispatcher tag="))
		if (strstr(l, " state=running") && strstr(l, " state=running") < strchr(l + 1, '\n'))
			pids[n++] = (pid_t)atoi(strstr(l, " pid=") + 5);
	free(st);
	return n;
}

/* Until the status lists no dispatcher finishing (bounded: fails after 10 s). */
static void wait_no_finishing(struct server *s)
{
	long long deadline = test_now_ms() + 10000;

	for (;;) {
		char *st = server_status(s);
		int finishing = strstr(st, " state=finishing") != NULL;

		free(st);
		if (!finishing)
			return;
		CHECK(test_now_ms() < deadline);
		poll(NULL, 0, 5);
	}
}

/* Each pid has exited and been reaped (kill() finds no such process). */
static void check_gone(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		CHECK(kill(pids[i], 0) < 0 && errno == ESRCH);
}

TEST(kv_requests_through_three_dispatchers_are_never_misrouted_and_the_master_routes_none)
{
	struct server s;
	pid_t pids[8];
	char *st, *metrics;

	server_start(&s, "--workers", "4", "--dispatchers", "3", "--policy", "route",
	             "--route-key", "line:2", "--exec", KV, NULL);
	CHECK_INT(dispatcher_pids(&s, pids, 8), ==, 3);
	/* 16 clients x 500 keys x (SET + GET), each request on its own connection. */
	run_load(&s, 500, 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "\nroute ", "hashed"), ==, 16000);
	CHECK_INT(status_num(st, "\nroute ", "closed"), ==, 0);
	CHECK_INT(status_num(st, "master ", "accepted"), ==, 16000);
	CHECK_INT(status_num(st, "\ndispatchers ", "accepted"), ==, 16000); /* all of them */
	CHECK_INT(status_num(st, "\ndispatchers ", "handed"), ==, 16000);
	CHECK_INT(status_num(st, "\ndispatchers ", "running"), ==, 3);
	free(st);
	metrics = server_command(&s, "metrics");
	CHECK(strstr(metrics, "\nfdpass_dispatchers_running 3\n"));
	CHECK(strstr(metrics, "fdpass_dispatched_connections_total{what=\"accepted\"} 16000\n"));
	free(metrics);
	CHECK_INT(server_stop(&s), ==, 0);
	check_gone(pids, 3);
	server_free(&s);
	fdp__hashring_free(&ring);
}

/* Until the status lists n running dispatchers, none of them old[0] (bounded: 10 s). */
static void wait_replaced(struct server *s, int n, pid_t gone)
{
	long long deadline = test_now_ms() + 10000;
	pid_t pids[8];

	for (;;) {
		int k = dispatcher_pids(s, pids, 8), stale = 0;

		for (int i = 0; i < k; i++)
			stale |= pids[i] == gone;
		if (k == n && !stale)
			return;
		CHECK(test_now_ms() < deadline);
		poll(NULL, 0, 5);
	}
}

static void kill_a_dispatcher(struct server *s)
{
	pid_t pids[2];

	CHECK_INT(dispatcher_pids(s, pids, 2), ==, 2);
	CHECK_OK(kill(pids[0], SIGKILL));
	server_wait_log(s, "killed by signal 9", 10000);
	wait_replaced(s, 2, pids[0]);
}

TEST(a_dispatcher_killed_mid_load_is_started_again_and_no_key_moves)
{
	struct server s;
	pid_t pids[2];
	char *st;

	server_start(&s, "--workers", "4", "--dispatchers", "2", "--policy", "route",
	             "--route-key", "line:2", "--exec", KV, NULL);
	/* What it was reading when it died is lost (allowed); what it routed was right. */
	run_load_with(&s, 1000, 1, kill_a_dispatcher);
	CHECK_INT(dispatcher_pids(&s, pids, 2), ==, 2);
	st = server_status(&s);
	CHECK_INT(status_num(st, "\ndispatchers ", "running"), ==, 2);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	check_gone(pids, 2);
	server_free(&s);
	fdp__hashring_free(&ring);
}

/* The reply of an http worker to GET path: its worker index, generation and connection id. */
static void http_answer(const char *addr, const char *path, int *worker, int *gen,
                        unsigned long long *id)
{
	char req[256], buf[2048];
	const char *body;
	int fd = tcp_connect(addr, NULL);

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
	send_all(fd, req);
	body = http_read(fd, buf, sizeof(buf));
	close(fd);
	CHECK(body && strstr(body, "worker=") && strstr(body, "generation=") && strstr(body, " id="));
	*worker = atoi(strstr(body, "worker=") + 7);
	*gen = atoi(strstr(body, "generation=") + 11);
	*id = strtoull(strstr(body, " id=") + 4, NULL, 10);
}

struct http_load {
	const char *addr;
	unsigned client, requests;
	int progress_fd; /* a byte after the first 200 requests */
};

/* GET /c/CLIENT/I for each I: every one answered, by its path's slot of 4. */
static void http_client(void *arg)
{
	const struct http_load *l = arg;
	char path[64];
	int worker, gen;
	unsigned long long id;

	for (unsigned i = 0; i < l->requests; i++) {
		snprintf(path, sizeof(path), "/c/%u/%u", l->client, i);
		http_answer(l->addr, path, &worker, &gen, &id);
		CHECK_INT(worker, ==, expected_slot(path, 4));
		if (i == 200 && l->progress_fd >= 0)
			CHECK_INT(write(l->progress_fd, "x", 1), ==, 1);
	}
	fdp__hashring_free(&ring);
}

TEST(reloads_under_load_through_dispatchers_fail_no_request)
{
	struct server s;
	struct http_load l[8];
	pid_t pids[8];
	int progress[2];
	char buf[1];

	server_start(&s, "--workers", "4", "--dispatchers", "2", "--handler", "http", "--policy",
	             "route", "--route-key", "http-path", NULL);
	CHECK_OK(pipe2(progress, O_CLOEXEC));
	for (unsigned c = 0; c < 8; c++) {
		l[c] = (struct http_load){s.addr, c, 1500, c == 0 ? progress[1] : -1};
		pids[c] = fdp_test_fork(http_client, &l[c]);
	}
	close(progress[1]);
	fdp_test_wait_readable(progress[0], 30000);
	CHECK_INT(read(progress[0], buf, 1), ==, 1);
	for (int i = 0; i < 2; i++) { /* each worker replaced twice, under load */
		CHECK_OK(kill(s.pid, SIGHUP));
		server_wait_log(&s, "reload complete: every worker replaced", 20000);
	}
	for (unsigned c = 0; c < 8; c++) /* a client that met a failure exits non-zero */
		CHECK_INT(fdp_test_wait(pids[c]), ==, 0);
	close(progress[0]);
	CHECK_INT(route_count(&s, "closed"), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_worker_that_stops_reading_is_killed_and_what_a_dispatcher_handed_it_goes_to_its_successor)
{
	struct server s;
	char path[32], *st;
	pid_t workers[2];
	int worker, gen;
	unsigned long long id;
	unsigned i = 0;

	server_start(&s, "--workers", "2", "--dispatchers", "1", "--ack-timeout", "0.3",
	             "--handler", "http", "--policy", "route", "--route-key", "http-path", NULL);
	do
		snprintf(path, sizeof(path), "/k%u", i++);
	while (expected_slot(path, 2) != 0);
	st = server_status(&s);
	CHECK_INT(status_pids(st, workers, 2), ==, 2);
	free(st);
	CHECK_OK(kill(workers[0], SIGSTOP)); /* it reads its channel no more */
	/* The dispatcher hands the client to worker 0 and waits for an ACK that never comes: it
	 * says so, the master kills the worker, and its successor gets the client. */
	http_answer(s.addr, path, &worker, &gen, &id);
	CHECK_INT(worker, ==, 0);
	CHECK_INT(gen, ==, 2);
	CHECK_INT(id >> 56, ==, 1); /* the dispatcher's (tag 1), handed twice */
	server_wait_log(&s, "acknowledged no connection of dispatcher 1 in time", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "\ndispatchers ", "rehanded"), ==, 1);
	CHECK_INT(status_num(st, "master ", "ack_timeouts"), ==, 1);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp__hashring_free(&ring);
}

TEST(a_reload_with_a_new_route_map_starts_new_dispatchers_and_the_old_ones_finish)
{
	struct server s;
	char map[512], conf[1024];
	const char *cf;
	pid_t old[2], now[2];
	int worker, gen;
	unsigned long long id;
	FILE *f;

	snprintf(map, sizeof(map), "%s/route.map", fdp_test_tmpdir());
	f = fopen(map, "w");
	CHECK(f);
	fputs("/pinned 0\n", f);
	fclose(f);
	snprintf(conf, sizeof(conf),
	         "workers 2\ndispatchers 2\npolicy route\nroute-key http-path\nroute-map %s\n",
	         map);
	cf = write_conf("serve.conf", conf);
	server_start(&s, "--config", cf, "--handler", "http", NULL);
	CHECK_INT(dispatcher_pids(&s, old, 2), ==, 2);
	http_answer(s.addr, "/pinned", &worker, &gen, &id);
	CHECK_INT(worker, ==, 0);
	f = fopen(map, "w");
	CHECK(f);
	fputs("/pinned 1\n", f);
	fclose(f);
	CHECK_OK(kill(s.pid, SIGHUP));
	server_wait_log(&s, "reload: starting 2 new dispatcher(s) with the new routing", 10000);
	server_wait_log(&s, "reload complete", 20000);
	/* The old ones had nothing in hand: they exit at once, and are reaped. */
	wait_no_finishing(&s);
	CHECK_INT(dispatcher_pids(&s, now, 2), ==, 2);
	CHECK(now[0] != old[0] && now[0] != old[1] && now[1] != old[0] && now[1] != old[1]);
	check_gone(old, 2);
	http_answer(s.addr, "/pinned", &worker, &gen, &id);
	CHECK_INT(worker, ==, 1);
	CHECK_INT(server_stop(&s), ==, 0);
	check_gone(now, 2);
	server_free(&s);
}

TEST(a_dispatcher_started_again_on_an_idle_server_serves_every_slot_at_once)
{
	struct server s;
	pid_t pids[1];
	int worker, gen;
	unsigned long long id;
	char path[32];

	/* A route timeout short enough that a dispatcher that knows no worker closes the client
	 * well within the client's 20 s. */
	server_start(&s, "--workers", "2", "--dispatchers", "1", "--route-timeout", "1",
	             "--handler", "http", "--policy", "route", "--route-key", "http-path", NULL);
	CHECK_INT(dispatcher_pids(&s, pids, 1), ==, 1);
	CHECK_OK(kill(pids[0], SIGKILL));
	server_wait_log(&s, "killed by signal 9", 10000);
	/* From its log, not the control socket, whose client would wake the master: nothing
	 * else happens in the master now, and the new one must already know both workers. */
	server_wait_log(&s, "dispatcher 1 pid", 10000);
	server_wait_log(&s, " started", 10000);
	for (unsigned i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "/idle/%u", i);
		http_answer(s.addr, path, &worker, &gen, &id);
		CHECK_INT(worker, ==, expected_slot(path, 2));
		CHECK_INT(id >> 56, ==, 1); /* the new dispatcher's (the same tag) */
	}
	CHECK_INT(route_count(&s, "unavailable"), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp__hashring_free(&ring);
}

TEST(a_dispatcher_told_at_once_that_a_worker_is_gone_and_that_it_hung_up_survives_both)
{
	struct server s;
	pid_t disp[1], now[1], workers[2];
	char *st;
	int worker, gen;
	unsigned long long id;
	char path[32];
	unsigned i = 0;

	server_start(&s, "--workers", "2", "--dispatchers", "1", "--handler", "http", "--policy",
	             "route", "--route-key", "http-path", NULL);
	CHECK_INT(dispatcher_pids(&s, disp, 1), ==, 1);
	st = server_status(&s);
	CHECK_INT(status_pids(st, workers, 2), ==, 2);
	free(st);
	/* Stopped, the dispatcher reads nothing: the worker's hang-up on its channel and the
	 * master's LOST for it wait for the same wake-up. */
	CHECK_OK(kill(disp[0], SIGSTOP));
	CHECK_OK(kill(workers[0], SIGKILL));
	server_wait_log(&s, "killed by signal 9", 10000);
	server_wait_log(&s, "worker 0 pid", 10000); /* its replacement */
	server_wait_log(&s, "ready", 10000);
	CHECK_OK(kill(disp[0], SIGCONT));
	do
		snprintf(path, sizeof(path), "/after/%u", i++);
	while (expected_slot(path, 2) != 0);
	http_answer(s.addr, path, &worker, &gen, &id);
	CHECK_INT(worker, ==, 0);
	CHECK_INT(gen, ==, 2);
	CHECK_INT(dispatcher_pids(&s, now, 1), ==, 1);
	CHECK_INT(now[0], ==, disp[0]); /* the same process: it did not crash */
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp__hashring_free(&ring);
}

TEST(a_dispatcher_finishing_after_a_reload_takes_no_wake_up_from_the_new_ones)
{
	struct server s;
	char conf[256];
	const char *cf;
	int slow, worker, gen;
	unsigned long long id;
	char path[32];

	snprintf(conf, sizeof(conf),
	         "workers 2\ndispatchers 1\npolicy route\nroute-key http-path\nroute-timeout 60\n");
	cf = write_conf("serve.conf", conf);
	server_start(&s, "--config", cf, "--handler", "http", NULL);
	/* A client that sends half its request line keeps the first dispatcher reading. */
	slow = tcp_connect(s.addr, NULL);
	send_all(slow, "GET /slo");
	wait_route_count(&s, "hashed", 0);
	CHECK_OK(kill(s.pid, SIGHUP));
	server_wait_log(&s, "reload: starting 1 new dispatcher(s) with the new routing", 10000);
	server_wait_log(&s, "reload complete", 20000);
	/* One after the other: a wake-up lost to the finishing one would hang a client for good
	 * (until its 20 s receive timeout fails the test). */
	for (unsigned i = 0; i < 20; i++) {
		snprintf(path, sizeof(path), "/seq/%u", i);
		http_answer(s.addr, path, &worker, &gen, &id);
		CHECK_INT(worker, ==, expected_slot(path, 2));
	}
	send_all(slow, "w HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	CHECK(strstr(http_read(slow, conf, sizeof(conf)) ? conf : "", "worker="));
	close(slow);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp__hashring_free(&ring);
}

TEST(dispatchers_without_a_route_listener_are_refused)
{
	const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--dispatchers", "2", NULL};
	const char *bad[] = {"serve", "--policy", "route", "--route-key", "line",
	                     "--dispatchers", "17", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 2);
	CHECK(strstr(err, "--dispatchers 2: only route listeners have dispatchers"));
	free(out);
	free(err);
	CHECK_INT(run_tool(bad, &out, &err), ==, 2);
	CHECK(strstr(err, "invalid value '17' for --dispatchers: expected a number from 0 to 16"));
	free(out);
	free(err);
}
