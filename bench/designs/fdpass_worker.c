/*
 * dsg-fdpass-worker: a worker of `fdpass serve --exec` that serves the designs' echo protocol
 * the way the pre-forked designs do (README.md): one connection at a time, one read of the
 * request and one write of the answer, then close. So that `make bench-designs` can set
 * fdpass's dispatch (--dispatch pass or kernel) against the classic designs with the same
 * per-connection work, not fdpass's stream echo handler. It takes its slot's own sockets
 * (fdp_worker_take_listeners()): under --dispatch kernel it accepts them itself. It waits in
 * an epoll set of its own that holds the worker's channel and sockets (fdp_worker_watch()),
 * and serves each connection as it comes with blocking reads and writes, as the pre-forked
 * designs do (fdp_worker_set_blocking()): a request that has not arrived when its connection
 * is accepted (about half of them on loopback) costs one read that waits, not a failed read,
 * a poll and a second read.
 */
#include "skeleton.h"

#include "fdpass_runtime.h"

#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(void)
{
	struct fdp_worker *w;
	int fd, ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || fdp_worker_open_env(&w, 10000) < 0 || fdp_worker_take_listeners(w) < 0 ||
	    fdp_worker_watch(w, ep, 0) < 0) {
		fprintf(stderr, "dsg-fdpass-worker: not started by fdpass serve --exec?\n");
		return 1;
	}
	fdp_worker_set_blocking(w, 1);
	for (;;) {
		struct epoll_event evs[8];
		struct fdp_conn c;
		int n;

		while ((fd = fdp_worker_accept(w, &c)) >= 0) {
			dsg_echo(fd); /* closes it */
			fdp_worker_done(w, c.id);
		}
		if (fd != -EAGAIN)
			break; /* drained (-ESHUTDOWN), or the master is gone */
		if (fdp_worker_flush(w) == -EPIPE)
			break;
		n = epoll_wait(ep, evs, 8, -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++)
			fdp_worker_event(w, &evs[i]); /* every one is the worker's */
	}
	fdp_worker_flush_wait(w, 1000);
	fdp_worker_close(w);
	close(ep);
	return 0;
}
