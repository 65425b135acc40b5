/*
 * steer-bench: accept-in-worker with the kernel steering program (src/runtime/master/steer/)
 * against bare SO_REUSEPORT and against passing, side by side in one run (docs/BENCHMARKS.md,
 * "Kernel steering (foundation)").
 *
 * Each mode starts W worker processes; a load client in this process makes N short connections
 * from T threads (connect, write a byte, read the byte back, close) and the mode's figures are
 * the connections per second and the CPU time per connection: the servers' (every process of the
 * mode, from wait4) and the client's (getrusage of this process). On loopback the kernel's
 * receive path runs partly in the sender's context, so the two are printed apart and summed.
 * Modes alternate round by round; the figures are medians over rounds, and ratios to bare
 * SO_REUSEPORT of the same run.
 *
 *   reuseport   W sockets in a SO_REUSEPORT group, no program: the kernel's hash picks
 *   kernel-rr   the same, with the steering program, round-robin
 *   kernel-lc   the steering program, least-conn (the program adds, the worker subtracts)
 *   pass        one listener, a master process accepting and passing each connection to the
 *               next worker with fdp_send_fd() (the bare passing floor)
 *
 * Usage: steer-bench [-n CONNS] [-t THREADS] [-w WORKERS] [-r ROUNDS] [-m MODE,...]
 * Exit status 77 when the kernel modes cannot run (no privilege, no kernel support).
 */
#include "fdpass.h"
#include "steer.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define MAX_ROUNDS  15

enum kind { REUSEPORT, KERNEL_RR, KERNEL_LC, PASS, NKINDS };
static const char *kind_name[NKINDS] = {"reuseport", "kernel-rr", "kernel-lc", "pass"};
static const char *kind_label[NKINDS] = {"bare SO_REUSEPORT", "kernel steering, round-robin",
                                         "kernel steering, least-conn",
                                         "passing floor (master accepts, sends)"};

struct result {
	double rate;        /* connections per second */
	double server_us;   /* servers' CPU µs per connection */
	double client_us;   /* the client's CPU µs per connection */
	double spread;      /* max/min connections per worker */
	long left;          /* least-conn: the sum of the counts once every connection is over */
};

static struct sockaddr_in target;
static long conns_per_thread;
static volatile int client_failed;

static void die(const char *what, int err)
{
	fprintf(stderr, "steer-bench: %s: %s\n", what, strerror(err));
	exit(1);
}

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One connection's exchange on an accepted socket: a byte in, the byte back. */
static int serve(int fd)
{
	char b;
	ssize_t r;

	while ((r = read(fd, &b, 1)) < 0 && errno == EINTR)
		;
	if (r == 1)
		r = write(fd, &b, 1);
	close(fd);
	return r == 1 ? 0 : -1;
}

/* A worker accepting on its own socket (non-blocking: poll, then accept until empty). */
static void accept_worker(int lfd, uint64_t *served, uint32_t *count)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};

	for (;;) {
		int fd;

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			_exit(1);
		while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			int ok = serve(fd);

			if (count) /* least-conn: the connection is over (before it is counted served) */
				__atomic_fetch_sub(count, 1, __ATOMIC_RELAXED);
			if (ok == 0)
				__atomic_fetch_add(served, 1, __ATOMIC_RELEASE);
		}
	}
}

/* A worker of the passing mode: each connection comes over its socketpair. */
static void pass_worker(int chan, uint64_t *served)
{
	for (;;) {
		int fd = fdp_recv_fd(chan);

		if (fd == -EINTR)
			continue;
		if (fd < 0)
			_exit(fd == -EPIPE ? 0 : 1);
		if (serve(fd) == 0)
			__atomic_fetch_add(served, 1, __ATOMIC_RELAXED);
	}
}

/* The passing mode's master: accept, send to the next worker, close its copy. */
static void pass_master(int lfd, const int *chans, int workers)
{
	for (unsigned next = 0;; next++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			_exit(1);
		}
		if (fdp_send_fd(chans[next % (unsigned)workers], fd) < 0)
			_exit(1);
		close(fd);
	}
}

static void *client(void *arg)
{
	(void)arg;
	for (long i = 0; i < conns_per_thread && !client_failed; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char b = 'x';

		if (fd < 0 || connect(fd, (struct sockaddr *)&target, sizeof(target)) < 0 ||
		    write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) {
			fprintf(stderr, "steer-bench: client: %s\n", strerror(errno));
			client_failed = 1;
		}
		if (fd >= 0)
			close(fd);
	}
	return NULL;
}

/* A plain SO_REUSEPORT listener on 127.0.0.1:port (0 picks one; *port gets it). */
static int reuseport_listener(in_port_t *port, int nonblock)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = *port};
	socklen_t len = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		die("listen", errno);
	*port = a.sin_port;
	return fd;
}

/* Run one mode once. Returns 0, or 77 when the kernel modes cannot run here. */
static int run(enum kind k, long conns, int threads, int workers, struct result *res)
{
	struct fdp__steer *g = NULL;
	int lfds[MAX_WORKERS], chans[MAX_WORKERS][2], nl = 0;
	pid_t pids[MAX_WORKERS + 1];
	int npids = 0;
	uint64_t *served;
	struct rusage before, after, ru;
	pthread_t tids[64];
	double t0, t1, server = 0;
	in_port_t port = 0;
	uint64_t lo = UINT64_MAX, hi = 0;

	served = mmap(NULL, sizeof(uint64_t) * MAX_WORKERS, PROT_READ | PROT_WRITE,
	              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (served == MAP_FAILED)
		die("mmap", errno);
	if (k == KERNEL_RR || k == KERNEL_LC) {
		char err[256];
		int rc = fdp__steer_open(&g, "127.0.0.1:0", (unsigned)workers,
		                         k == KERNEL_RR ? FDP__STEER_ROUND_ROBIN : FDP__STEER_LEAST_CONN,
		                         4096, err, sizeof(err));

		if (rc < 0) {
			fprintf(stderr, "steer-bench: %s: %s\n", kind_name[k], err);
			munmap(served, sizeof(uint64_t) * MAX_WORKERS);
			return rc == -EPERM || rc == -ENOSYS || rc == -EINVAL ? 77 : 1;
		}
		for (int i = 0; i < workers; i++)
			lfds[nl++] = fdp__steer_fd(g, (unsigned)i);
		{
			struct sockaddr_in a;
			socklen_t len = sizeof(a);

			if (getsockname(lfds[0], (struct sockaddr *)&a, &len) < 0)
				die("getsockname", errno);
			port = a.sin_port;
		}
	} else if (k == REUSEPORT) {
		for (int i = 0; i < workers; i++)
			lfds[nl++] = reuseport_listener(&port, 1);
	} else {
		lfds[nl++] = reuseport_listener(&port, 0);
	}

	fflush(NULL);
	for (int i = 0; i < workers; i++) {
		if (k == PASS && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chans[i]) < 0)
			die("socketpair", errno);
		pids[npids] = fork();
		if (pids[npids] < 0)
			die("fork", errno);
		if (pids[npids] == 0) {
			if (k == PASS) {
				close(chans[i][0]);
				pass_worker(chans[i][1], &served[i]);
			}
			accept_worker(lfds[i], &served[i],
			              k == KERNEL_LC ? &fdp__steer_state(g)->count[i] : NULL);
		}
		npids++;
		if (k == PASS)
			close(chans[i][1]);
	}
	if (k == PASS) {
		int ends[MAX_WORKERS];

		for (int i = 0; i < workers; i++)
			ends[i] = chans[i][0];
		pids[npids] = fork();
		if (pids[npids] < 0)
			die("fork", errno);
		if (pids[npids] == 0)
			pass_master(lfds[0], ends, workers);
		npids++;
		for (int i = 0; i < workers; i++)
			close(chans[i][0]);
	}

	target = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = port};
	target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	conns_per_thread = conns / threads;
	client_failed = 0;
	getrusage(RUSAGE_SELF, &before);
	t0 = now();
	for (int i = 0; i < threads; i++)
		if (pthread_create(&tids[i], NULL, client, NULL) != 0)
			die("pthread_create", EAGAIN);
	for (int i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	t1 = now();
	getrusage(RUSAGE_SELF, &after);
	/* Every connection's worker side is over once the served counts add up (bounded wait). */
	for (int tries = 0; tries < 2000; tries++) {
		uint64_t sum = 0;

		for (int i = 0; i < workers; i++)
			sum += __atomic_load_n(&served[i], __ATOMIC_ACQUIRE);
		if (sum >= (uint64_t)(conns / threads * threads))
			break;
		usleep(1000);
	}
	res->left = 0;
	if (k == KERNEL_LC)
		for (int i = 0; i < workers; i++)
			res->left += (int32_t)fdp__steer_count(g, (unsigned)i);

	for (int i = 0; i < npids; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < npids; i++) {
		int status;

		while (wait4(pids[i], &status, 0, &ru) < 0)
			if (errno != EINTR)
				die("wait4", errno);
		server += seconds(ru.ru_utime) + seconds(ru.ru_stime);
	}
	for (int i = 0; i < workers; i++) {
		if (served[i] < lo)
			lo = served[i];
		if (served[i] > hi)
			hi = served[i];
	}
	if (g)
		fdp__steer_close(g);
	else
		for (int i = 0; i < nl; i++)
			close(lfds[i]);
	munmap(served, sizeof(uint64_t) * MAX_WORKERS);
	if (client_failed)
		return 1;
	conns = conns_per_thread * threads;
	res->rate = (double)conns / (t1 - t0);
	res->server_us = server * 1e6 / (double)conns;
	res->client_us = (seconds(after.ru_utime) + seconds(after.ru_stime) -
	                  seconds(before.ru_utime) - seconds(before.ru_stime)) *
	                 1e6 / (double)conns;
	res->spread = lo ? (double)hi / (double)lo : 0;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	long conns = 20000;
	int threads = 4, workers = 2, rounds = 3, opt, on[NKINDS] = {1, 1, 1, 1};
	static struct result r[NKINDS][MAX_ROUNDS];
	struct result m[NKINDS];

	while ((opt = getopt(argc, argv, "n:t:w:r:m:h")) != -1) {
		switch (opt) {
		case 'n':
			conns = atol(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'w':
			workers = atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'm':
			memset(on, 0, sizeof(on));
			for (char *s = strtok(optarg, ","); s; s = strtok(NULL, ","))
				for (int k = 0; k < NKINDS; k++)
					if (strcmp(s, kind_name[k]) == 0)
						on[k] = 1;
			break;
		default:
			fprintf(stderr, "usage: steer-bench [-n CONNS] [-t THREADS] [-w WORKERS] "
			                "[-r ROUNDS] [-m reuseport,kernel-rr,kernel-lc,pass]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (conns < threads || threads < 1 || threads > 64 || workers < 1 ||
	    workers > MAX_WORKERS || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "steer-bench: bad option values\n");
		return 2;
	}
	on[REUSEPORT] = 1; /* the baseline of every ratio */
	signal(SIGPIPE, SIG_IGN);
	printf("steer-bench: %ld connections per mode and round, %d client threads, %d workers, "
	       "%d rounds (medians)\n",
	       conns, threads, workers, rounds);
	for (int i = 0; i < rounds; i++)
		for (int k = 0; k < NKINDS; k++) {
			int rc;

			if (!on[k])
				continue;
			rc = run((enum kind)k, conns, threads, workers, &r[k][i]);
			if (rc == 77) {
				printf("steer-bench: the kernel modes cannot run here: skipped\n");
				return 77;
			}
			if (rc)
				return rc;
		}
	for (int k = 0; k < NKINDS; k++) {
		double v[4][MAX_ROUNDS];

		if (!on[k])
			continue;
		for (int i = 0; i < rounds; i++) {
			v[0][i] = r[k][i].rate;
			v[1][i] = r[k][i].server_us;
			v[2][i] = r[k][i].client_us;
			v[3][i] = r[k][i].spread;
		}
		m[k] = (struct result){median(v[0], rounds), median(v[1], rounds),
		                       median(v[2], rounds), median(v[3], rounds), 0};
	}
	printf("| mode | conn/s | ratio | server CPU µs/conn | client CPU µs/conn | total µs/conn "
	       "| ratio | spread max/min |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int k = 0; k < NKINDS; k++) {
		double total, base;

		if (!on[k])
			continue;
		total = m[k].server_us + m[k].client_us;
		base = m[REUSEPORT].server_us + m[REUSEPORT].client_us;
		printf("| %s | %.0f | %.2f× | %.1f | %.1f | %.1f | %.2f× | %.2f |\n", kind_label[k],
		       m[k].rate, m[k].rate / m[REUSEPORT].rate, m[k].server_us, m[k].client_us, total,
		       total / base, m[k].spread);
	}
	if (on[KERNEL_LC]) {
		printf("least-conn: counts left when every connection was over, by round:");
		for (int i = 0; i < rounds; i++)
			printf(" %ld", r[KERNEL_LC][i].left);
		printf(" (of %ld connections each; 0 is exact)\n", conns);
	}
	return 0;
}
