/*
 * The shared skeleton of the classic server designs. See skeleton.h and README.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "skeleton.h"

#define DSG_ECHO_STACK  16384
#define DSG_REAP_WAIT_S 5 /* how long dsg_finish waits for children before reporting anyway */

volatile sig_atomic_t dsg_stopping;

/* The listener the stop handler shuts down; see dsg_on_stop(). */
static volatile int dsg_wake_fd = -1;

/*
 * shutdown() on a listening socket makes every accept() blocked on it, in any thread or
 * process, return EINVAL at once, and every later one too. Setting a flag alone would race:
 * the signal could land just before a thread blocks in accept() and it would never wake.
 */
static void dsg_on_stop(int sig)
{
	int saved = errno;

	dsg_stopping = 1;
	if (dsg_wake_fd >= 0)
		shutdown(dsg_wake_fd, SHUT_RDWR);
	errno = saved;
}

static void dsg_usage(FILE *f, const char *name)
{
	fprintf(f,
	        "usage: dsg-%s [--port N] [--workers N] [--stats FILE]\n"
	        "\n"
	        "The classic server design \"%s\", serving the echo protocol of\n"
	        "bench/designs/README.md on 127.0.0.1. Prints \"ready <port>\" when it accepts\n"
	        "connections; on SIGTERM or SIGINT stops its workers, reaps them and exits 0.\n"
	        "\n"
	        "  -p, --port N      port to listen on; 0 (default) picks a free one\n"
	        "  -w, --workers N   processes or threads in the pool (default 4, at most %d;\n"
	        "                    ignored by designs without a pool)\n"
	        "  -o, --stats FILE  on exit, write the connections each worker served to FILE\n"
	        "  -h, --help        show this help\n",
	        name, name, DSG_MAX_WORKERS);
}

static int dsg_parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static void dsg_parse(struct dsg_server *s, int argc, char **argv)
{
	static const struct option longs[] = {
	        {"port", 1, NULL, 'p'}, {"workers", 1, NULL, 'w'}, {"stats", 1, NULL, 'o'},
	        {"help", 0, NULL, 'h'}, {NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "p:w:o:h", longs, NULL)) != -1) {
		if (opt == 'p' && dsg_parse_int(optarg, 0, 65535, &s->port) == 0)
			continue;
		if (opt == 'w' && dsg_parse_int(optarg, 1, DSG_MAX_WORKERS, &s->workers) == 0)
			continue;
		if (opt == 'o') {
			s->stats_path = optarg;
			continue;
		}
		if (opt == 'h') {
			dsg_usage(stdout, s->name);
			exit(0);
		}
		dsg_usage(stderr, s->name);
		exit(2);
	}
	if (optind != argc) {
		dsg_usage(stderr, s->name);
		exit(2);
	}
}

static void dsg_die(const struct dsg_server *s, const char *what, int err)
{
	fprintf(stderr, "dsg-%s: %s: %s\n", s->name, what, strerror(err));
	exit(1);
}

static void dsg_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = dsg_on_stop; /* no SA_RESTART: blocked reads and waits return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void dsg_init(struct dsg_server *s, int argc, char **argv, const char *name, unsigned flags)
{
	void *mem;

	memset(s, 0, sizeof(*s));
	s->name = name;
	s->workers = 4;
	s->listen_fd = -1;
	s->pool = !!(flags & DSG_POOL);
	dsg_parse(s, argc, argv);
	if (!s->pool)
		s->workers = 1;
	mem = mmap(NULL, DSG_MAX_WORKERS * sizeof(struct dsg_counter), PROT_READ | PROT_WRITE,
	           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		dsg_die(s, "mmap", errno);
	s->counters = mem;
	dsg_signals();
	if (flags & DSG_NO_LISTENER)
		return;
	s->listen_fd = dsg_listen(s->port, 0, &s->port);
	if (s->listen_fd < 0)
		dsg_die(s, "listen", -s->listen_fd);
	dsg_wake_fd = s->listen_fd;
}

int dsg_listen(int port, int reuseport, int *bound)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t len = sizeof(sin);
	int fd, one = 1, err;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, SOMAXCONN) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*bound = ntohs(sin.sin_port);
	return fd;
}

int dsg_spawn_channel(struct dsg_server *s, void (*fn)(struct dsg_server *, int), int index,
                      int *chan)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	*chan = sv[1]; /* what the child sees */
	pid = dsg_spawn(s, fn, index);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		*chan = -1;
		return (int)pid;
	}
	*chan = sv[0];
	return 0;
}

int dsg_listen_each(struct dsg_server *s, int *fds)
{
	for (int i = 0; i < s->workers; i++) {
		fds[i] = dsg_listen(s->port, 1, &s->port);
		if (fds[i] < 0) {
			int err = fds[i];

			while (i-- > 0)
				close(fds[i]);
			return err;
		}
	}
	return 0;
}

void dsg_ready(const struct dsg_server *s)
{
	printf("ready %d\n", s->port);
	fflush(stdout);
}

int dsg_accept(int listen_fd)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != EINTR || dsg_stopping)
			return -errno;
	}
}

int dsg_accept_transient(int err)
{
	static const struct timespec pause = {0, 10 * 1000 * 1000};

	switch (err) {
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
	case EAGAIN:
		return 1;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		/* Out of a resource: retrying at once would spin until some is freed. */
		nanosleep(&pause, NULL);
		return 1;
	default:
		return 0;
	}
}

/*
 * A non-blocking socket (as fdpass hands one over) that has nothing yet: wait for it as a
 * blocking one would. 0, or -errno for another error (or a stop).
 */
static int dsg_wait(int fd, int err, short events)
{
	struct pollfd p = {.fd = fd, .events = events};

	if (dsg_stopping || (err != EINTR && err != EAGAIN && err != EWOULDBLOCK))
		return -err;
	if (err != EINTR && poll(&p, 1, -1) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* Read until at least min bytes are in buf (capacity cap). Returns 0 or -errno (-EPIPE: EOF). */
static int dsg_read_min(int fd, unsigned char *buf, size_t cap, size_t *have, size_t min)
{
	while (*have < min) {
		ssize_t n = read(fd, buf + *have, cap - *have);
		int r;

		if (n > 0) {
			*have += (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if ((r = dsg_wait(fd, errno, POLLIN)) < 0)
			return r;
	}
	return 0;
}

static int dsg_write_all(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		int r;

		if (n < 0) {
			if ((r = dsg_wait(fd, errno, POLLOUT)) < 0)
				return r;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The length prefix, then the payload: a small request costs one read() and one send(). */
static int dsg_echo_frame(int fd, unsigned char *stack)
{
	unsigned char *buf = stack;
	size_t have = 0, want;
	uint32_t n;
	int r;

	r = dsg_read_min(fd, buf, DSG_ECHO_STACK, &have, 4);
	if (r < 0)
		return r;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (n > DSG_MAX_REQUEST)
		return -EMSGSIZE;
	want = 4 + (size_t)n;
	if (want > DSG_ECHO_STACK) {
		buf = malloc(want);
		if (!buf)
			return -ENOMEM;
		memcpy(buf, stack, have);
	}
	r = dsg_read_min(fd, buf, want > have ? want : have, &have, want);
	if (r == 0)
		r = dsg_write_all(fd, buf, want);
	if (buf != stack)
		free(buf);
	return r;
}

int dsg_echo(int fd)
{
	unsigned char stack[DSG_ECHO_STACK];
	int r = dsg_echo_frame(fd, stack);

	close(fd);
	return r;
}

void dsg_count(struct dsg_server *s, int worker)
{
	__atomic_fetch_add(&s->counters[worker].served, 1, __ATOMIC_RELAXED);
}

pid_t dsg_spawn(struct dsg_server *s, void (*fn)(struct dsg_server *, int), int index)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0)
		return -errno;
	if (pid > 0) {
		if (s->npids < DSG_MAX_WORKERS)
			s->pids[s->npids++] = pid;
		return pid;
	}
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	/* A pool child must not outlive a parent that was killed outright. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	fn(s, index);
	_exit(0);
}

int dsg_main_each(struct dsg_server *s, int *listeners, int *chans,
                  void (*child)(struct dsg_server *, int))
{
	int err = dsg_listen_each(s, listeners);

	if (err < 0) {
		fprintf(stderr, "dsg-%s: listen: %s\n", s->name, strerror(-err));
		return 1;
	}
	for (int i = 0; i < s->workers; i++) {
		err = chans ? dsg_spawn_channel(s, child, i, &chans[i]) : (int)dsg_spawn(s, child, i);
		if (err < 0)
			return dsg_finish(s) | 1;
	}
	for (int i = 0; i < s->workers; i++)
		close(listeners[i]);
	dsg_ready(s);
	dsg_wait_stop();
	return dsg_finish(s);
}

/*
 * A short sleep in a loop rather than sigsuspend(): in a threaded design the signal may be
 * delivered to any thread, and then only the flag tells the main thread it came.
 */
void dsg_wait_stop(void)
{
	static const struct timespec tick = {0, 50 * 1000 * 1000};

	while (!dsg_stopping)
		nanosleep(&tick, NULL);
}

/* Reap every child, waiting at most DSG_REAP_WAIT_S; a child left is counted by whoever reaps
 * it (fdp-rusage, as a subreaper). */
static void dsg_reap_all(void)
{
	static const struct timespec tick = {0, 5 * 1000 * 1000};
	int waits = DSG_REAP_WAIT_S * 200;

	for (;;) {
		pid_t w = waitpid(-1, NULL, WNOHANG);
		if (w > 0)
			continue;
		if (w < 0 && errno != EINTR)
			return; /* ECHILD: all reaped */
		if (waits-- == 0)
			return;
		nanosleep(&tick, NULL);
	}
}

static int dsg_write_stats(const struct dsg_server *s)
{
	uint64_t total = 0;
	FILE *f;

	if (!s->stats_path)
		return 0;
	f = fopen(s->stats_path, "w");
	if (!f)
		return -errno;
	fprintf(f, "design %s\npool %d\nworkers %d\n", s->name, s->pool, s->workers);
	for (int i = 0; i < s->workers; i++) {
		uint64_t n = __atomic_load_n(&s->counters[i].served, __ATOMIC_RELAXED);
		fprintf(f, "served %d %llu\n", i, (unsigned long long)n);
		total += n;
	}
	fprintf(f, "total %llu\n", (unsigned long long)total);
	return fclose(f) == 0 ? 0 : -errno;
}

int dsg_finish(struct dsg_server *s)
{
	int r;

	for (int i = 0; i < s->npids; i++)
		kill(s->pids[i], SIGTERM);
	dsg_reap_all();
	r = dsg_write_stats(s);
	if (r < 0) {
		fprintf(stderr, "dsg-%s: %s: %s\n", s->name, s->stats_path, strerror(-r));
		return 1;
	}
	return 0;
}
