/*
 * Helpers for the tests of fdpass serve under systemd's protocols, played by the test itself:
 * a notification socket to receive what the master sends ($NOTIFY_SOCKET), and a start with
 * listening sockets passed as socket activation passes them (LISTEN_FDS, descriptors 3...).
 */
#ifndef FDP_TEST_SYSTEMD_UTIL_H
#define FDP_TEST_SYSTEMD_UTIL_H

#include "test_serve_util.h"

#include <netinet/in.h>
#include <sys/un.h>

/* A datagram socket bound in the test's directory, for $NOTIFY_SOCKET; its path in path. */
static inline int notify_bind(char *path, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	snprintf(path, size, "%s/notify.sock", fdp_test_tmpdir());
	CHECK(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	CHECK_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	return fd;
}

/*
 * Receive datagrams until one contains needle (within timeout_ms, else fail); copy it into
 * buf. A descriptor it carries goes to *fd (NULL: closed); every other message's are closed.
 */
static inline void notify_wait(int sock, const char *needle, char *buf, size_t size, int *fd,
                               int timeout_ms)
{
	long long deadline = test_now_ms() + timeout_ms;

	for (;;) {
		int fds[4];
		struct fdp_msg m = {.data = buf, .len = size - 1, .fds = fds, .nfds = 4};
		struct pollfd p = {.fd = sock, .events = POLLIN};
		long long left = deadline - test_now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			fdp_test_fail(__FILE__, __LINE__, "no notification with '%s' in %d ms",
			              needle, timeout_ms);
		CHECK_INT(fdp_msg_recv(sock, &m, MSG_DONTWAIT), ==, 1);
		buf[m.len] = '\0';
		CHECK_INT(m.flags, ==, 0);
		if (strstr(buf, needle) && fd && m.nfds == 1) {
			*fd = fds[0];
			return;
		}
		fdp_close_fds(fds, m.nfds);
		if (strstr(buf, needle) && !fd)
			return;
	}
}

/* The value after "KEY=" in a notification, as a number; -1 if absent. */
static inline long long notify_num(const char *msg, const char *key)
{
	char k[64];
	const char *v;

	snprintf(k, sizeof(k), "%s=", key);
	v = strstr(msg, k);
	return v ? atoll(v + strlen(k)) : -1;
}

/* A TCP listener on 127.0.0.1, any port (blocking, as systemd passes them); its port in *port. */
/* The same bound with SO_REUSEPORT, as a socket unit's ReusePort=yes binds it. */
static inline int tcp_listener_reuseport(int *port, int reuseport)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	if (reuseport)
		CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, sizeof(reuseport)));
	CHECK_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(fd, 64));
	CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
	*port = ntohs(sa.sin_port);
	return fd;
}

static inline int tcp_listener(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(fd, 64));
	CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
	*port = ntohs(sa.sin_port);
	return fd;
}

/* The port a socket is bound to. */
static inline int sock_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
	return ntohs(sa.sin_port);
}

/*
 * Start argv (NULL-ended; argv[0] a path) with stderr into s's log, the environment entries
 * env ("K=V", NULL-ended; may be NULL), and, as socket activation does, the nfds sockets fds
 * on descriptors 3... with LISTEN_FDS, LISTEN_PID (the child's, or listen_pid when it is not
 * 0) and LISTEN_FDNAMES (names, NULL: unset). Waits until the log has wait_for (NULL: no wait).
 */
static inline void launch(struct server *s, const char *const *argv, const char *const *env,
                          const int *fds, int nfds, const char *names, pid_t listen_pid,
                          const char *wait_for)
{
	int pipefd[2];

	memset(s, 0, sizeof(*s));
	s->log = calloc(1, SERVE_LOG_MAX);
	CHECK_OK(pipe2(pipefd, O_CLOEXEC));
	fflush(NULL);
	s->pid = fork();
	CHECK(s->pid >= 0);
	if (s->pid == 0) {
		char num[32];

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pipefd[1], 2);
		/* Out of the way first, then into place: 3... may be taken by any of them. */
		for (int i = 0; i < nfds; i++)
			if (dup2(fds[i], 100 + i) < 0)
				_exit(126);
		for (int i = 0; i < nfds; i++)
			if (dup2(100 + i, 3 + i) < 0)
				_exit(126);
		for (; env && *env; env++)
			putenv((char *)*env);
		if (nfds) {
			snprintf(num, sizeof(num), "%d", nfds);
			setenv("LISTEN_FDS", num, 1);
			snprintf(num, sizeof(num), "%d",
			         listen_pid ? (int)listen_pid : (int)getpid());
			setenv("LISTEN_PID", num, 1);
			if (names)
				setenv("LISTEN_FDNAMES", names, 1);
		}
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(pipefd[1]);
	s->err = pipefd[0];
	if (wait_for)
		server_wait_log(s, wait_for, 10000);
}

/* Whether process pid's environment (/proc/PID/environ) has a variable starting with prefix. */
static inline int environ_has(pid_t pid, const char *prefix)
{
	char path[64], *text;
	size_t len;
	int fd, found = 0;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	text = fdp_test_read_all(fd, &len);
	close(fd);
	for (size_t off = 0; off < len; off += strlen(text + off) + 1)
		found |= strncmp(text + off, prefix, strlen(prefix)) == 0;
	free(text);
	return found;
}

/* Fail if pid's environment shows any variable of socket activation or notification. */
static inline void check_environ_clean(pid_t pid)
{
	static const char *const vars[] = {"LISTEN_PID=",    "LISTEN_FDS=",    "LISTEN_FDNAMES=",
	                                   "NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (environ_has(pid, vars[i]))
			fdp_test_fail(__FILE__, __LINE__, "process %d's environment has %s",
			              (int)pid, vars[i]);
}

#endif
