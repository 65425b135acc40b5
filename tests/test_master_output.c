/*
 * The master library's side of logging: workers' stdout and stderr captured (capture_output)
 * and logged with their fields (log_output, or log), and SIGUSR1 calling reopen, which only a
 * caller that sets it must block. The master runs in a child of the test (test_master_util.h).
 */
#include "test_master_util.h"

#include <sys/stat.h>

/* A worker that writes what the test asks (before its first connection), then serves. */
static const char *worker_says_out, *worker_says_err;
static int worker_floods; /* a child of the worker writes to stderr without end */

static void write_str(int fd, const char *s)
{
	if (s && write(fd, s, strlen(s)) < 0)
		_exit(91);
}

/* Each client gets "pid=P fd1=MODE:INODE fd2=MODE:INODE\n" (of its stdout and stderr). */
static int output_worker(struct fdp_worker *w, void *arg)
{
	(void)arg;
	write_str(1, worker_says_out);
	write_str(2, worker_says_err);
	if (worker_floods && fork() == 0) {
		char buf[4096];

		memset(buf, 'f', sizeof(buf));
		for (int i = 63; i < (int)sizeof(buf); i += 64)
			buf[i] = '\n';
		for (;;) /* until it is killed with its worker's process group */
			if (write(2, buf, sizeof(buf)) < 0)
				_exit(0);
	}
	for (;;) {
		struct pollfd p = {.fd = fdp_worker_fd(w), .events = POLLIN};
		struct fdp_conn conn;
		struct stat s1, s2;
		char line[96];
		int fd = fdp_worker_accept(w, &conn), n;

		if (fd == -EAGAIN) {
			if (fdp_worker_wants_write(w))
				p.events |= POLLOUT;
			poll(&p, 1, -1);
			continue;
		}
		if (fd < 0)
			break;
		fstat(1, &s1);
		fstat(2, &s2);
		n = snprintf(line, sizeof(line), "pid=%d fd1=%o:%lu fd2=%o:%lu\n", (int)getpid(),
		             (unsigned)(s1.st_mode & S_IFMT), (unsigned long)s1.st_ino,
		             (unsigned)(s2.st_mode & S_IFMT), (unsigned long)s2.st_ino);
		if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0)
			_exit(90);
		fdp_worker_done(w, conn.id);
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	fdp_worker_flush_wait(w, 1000);
	return 0;
}

/* The master's log_output, in its child: one line per call, to the log the test follows. */
static void log_output_fields(void *arg, enum fdp_log_level level, const struct fdp_output_line *l)
{
	char line[FDP_OUTPUT_LINE_MAX + 128];
	int n = snprintf(line, sizeof(line), "output level=%d worker=%u pid=%d fd=%d: %.*s\n",
	                 level, l->worker, (int)l->pid, l->fd, (int)l->len, l->data);

	(void)arg;
	if (n > 0 && write(master_log_fd, line, (size_t)n) < 0)
		_exit(98);
}

/* The flood's: only the first line is told, the rest counted. */
static void log_output_first(void *arg, enum fdp_log_level level, const struct fdp_output_line *l)
{
	static unsigned long lines;

	(void)arg;
	(void)level;
	if (lines++ == 0 && l->len == 63)
		write_str(master_log_fd, "output: the flood is read\n");
}

static void reopen_says_so(void *arg)
{
	(void)arg;
	write_str(master_log_fd, "reopen called\n");
}

static void block_sigusr1(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigprocmask(SIG_BLOCK, &s, NULL);
}

static struct fdp_master_config config(void)
{
	return (struct fdp_master_config){.size = sizeof(struct fdp_master_config),
	                                  .workers = 1,
	                                  .worker_main = output_worker,
	                                  .capture_output = 1};
}

/* " fd1=MODE:INODE fd2=MODE:INODE\n" of this process, as the worker answers. */
static void my_stdio(char *buf, size_t size)
{
	struct stat s1, s2;

	CHECK_OK(fstat(1, &s1));
	CHECK_OK(fstat(2, &s2));
	snprintf(buf, size, " fd1=%o:%lu fd2=%o:%lu\n", (unsigned)(s1.st_mode & S_IFMT),
	         (unsigned long)s1.st_ino, (unsigned)(s2.st_mode & S_IFMT),
	         (unsigned long)s2.st_ino);
}

/* Connect, read the worker's answer into buf. */
static void ask(struct server *s, char *buf, size_t size)
{
	int fd = tcp_connect(s->addr, NULL);

	CHECK(read_line(fd, buf, size) > 0);
	close(fd);
}

TEST(a_captured_workers_stdout_and_stderr_reach_log_output_with_slot_pid_and_level)
{
	struct fdp_master_config cfg = config();
	struct server s;
	char answer[128], want[160], mine[96];
	int pid;

	worker_says_out = "to stdout\n";
	worker_says_err = "to stderr\r\n";
	cfg.log_output = log_output_fields;
	master_start(&s, cfg, 0);
	ask(&s, answer, sizeof(answer));
	CHECK(sscanf(answer, "pid=%d", &pid) == 1);
	/* Both are pipes (S_IFIFO), two of them, the master's: not this process's stdout. */
	CHECK(strstr(answer, " fd1=10000:") != NULL && strstr(answer, " fd2=10000:") != NULL);
	CHECK(strcmp(strstr(answer, " fd1="), strstr(answer, " fd2=")) != 0);
	my_stdio(mine, sizeof(mine));
	CHECK(strstr(answer, mine) == NULL);
	snprintf(want, sizeof(want), "output level=%d worker=0 pid=%d fd=1: to stdout\n",
	         FDP_LOG_INFO, pid);
	s.seen = 0;
	server_wait_log(&s, want, 10000);
	snprintf(want, sizeof(want), "output level=%d worker=0 pid=%d fd=2: to stderr\n",
	         FDP_LOG_WARN, pid);
	s.seen = 0;
	server_wait_log(&s, want, 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(without_log_output_a_captured_line_goes_to_log_as_worker_n_pid_p)
{
	struct server s;
	char answer[128], want[160];
	int pid;

	worker_says_err = "oops\n";
	master_start(&s, config(), 0);
	ask(&s, answer, sizeof(answer));
	CHECK(sscanf(answer, "pid=%d", &pid) == 1);
	snprintf(want, sizeof(want), "\nwarn: worker 0 pid %d: oops\n", pid);
	s.seen = 0;
	server_wait_log(&s, want, 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(without_capture_output_a_worker_keeps_the_callers_stdout_and_stderr)
{
	struct fdp_master_config cfg = config();
	struct server s;
	char answer[128], mine[96];

	cfg.capture_output = 0;
	master_start(&s, cfg, 0);
	ask(&s, answer, sizeof(answer));
	/* This process's, which the master (its child) inherited. */
	my_stdio(mine, sizeof(mine));
	CHECK(strstr(answer, mine) != NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_worker_flooding_its_stderr_does_not_stop_the_master_handing_connections)
{
	struct fdp_master_config cfg = config();
	struct server s;
	char answer[128];
	long long t0;

	worker_floods = 1;
	cfg.log_output = log_output_first;
	master_start(&s, cfg, 0);
	s.seen = 0;
	server_wait_log(&s, "output: the flood is read\n", 10000);
	t0 = test_now_ms();
	for (int i = 0; i < 200; i++) {
		ask(&s, answer, sizeof(answer));
		CHECK(strncmp(answer, "pid=", 4) == 0);
	}
	CHECK(test_now_ms() - t0 < (fdp_test_under_valgrind() ? 60000 : 10000));
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sigusr1_calls_reopen_on_the_masters_thread)
{
	struct fdp_master_config cfg = config();
	struct server s;

	cfg.reopen = reopen_says_so;
	master_child_setup = block_sigusr1;
	master_start(&s, cfg, 0);
	master_child_setup = NULL;
	CHECK_OK(kill(s.pid, SIGUSR1));
	server_wait_log(&s, "info: received SIGUSR1: reopening the log\nreopen called\n", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* A master of this process, with one listener and no control socket. */
static struct fdp_master *open_here(struct fdp_master_config cfg)
{
	struct fdp_master *m;
	int lfd = fdp_listen("127.0.0.1:0", 4);

	CHECK_OK(lfd);
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	CHECK_OK(fdp_master_open(&m, &cfg));
	return m;
}

TEST(run_refuses_to_start_with_reopen_set_and_sigusr1_not_blocked)
{
	struct fdp_master_config cfg = config();
	struct fdp_master *m;
	sigset_t sigs, old;

	cfg.reopen = reopen_says_so;
	m = open_here(cfg);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	CHECK_OK(sigprocmask(SIG_BLOCK, &sigs, &old));
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	CHECK_OK(sigprocmask(SIG_UNBLOCK, &sigs, NULL));
	CHECK_INT(fdp_master_run(m), ==, -EINVAL);
	CHECK_OK(sigprocmask(SIG_SETMASK, &old, NULL));
	fdp_master_close(m);
	CHECK_INT(waitpid(-1, NULL, WNOHANG), ==, -1); /* nothing was forked */
	CHECK_INT(errno, ==, ECHILD);
}
