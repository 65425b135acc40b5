/* What `fdpass serve` sets up before anything else: stdio, the descriptor limit, the log. */
#include "test_serve_util.h"

#include <sys/resource.h>

/* The target of /proc/PID/fd/FD. */
static void fd_target(pid_t pid, int fd, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	n = readlink(path, buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
}

TEST(closed_stdio_is_filled_with_dev_null_before_any_socket_is_opened)
{
	const char *argv[] = {FDPASS_TOOL, "serve",     "--listen", "127.0.0.1:0", "--workers",
	                      "1",         "--control", "none",     NULL};
	struct server s;
	char target[256];
	int pipefd[2];

	memset(&s, 0, sizeof(s));
	s.log = calloc(1, SERVE_LOG_MAX);
	CHECK_OK(pipe2(pipefd, O_CLOEXEC));
	fflush(NULL);
	s.pid = fork();
	CHECK(s.pid >= 0);
	if (s.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pipefd[1], 2);
		close(0);
		close(1);
		execv(FDPASS_TOOL, (char **)argv);
		_exit(127);
	}
	close(pipefd[1]);
	s.err = pipefd[0];
	sscanf(strstr(server_wait_log(&s, "listening on ", 10000), "listening on ") + 13, "%63s",
	       s.addr);
	server_wait_log(&s, "ready: ", 10000);
	for (int fd = 0; fd <= 1; fd++) {
		fd_target(s.pid, fd, target, sizeof(target));
		CHECK(strcmp(target, "/dev/null") == 0);
	}
	http_get_worker(s.addr, NULL, NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* The soft and hard "Max open files" of process pid, from /proc/PID/limits. */
static void proc_nofile(pid_t pid, unsigned long long *soft, unsigned long long *hard)
{
	char path[64], *text, *line;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	text = fdp_test_read_all(fd, NULL);
	close(fd);
	line = strstr(text, "Max open files");
	CHECK(line != NULL);
	CHECK_INT(sscanf(line + strlen("Max open files"), "%llu %llu", soft, hard), ==, 2);
	free(text);
}

TEST(the_soft_limit_on_open_files_is_raised_to_the_hard_limit)
{
	struct rlimit saved, low;
	unsigned long long soft, hard;
	struct server s;

	CHECK_OK(getrlimit(RLIMIT_NOFILE, &saved));
	if (saved.rlim_max <= 256)
		fdp_test_skip("the hard limit on open files is too low to lower the soft one");
	/* The server inherits a soft limit well below its hard one. */
	low = saved;
	low.rlim_cur = 256;
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &low));
	server_start(&s, "--workers", "1", "--log-level", "debug", NULL);
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &saved));
	proc_nofile(s.pid, &soft, &hard);
	CHECK_INT(soft, ==, hard);
	/* valgrind keeps the test's real limit to itself: the server may inherit the high one. */
	if (!fdp_test_under_valgrind())
		CHECK(strstr(s.log, "debug: open files limit 256 raised to ") != NULL);
	else
		CHECK(strstr(s.log, "debug: open files limit ") != NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* GET / on a fresh connection; returns the generation of the worker that answered. */
static int http_get_generation(const char *addr)
{
	char buf[1024];
	const char *body, *g;
	int fd = tcp_connect(addr, NULL);

	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	close(fd);
	if (!body || !(g = strstr(body, "generation=")))
		fdp_test_fail(__FILE__, __LINE__, "bad answer: %s", body ? body : "(none)");
	return atoi(g + 11);
}

TEST(a_full_stderr_drops_log_lines_and_does_not_stop_the_master)
{
	static char chunk[4096];
	char path[64];
	long long deadline;
	struct server s;
	int fill;

	server_start(&s, "--workers", "1", NULL);
	/* The log's reader stalls: fill its pipe to the last byte, through a writer of our own. */
	snprintf(path, sizeof(path), "/proc/%d/fd/2", (int)s.pid);
	fill = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	CHECK(fill >= 0);
	memset(chunk, '.', sizeof(chunk));
	chunk[sizeof(chunk) - 1] = '\n';
	while (write(fill, chunk, sizeof(chunk)) > 0)
		;
	while (write(fill, "\n", 1) > 0)
		;
	CHECK_INT(errno, ==, EAGAIN);
	close(fill);
	/* A reload logs a dozen lines; the master still answers, and completes it. */
	kill(s.pid, SIGHUP);
	deadline = test_now_ms() + 20000;
	while (http_get_generation(s.addr) != 2)
		CHECK(test_now_ms() < deadline);
	/* The reader catches up: the next line that fits says how many it missed. */
	while (server_read_log(&s, 0) > 0)
		;
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, " log lines dropped: stderr was full") != NULL);
	CHECK(strstr(s.log, "received Hangup") == NULL);
	CHECK(strstr(s.log, "received Terminated") != NULL);
	server_free(&s);
}
