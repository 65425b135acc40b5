/*
 * fdpass serve's process limits: the workers' user (--user), their recycling (--max-requests,
 * --max-lifetime), the connections open at once (--max-connections), and reaping every child
 * (--reap-all, and as PID 1 in a PID namespace). Real processes on loopback; every wait is
 * bounded. The --user tests need root (the machine's tests run as root) and skip without it.
 */
#include "test_serve_util.h"

#include <grp.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/stat.h>

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"

static void need_root(void)
{
	if (geteuid() != 0)
		fdp_test_skip("--user needs root");
}

static void need_upper_worker(void)
{
	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
}

/* The uid and gid of the user "nobody". */
static void nobody_ids(uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam("nobody");

	if (!pw)
		fdp_test_skip("no user nobody");
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
}

/* A port below 1024 free on 127.0.0.1 right now (80 first); 0 if none. */
static int free_privileged_port(void)
{
	for (int port = 80; port < 1024; port = port == 80 ? 600 : port + 1) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port = htons((uint16_t)port),
		                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

		CHECK(fd >= 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
		ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	return 0;
}

/* The value of "Key:" in /proc/PID/status, tabs turned into spaces and trimmed. */
static void proc_status_field(pid_t pid, const char *key, char *out, size_t size)
{
	char path[64], *text, *line, *eol;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	text = fdp_test_read_all(fd, NULL);
	close(fd);
	line = strstr(text, key);
	CHECK(line != NULL);
	line += strlen(key);
	while (*line == ' ' || *line == '\t')
		line++;
	eol = strchr(line, '\n');
	if (eol)
		*eol = '\0';
	for (char *c = line; *c; c++)
		if (*c == '\t')
			*c = ' ';
	for (size_t n = strlen(line); n && line[n - 1] == ' ';)
		line[--n] = '\0';
	snprintf(out, size, "%s", line);
	free(text);
}

/* The worker runs as uid and gid (real, effective, saved, fs), no other group, no new privs. */
static void check_worker_ids(pid_t pid, uid_t uid, gid_t gid)
{
	char got[128], want[128];

	snprintf(want, sizeof(want), "%u %u %u %u", (unsigned)uid, (unsigned)uid, (unsigned)uid,
	         (unsigned)uid);
	proc_status_field(pid, "\nUid:", got, sizeof(got));
	if (strcmp(got, want) != 0)
		fdp_test_fail(__FILE__, __LINE__, "worker %d Uid: %s, not %s", (int)pid, got, want);
	snprintf(want, sizeof(want), "%u %u %u %u", (unsigned)gid, (unsigned)gid, (unsigned)gid,
	         (unsigned)gid);
	proc_status_field(pid, "\nGid:", got, sizeof(got));
	if (strcmp(got, want) != 0)
		fdp_test_fail(__FILE__, __LINE__, "worker %d Gid: %s, not %s", (int)pid, got, want);
	proc_status_field(pid, "\nGroups:", got, sizeof(got));
	if (got[0])
		fdp_test_fail(__FILE__, __LINE__, "worker %d Groups: %s, not none", (int)pid, got);
	proc_status_field(pid, "\nNoNewPrivs:", got, sizeof(got));
	CHECK(strcmp(got, "1") == 0);
}

TEST(user_runs_every_worker_as_that_user_while_the_master_binds_a_privileged_port)
{
	char listen[32], addr[32];
	const char *args[] = {"--workers", "2", "--user", "nobody", "--listen", listen, NULL};
	struct server s;
	pid_t pids[2], answered;
	uid_t uid;
	gid_t gid;
	char *st;
	int port;

	need_root();
	nobody_ids(&uid, &gid);
	port = free_privileged_port();
	if (!port)
		fdp_test_skip("no free port below 1024 on 127.0.0.1");
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	server_start_argv(&s, args, 0);
	http_get_worker(addr, NULL, &answered);
	st = server_status(&s);
	CHECK_INT(status_pids(st, pids, 2), ==, 2);
	free(st);
	CHECK(answered == pids[0] || answered == pids[1]);
	for (int i = 0; i < 2; i++)
		check_worker_ids(pids[i], uid, gid);
	/* The master keeps root: it owns the control socket, answered above, and re-executes. */
	proc_status_field(s.pid, "\nUid:", listen, sizeof(listen));
	CHECK(strcmp(listen, "0 0 0 0") == 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(user_with_a_group_runs_an_executed_worker_as_that_user_and_group)
{
	char user[64];
	const char *args[] = {"--workers", "1", "--user", user, "--exec", UPPER_WORKER, NULL};
	struct server s;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char *st, buf[8] = {0};
	int fd;

	need_root();
	need_upper_worker();
	nobody_ids(&uid, &gid);
	/* Numbers, and a group that is not the user's own. */
	snprintf(user, sizeof(user), "%u:%u", (unsigned)uid, (unsigned)gid + 1);
	server_start_argv(&s, args, 0);
	st = server_status(&s);
	CHECK_INT(status_pids(st, &pid, 1), ==, 1);
	free(st);
	check_worker_ids(pid, uid, gid + 1);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "up\n");
	CHECK_INT(read(fd, buf, 3), ==, 3);
	CHECK(strcmp(buf, "UP\n") == 0);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(user_that_does_not_exist_is_refused_with_status_2)
{
	const char *args[] = {"serve", "--user", "no-such-user-fdpass", "--control", "none", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 2);
	CHECK(strstr(err, "--user no-such-user-fdpass: no such user") != NULL);
	free(out);
	free(err);
}

/* As nobody (the test drops to it first when it is root), --user is refused: it needs root. */
TEST(user_is_refused_with_status_2_when_the_server_is_not_root)
{
	const char *argv[] = {FDPASS_TOOL, "serve", "--user", "nobody", "--control", "none", NULL};
	uid_t uid;
	gid_t gid;
	int pe[2], status;
	char *err;
	pid_t pid;

	nobody_ids(&uid, &gid);
	CHECK_OK(pipe2(pe, O_CLOEXEC));
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(pe[1], 2);
		if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
			_exit(100);
		execv(FDPASS_TOOL, (char **)argv);
		_exit(127);
	}
	close(pe[1]);
	err = fdp_test_read_all(pe[0], NULL);
	close(pe[0]);
	status = fdp_test_wait(pid);
	CHECK_INT(status, ==, 2);
	CHECK(strstr(err, "--user nobody needs root") != NULL);
	free(err);
}

/*
 * A master that may not set the user id (CAP_SETUID dropped from its bounding set, so root's
 * execve() does not give it) starts a worker that cannot take it: the start fails, saying
 * which step failed and why, rather than running the worker as root.
 */
TEST(a_worker_that_cannot_take_its_user_fails_the_start_saying_which_step_failed)
{
	const char *argv[] = {FDPASS_TOOL, "serve", "--listen", "127.0.0.1:0", "--workers", "1",
	                      "--user",    "nobody", "--control", "none", NULL};
	int pe[2], status;
	char *err;
	pid_t pid;

	need_root();
	CHECK_OK(pipe2(pe, O_CLOEXEC));
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(pe[1], 2);
		if (prctl(PR_CAPBSET_DROP, CAP_SETUID, 0, 0, 0) < 0)
			_exit(77);
		execv(FDPASS_TOOL, (char **)argv);
		_exit(127);
	}
	close(pe[1]);
	err = fdp_test_read_all(pe[0], NULL);
	close(pe[0]);
	status = fdp_test_wait(pid);
	if (status == 77) {
		free(err);
		fdp_test_skip("cannot drop CAP_SETUID from the bounding set");
	}
	if (status != 1 || !strstr(err, ": setuid: Operation not permitted") ||
	    !strstr(err, "cannot start: the workers cannot run as --user nobody"))
		fdp_test_fail(__FILE__, __LINE__, "status %d, stderr:\n%s", status, err);
	free(err);
}

/* GET / on a fresh connection: its worker's generation (and pid). */
static unsigned http_get_generation(const char *addr, pid_t *pid)
{
	char buf[1024];
	const char *body;
	int fd = tcp_connect(addr, NULL);

	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	close(fd);
	if (!body || !strstr(body, "generation="))
		fdp_test_fail(__FILE__, __LINE__, "bad answer: %s", body ? body : "(none)");
	if (pid)
		*pid = (pid_t)atoi(strstr(body, "pid=") + 4);
	return (unsigned)atoi(strstr(body, "generation=") + 11);
}

/*
 * Requests one after another while workers are replaced every 5 connections: every one is
 * answered, generations only grow, and each generation replaced served at least its 5.
 */
TEST(max_requests_replaces_a_worker_after_n_connections_and_fails_none)
{
	unsigned served[16] = {0}, gen = 1, last = 1;
	struct server s;
	long long deadline;
	int requests = 0;

	server_start(&s, "--workers", "1", "--max-requests", "5", NULL);
	deadline = test_now_ms() + 20000;
	while (last < 4) {
		gen = http_get_generation(s.addr, NULL);
		requests++;
		CHECK_INT(gen, >=, last);
		CHECK_INT(gen, <, 16);
		served[gen]++;
		last = gen;
		if (test_now_ms() > deadline)
			fdp_test_fail(__FILE__, __LINE__, "generation %u after %d requests", gen,
			              requests);
	}
	for (unsigned g = 1; g < last; g++)
		CHECK_INT(served[g], >=, 5);
	server_wait_log(&s, "generation 1 handed 5 connections (max 5): replacing it", 1000);
	server_wait_log(&s, "generation 2 handed 5 connections (max 5): replacing it", 1000);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "closed unserved 0") != NULL);
	server_free(&s);
}

/*
 * The old worker drains only once its successor is ready, handing its idle keep-alive
 * connection to it: the client's next request on the same connection is answered by the new
 * generation, and the old worker exits 0.
 */
TEST(max_requests_hands_an_idle_keepalive_connection_to_the_successor)
{
	char buf[1024], msg[96];
	const char *body;
	struct server s;
	pid_t old;
	int fd;

	server_start(&s, "--workers", "1", "--max-requests", "2", NULL);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); /* kept alive: the first of 2 */
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body && strstr(body, "generation=1 "));
	old = (pid_t)atoi(strstr(body, "pid=") + 4);
	CHECK_INT(http_get_generation(s.addr, NULL), ==, 1); /* the second */
	server_wait_log(&s, "generation 1 handed 2 connections (max 2): replacing it", 10000);
	server_wait_log(&s, "generation 2 ready", 10000);
	snprintf(msg, sizeof(msg), "pid %d exited with status 0", (int)old);
	server_wait_log(&s, msg, 10000);
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	if (!body || !strstr(body, "generation=2 "))
		fdp_test_fail(__FILE__, __LINE__, "answer %s; log:\n%s", body ? body : "(none)",
		              s.log);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* One connection to an upper_worker, answered. */
static void upper_roundtrip(const char *addr)
{
	char buf[8] = {0};
	int fd = tcp_connect(addr, NULL);

	send_all(fd, "up\n");
	CHECK_INT(read(fd, buf, 3), ==, 3);
	CHECK(strcmp(buf, "UP\n") == 0);
	close(fd);
}

/*
 * A SIGHUP while a recycling's successor is still starting (this one takes half a second to
 * exec its program) replaces that successor with the reload's: one new worker per slot, and
 * the killed one leaves nothing behind.
 */
TEST(sighup_while_a_recycling_successor_starts_replaces_that_successor)
{
	const char *args[] = {"--workers", "1", "--max-requests", "1", "--exec",
	                      "sleep 0.5; exec " UPPER_WORKER, NULL};
	struct server s;
	pid_t pid[2];
	char *st;

	need_upper_worker();
	server_start_argv(&s, args, 0);
	upper_roundtrip(s.addr);
	server_wait_log(&s, "generation 1 handed 1 connections (max 1): replacing it", 10000);
	server_wait_log(&s, "generation 2 started", 10000);
	CHECK_OK(kill(s.pid, SIGHUP));
	server_wait_log(&s, "reload: worker 0 pid", 10000);
	CHECK(strstr(s.log, "is replaced before it started") != NULL);
	server_wait_log(&s, "reload complete: every worker replaced", 10000);
	CHECK(strstr(s.log, "generation 2 ready") == NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, pid, 2), ==, 1);
	CHECK_INT(status_num(st, "\nworker ", "generation"), ==, 3);
	free(st);
	upper_roundtrip(s.addr);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* A successor that fails to start leaves the old worker serving, and is tried again later. */
TEST(max_requests_keeps_the_old_worker_when_its_successor_fails_to_start)
{
	char flag[256], cmd[600];
	const char *args[] = {"--workers", "1", "--max-requests", "1", "--exec", cmd, NULL};
	struct server s;
	int fd;

	need_upper_worker();
	/* Once the flag exists, a new worker exits 3 before it is ready. */
	snprintf(flag, sizeof(flag), "%s/broken", fdp_test_tmpdir());
	snprintf(cmd, sizeof(cmd), "test -e %s && exit 3; exec " UPPER_WORKER, flag);
	server_start_argv(&s, args, 0);
	fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	close(fd);
	upper_roundtrip(s.addr);
	server_wait_log(&s, "generation 1 handed 1 connections (max 1): replacing it", 10000);
	server_wait_log(&s, "replacement: worker 0 generation 2 ended before it was ready; "
	                    "generation 1 keeps serving",
	                10000);
	server_wait_log(&s, "generation 1 keeps serving; its replacement is tried again in 10000 ms",
	                10000);
	upper_roundtrip(s.addr);
	CHECK(strstr(s.log, "generation 2 ready") == NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	unlink(flag);
	server_free(&s);
}

/* Each worker's limit is drawn from N to N + PCT% of N: here 10 to 15. */
TEST(recycle_jitter_raises_each_limit_by_at_most_its_percentage)
{
	const char *line;
	struct server s;
	unsigned max = 0;

	server_start(&s, "--workers", "1", "--max-requests", "10", "--recycle-jitter", "50", NULL);
	for (int i = 0; i < 15; i++)
		http_get_generation(s.addr, NULL);
	line = server_wait_log(&s, "generation 1 handed ", 10000);
	CHECK(sscanf(strstr(line, "(max ") + 5, "%u", &max) == 1);
	CHECK_INT(max, >=, 10);
	CHECK_INT(max, <=, 15);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(limits_out_of_range_are_refused_with_status_2)
{
	static const char *const bad[][2] = {{"--max-requests", "0"},   {"--max-lifetime", "0"},
	                                     {"--recycle-jitter", "101"}, {"--max-connections", "0"},
	                                     {"--user", ":nogroup"},      {"--user", "root:"}};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[] = {"serve", bad[i][0], bad[i][1], "--control", "none", NULL};
		char *out, *err, want[96];

		snprintf(want, sizeof(want), "invalid value '%s' for %s", bad[i][1], bad[i][0]);
		CHECK_INT(run_tool(args, &out, &err), ==, 2);
		if (!strstr(err, want))
			fdp_test_fail(__FILE__, __LINE__, "%s %s: %s", bad[i][0], bad[i][1], err);
		free(out);
		free(err);
	}
}

TEST(max_lifetime_replaces_a_worker_once_it_has_been_up_that_long)
{
	long long t0 = test_now_ms();
	struct server s;
	pid_t first, now;

	server_start(&s, "--workers", "1", "--max-lifetime", "0.4", NULL);
	CHECK_INT(http_get_generation(s.addr, &first), ==, 1);
	server_wait_log(&s, "generation 1 up ", 10000);
	CHECK_INT(test_now_ms() - t0, >=, 400);
	CHECK(strstr(s.log, "(max 400): replacing it") != NULL);
	server_wait_log(&s, "generation 2 ready", 10000);
	CHECK_INT(http_get_generation(s.addr, &now), >=, 2);
	CHECK(now != first);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* A keep-alive connection answered once: open in its worker until the client closes it. */
static int open_answered(const char *addr)
{
	char buf[1024];
	int fd = tcp_connect(addr, NULL);

	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
	CHECK(http_read(fd, buf, sizeof(buf)) != NULL);
	return fd;
}

TEST(max_connections_pauses_accepting_until_a_connection_finishes)
{
	struct pollfd pfd = {.events = POLLIN};
	char buf[1024], *st;
	struct server s;
	int a, b, c;

	server_start(&s, "--workers", "2", "--max-connections", "2", NULL);
	a = open_answered(s.addr);
	b = open_answered(s.addr);
	server_wait_log(&s, "2 connections open (max-connections): not accepting", 10000);
	/* The third completes its handshake in the backlog, and waits there. */
	c = tcp_connect(s.addr, NULL);
	send_all(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	pfd.fd = c;
	CHECK_INT(poll(&pfd, 1, 300), ==, 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "accepted"), ==, 2);
	free(st);
	/* One finishes: its worker reports it done, and the third is accepted and answered. */
	close(a);
	CHECK(http_read(c, buf, sizeof(buf)) != NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "accepted"), ==, 3);
	free(st);
	close(b);
	close(c);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* ---- reaping every child ---- */

/* "pid (comm) S ppid ...": the state and parent of pid, comm into comm; 0 if it is gone. */
static int proc_stat(pid_t pid, char *comm, size_t size, pid_t *ppid)
{
	char path[64], buf[512], *open_paren, *close_paren, state;
	ssize_t n;
	int fd, parent;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || sscanf(close_paren + 2, "%c %d", &state, &parent) != 2)
		return 0;
	if (comm)
		snprintf(comm, size, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
	if (ppid)
		*ppid = parent;
	return state;
}

/* A child of parent named comm (bounded wait); its pid. */
static pid_t wait_child_named(pid_t parent, const char *comm)
{
	long long deadline = test_now_ms() + 10000;

	while (test_now_ms() < deadline) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		pid_t found = 0;

		CHECK(d != NULL);
		while (!found && (e = readdir(d))) {
			pid_t pid = atoi(e->d_name), ppid;
			char name[64];

			if (pid > 0 && proc_stat(pid, name, sizeof(name), &ppid) && ppid == parent &&
			    strcmp(name, comm) == 0)
				found = pid;
		}
		closedir(d);
		if (found)
			return found;
		poll(NULL, 0, 10);
	}
	fdp_test_fail(__FILE__, __LINE__, "no child %s of pid %d", comm, (int)parent);
}

/* pid is gone, reaped: not even a zombie is left (bounded wait). */
static void wait_reaped(pid_t pid)
{
	long long deadline = test_now_ms() + 5000;
	int state = 0;

	while (test_now_ms() < deadline) {
		state = proc_stat(pid, NULL, 0, NULL);
		if (!state)
			return;
		poll(NULL, 0, 10);
	}
	fdp_test_fail(__FILE__, __LINE__, "pid %d is still there, state %c", (int)pid, state);
}

/*
 * The worker's command leaves an orphan: a subshell starts `cat FIFO` in the background and
 * exits, so cat is re-parented (to the PID namespace's init, or the nearest subreaper). cat
 * waits for a writer on the FIFO, and exits at its end of file.
 */
#define ORPHAN_CMD "(cat %s >/dev/null &); exec " UPPER_WORKER

static void make_fifo(char *path, size_t size)
{
	snprintf(path, size, "%s/orphan.fifo", fdp_test_tmpdir());
	CHECK_OK(mkfifo(path, 0600));
}

/* Let cat (blocked opening the FIFO for reading) read its end of file. */
static void release_orphan(const char *fifo)
{
	long long deadline = test_now_ms() + 10000;
	int fd;

	while ((fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		CHECK(errno == ENXIO && test_now_ms() < deadline); /* no reader yet */
		poll(NULL, 0, 10);
	}
	close(fd);
}

TEST(reap_all_makes_the_master_a_subreaper_that_reaps_orphans_of_its_workers)
{
	char fifo[256], cmd[600];
	const char *args[] = {"--workers", "1", "--reap-all", "--exec", cmd, NULL};
	struct server s;
	pid_t orphan;

	need_upper_worker();
	make_fifo(fifo, sizeof(fifo));
	snprintf(cmd, sizeof(cmd), ORPHAN_CMD, fifo);
	server_start_argv(&s, args, 0);
	CHECK(strstr(s.log, "reaping every child process (a child subreaper)") != NULL);
	orphan = wait_child_named(s.pid, "cat");
	release_orphan(fifo);
	wait_reaped(orphan);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* Reaping every child takes no worker's status: a killed worker is still told by its signal. */
TEST(reap_all_still_reports_how_a_worker_died)
{
	struct server s;
	pid_t pid;
	char *st, msg[64];

	server_start(&s, "--workers", "1", "--reap-all", NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, &pid, 1), ==, 1);
	free(st);
	CHECK_OK(kill(pid, SIGKILL));
	snprintf(msg, sizeof(msg), "pid %d killed by signal 9", (int)pid);
	server_wait_log(&s, msg, 10000);
	server_wait_log(&s, "generation 2 ready", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* `unshare --pid --fork fdpass serve ...`: the server is PID 1 of a new PID namespace. */
static void server_start_as_pid1(struct server *s, const char *const *args)
{
	const char *argv[32] = {"unshare", "--pid", "--fork", "--kill-child", FDPASS_TOOL,
	                        "serve",   "--listen", "127.0.0.1:0", "--control"};
	int pipefd[2], n = 9;
	const char *line;

	memset(s, 0, sizeof(*s));
	s->log = calloc(1, SERVE_LOG_MAX);
	snprintf(s->control, sizeof(s->control), "%s/ctl.sock", fdp_test_tmpdir());
	argv[n++] = s->control;
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	CHECK_OK(pipe2(pipefd, O_CLOEXEC));
	fflush(NULL);
	s->pid = fork();
	CHECK(s->pid >= 0);
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pipefd[1], 2);
		execvp("unshare", (char **)argv);
		_exit(127);
	}
	close(pipefd[1]);
	s->err = pipefd[0];
	line = server_wait_log(s, "listening on ", 10000);
	sscanf(strstr(line, "listening on ") + 13, "%63s", s->addr);
	server_wait_log(s, "ready: ", 10000);
}

static void need_pid_namespaces(void)
{
	const char *args[] = {"unshare", "--pid", "--fork", "true", NULL};
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execvp("unshare", (char **)args);
		_exit(127);
	}
	status = fdp_test_wait(pid);
	if (status == 127)
		fdp_test_skip("no unshare (util-linux)");
	if (status != 0)
		fdp_test_skip("unshare --pid --fork cannot make a PID namespace here (not root?)");
}

TEST(as_pid_1_the_master_reaps_orphans_it_never_started)
{
	char fifo[256], cmd[600];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;
	pid_t master, orphan;

	need_upper_worker();
	need_pid_namespaces();
	make_fifo(fifo, sizeof(fifo));
	snprintf(cmd, sizeof(cmd), ORPHAN_CMD, fifo);
	server_start_as_pid1(&s, args);
	CHECK(strstr(s.log, "fdpass[1] info: reaping every child process (running as PID 1)"));
	/* unshare's child is the master: PID 1 inside, this pid outside. */
	master = wait_child_named(s.pid, "fdpass");
	orphan = wait_child_named(master, "cat");
	release_orphan(fifo);
	wait_reaped(orphan);
	CHECK_OK(kill(master, SIGTERM)); /* unshare exits with its child's status */
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
}
