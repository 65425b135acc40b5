/*
 * Channel throughput between two processes over a SOCK_SEQPACKET socketpair, one descriptor per
 * message, side by side with the bare loop every fd-passing tutorial writes (one blocking
 * sendmsg() of one byte and one descriptor, one recvmsg() on the other side):
 *   bare      the bare loop;
 *   single    fdp_channel_send() one message at a time;
 *   burst     bursts of messages queued with FDP_CHANNEL_MORE and sent by one flush, which
 *             packs them into as few packets as 253 descriptors per packet allow.
 * Every message's descriptor is a fresh dup() (as an accepted connection would be) that the
 * sender gives away and the receiver closes, so all three do the same descriptor work.
 *
 * usage: bench_channel [messages [burst [rounds]]]     (defaults 200000, 64, 5)
 * Prints the best round of each mode: rates, and CPU time (both processes) per descriptor.
 */
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long nmsg = 200000, burst = 64;
static int source = -1;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_channel: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static int fresh_fd(void)
{
	int fd = fcntl(source, F_DUPFD_CLOEXEC, 0);

	if (fd < 0)
		die("dup", errno);
	return fd;
}

static void bare_send(int sock)
{
	for (long i = 0; i < nmsg; i++) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl;
		char byte = 0;
		struct iovec iov = {&byte, 1};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = ctl.buf,
		                    .msg_controllen = sizeof(ctl.buf)};
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int fd = fresh_fd();

		memset(ctl.buf, 0, sizeof(ctl.buf));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(fd));
		if (sendmsg(sock, &mh, MSG_NOSIGNAL) != 1)
			die("sendmsg", errno);
		close(fd);
	}
}

static void bare_recv(int sock)
{
	for (long i = 0; i < nmsg; i++) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl;
		char byte;
		struct iovec iov = {&byte, 1};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = ctl.buf,
		                    .msg_controllen = sizeof(ctl.buf)};
		struct cmsghdr *c = NULL;
		int fd;

		if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1 || !(c = CMSG_FIRSTHDR(&mh)) ||
		    c->cmsg_type != SCM_RIGHTS)
			die("recvmsg", errno ? errno : EPROTO);
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		close(fd);
	}
}

static void channel_send(int sock, long per_flush)
{
	struct fdp_channel *ch;
	int r;

	if ((r = fdp_channel_open(&ch, sock, NULL)) < 0)
		die("fdp_channel_open", r);
	for (long i = 0; i < nmsg; i++) {
		int fd = fresh_fd();
		int more = (i + 1) % per_flush && i + 1 < nmsg ? FDP_CHANNEL_MORE : 0;

		while ((r = fdp_channel_send(ch, 1, NULL, 0, &fd, 1, more)) == -ENOBUFS)
			if ((r = fdp_channel_flush_wait(ch, -1)) < 0)
				die("fdp_channel_flush_wait", r);
		if (r < 0)
			die("fdp_channel_send", r);
	}
	if ((r = fdp_channel_flush_wait(ch, -1)) < 0)
		die("fdp_channel_flush_wait", r);
	fdp_channel_close(ch);
}

static void channel_recv(int sock)
{
	static struct fdp_channel_msg m;
	struct fdp_channel *ch;
	long got = 0;
	int r;

	if ((r = fdp_channel_open(&ch, sock, NULL)) < 0)
		die("fdp_channel_open", r);
	while (got < nmsg) {
		struct pollfd p = {sock, POLLIN, 0};

		r = fdp_channel_recv(ch, &m);
		if (r == 1) {
			if (m.nfds != 1)
				die("message without its descriptor", EPROTO);
			fdp_channel_msg_release(&m);
			got++;
		} else if (r == -EAGAIN) {
			poll(&p, 1, -1);
		} else {
			die("fdp_channel_recv", r ? r : EPIPE);
		}
	}
	fdp_channel_close(ch);
}

static double cpu_seconds(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/*
 * Run one mode: the child receives and reports on a pipe. Returns descriptors per second and
 * stores in *cpu_us the CPU time both processes spent per descriptor, in microseconds.
 */
static double run(int mode, double *cpu_us)
{
	double cpu0 = cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN);
	int sv[2], done[2], r;
	double t0, t1;
	char c = 0;
	pid_t pid;

	if ((r = fdp_socketpair(SOCK_SEQPACKET, sv)) < 0)
		die("socketpair", r);
	if (pipe(done) < 0)
		die("pipe", errno);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		close(sv[0]);
		if (mode == 0)
			bare_recv(sv[1]);
		else
			channel_recv(sv[1]);
		if (write(done[1], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(sv[1]);
	close(done[1]);
	t0 = now();
	if (mode == 0) {
		bare_send(sv[0]);
		close(sv[0]);
	} else {
		channel_send(sv[0], mode == 1 ? 1 : burst);
	}
	if (read(done[0], &c, 1) != 1)
		die("receiver failed", EPIPE);
	t1 = now();
	close(done[0]);
	waitpid(pid, &r, 0);
	*cpu_us = (cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN) - cpu0) * 1e6 / nmsg;
	return (double)nmsg / (t1 - t0);
}

int main(int argc, char **argv)
{
	static const char *names[] = {"bare sendmsg/recvmsg loop", "channel, one at a time",
	                              "channel, bursts"};
	double rate[3] = {0}, cpu[3] = {1e9, 1e9, 1e9};
	long rounds = 5;

	if (argc > 1)
		nmsg = atol(argv[1]);
	if (argc > 2)
		burst = atol(argv[2]);
	if (argc > 3)
		rounds = atol(argv[3]);
	if (nmsg <= 0 || burst <= 0 || rounds <= 0) {
		fprintf(stderr, "usage: bench_channel [messages [burst [rounds]]]\n");
		return 2;
	}
	if ((source = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		die("/dev/null", errno);
	/* The modes take turns, round after round, and each keeps its best round: on a shared
	 * machine the best is the figure least disturbed by others. */
	for (long round = 0; round < rounds; round++)
		for (int mode = 0; mode < 3; mode++) {
			if (getenv("BENCH_CHANNEL_ONLY") &&
			    atoi(getenv("BENCH_CHANNEL_ONLY")) != mode)
				continue; /* for profiling one mode */
			double c, r = run(mode, &c);

			rate[mode] = r > rate[mode] ? r : rate[mode];
			cpu[mode] = c < cpu[mode] ? c : cpu[mode];
		}
	printf("%ld messages x %ld rounds (best), one descriptor each, SOCK_SEQPACKET socketpair, "
	       "two processes; bursts of %ld\n",
	       nmsg, rounds, burst);
	printf("%-27s %12s %14s %8s %14s %8s\n", "mode", "messages/s", "descriptors/s", "vs bare",
	       "CPU us/descr", "vs bare");
	for (int mode = 0; mode < 3; mode++)
		printf("%-27s %12.0f %14.0f %7.2fx %14.2f %7.2fx\n", names[mode], rate[mode],
		       rate[mode], rate[mode] / rate[0], cpu[mode], cpu[0] / cpu[mode]);
	close(source);
	return 0;
}
