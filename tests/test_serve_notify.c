/*
 * fdpass serve under systemd's notification protocol: the test is the service manager, a
 * datagram socket in $NOTIFY_SOCKET, and reads what the master sends with fdp_msg_recv().
 */
#include "test_systemd_util.h"

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"

/* Start a server of `workers` workers that notifies sock_path; env: more "K=V" (NULL-ended). */
static void start_notifying(struct server *s, const char *sock_path, const char *workers,
                            const char *const *env, int flags)
{
	const char *args[] = {"--workers", workers, NULL};

	setenv("NOTIFY_SOCKET", sock_path, 1);
	for (; env && *env; env++)
		putenv((char *)*env);
	server_start_argv(s, args, flags);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("FDSTORE");
}

static long long monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Every worker in the status is ready, and of generation gen. */
static void check_all_ready(struct server *s, int workers, int gen)
{
	char *st = server_status(s), key[32];

	for (int i = 0; i < workers; i++) {
		snprintf(key, sizeof(key), "\nworker index=%d ", i);
		CHECK_INT(status_num(st, key, "generation"), ==, gen);
		if (!strstr(strstr(st, key), "state=ready"))
			fdp_test_fail(__FILE__, __LINE__, "worker %d not ready: %s", i, st);
	}
	free(st);
}

TEST(ready_1_is_sent_once_every_worker_is_ready_and_workers_never_see_the_variables)
{
	char path[256], msg[512];
	struct server s;
	pid_t pids[2];
	int sock = notify_bind(path, sizeof(path));
	char *st;

	start_notifying(&s, path, "2", NULL, SERVE_NO_WAIT_READY);
	notify_wait(sock, "READY=1", msg, sizeof(msg), NULL, 10000);
	CHECK(strstr(msg, "STATUS=serving, 2 workers ready") != NULL);
	check_all_ready(&s, 2, 1);
	st = server_status(&s);
	CHECK_INT(status_pids(st, pids, 2), ==, 2);
	free(st);
	check_environ_clean(s.pid);
	for (int i = 0; i < 2; i++)
		check_environ_clean(pids[i]);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(sock);
}

TEST(sighup_sends_reloading_with_the_monotonic_clock_then_ready_once_the_reload_is_complete)
{
	char path[256], msg[512];
	struct server s;
	int sock = notify_bind(path, sizeof(path));
	long long before, after, at;

	start_notifying(&s, path, "2", NULL, 0);
	notify_wait(sock, "READY=1", msg, sizeof(msg), NULL, 10000);
	before = monotonic_usec();
	kill(s.pid, SIGHUP);
	notify_wait(sock, "RELOADING=1", msg, sizeof(msg), NULL, 10000);
	after = monotonic_usec();
	at = notify_num(msg, "MONOTONIC_USEC");
	CHECK_INT(at, >=, before);
	CHECK_INT(at, <=, after);
	CHECK(strstr(msg, "READY=1") == NULL);
	notify_wait(sock, "READY=1", msg, sizeof(msg), NULL, 15000);
	check_all_ready(&s, 2, 2); /* every worker replaced before READY=1 */
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(sock);
}

TEST(sigterm_sends_stopping_1)
{
	char path[256], msg[512];
	struct server s;
	int sock = notify_bind(path, sizeof(path));

	start_notifying(&s, path, "1", NULL, 0);
	notify_wait(sock, "READY=1", msg, sizeof(msg), NULL, 10000);
	kill(s.pid, SIGTERM);
	notify_wait(sock, "STOPPING=1", msg, sizeof(msg), NULL, 10000);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
	close(sock);
}

TEST(watchdog_usec_gets_watchdog_1_every_half_period)
{
	static const char *const env[] = {"WATCHDOG_USEC=200000", NULL};
	char path[256], msg[512];
	struct server s;
	int sock = notify_bind(path, sizeof(path));
	long long first;

	start_notifying(&s, path, "1", env, 0);
	notify_wait(sock, "WATCHDOG=1", msg, sizeof(msg), NULL, 5000);
	first = test_now_ms();
	for (int i = 0; i < 3; i++)
		notify_wait(sock, "WATCHDOG=1", msg, sizeof(msg), NULL, 5000);
	/* Three periods of 100 ms: not a burst, and not the whole watchdog time either. */
	CHECK_INT(test_now_ms() - first, >=, 250);
	CHECK_INT(test_now_ms() - first, <, 3000);
	check_environ_clean(s.pid);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(sock);
}

TEST(each_listener_it_bound_goes_to_the_fd_store_named_by_its_address)
{
	char path[256], msg[512], want[96];
	struct server s;
	int sock = notify_bind(path, sizeof(path)), fd = -1, on = 0;
	socklen_t len = sizeof(on);

	start_notifying(&s, path, "1", NULL, 0);
	notify_wait(sock, "FDSTORE=1", msg, sizeof(msg), &fd, 10000);
	snprintf(want, sizeof(want), "FDNAME=%s", s.addr);
	*strrchr(want, ':') = '_'; /* a name may not hold ':' */
	CHECK(strstr(msg, want) != NULL);
	CHECK_INT(sock_port(fd), ==, atoi(strrchr(s.addr, ':') + 1));
	CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len));
	CHECK_INT(on, ==, 1);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(sock);
}

TEST(a_master_restarted_after_a_crash_serves_on_the_stored_socket_without_binding)
{
	static const char *const env[] = {"FDSTORE=4", NULL};
	char path[256], msg[512], name[96], listen[64], control[256], buf[1024], *st;
	const char *argv[] = {FDPASS_TOOL, "serve",     "--workers", "1", "--listen",
	                      listen,      "--control", control,     NULL};
	struct server s;
	int sock = notify_bind(path, sizeof(path)), stored = -1, queued;
	pid_t worker;
	const char *body;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1)); /* the crashed master's worker comes here */
	start_notifying(&s, path, "1", env, 0);
	notify_wait(sock, "FDSTORE=1", msg, sizeof(msg), &stored, 10000);
	snprintf(name, sizeof(name), "%s", strstr(msg, "FDNAME=") + 7);
	snprintf(listen, sizeof(listen), "%s", s.addr);
	st = server_status(&s);
	CHECK_INT(status_pids(st, &worker, 1), ==, 1);
	free(st);
	kill(s.pid, SIGKILL);
	CHECK_INT(server_wait_exit(&s), ==, 128 + SIGKILL);
	CHECK_INT(fdp_test_wait(worker), ==, 1);
	unlink(s.control);
	server_free(&s);
	/* With no master, a client still gets in: the stored socket lives on, in the store. */
	queued = tcp_connect(listen, NULL);
	send_all(queued, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	snprintf(control, sizeof(control), "%s/ctl2.sock", fdp_test_tmpdir());
	launch(&s, argv, NULL, &stored, 1, name, 0, "ready: ");
	snprintf(s.control, sizeof(s.control), "%s", control);
	CHECK(strstr(s.log, "inherited socket 3") != NULL);
	body = http_read(queued, buf, sizeof(buf));
	CHECK(body && strncmp(body, "worker=0", 8) == 0);
	close(queued);
	http_get_worker(listen, NULL, NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(stored);
	close(sock);
}

TEST(a_watchdog_for_another_pid_is_not_fed)
{
	static const char *const env[] = {"WATCHDOG_USEC=20000", "WATCHDOG_PID=1", NULL};
	char path[256], msg[512], cmd[512];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;
	int sock = notify_bind(path, sizeof(path));
	int fds[4];

	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
	/* A worker that takes 300 ms to start: fifteen watchdog periods before READY=1. */
	snprintf(cmd, sizeof(cmd), "sleep 0.3; exec %s", UPPER_WORKER);
	setenv("NOTIFY_SOCKET", path, 1);
	for (const char *const *e = env; *e; e++)
		putenv((char *)*e);
	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	for (;;) {
		struct fdp_msg m = {.data = msg, .len = sizeof(msg) - 1, .fds = fds, .nfds = 4};

		fdp_test_wait_readable(sock, 10000);
		CHECK_INT(fdp_msg_recv(sock, &m, MSG_DONTWAIT), ==, 1);
		fdp_close_fds(fds, m.nfds);
		msg[m.len] = '\0';
		CHECK(strstr(msg, "WATCHDOG=1") == NULL);
		if (strstr(msg, "READY=1"))
			break;
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(sock);
}

TEST(an_abstract_notify_socket_name_is_reached)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char name[64], msg[512];
	struct server s;
	int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), n;

	CHECK(sock >= 0);
	n = snprintf(name, sizeof(name), "@fdpass-test-notify-%d", (int)getpid());
	memcpy(sa.sun_path, name, (size_t)n);
	sa.sun_path[0] = '\0';
	CHECK_OK(bind(sock, (struct sockaddr *)&sa,
	              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n)));
	start_notifying(&s, name, "1", NULL, 0);
	notify_wait(sock, "READY=1", msg, sizeof(msg), NULL, 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(sock);
}

TEST(after_a_hot_upgrade_mainpid_names_the_new_master_which_feeds_the_watchdog)
{
	static const char *const env[] = {"WATCHDOG_USEC=200000", NULL};
	char path[256], msg[512];
	struct server s;
	int sock = notify_bind(path, sizeof(path)), fds[4];
	const char *line;
	pid_t newpid;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1)); /* the new master is ours once the old exits */
	start_notifying(&s, path, "1", env, 0);
	notify_wait(sock, "READY=1", msg, sizeof(msg), NULL, 10000);
	kill(s.pid, SIGUSR2);
	line = server_wait_log(&s, "upgrade: new master pid ", 20000);
	newpid = (pid_t)atoi(strstr(line, "new master pid ") + 15);
	notify_wait(sock, "MAINPID=", msg, sizeof(msg), NULL, 10000);
	CHECK_INT(notify_num(msg, "MAINPID"), ==, newpid);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	for (;;) { /* what the old master sent before it exited */
		struct fdp_msg m = {.data = msg, .len = sizeof(msg), .fds = fds, .nfds = 4};

		if (fdp_msg_recv(sock, &m, MSG_DONTWAIT) != 1)
			break;
		fdp_close_fds(fds, m.nfds);
	}
	/* Only the new master is left to send it: it got the socket, and the watchdog. */
	notify_wait(sock, "WATCHDOG=1", msg, sizeof(msg), NULL, 5000);
	check_environ_clean(newpid);
	CHECK_OK(kill(newpid, SIGTERM));
	CHECK_INT(fdp_test_wait(newpid), ==, 0);
	while (server_read_log(&s, 10000) > 0)
		;
	close(s.err);
	server_free(&s);
	close(sock);
}
