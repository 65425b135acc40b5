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
