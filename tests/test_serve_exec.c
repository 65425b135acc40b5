/*
 * fdpass serve --exec: the program is the worker process itself (no shell in between), what it
 * starts dies with it, it dies with the master, and one that cannot be executed fails the
 * start. A FIFO in the test's folder tells when a process holding it is gone: its reader sees
 * end of file once the last writer closed it. Every wait is bounded.
 */
#include "test_serve_util.h"

#include <sys/stat.h>

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"

static void need_upper_worker(void)
{
	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
}

/* The pid of the server's only worker process, from its status. */
static pid_t only_worker(struct server *s)
{
	pid_t pid[2];
	char *st = server_status(s);

	CHECK_INT(status_pids(st, pid, 2), ==, 1);
	free(st);
	return pid[0];
}

/* /proc/PID/cmdline: the process's argv, each argument ended by a NUL; returns its length. */
static size_t proc_cmdline(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	n = read(fd, buf, size);
	close(fd);
	CHECK(n > 0);
	return (size_t)n;
}

/* A FIFO in the test's folder (its path in path), opened for reading without a writer yet. */
static int fifo_open(char *path, size_t size)
{
	int fd;

	snprintf(path, size, "%s/fifo", fdp_test_tmpdir());
	CHECK_OK(mkfifo(path, 0600));
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

/* The byte a writer sends once it holds the FIFO open. */
static void fifo_wait_writer(int fd)
{
	char c = 0;

	fdp_test_wait_readable(fd, 10000);
	CHECK_INT(read(fd, &c, 1), ==, 1);
	CHECK_INT(c, ==, 'x');
}

/* End of file: no process holds the FIFO for writing any more. */
static void fifo_wait_eof(int fd)
{
	char buf[64];
	ssize_t n;

	do {
		fdp_test_wait_readable(fd, 10000);
		n = read(fd, buf, sizeof(buf));
	} while (n > 0 || (n < 0 && errno == EAGAIN));
	CHECK_INT(n, ==, 0);
}

/* A child of the worker, in its process group, that holds the FIFO: `CHILD & exec PROGRAM`. */
#define FIFO_CHILD "{ echo x; exec sleep 1000; } >%s & exec "

TEST(a_worker_killed_at_its_start_deadline_takes_its_children_with_it)
{
	char fifo[256], cmd[600];
	const char *args[] = {
	        "--workers", "1", "--start-timeout", "1", "--drain-timeout", "0", "--exec",
	        cmd,         NULL};
	struct server s;
	int fd = fifo_open(fifo, sizeof(fifo));

	/* Never ready: it reads its channel, so it also ends with the master if the test fails. */
	snprintf(cmd, sizeof(cmd), FIFO_CHILD "cat <&3 >/dev/null", fifo);
	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	fifo_wait_writer(fd);
	server_wait_log(&s, "generation 1 did not say READY within 1000 ms: killing it", 10000);
	fifo_wait_eof(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	close(fd);
	server_free(&s);
}

TEST(a_worker_killed_from_outside_takes_its_children_with_it_when_it_is_reaped)
{
	char fifo[256], cmd[1200];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;
	int fd = fifo_open(fifo, sizeof(fifo));

	need_upper_worker();
	/* Only the first generation holds the FIFO: its replacement must not hide the end of file. */
	snprintf(cmd, sizeof(cmd),
	         "if mkdir %s.once 2>/dev/null; then { echo x; exec sleep 1000; } >%s & fi; exec " UPPER_WORKER,
	         fifo, fifo);
	server_start_argv(&s, args, 0);
	fifo_wait_writer(fd);
	CHECK_OK(kill(only_worker(&s), SIGKILL));
	fifo_wait_eof(fd);
	server_wait_log(&s, "generation 2 started", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	close(fd);
	server_free(&s);
}

TEST(stopping_the_master_kills_what_its_workers_started)
{
	char fifo[256], cmd[600];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;
	int fd = fifo_open(fifo, sizeof(fifo));

	need_upper_worker();
	snprintf(cmd, sizeof(cmd), FIFO_CHILD UPPER_WORKER, fifo);
	server_start_argv(&s, args, 0);
	fifo_wait_writer(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	fifo_wait_eof(fd);
	close(fd);
	server_free(&s);
}

/* The worker the status shows runs argv (its arguments, each NUL-ended, back to back). */
static void check_worker_argv(struct server *s, const char *argv, size_t len)
{
	char buf[1024];
	pid_t pid = only_worker(s);

	CHECK_INT(proc_cmdline(pid, buf, sizeof(buf)), ==, len);
	if (memcmp(buf, argv, len) != 0)
		fdp_test_fail(__FILE__, __LINE__, "worker %d runs %s, not %s", (int)pid, buf, argv);
}

TEST(an_exec_command_without_shell_characters_is_split_and_is_the_worker_process)
{
	static const char want[] = UPPER_WORKER "\0one\0two";
	struct server s;

	need_upper_worker();
	server_start(&s, "--workers", "1", "--exec", UPPER_WORKER " one  two", NULL);
	check_worker_argv(&s, want, sizeof(want));
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(an_exec_command_with_shell_characters_runs_through_the_shell_which_becomes_the_program)
{
	static const char want[] = UPPER_WORKER "\0two words";
	struct server s;
	int fd;
	char buf[16] = {0};

	need_upper_worker();
	server_start(&s, "--workers", "1", "--exec", UPPER_WORKER " 'two words' </dev/null", NULL);
	check_worker_argv(&s, want, sizeof(want));
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "shell\n");
	CHECK_INT(read(fd, buf, 6), ==, 6);
	CHECK(strcmp(buf, "SHELL\n") == 0);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(an_exec_program_that_does_not_exist_fails_the_start_with_status_1)
{
	const char *args[] = {"--workers", "2", "--exec", "/nonexistent", NULL};
	struct server s;

	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	CHECK_INT(server_wait_exit(&s), ==, 1);
	CHECK(strstr(s.log, "cannot execute /nonexistent: No such file or directory") != NULL);
	CHECK(strstr(s.log, "fdpass serve: cannot start: --exec /nonexistent could not be "
	                    "executed\n") != NULL);
	CHECK(strstr(s.log, " started") == NULL); /* no worker ran */
	CHECK(access(s.control, F_OK) < 0);
	server_free(&s);
}

TEST(a_first_worker_that_exits_127_before_it_is_ready_fails_the_start)
{
	const char *args[] = {"--workers", "1", "--exec", "exit 127", NULL};
	struct server s;

	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	CHECK_INT(server_wait_exit(&s), ==, 1);
	CHECK(strstr(s.log, "it exited with status 127 before it was ready") != NULL);
	CHECK(strstr(s.log, "fdpass serve: cannot start: --exec exit 127 could not be") != NULL);
	CHECK(strstr(s.log, "generation 2") == NULL); /* not restarted */
	server_free(&s);
}

TEST(a_reload_to_a_program_that_cannot_be_executed_leaves_the_old_generation_serving)
{
	char script[256], msg[320], buf[16] = {0};
	const char *args[] = {"--workers", "1", "--exec", script, NULL};
	struct server s;
	pid_t before;
	FILE *f;
	int fd;

	need_upper_worker();
	snprintf(script, sizeof(script), "%s/worker", fdp_test_tmpdir());
	CHECK((f = fopen(script, "we")) != NULL);
	fputs("#!/bin/sh\nexec " UPPER_WORKER "\n", f);
	CHECK(fclose(f) == 0);
	CHECK_OK(chmod(script, 0755));
	server_start_argv(&s, args, 0);
	before = only_worker(&s);
	CHECK_OK(chmod(script, 0644)); /* not executable, even by root */
	kill(s.pid, SIGHUP);
	snprintf(msg, sizeof(msg), "generation 2: cannot execute %s: Permission denied", script);
	server_wait_log(&s, msg, 10000);
	server_wait_log(&s, "reload complete: 1 of 1 worker(s) not replaced", 10000);
	CHECK_INT(only_worker(&s), ==, before);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "old\n");
	CHECK_INT(read(fd, buf, 4), ==, 4);
	CHECK(strcmp(buf, "OLD\n") == 0);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(an_exec_worker_does_not_outlive_a_master_killed_by_sigkill)
{
	char fifo[256], cmd[600];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;
	pid_t worker;
	int fd = fifo_open(fifo, sizeof(fifo));

	/* The worker itself holds the FIFO and never reads its channel: only the parent death
	 * signal can end it. Orphaned, it comes to this process, which reaps it. */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	snprintf(cmd, sizeof(cmd), "exec >%s; echo x; exec sleep 1000", fifo);
	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	fifo_wait_writer(fd);
	worker = only_worker(&s);
	kill(s.pid, SIGKILL);
	CHECK_INT(server_wait_exit(&s), ==, 128 + SIGKILL);
	fifo_wait_eof(fd);
	CHECK_INT(fdp_test_wait(worker), ==, 128 + SIGKILL);
	close(fd);
	unlink(s.control); /* a killed master leaves its socket file */
	server_free(&s);
}
