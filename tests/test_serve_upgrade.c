/*
 * fdpass serve: the hot upgrade (SIGUSR2). Real processes on loopback. The new master is the
 * old one's child, not this test's: the test is a child subreaper, so once the old master has
 * exited the new one is this process's child, which it stops and waits for.
 */
#include "test_serve_util.h"

#include <sched.h>
#include <sys/stat.h>

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"

/* A GET over a fresh connection that asks to be closed; 0 when answered, else -1. Never fails
 * the test: the load counts. */
static int try_get(const struct sockaddr_storage *sa, socklen_t len)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	struct timeval tv = {10, 0};
	char buf[1024];
	size_t got = 0;
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = -1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)sa, len) == 0 &&
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req) - 1) {
		ssize_t n;

		while (got < sizeof(buf) - 1 &&
		       (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		ok = n == 0 && strstr(buf, "worker=") ? 0 : -1; /* whole: the server closed */
	}
	close(fd);
	return ok;
}

struct load {
	const char *addr;
	int stop[2];    /* a pipe: the read end reads EOF when the load must stop */
	int started[2]; /* a pipe: each client writes a byte once its first request is done */
};

/* Requests one after another until told to stop; exits 1 if any failed. */
static void run_load(void *arg)
{
	struct load *l = arg;
	struct pollfd p = {.fd = l->stop[0], .events = POLLIN};
	struct sockaddr_storage sa;
	socklen_t len;
	int n = 0, failed = 0;

	close(l->stop[1]);
	close(l->started[0]);
	CHECK_OK(fdp_addr_parse(l->addr, &sa, &len));
	while (poll(&p, 1, 0) == 0) {
		failed += try_get(&sa, len) < 0;
		if (n++ == 0)
			CHECK_INT(write(l->started[1], "s", 1), ==, 1);
	}
	close(l->started[1]);
	if (failed)
		fdp_test_fail(__FILE__, __LINE__, "%d of %d requests failed", failed, n);
	CHECK(n > 0);
}

/* Start n load clients on l (whose pipes it makes) and wait until each has made a request, so
 * that the upgrade after it happens under load however slowly they start (valgrind). */
static void start_load(struct load *l, pid_t *clients, int n)
{
	CHECK_OK(pipe2(l->stop, O_CLOEXEC));
	CHECK_OK(pipe2(l->started, O_CLOEXEC));
	for (int i = 0; i < n; i++)
		clients[i] = fdp_test_fork(run_load, l);
	close(l->started[1]);
	for (int i = 0; i < n; i++) {
		struct pollfd p = {.fd = l->started[0], .events = POLLIN};
		char b;

		CHECK_INT(poll(&p, 1, 60000), ==, 1);
		CHECK_INT(read(l->started[0], &b, 1), ==, 1);
	}
	close(l->started[0]);
}

/* The pid the old master logged for the new one once it was ready. */
static pid_t wait_new_master(struct server *s)
{
	const char *line = server_wait_log(s, "upgrade: new master pid ", 20000);

	return (pid_t)atoi(strstr(line, "new master pid ") + 15);
}

/* Stop the new master (this test's child since the old one exited) and read the log to EOF. */
static void stop_new_master(struct server *s, pid_t pid)
{
	CHECK_OK(kill(pid, SIGTERM));
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	while (server_read_log(s, 10000) > 0)
		;
	close(s->err);
	CHECK(access(s->control, F_OK) < 0); /* the new master removed what the old one left it */
}

static int count_in(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static int has_pid(const pid_t *pids, int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (pids[i] == pid)
			return 1;
	return 0;
}

TEST(sigusr2_under_load_replaces_the_master_and_fails_no_request)
{
	struct server s;
	pid_t old_workers[2], new_workers[2], clients[2], newpid, pid;
	struct load l;
	char *st;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	server_start(&s, "--workers", "2", NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, old_workers, 2), ==, 2);
	free(st);
	l.addr = s.addr;
	start_load(&l, clients, 2);
	for (int i = 0; i < 20; i++)
		http_get_worker(s.addr, NULL, NULL);
	kill(s.pid, SIGUSR2);
	newpid = wait_new_master(&s);
	CHECK(newpid != s.pid);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0); /* the old master exits 0 ... */
	for (int i = 0; i < 2; i++)             /* ... after its workers */
		CHECK(kill(old_workers[i], 0) < 0 && errno == ESRCH);
	/* The same address, now the new master's workers' */
	for (int i = 0; i < 20; i++) {
		http_get_worker(s.addr, NULL, &pid);
		CHECK(!has_pid(old_workers, 2, pid));
	}
	close(l.stop[1]);
	for (int i = 0; i < 2; i++)
		CHECK_INT(fdp_test_wait(clients[i]), ==, 0);
	close(l.stop[0]);
	st = server_status(&s); /* the same control socket answers, from the new master */
	CHECK_INT(status_num(st, "master", "pid"), ==, newpid);
	CHECK_INT(status_pids(st, new_workers, 2), ==, 2);
	CHECK(!has_pid(old_workers, 2, new_workers[0]) && !has_pid(old_workers, 2, new_workers[1]));
	free(st);
	stop_new_master(&s, newpid);
	server_free(&s);
}

TEST(sigusr2_under_kernel_dispatch_hands_the_steering_group_over_and_fails_no_request)
{
	struct server s;
	pid_t clients[2], newpid;
	struct load l;
	char *st;

	if (geteuid() != 0)
		fdp_test_skip("kernel dispatch loads a BPF program: needs root (CAP_BPF)");
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	server_start(&s, "--workers", "2", "--dispatch", "kernel", NULL);
	l.addr = s.addr;
	start_load(&l, clients, 2);
	for (int i = 0; i < 20; i++)
		http_get_worker(s.addr, NULL, NULL);
	kill(s.pid, SIGUSR2);
	newpid = wait_new_master(&s);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	server_wait_log(&s, "upgrade complete", 10000);
	/* The new master adopted the group: the same sockets, which never closed. */
	CHECK(strstr(s.log, "2 slot sockets taken over from the old master") != NULL);
	for (int i = 0; i < 20; i++)
		http_get_worker(s.addr, NULL, NULL);
	close(l.stop[1]);
	for (int i = 0; i < 2; i++)
		CHECK_INT(fdp_test_wait(clients[i]), ==, 0); /* no request failed */
	close(l.stop[0]);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "pid"), ==, newpid);
	CHECK_INT(status_num(st, "master", "accepted"), ==, 0); /* its workers accepted them all */
	free(st);
	stop_new_master(&s, newpid);
	server_free(&s);
}

TEST(an_idle_keep_alive_connection_follows_to_the_new_master)
{
	struct server s;
	char buf[1024];
	const char *body;
	pid_t newpid, before, after, workers[1];
	char *st;
	int fd;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	server_start(&s, "--workers", "1", NULL);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body && strstr(body, "pid="));
	before = (pid_t)atoi(strstr(body, "pid=") + 4);
	kill(s.pid, SIGUSR2);
	newpid = wait_new_master(&s);
	server_wait_log(&s, "handed 1 connection(s) to the new master", 10000);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	/* The same TCP connection: its next request is a new-generation worker's. */
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body && strstr(body, "pid="));
	after = (pid_t)atoi(strstr(body, "pid=") + 4);
	CHECK(after != before);
	st = server_status(&s);
	CHECK_INT(status_pids(st, workers, 1), ==, 1);
	CHECK_INT(after, ==, workers[0]);
	free(st);
	close(fd);
	stop_new_master(&s, newpid);
	server_free(&s);
}

/*
 * The program an upgrade starts in the rollback tests: the real fdpass once DIR/good exists,
 * else one that hangs (DIR/hang) or exits at once with status 3.
 */
static const char *write_upgrade_script(void)
{
	static char path[512];
	char dir[256];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s", fdp_test_tmpdir());
	snprintf(path, sizeof(path), "%s/upgrade.sh", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fprintf(f,
	        "#!/bin/sh\n"
	        "[ -e '%s/good' ] && exec '%s' \"$@\"\n"
	        "[ -e '%s/hang' ] && exec sleep 1000\n"
	        "exit 3\n",
	        dir, FDPASS_TOOL, dir);
	CHECK_OK(fclose(f));
	CHECK_OK(chmod(path, 0755));
	return path;
}

static void touch(const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fdp_test_tmpdir(), name);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK_OK(fd);
	close(fd);
}

/* After a failed upgrade: the old master serves on, as itself, and says it is running. */
static void check_old_serves(struct server *s)
{
	char *st;

	for (int i = 0; i < 5; i++)
		http_get_worker(s->addr, NULL, NULL);
	st = server_status(s);
	CHECK_INT(status_num(st, "master", "pid"), ==, s->pid);
	CHECK(strstr(st, "state=running") != NULL);
	free(st);
}

TEST(a_new_master_that_exits_at_once_is_rolled_back_and_a_later_sigusr2_works)
{
	const char *script = write_upgrade_script();
	struct server s;
	pid_t newpid;
	long long fds;
	char *st;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	server_start(&s, "--workers", "1", "--upgrade-binary", script, NULL);
	st = server_status(&s);
	fds = status_num(st, "master", "fds");
	free(st);
	kill(s.pid, SIGUSR2);
	server_wait_log(&s,
	                "exited before it was ready: it exited with status 3; this master "
	                "serves on",
	                10000);
	check_old_serves(&s);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "fds"), ==, fds); /* nothing of it left open */
	free(st);
	touch("good");
	kill(s.pid, SIGUSR2);
	newpid = wait_new_master(&s);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	http_get_worker(s.addr, NULL, NULL);
	stop_new_master(&s, newpid);
	server_free(&s);
}

TEST(a_new_master_not_ready_by_the_upgrade_timeout_is_killed_and_the_old_one_serves_on)
{
	const char *script = write_upgrade_script();
	struct server s;
	long long t0;
	pid_t pid;
	const char *line;

	touch("hang");
	server_start(&s, "--workers", "1", "--upgrade-binary", script, "--upgrade-timeout", "1",
	             NULL);
	t0 = test_now_ms();
	kill(s.pid, SIGUSR2);
	line = server_wait_log(&s, "upgrade: started new master ", 10000);
	pid = (pid_t)atoi(strstr(line, ", pid ") + 6);
	server_wait_log(&s, "was not ready in time: killed it; this master serves on", 10000);
	CHECK(test_now_ms() - t0 >= 1000);
	CHECK(kill(pid, 0) < 0 && errno == ESRCH); /* killed and reaped */
	check_old_serves(&s);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_second_sigusr2_during_an_upgrade_is_logged_and_ignored)
{
	const char *script = write_upgrade_script();
	struct server s;
	char *st;

	touch("hang");
	server_start(&s, "--workers", "1", "--upgrade-binary", script, "--upgrade-timeout", "2",
	             NULL);
	kill(s.pid, SIGUSR2);
	server_wait_log(&s, "upgrade: started new master ", 10000);
	st = server_status(&s);
	CHECK(strstr(st, "state=upgrading") != NULL);
	free(st);
	kill(s.pid, SIGUSR2);
	server_wait_log(&s, "upgrade requested during an upgrade: ignored", 10000);
	server_wait_log(&s, "was not ready in time", 10000);
	CHECK_INT(count_in(s.log, "upgrade: started new master "), ==, 1); /* one, not two */
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sigterm_during_an_upgrade_stops_the_new_master_too)
{
	const char *script = write_upgrade_script();
	struct server s;
	const char *line;
	pid_t pid;

	touch("hang");
	server_start(&s, "--workers", "1", "--upgrade-binary", script, NULL);
	kill(s.pid, SIGUSR2);
	line = server_wait_log(&s, "upgrade: started new master ", 10000);
	pid = (pid_t)atoi(strstr(line, ", pid ") + 6);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "was killed: this master stops") != NULL);
	CHECK(kill(pid, 0) < 0 && errno == ESRCH);
	server_free(&s);
}

TEST(a_client_still_waiting_for_its_routing_key_is_served_by_the_new_master)
{
	struct server s;
	char buf[1024];
	const char *body;
	pid_t newpid, after, workers[2];
	long long deadline = test_now_ms() + 10000;
	char *st;
	int fd;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	server_start(&s, "--workers", "2", "--policy", "route", "--route-key", "http-host", NULL);
	fd = tcp_connect(s.addr, NULL); /* it says nothing yet: the old master waits for its key */
	for (;;) {
		st = server_status(&s);
		if (status_num(st, "\nroute", "waiting") == 1)
			break;
		free(st);
		CHECK(test_now_ms() < deadline);
	}
	free(st);
	kill(s.pid, SIGUSR2);
	newpid = wait_new_master(&s);
	server_wait_log(&s, "handed 1 connection(s) to the new master", 10000);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	send_all(fd, "GET / HTTP/1.1\r\nHost: some.key\r\nConnection: close\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body && strstr(body, "pid="));
	after = (pid_t)atoi(strstr(body, "pid=") + 4);
	st = server_status(&s);
	CHECK_INT(status_pids(st, workers, 2), ==, 2);
	CHECK(has_pid(workers, 2, after));
	free(st);
	close(fd);
	stop_new_master(&s, newpid);
	server_free(&s);
}

/* The value of name= in the file of NUL-free lines at path ("" when absent; NULL: no line). */
static char *file_line(const char *path, const char *prefix)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *text, *line, *found = NULL;

	CHECK_OK(fd);
	text = fdp_test_read_all(fd, NULL);
	close(fd);
	for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, prefix, strlen(prefix)) == 0 && !found)
			found = strdup(line);
	free(text);
	return found;
}

TEST(the_new_master_gets_its_socket_in_fdpass_upgrade_fd_and_no_listen_variables)
{
	char script[512], envfile[512];
	struct server s;
	pid_t newpid;
	char *line;
	FILE *f;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	snprintf(envfile, sizeof(envfile), "%s/env", fdp_test_tmpdir());
	snprintf(script, sizeof(script), "%s/env.sh", fdp_test_tmpdir());
	f = fopen(script, "w");
	CHECK(f != NULL);
	fprintf(f, "#!/bin/sh\nenv > '%s'\nexec '%s' \"$@\"\n", envfile, FDPASS_TOOL);
	CHECK_OK(fclose(f));
	CHECK_OK(chmod(script, 0755));
	/* What a service manager gave the old master is not the new one's (its pid differs). */
	setenv("LISTEN_PID", "1", 1);
	setenv("LISTEN_FDS", "1", 1);
	server_start(&s, "--workers", "1", "--upgrade-binary", script, NULL);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	kill(s.pid, SIGUSR2);
	newpid = wait_new_master(&s);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	CHECK(file_line(envfile, "LISTEN_") == NULL);
	line = file_line(envfile, "FDPASS_UPGRADE_FD=");
	CHECK(line && strcmp(line, "FDPASS_UPGRADE_FD=3") == 0);
	free(line);
	http_get_worker(s.addr, NULL, NULL);
	stop_new_master(&s, newpid);
	server_free(&s);
}

static void http_get_unix(const char *path)
{
	char buf[1024];
	int fd = fdp_unix_connect(path, SOCK_STREAM);

	CHECK_OK(fd);
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	CHECK(http_read(fd, buf, sizeof(buf)) != NULL);
	close(fd);
}

/* The address the process pid logged it listens on, the nth time (0: the first). */
static void logged_address(const struct server *s, pid_t pid, int nth, char *out, size_t size)
{
	char needle[64];
	const char *p = s->log;

	snprintf(needle, sizeof(needle), "fdpass[%d] info: listening on ", (int)pid);
	for (int i = 0; i <= nth; i++) {
		p = strstr(p, needle);
		CHECK(p != NULL);
		p += strlen(needle);
	}
	snprintf(out, size, "%.*s", (int)strcspn(p, "\n"), p);
}

/*
 * Upgrade s to a new master started by script (its --upgrade-binary) with `fdpass serve ARGS
 * --control CONTROL`; returns the new master's pid once the old one has exited.
 */
static pid_t upgrade_to(struct server *s, const char *script, const char *args)
{
	pid_t newpid;
	FILE *f = fopen(script, "w");

	CHECK(f != NULL);
	fprintf(f, "#!/bin/sh\nexec '%s' serve %s --control '%s'\n", FDPASS_TOOL, args, s->control);
	CHECK_OK(fclose(f));
	CHECK_OK(chmod(script, 0755));
	kill(s->pid, SIGUSR2);
	newpid = wait_new_master(s);
	CHECK_INT(fdp_test_wait(s->pid), ==, 0);
	return newpid;
}

TEST(listeners_the_new_arguments_add_are_bound_and_those_they_drop_close_with_the_old_master)
{
	char script[512], unix_addr[300], added[64], first[64];
	struct server s;
	pid_t newpid;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	snprintf(unix_addr, sizeof(unix_addr), "unix:%s/u.sock", fdp_test_tmpdir());
	snprintf(script, sizeof(script), "%s/args.sh", fdp_test_tmpdir());
	server_start(&s, "--workers", "1", "--listen", unix_addr, "--upgrade-binary", script, NULL);
	http_get_unix(unix_addr + 5); /* served before the upgrade */
	/* The new arguments: the first address again, a new one, and no Unix socket. */
	newpid = upgrade_to(&s, script, "--workers 1 --listen 127.0.0.1:0 --listen 127.0.0.1:0");
	logged_address(&s, newpid, 0, first, sizeof(first));
	logged_address(&s, newpid, 1, added, sizeof(added));
	CHECK(strcmp(first, s.addr) == 0); /* taken, not bound again */
	CHECK(strcmp(added, s.addr) != 0);
	http_get_worker(s.addr, NULL, NULL);
	http_get_worker(added, NULL, NULL);
	CHECK(access(unix_addr + 5, F_OK) < 0); /* the old master removed the dropped one's file */
	CHECK(fdp_unix_connect(unix_addr + 5, SOCK_STREAM) < 0);
	stop_new_master(&s, newpid);
	server_free(&s);
}

TEST(a_new_master_that_routes_a_listener_the_old_one_passed_defers_its_accepts_once_ready)
{
	char script[512], ready[96], defer[192];
	struct server s;
	const char *at_ready, *at_defer;
	pid_t newpid;
	char *st;
	int silent;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	snprintf(script, sizeof(script), "%s/route.sh", fdp_test_tmpdir());
	server_start(&s, "--workers", "1", "--upgrade-binary", script, NULL);
	newpid = upgrade_to(&s, script,
	                    "--workers 1 --listen 127.0.0.1:0 --policy route --route-key http-host");
	/* The old master served on it undeferred until the new one was ready: set after that. */
	snprintf(ready, sizeof(ready), "fdpass[%d] info: ready: ", (int)newpid);
	snprintf(defer, sizeof(defer), "fdpass[%d] info: listener 0 %s: a client is accepted", (int)newpid,
	         s.addr);
	/* Looked for from the log's start: the old master's lines and the new one's interleave. */
	while (!(at_defer = strstr(s.log, defer)))
		CHECK(server_read_log(&s, 10000) > 0);
	at_ready = strstr(s.log, ready);
	CHECK(at_ready != NULL && at_ready < at_defer);
	/* And in force: a client that says nothing is not taken before one that asks. */
	silent = tcp_connect(s.addr, NULL);
	http_get_worker(s.addr, NULL, NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "\nroute", "waiting"), ==, 0);
	free(st);
	close(silent);
	stop_new_master(&s, newpid);
	server_free(&s);
}

TEST(a_unix_listener_handed_over_keeps_its_file_and_serves_from_the_new_master)
{
	char unix_addr[300];
	struct server s;
	pid_t newpid;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	snprintf(unix_addr, sizeof(unix_addr), "unix:%s/u.sock", fdp_test_tmpdir());
	server_start(&s, "--workers", "1", "--listen", unix_addr, NULL);
	http_get_unix(unix_addr + 5);
	kill(s.pid, SIGUSR2);
	newpid = wait_new_master(&s);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	CHECK_OK(access(unix_addr + 5, F_OK)); /* the old master left it to the new one */
	http_get_unix(unix_addr + 5);
	stop_new_master(&s, newpid);
	CHECK(access(unix_addr + 5, F_OK) < 0); /* which removed it when it stopped */
	server_free(&s);
}

TEST(the_upgrade_control_command_is_answered_when_the_new_master_is_ready)
{
	struct server s;
	char want[128], *a, *st;
	pid_t newpid;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	server_start(&s, "--workers", "1", NULL);
	a = server_command(&s, "upgrade");
	newpid = wait_new_master(&s);
	snprintf(want, sizeof(want), "ok upgraded: new master pid %d; this one (pid %d) drains",
	         (int)newpid, (int)s.pid);
	CHECK(strncmp(a, want, strlen(want)) == 0);
	free(a);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "pid"), ==, newpid);
	free(st);
	stop_new_master(&s, newpid);
	server_free(&s);
}

TEST(the_upgrade_control_command_says_why_an_upgrade_was_rolled_back)
{
	const char *script = write_upgrade_script();
	struct server s;
	char *a;

	server_start(&s, "--workers", "1", "--upgrade-binary", script, NULL);
	a = server_command(&s, "upgrade");
	CHECK(strcmp(a, "error upgrade: the new master exited before it was ready; this master "
	                "serves on (see the server's log)\n") == 0);
	free(a);
	check_old_serves(&s);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_master_started_by_an_upgrade_is_upgraded_again)
{
	struct server s;
	pid_t second, third;
	char *st;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	server_start(&s, "--workers", "1", NULL);
	kill(s.pid, SIGUSR2);
	second = wait_new_master(&s);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	server_wait_log(&s, "upgrade complete", 10000); /* until then it refuses another */
	kill(second, SIGUSR2);
	third = wait_new_master(&s);
	CHECK_INT(fdp_test_wait(second), ==, 0);
	CHECK(third != second && third != s.pid);
	http_get_worker(s.addr, NULL, NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "pid"), ==, third);
	free(st);
	stop_new_master(&s, third);
	server_free(&s);
}

TEST(help_explains_the_upgrade_options_and_sigusr2)
{
	const char *args[] = {"serve", "--help", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 0);
	CHECK(strstr(out, "--upgrade-timeout SECS") != NULL);
	CHECK(strstr(out, "--upgrade-binary PATH") != NULL);
	CHECK(strstr(out, "SIGUSR2") != NULL);
	free(out);
	free(err);
}

TEST(a_bad_upgrade_timeout_exits_2_naming_the_option)
{
	const char *args[] = {"serve", "--upgrade-timeout", "0", "--control", "none", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 2);
	CHECK(strstr(err, "invalid value '0' for --upgrade-timeout: expected whole seconds from 1 "
	                  "to 86400") != NULL);
	free(out);
	free(err);
}

/* Wait until process pid is stopped (state T in /proc), bounded. */
static void wait_stopped(pid_t pid)
{
	long long deadline = test_now_ms() + 10000;
	char path[64], buf[256];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		char *end;

		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		end = strrchr(buf, ')');
		if (end && end[1] == ' ' && end[2] == 'T')
			return;
		CHECK(test_now_ms() < deadline);
		sched_yield();
	}
}

TEST(a_draining_old_master_leaves_the_handed_control_socket_to_the_new_one)
{
	struct server s;
	char buf[1024], needle[64];
	pid_t newpid;
	char *st;
	int fd, cfd;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	/* A worker that hands nothing back: its client keeps the old master draining until it is
	 * served. */
	server_start(&s, "--workers", "1", "--exec", UPPER_WORKER, NULL);
	fd = tcp_connect(s.addr, NULL);
	st = server_status(&s);
	free(st); /* the old master has taken it: a status is answered after the accept */
	kill(s.pid, SIGUSR2);
	newpid = wait_new_master(&s);
	server_wait_log(&s, "draining:", 10000);
	/* A control client waits in the socket's queue while the new master cannot take it: the
	 * old one must not look at it (it has closed its copy) before it exits. */
	CHECK_OK(kill(newpid, SIGSTOP));
	wait_stopped(newpid);
	cfd = fdp_unix_connect(s.control, SOCK_STREAM);
	CHECK_OK(cfd);
	send_all(fd, "hello\n");
	CHECK_INT(read(fd, buf, sizeof(buf)), ==, 6); /* the old worker serves it */
	CHECK(memcmp(buf, "HELLO\n", 6) == 0);
	close(fd);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	CHECK_OK(kill(newpid, SIGCONT));
	send_all(cfd, "status\n");
	st = fdp_test_read_all(cfd, NULL);
	close(cfd);
	CHECK_INT(status_num(st, "master", "pid"), ==, newpid); /* the new master answered it */
	free(st);
	server_wait_log(&s, "worker 0 served 1 connections", 10000); /* the old one's last line */
	snprintf(needle, sizeof(needle), "fdpass[%d] warn", (int)s.pid);
	if (strstr(s.log, needle))
		fdp_test_fail(__FILE__, __LINE__, "the old master warned:\n%s", s.log);
	stop_new_master(&s, newpid);
	server_free(&s);
}

/*
 * A new master that takes the sockets and then fails to start (its first worker cannot be
 * executed) leaves them as it found them: the old master's Unix listener and control socket
 * keep their files, and it serves and answers on them.
 */
TEST(a_new_master_that_fails_after_taking_the_sockets_leaves_their_files_to_the_old_one)
{
	char unix_addr[300], cmd[600], script[512], buf[4];
	struct server s;
	FILE *f;
	char *st;
	int fd;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
	snprintf(unix_addr, sizeof(unix_addr), "unix:%s/u.sock", fdp_test_tmpdir());
	/* The new master's workers fail: the flag exists only once the upgrade has begun. */
	snprintf(cmd, sizeof(cmd), "test -e %s/broken && exit 127; exec %s", fdp_test_tmpdir(),
	         UPPER_WORKER);
	snprintf(script, sizeof(script), "%s/upgrade-broken.sh", fdp_test_tmpdir());
	CHECK((f = fopen(script, "we")) != NULL);
	fprintf(f, "#!/bin/sh\n: > '%s/broken'\nexec '%s' \"$@\"\n", fdp_test_tmpdir(), FDPASS_TOOL);
	CHECK_OK(fclose(f));
	CHECK_OK(chmod(script, 0755));
	server_start(&s, "--workers", "1", "--listen", unix_addr, "--exec", cmd, "--upgrade-binary",
	             script, NULL);
	kill(s.pid, SIGUSR2);
	server_wait_log(&s, "this master serves on", 20000);
	CHECK_OK(access(unix_addr + 5, F_OK));
	st = server_status(&s); /* over the control socket's file */
	CHECK_INT(status_num(st, "master", "pid"), ==, s.pid);
	free(st);
	fd = fdp_unix_connect(unix_addr + 5, SOCK_STREAM); /* and the listener's */
	CHECK_OK(fd);
	send_all(fd, "old\n");
	CHECK_INT(read(fd, buf, 4), ==, 4);
	CHECK(memcmp(buf, "OLD\n", 4) == 0);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
