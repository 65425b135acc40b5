/*
 * Helpers for tests of the master library itself: run fdp_master_run() in a child process with
 * a worker_main written by the test (so a worker can misbehave on cue), one listener on
 * 127.0.0.1:0 and a control socket in the test's directory, and follow the master's log through
 * a pipe with the helpers of test_serve_util.h (struct server). Every wait is bounded.
 */
#ifndef FDP_TEST_MASTER_UTIL_H
#define FDP_TEST_MASTER_UTIL_H

#include "test_serve_util.h"

#include <sys/stat.h>

static int master_log_fd = -1;

/* Run in the master's process before fdp_master_open() (e.g. to change its uid); NULL: none. */
static void (*master_child_setup)(void);

static void master_log_sink(void *arg, enum fdp_log_level level, const char *msg)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char line[700];
	int n = snprintf(line, sizeof(line), "%s: %s\n", names[level], msg);

	(void)arg;
	if (n > 0 && write(master_log_fd, line, (size_t)n) < 0)
		_exit(98);
}

/* In the child: the master, as `fdpass serve` runs it. Never returns. */
static __attribute__((noreturn)) void master_child(struct fdp_master_config cfg, int lfd,
                                                   const char *control, int logfd)
{
	struct fdp_master *m;
	sigset_t sigs;
	int err;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	master_log_fd = logfd;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	cfg.control_path = control;
	cfg.log = master_log_sink;
	if (master_child_setup)
		master_child_setup();
	if (!cfg.log_level)
		cfg.log_level = FDP_LOG_INFO;
	if (!cfg.drain_timeout_ms)
		cfg.drain_timeout_ms = 10000;
	err = fdp_master_open(&m, &cfg);
	if (err < 0)
		_exit(3);
	err = fdp_master_run(m);
	fdp_master_close(m);
	_exit(err < 0 ? 4 : 0);
}

/*
 * Start a master with cfg (workers, policy, worker_main...) and wait until it is ready. With
 * keep, the test keeps its copy of the listener there (to read its options; its to close).
 */
static inline void master_start_keep(struct server *s, struct fdp_master_config cfg, int flags,
                                     int *keep)
{
	int pipefd[2], lfd = fdp_listen("127.0.0.1:0", 256);

	CHECK_OK(lfd);
	memset(s, 0, sizeof(*s));
	s->log = calloc(1, SERVE_LOG_MAX);
	/* Abstract: a master that changes its uid could not create a file in the test's directory.
	 */
	snprintf(s->control, sizeof(s->control), "@fdpass-test-master-%d", (int)getpid());
	CHECK_OK(fdp_addr_local(lfd, s->addr, sizeof(s->addr)));
	CHECK_OK(pipe2(pipefd, O_CLOEXEC));
	fflush(NULL);
	s->pid = fork();
	CHECK(s->pid >= 0);
	if (s->pid == 0)
		master_child(cfg, lfd, s->control, pipefd[1]);
	close(pipefd[1]);
	if (keep)
		*keep = lfd;
	else
		close(lfd);
	s->err = pipefd[0];
	if (!(flags & SERVE_NO_WAIT_READY))
		server_wait_log(s, "ready: ", 10000);
}

static inline void master_start(struct server *s, struct fdp_master_config cfg, int flags)
{
	master_start_keep(s, cfg, flags, NULL);
}

/* Read a line (up to '\n', at most size - 1 bytes) from fd into buf; returns its length, or
 * what read() said (0, -1) when nothing came. */
static inline ssize_t read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, 1);

		if (n <= 0) {
			buf[len] = '\0';
			return len ? (ssize_t)len : n;
		}
		if (buf[len++] == '\n')
			break;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

/* Poll the status until the master line's key reaches at least want; returns the status. */
static inline char *status_when(struct server *s, const char *key, long long want)
{
	for (int tries = 0; tries < 1000; tries++) {
		char *st = server_status(s);

		if (status_num(st, "master", key) >= want)
			return st;
		free(st);
		poll(NULL, 0, 10);
	}
	fdp_test_fail(__FILE__, __LINE__, "status %s never reached %lld", key, want);
}

/* The state letter of process pid ('Z' for a zombie), from /proc/PID/stat; 0 if it is gone. */
static inline char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

#endif
