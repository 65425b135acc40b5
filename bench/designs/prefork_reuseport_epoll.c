/*
 * Not one of the textbook's designs: pre-forked SO_REUSEPORT children that also hear their
 * parent, as a reference row. Each child waits in epoll for its own listening socket
 * (non-blocking) and a channel from the parent, accepts up to 4 connections in a row and
 * serves each with blocking reads and writes. The parent never writes (a master with nothing
 * to say); SIGTERM stops the children, as in the other designs. The plain SO_REUSEPORT
 * children block in accept() and can be told nothing but by a signal; this is the least any
 * worker that accepts for itself and listens to a master pays (nginx's workers wait in epoll
 * with their channel too), so fdpass's kernel dispatch rows compare with it as well.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "skeleton.h"

#define BURST 4 /* accepts in a row before the next look, as fdpass's worker */

static int listeners[DSG_MAX_WORKERS];
static int chans[DSG_MAX_WORKERS]; /* the parent's ends; in a child, its own end at its index */

/* Up to BURST connections from lfd, each served. 0, 1 when it is empty, or -errno. */
static int serve_burst(struct dsg_server *s, int index, int lfd)
{
	for (int k = 0; k < BURST; k++) {
		int fd = dsg_accept(lfd);

		if (fd < 0)
			return fd == -EAGAIN ? 1 : dsg_accept_transient(-fd) ? 0 : fd;
		if (dsg_echo(fd) == 0)
			dsg_count(s, index);
	}
	return 0;
}

static void child(struct dsg_server *s, int index)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ep, lfd = listeners[index], fl = fcntl(lfd, F_GETFL), ready = 1;

	/* Keep only our own socket, so our queue closes with us, and our own channel. */
	for (int i = 0; i < s->workers; i++)
		if (i != index)
			close(listeners[i]);
	for (int i = 0; i < index; i++)
		close(chans[i]);
	if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return;
	ev.data.u32 = 0;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, chans[index], &ev) < 0)
		return;
	ev.data.u32 = 1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		return;
	while (!dsg_stopping) {
		struct epoll_event got[2];
		int n, r;

		/* A full burst looks again first: the channel's news does not wait behind it. */
		if (ready) {
			r = serve_burst(s, index, lfd);
			if (r < 0)
				return;
			ready = r == 0;
		}
		n = epoll_wait(ep, got, 2, ready ? 0 : -1);
		if (n < 0 && errno != EINTR)
			return;
		for (int i = 0; i < n; i++) {
			char c;

			if (got[i].data.u32 == 1)
				ready = 1;
			else if (read(chans[index], &c, 1) <= 0)
				return; /* it never writes: a broken channel */
		}
	}
}

int main(int argc, char **argv)
{
	struct dsg_server s;

	dsg_init(&s, argc, argv, "prefork-reuseport-epoll", DSG_POOL | DSG_NO_LISTENER);
	return dsg_main_each(&s, listeners, chans, child);
}
