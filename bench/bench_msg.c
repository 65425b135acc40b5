/*
 * Descriptors per second over a socketpair between two processes: the message layer against a
 * bare sendmsg()/recvmsg() loop written here as the baseline, one descriptor per message and 64
 * per message. The cases alternate within one run (this machine is shared and noisy) and the
 * median of each is reported with the ratios the foundation issue sets as targets.
 *
 *   bench_msg [--seconds S] [--rounds R] [--stream]
 */
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

struct bench_case {
	const char *name;
	size_t fds_per_msg;
	int bare; /* 1: the hand-written loop; 0: fdpass */
	double rates[32];
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The baseline a careful programmer writes by hand: one byte, an aligned control buffer. */
static int bare_send(int sock, const int *fds, size_t n)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * BATCH)];
	} ctl;
	char byte = 0;
	struct iovec iov = {&byte, 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	memset(ctl.buf, 0, CMSG_SPACE(sizeof(int) * n));
	mh.msg_control = ctl.buf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int bare_recv(int sock, int *fds, size_t n)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * BATCH)];
	} ctl;
	char byte;
	struct iovec iov = {&byte, 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	mh.msg_control = ctl.buf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
	if (recvmsg(sock, &mh, 0) <= 0)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(fds, CMSG_DATA(c), sizeof(int) * n);
	return 0;
}

/*
 * The sender: the same descriptor n times per message, until the receiver hangs up. Both sides
 * put one byte on the wire with the descriptors, as the baseline does: one descriptor goes
 * through the classic pair fdp_send_fd()/fdp_recv_fd(), several through fdp_msg_send().
 */
static void run_sender(int sock, const struct bench_case *bc)
{
	int fds[BATCH];
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	char byte = 0;
	struct fdp_msg m = {.data = &byte, .len = 1, .fds = fds, .nfds = bc->fds_per_msg};

	for (size_t i = 0; i < BATCH; i++)
		fds[i] = fd;
	for (;;) {
		int r;

		if (bc->bare)
			r = bare_send(sock, fds, bc->fds_per_msg);
		else if (bc->fds_per_msg == 1)
			r = fdp_send_fd(sock, fd);
		else
			r = (int)fdp_msg_send(sock, &m, 0);
		if (r < 0)
			_exit(0);
	}
}

/* Receive and close descriptors for the given time; returns descriptors per second. */
static double run_receiver(int sock, const struct bench_case *bc, double seconds)
{
	int fds[BATCH];
	char byte;
	struct fdp_msg m = {.data = &byte, .fds = fds};
	unsigned long total = 0;
	double start = now(), elapsed;

	do {
		for (int k = 0; k < 256; k++) {
			if (bc->bare) {
				if (bare_recv(sock, fds, bc->fds_per_msg) < 0)
					return -1;
			} else if (bc->fds_per_msg == 1) {
				if ((fds[0] = fdp_recv_fd(sock)) < 0)
					return -1;
			} else {
				m.nfds = bc->fds_per_msg;
				m.len = 1;
				if (fdp_msg_recv(sock, &m, 0) != 1 || m.nfds != bc->fds_per_msg)
					return -1;
			}
			for (size_t i = 0; i < bc->fds_per_msg; i++)
				close(fds[i]);
			total += bc->fds_per_msg;
		}
		elapsed = now() - start;
	} while (elapsed < seconds);
	return (double)total / elapsed;
}

static double measure(const struct bench_case *bc, int type, double seconds)
{
	int sv[2];
	pid_t pid;
	double rate;

	if (fdp_socketpair(type, sv) < 0)
		exit(1);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		run_sender(sv[1], bc);
	}
	close(sv[1]);
	rate = run_receiver(sv[0], bc, seconds);
	close(sv[0]); /* the sender gets EPIPE and exits; in-flight fds are closed by the kernel */
	waitpid(pid, NULL, 0);
	if (rate < 0) {
		fprintf(stderr, "bench_msg: %s: receive failed\n", bc->name);
		exit(1);
	}
	return rate;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	struct bench_case cases[] = {
	        {"bare sendmsg/recvmsg,  1 fd/msg", 1, 1, {0}},
	        {"fdpass fdp_send/recv_fd, 1 fd/msg", 1, 0, {0}},
	        {"bare sendmsg/recvmsg, 64 fd/msg", BATCH, 1, {0}},
	        {"fdpass fdp_msg_*,    64 fd/msg", BATCH, 0, {0}},
	};
	enum { NCASES = sizeof(cases) / sizeof(cases[0]) };
	double seconds = 0.5, med[NCASES];
	int rounds = 5, type = SOCK_SEQPACKET;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--stream") == 0)
			type = SOCK_STREAM;
		else {
			fprintf(stderr, "usage: bench_msg [--seconds S] [--rounds R] [--stream]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > 32 || seconds <= 0) {
		fprintf(stderr, "bench_msg: --rounds takes 1..32, --seconds a positive number\n");
		return 2;
	}
	printf("descriptors per second over a %s socketpair, %d alternating rounds of %.2f s\n",
	       type == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_SEQPACKET", rounds, seconds);
	for (int r = 0; r < rounds; r++)
		for (int c = 0; c < NCASES; c++)
			cases[c].rates[r] = measure(&cases[c], type, seconds);
	for (int c = 0; c < NCASES; c++) {
		med[c] = median(cases[c].rates, rounds);
		printf("  %-34s %12.0f fds/s  (%10.0f msgs/s)\n", cases[c].name, med[c],
		       med[c] / (double)cases[c].fds_per_msg);
	}
	printf("ratios (median):\n");
	printf("  fdpass 1 fd/msg / bare 1 fd/msg   %6.2fx  (target >= 0.95)\n", med[1] / med[0]);
	printf("  fdpass 64 fd/msg / fdpass 1 fd/msg %6.2fx  (target >= 5)\n", med[3] / med[1]);
	printf("  fdpass 64 fd/msg / bare 64 fd/msg %6.2fx\n", med[3] / med[2]);
	return 0;
}
