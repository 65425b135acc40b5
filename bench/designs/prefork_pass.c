/*
 * Design 6, pre-forked, the parent accepts and passes the descriptor: the textbook version.
 * The parent keeps a SOCK_SEQPACKET socketpair to each child, accepts one connection at a
 * time, hands it with fdp_send_fd() to the first idle child (lowest index) and closes its
 * copy; the child serves the client and writes one byte back to say it is idle again. While
 * no child is idle the parent stops polling the listener, so clients wait in the backlog.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"
#include "skeleton.h"

struct pass_child {
	int chan; /* the parent's end; in the child, its own end */
	int busy;
};

static struct pass_child kids[DSG_MAX_WORKERS];

static void child(struct dsg_server *s, int index)
{
	int chan = kids[index].chan;
	char done = 1;

	while (!dsg_stopping) {
		int fd = fdp_recv_fd(chan);
		if (fd < 0)
			return; /* -EPIPE: the parent is gone */
		if (dsg_echo(fd) == 0)
			dsg_count(s, index);
		if (write(chan, &done, 1) != 1)
			return;
	}
}

static int first_idle(int n)
{
	for (int i = 0; i < n; i++)
		if (!kids[i].busy)
			return i;
	return -1;
}

static int hand_off(struct dsg_server *s, int idle)
{
	int fd = dsg_accept(s->listen_fd), r;

	if (fd < 0)
		return dsg_accept_transient(-fd) ? 0 : fd;
	r = fdp_send_fd(kids[idle].chan, fd);
	close(fd);
	if (r < 0)
		return r;
	kids[idle].busy = 1;
	return 0;
}

/* Child i said it is done (1 byte) or died (EOF). */
static int child_done(int i)
{
	char byte;
	ssize_t n = read(kids[i].chan, &byte, 1);

	if (n == 1) {
		kids[i].busy = 0;
		return 0;
	}
	return n == 0 ? -EPIPE : (errno == EINTR ? 0 : -errno);
}

static int parent_loop(struct dsg_server *s)
{
	struct pollfd pfd[DSG_MAX_WORKERS + 1];
	int n = s->workers;

	for (int i = 0; i < n; i++)
		pfd[i + 1] = (struct pollfd){.fd = kids[i].chan, .events = POLLIN};
	while (!dsg_stopping) {
		int idle = first_idle(n);

		/* A negative fd is skipped by poll(): no idle child, no accepting. */
		pfd[0] = (struct pollfd){.fd = idle >= 0 ? s->listen_fd : -1, .events = POLLIN};
		if (poll(pfd, (nfds_t)n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++)
			if (pfd[i + 1].revents && child_done(i) < 0)
				return -EPIPE;
		if (pfd[0].revents && hand_off(s, idle) < 0)
			return dsg_stopping ? 0 : -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct dsg_server s;
	int r;

	dsg_init(&s, argc, argv, "prefork-pass", DSG_POOL);
	for (int i = 0; i < s.workers; i++)
		if (dsg_spawn_channel(&s, child, i, &kids[i].chan) < 0)
			return dsg_finish(&s) | 1;
	dsg_ready(&s);
	r = parent_loop(&s);
	if (r < 0)
		fprintf(stderr, "dsg-prefork-pass: parent loop failed (%d)\n", r);
	return dsg_finish(&s) | (r < 0);
}
