/*
 * Helpers for the tests of `fdpass serve`: start the real program on an ephemeral port,
 * follow its log (stderr, through a pipe) to synchronise on events, talk HTTP to it, read
 * its control socket. Every wait is bounded; nothing sleeps.
 */
#ifndef FDP_TEST_SERVE_UTIL_H
#define FDP_TEST_SERVE_UTIL_H

#include "harness.h"
#include "fdpass_runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SERVE_LOG_MAX (1 << 20)

struct server {
	pid_t pid;
	int err;             /* read end of the server's stderr */
	char addr[64];       /* first listening address */
	char control[256];   /* control socket path */
	char *log;           /* everything it logged so far */
	size_t loglen, seen; /* seen: where the next wait_log starts looking */
};

static inline long long test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read what the server logged within timeout_ms; returns 0 at EOF. */
static inline int server_read_log(struct server *s, int timeout_ms)
{
	struct pollfd p = {.fd = s->err, .events = POLLIN};
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return -1;
	if (s->loglen + 4096 >= SERVE_LOG_MAX)
		fdp_test_fail(__FILE__, __LINE__, "server log too long");
	n = read(s->err, s->log + s->loglen, 4096);
	if (n <= 0)
		return 0;
	s->loglen += (size_t)n;
	s->log[s->loglen] = '\0';
	return 1;
}

/* Wait until the log shows needle after the last match; returns the line it is in. */
static inline const char *server_wait_log(struct server *s, const char *needle, int timeout_ms)
{
	long long deadline = test_now_ms() + timeout_ms;

	for (;;) {
		char *hit = strstr(s->log + s->seen, needle);

		if (hit) {
			char *eol = strchr(hit, '\n');

			while (!eol && server_read_log(s, 1000) > 0)
				eol = strchr(hit, '\n');
			s->seen = (size_t)(hit - s->log) + strlen(needle);
			while (hit > s->log && hit[-1] != '\n')
				hit--;
			return hit;
		}
		if (test_now_ms() >= deadline ||
		    server_read_log(s, (int)(deadline - test_now_ms())) == 0) {
			fprintf(stderr, "--- server log ---\n%s------------------\n", s->log);
			fdp_test_fail(__FILE__, __LINE__, "server did not log '%s' in %d ms",
			              needle, timeout_ms);
		}
	}
}

#define SERVE_NO_WAIT_READY   0x1 /* return once it listens, before the workers are ready */
#define SERVE_DEFAULT_CONTROL 0x2 /* no --control: $XDG_RUNTIME_DIR/fdpass.sock, else $TMPDIR's */

/*
 * Start `fdpass serve --listen 127.0.0.1:0 --control DIR/ctl.sock ARGS...` (NULL-ended) and
 * wait until it listens and (unless SERVE_NO_WAIT_READY) until every worker is ready.
 */
/*
 * Run argv (argv[0] is FDPASS_TOOL) as the server s, its stderr a pipe the test reads
 * (s->err). s->log must be allocated. A failed test must not leave a server behind: it dies
 * with the test (PR_SET_PDEATHSIG).
 */
static inline void server_spawn(struct server *s, const char *const *argv)
{
	int pipefd[2];

	CHECK_OK(pipe2(pipefd, O_CLOEXEC));
	fflush(NULL);
	s->pid = fork();
	CHECK(s->pid >= 0);
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pipefd[1], 2);
		execv(FDPASS_TOOL, (char **)argv);
		_exit(127);
	}
	close(pipefd[1]);
	s->err = pipefd[0];
}

static inline void server_start_argv(struct server *s, const char *const *args, int flags)
{
	const char *argv[64] = {FDPASS_TOOL, "serve", "--listen", "127.0.0.1:0"};
	int n = 4, own_control = 0, own_dispatch = 0;
	const char *line;

	memset(s, 0, sizeof(*s));
	s->log = calloc(1, SERVE_LOG_MAX);
	for (const char *const *a = args; a && *a; a++) {
		if (strcmp(*a, "--control") == 0)
			own_control = 1;
		if (strcmp(*a, "--dispatch") == 0)
			own_dispatch = 1;
	}
	/*
	 * The master accepts and hands over every connection unless the test says otherwise:
	 * these tests count and time hand-overs. The default (auto: kernel dispatch as root) has
	 * its own tests (test_serve_kernel.c), which say --dispatch.
	 */
	if (!own_dispatch) {
		argv[n++] = "--dispatch";
		argv[n++] = "pass";
	}
	if ((flags & SERVE_DEFAULT_CONTROL) && getenv("XDG_RUNTIME_DIR")) {
		snprintf(s->control, sizeof(s->control), "%s/fdpass.sock",
		         getenv("XDG_RUNTIME_DIR"));
	} else if (flags & SERVE_DEFAULT_CONTROL) {
		snprintf(s->control, sizeof(s->control), "%s/fdpass-%u/control.sock",
		         getenv("TMPDIR"), (unsigned)getuid());
	} else if (!own_control) {
		snprintf(s->control, sizeof(s->control), "%s/ctl.sock", fdp_test_tmpdir());
		argv[n++] = "--control";
		argv[n++] = s->control;
	}
	for (; args && *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	server_spawn(s, argv);
	line = server_wait_log(s, "listening on ", 10000);
	sscanf(strstr(line, "listening on ") + 13, "%63s", s->addr);
	if (!(flags & SERVE_NO_WAIT_READY))
		server_wait_log(s, "ready: ", 10000);
}

static inline void server_start(struct server *s, ...)
{
	const char *args[48];
	va_list ap;
	int n = 0;

	va_start(ap, s);
	while (n < 47 && (args[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	args[n] = NULL;
	server_start_argv(s, args, 0);
}

/* Signal the server, read its log to the end, reap it; returns its exit status. */
static inline int server_wait_exit(struct server *s)
{
	long long deadline = test_now_ms() + 30000;
	int status;

	while (server_read_log(s, (int)(deadline - test_now_ms())) > 0)
		;
	status = fdp_test_wait(s->pid);
	close(s->err);
	return status;
}

static inline int server_stop(struct server *s)
{
	kill(s->pid, SIGTERM);
	return server_wait_exit(s);
}

static inline void server_free(struct server *s)
{
	free(s->log);
	s->log = NULL;
}

/* Write text to DIR/name; returns the path (static storage, one per name slot). */
static inline const char *write_conf(const char *name, const char *text)
{
	static char paths[4][512];
	static int next;
	char *path = paths[next++ % 4];
	char tmp[600];
	FILE *f;

	snprintf(path, 512, "%s/%s", fdp_test_tmpdir(), name);
	/* Replaced whole (a rename), as an editor or a deployment would. */
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "w");
	CHECK(f != NULL);
	fputs(text, f);
	CHECK_INT(fclose(f), ==, 0);
	CHECK_OK(rename(tmp, path));
	return path;
}

/* A connected TCP socket to addr ("IP:PORT"), from source address src (NULL: any). */
static inline int tcp_connect(const char *addr, const char *src)
{
	struct sockaddr_storage sa;
	socklen_t len;
	struct timeval tv = {20, 0};
	int fd;

	CHECK_OK(fdp_addr_parse(addr, &sa, &len));
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (src) {
		char a[64];
		struct sockaddr_storage ss;
		socklen_t sl;

		snprintf(a, sizeof(a), "%s:0", src);
		CHECK_OK(fdp_addr_parse(a, &ss, &sl));
		CHECK_OK(bind(fd, (struct sockaddr *)&ss, sl));
	}
	if (connect(fd, (struct sockaddr *)&sa, len) < 0)
		fdp_test_fail(__FILE__, __LINE__, "connect %s: %s", addr, strerror(errno));
	return fd;
}

static inline void send_all(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			fdp_test_fail(__FILE__, __LINE__, "send: %s", strerror(errno));
		off += (size_t)n;
	}
}

/* Read one HTTP response (headers and Content-Length body) into buf; returns the body. */
static inline const char *http_read(int fd, char *buf, size_t size)
{
	size_t len = 0;
	char *hdr_end, *cl;

	for (;;) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n <= 0)
			return NULL;
		len += (size_t)n;
		buf[len] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
		cl = strstr(buf, "Content-Length: ");
		if (hdr_end && cl && len >= (size_t)(hdr_end + 4 - buf) + (size_t)atoi(cl + 16))
			return hdr_end + 4;
	}
}

/* GET / over a fresh connection that asks to be closed; returns the worker index or fails. */
static inline int http_get_worker(const char *addr, const char *src, pid_t *pid)
{
	char buf[1024];
	const char *body, *w;
	int fd = tcp_connect(addr, src);

	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	close(fd);
	if (!body || !(w = strstr(body, "worker=")))
		fdp_test_fail(__FILE__, __LINE__, "bad answer: %s", body ? body : "(none)");
	if (pid)
		*pid = (pid_t)atoi(strstr(body, "pid=") + 4);
	return atoi(w + 7);
}

/* What the control socket answers to one command line (malloc'd). */
static inline char *server_command(struct server *s, const char *command)
{
	int fd = fdp_unix_connect(s->control, SOCK_STREAM);
	char *text;

	CHECK_OK(fd);
	send_all(fd, command);
	send_all(fd, "\n");
	CHECK_OK(shutdown(fd, SHUT_WR));
	text = fdp_test_read_all(fd, NULL);
	close(fd);
	return text;
}

/* The raw status the control socket answers (malloc'd). */
static inline char *server_status(struct server *s)
{
	return server_command(s, "status");
}

/* The number after "key=" in the status line that starts with prefix; -1 if absent. */
static inline long long status_num(const char *status, const char *prefix, const char *key)
{
	const char *line = strstr(status, prefix);
	char k[64];
	const char *v;

	if (!line)
		return -1;
	snprintf(k, sizeof(k), " %s=", key);
	v = strstr(line, k);
	if (!v || (strchr(line + 1, '\n') && v > strchr(line + 1, '\n')))
		return -1;
	return atoll(v + strlen(k));
}

/* The worker pids in a status, in line order; returns how many. */
static inline int status_pids(const char *status, pid_t *pids, int max)
{
	int n = 0;

	for (const char *l = strstr(status, "\nworker "); l && n < max;
	     l = strstr(l + 1, "\nworker ")) {
		pids[n] = (pid_t)atoi(strstr(l, " pid=") + 5);
		/* A slot waiting to restart shows pid 0: signalling it would hit this test's group. */
		CHECK(pids[n] > 0);
		n++;
	}
	return n;
}

/* Run the program at path with args (NULL-ended): its exit status (fdp_test_wait()); its
 * stdout and stderr are malloc'd. */
static inline int run_program(const char *path, const char *const *args, char **out, char **err)
{
	const char *argv[32] = {path};
	int po[2], pe[2], n = 1;
	pid_t pid;

	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	CHECK_OK(pipe2(po, O_CLOEXEC));
	CHECK_OK(pipe2(pe, O_CLOEXEC));
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execv(path, (char **)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	*out = fdp_test_read_all(po[0], NULL); /* small outputs: no pipe fills up */
	*err = fdp_test_read_all(pe[0], NULL);
	close(po[0]);
	close(pe[0]);
	return fdp_test_wait(pid);
}

/* Run the fdpass program with args (NULL-ended); its stdout and stderr are malloc'd. */
static inline int run_tool(const char *const *args, char **out, char **err)
{
	return run_program(FDPASS_TOOL, args, out, err);
}

/* The number of descriptors process pid has open. */
static inline int proc_fd_count(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	CHECK(d != NULL);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

#endif
