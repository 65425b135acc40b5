/* fdpass serve: supervision, signals, drain and reload. Real processes on loopback. */
#include "test_serve_util.h"

/* Wait (bounded) until the master has accepted n connections in total. */
static char *status_when_accepted(struct server *s, long long n)
{
	for (int tries = 0; tries < 1000; tries++) {
		char *st = server_status(s);

		if (status_num(st, "master", "accepted") >= n)
			return st;
		free(st);
		poll(NULL, 0, 10);
	}
	fdp_test_fail(__FILE__, __LINE__, "the master never accepted %lld connections", n);
}

TEST(killed_worker_is_replaced_within_a_second_and_its_inflight_connections_are_rehanded)
{
	struct server s;
	int fds[6];
	pid_t pids[2], victim;
	char *st, buf[1024], msg[96];
	long long t0;
	const char *line;

	server_start(&s, "--workers", "2", "--policy", "round-robin", NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, pids, 2), ==, 2);
	free(st);
	victim = pids[0];
	/* A stopped worker takes its connections but never acknowledges them. */
	kill(victim, SIGSTOP);
	for (int i = 0; i < 6; i++) {
		fds[i] = tcp_connect(s.addr, NULL);
		send_all(fds[i], "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	}
	st = status_when_accepted(&s, 6);
	CHECK_INT(status_num(st, "master", "handed"), ==, 6);
	free(st);
	t0 = test_now_ms();
	kill(victim, SIGKILL);
	snprintf(msg, sizeof(msg), "pid %d killed by signal 9", (int)victim);
	line = server_wait_log(&s, "generation 2 started", 10000);
	CHECK_INT(test_now_ms() - t0, <, 1000);
	CHECK(strstr(line, "worker 0 ") != NULL);
	CHECK(strstr(s.log, msg) != NULL);
	CHECK(strstr(s.log, "left 3 connection(s) unacknowledged") != NULL);
	for (int i = 0; i < 6; i++) {
		const char *body = http_read(fds[i], buf, sizeof(buf));

		CHECK(body && strncmp(body, "worker=", 7) == 0);
		CHECK(atoi(strstr(body, "pid=") + 4) != victim);
		close(fds[i]);
	}
	for (int i = 0; i < 10; i++)
		http_get_worker(s.addr, NULL, NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "rehanded"), ==, 3);
	CHECK_INT(status_num(st, "\nworker index=0 ", "restarts"), ==, 1);
	CHECK_INT(status_num(st, "master", "closed_no_worker"), ==, 0);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(worker_crashing_on_start_backs_off_and_the_master_stays_responsive)
{
	const char *args[] = {"--workers", "1", "--exec", "exit 3", NULL};
	struct server s;
	char *st;
	long long t0;

	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	server_wait_log(&s, "exited with status 3", 10000);
	server_wait_log(&s, "restarting in 100 ms", 10000);
	server_wait_log(&s, "restarting in 200 ms", 10000);
	server_wait_log(&s, "restarting in 400 ms", 10000);
	t0 = test_now_ms();
	st = server_status(&s);
	CHECK_INT(test_now_ms() - t0, <, 500);
	CHECK_INT(status_num(st, "\nworker index=0 ", "restarts"), >=, 3);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sigterm_lets_slow_connections_finish_then_exits_0_with_no_worker_left)
{
	struct server s;
	int fds[4];
	pid_t pids[2];
	char *st, buf[1024];

	server_start(&s, "--workers", "2", NULL);
	for (int i = 0; i < 4; i++) {
		fds[i] = tcp_connect(s.addr, NULL);
		send_all(fds[i], "GET / HTTP/1.1\r\nHost: t\r\n"); /* not finished yet */
	}
	st = status_when_accepted(&s, 4);
	CHECK_INT(status_pids(st, pids, 2), ==, 2);
	free(st);
	kill(s.pid, SIGTERM);
	server_wait_log(&s, "draining", 10000);
	for (int i = 0; i < 4; i++) {
		const char *body;

		send_all(fds[i], "\r\n");
		body = http_read(fds[i], buf, sizeof(buf));
		CHECK(body && strncmp(body, "worker=", 7) == 0);
		/* Answered, then closed by the server: the drain ends the connection. */
		CHECK_INT(read(fds[i], buf, sizeof(buf)), ==, 0);
		close(fds[i]);
	}
	CHECK_INT(server_wait_exit(&s), ==, 0);
	if (strstr(s.log, "killed by signal"))
		fdp_test_fail(__FILE__, __LINE__, "a worker was killed:\n%s", s.log);
	for (int i = 0; i < 2; i++)
		CHECK(kill(pids[i], 0) < 0 && errno == ESRCH);
	CHECK(access(s.control, F_OK) < 0); /* the control socket file is gone too */
	server_free(&s);
}

struct load {
	const char *addr;
	int stop[2]; /* a pipe: the read end reads EOF when the load must stop */
};

/* Requests one after another until told to stop; any failure fails the child. */
static void run_load(void *arg)
{
	struct load *l = arg;
	struct pollfd p = {.fd = l->stop[0], .events = POLLIN};
	int n = 0;

	close(l->stop[1]);
	while (poll(&p, 1, 0) == 0)
		http_get_worker(l->addr, NULL, NULL), n++;
	CHECK(n > 0);
}

TEST(sighup_under_load_replaces_every_worker_and_fails_no_request)
{
	struct server s;
	pid_t before[3], after[3], clients[2];
	char *st;
	struct load l;

	server_start(&s, "--workers", "3", NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, before, 3), ==, 3);
	free(st);
	l.addr = s.addr;
	CHECK_OK(pipe2(l.stop, O_CLOEXEC));
	for (int i = 0; i < 2; i++)
		clients[i] = fdp_test_fork(run_load, &l);
	/* Under load before, during and after the reload. */
	for (int i = 0; i < 20; i++)
		http_get_worker(s.addr, NULL, NULL);
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete", 15000);
	for (int i = 0; i < 20; i++)
		http_get_worker(s.addr, NULL, NULL);
	close(l.stop[1]);
	for (int i = 0; i < 2; i++)
		CHECK_INT(fdp_test_wait(clients[i]), ==, 0);
	close(l.stop[0]);
	st = server_status(&s);
	CHECK_INT(status_pids(st, after, 4), ==, 3);
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++)
			CHECK(after[i] != before[k]);
	CHECK_INT(status_num(st, "\nworker index=0 ", "generation"), ==, 2);
	CHECK_INT(status_num(st, "master", "closed_no_worker"), ==, 0);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(workers_exit_when_their_master_is_gone)
{
	struct server s;
	pid_t pids[2];
	char *st;

	/* Orphaned workers come to this process, so it can wait for them. */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	server_start(&s, "--workers", "2", NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, pids, 2), ==, 2);
	free(st);
	kill(s.pid, SIGKILL);
	CHECK_INT(server_wait_exit(&s), ==, 128 + SIGKILL);
	for (int i = 0; i < 2; i++)
		CHECK_INT(fdp_test_wait(pids[i]), ==, 1); /* "master gone" exit status */
	unlink(s.control); /* a killed master leaves its socket file */
	server_free(&s);
}

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"

/* Send text on a fresh connection; returns the first line of the answer (static buffer). */
static const char *ask(const char *addr, const char *text)
{
	static char buf[256];
	size_t len = 0;
	int fd = tcp_connect(addr, NULL);

	send_all(fd, text);
	while (len + 1 < sizeof(buf) && !memchr(buf, '\n', len)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		CHECK(n > 0);
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return buf;
}

static void touch(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	CHECK_OK(fd);
	close(fd);
}

/*
 * Start a one-worker server whose --exec program runs the shell command broken while the
 * file flag (named here, in the test's folder) exists, and the upper worker otherwise; opt and
 * val: one more option and its value, or NULLs. Returns the first worker's pid.
 */
static pid_t start_flagged(struct server *s, char *flag, size_t flag_size, char *cmd,
                           size_t cmd_size, const char *broken, const char *opt, const char *val)
{
	const char *args[] = {"--workers", "1", "--exec", cmd, opt, val, NULL};
	pid_t pid[1];
	char *st;

	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
	snprintf(flag, flag_size, "%s/broken", fdp_test_tmpdir());
	snprintf(cmd, cmd_size, "test -e %s && %s; exec %s", flag, broken, UPPER_WORKER);
	server_start_argv(s, args, 0);
	st = server_status(s);
	CHECK_INT(status_pids(st, pid, 1), ==, 1);
	free(st);
	return pid[0];
}

/* After a reload whose new worker never got ready: the old one (pid before) still serves. */
static void check_old_worker_serves(struct server *s, pid_t before)
{
	pid_t after[2];
	char *st;

	server_wait_log(s, "ended before it was ready; generation 1 keeps serving", 10000);
	server_wait_log(s, "reload complete: 1 of 1 worker(s) not replaced", 10000);
	CHECK(strcmp(ask(s->addr, "still up\n"), "STILL UP\n") == 0);
	st = server_status(s);
	CHECK_INT(status_pids(st, after, 2), ==, 1);
	CHECK_INT(after[0], ==, before);
	CHECK_INT(status_num(st, "master", "closed_no_worker"), ==, 0);
	free(st);
}

TEST(sighup_keeps_the_old_worker_serving_when_the_new_one_fails_to_start)
{
	char flag[256], cmd[700];
	struct server s;
	pid_t before, after[2];
	char *st;

	before = start_flagged(&s, flag, sizeof(flag), cmd, sizeof(cmd), "exit 3", NULL, NULL);
	touch(flag);
	kill(s.pid, SIGHUP);
	check_old_worker_serves(&s, before);
	/* Fixed: the next reload replaces it. */
	CHECK_OK(unlink(flag));
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete: every worker replaced", 10000);
	CHECK(strcmp(ask(s.addr, "new\n"), "NEW\n") == 0);
	st = server_status(&s);
	CHECK_INT(status_pids(st, after, 2), ==, 1);
	CHECK(after[0] != before);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/*
 * A start-up that hangs: alive, silent, never ready. It reads its channel, so it ends with the
 * master even if the test fails.
 */
#define HANG "exec cat <&3 >/dev/null"

TEST(sighup_gives_up_on_a_new_worker_that_never_says_ready)
{
	char flag[256], cmd[700];
	struct server s;
	pid_t before;

	before = start_flagged(&s, flag, sizeof(flag), cmd, sizeof(cmd), HANG, "--start-timeout",
	                       "3");
	touch(flag);
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "generation 2 did not say READY within 3000 ms: killing it", 10000);
	check_old_worker_serves(&s, before);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_first_worker_that_never_says_ready_is_killed_and_started_again)
{
	char flag[256], cmd[700];
	const char *args[] = {"--workers", "1", "--start-timeout", "3", "--exec", cmd, NULL};
	struct server s;

	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
	/* The first start removes the flag and hangs, so the second one starts for real. */
	snprintf(flag, sizeof(flag), "%s/stuck", fdp_test_tmpdir());
	touch(flag);
	snprintf(cmd, sizeof(cmd), "rm %s 2>/dev/null && " HANG "; exec %s", flag, UPPER_WORKER);
	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	server_wait_log(&s, "generation 1 did not say READY within 3000 ms: killing it", 10000);
	server_wait_log(&s, "generation 2 ready", 10000);
	CHECK(strcmp(ask(s.addr, "second\n"), "SECOND\n") == 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_worker_that_never_says_ready_is_restarted_with_backoff)
{
	const char *args[] = {
	        "--workers", "1", "--drain-timeout", "0", "--start-timeout", "1", "--exec",
	        HANG,        NULL};
	struct server s;

	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	server_wait_log(&s, "generation 2 did not say READY within 1000 ms: killing it", 10000);
	server_wait_log(&s, "died 2 times in a row before it was ready", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighups_during_a_reload_coalesce_into_one_more_reload)
{
	struct server s;
	char buf[1024], *st;
	const char *body;
	int held, started = 0;

	server_start(&s, "--workers", "1", NULL);
	/* A request half sent keeps the old worker, and so the reload, busy. */
	held = tcp_connect(s.addr, NULL);
	send_all(held, "GET / HTTP/1.1\r\nHost: t\r\n");
	free(status_when_accepted(&s, 1));
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reloading:", 10000);
	server_wait_log(&s, "generation 2 ready", 10000);
	for (int i = 0; i < 5; i++)
		kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload requested during a reload", 10000);
	send_all(held, "\r\n");
	body = http_read(held, buf, sizeof(buf));
	CHECK(body && strstr(body, "generation=1 ") != NULL);
	close(held);
	server_wait_log(&s, "reload complete", 10000);
	server_wait_log(&s, "reload complete", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "\nworker index=0 ", "generation"), ==, 3);
	CHECK(strstr(st, "state=reloading") == NULL);
	free(st);
	for (const char *p = s.log; (p = strstr(p, " started")); p++)
		started++;
	CHECK_INT(started, ==, 3);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
