/*
 * dsg-fdpass-worker: a worker of `fdpass serve --exec` that serves the designs' echo protocol
 * the way the pre-forked designs do (README.md): one connection at a time, blocking, one read
 * of the request and one write of the answer, then close. So that `make bench-designs` can
 * set fdpass's dispatch (--dispatch pass or kernel) against the classic designs with the same
 * per-connection work, not fdpass's stream echo handler. It takes its slot's own sockets
 * (fdp_worker_take_listeners()): under --dispatch kernel it accepts them itself.
 */
#include "skeleton.h"

#include "fdpass_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	struct fdp_worker *w;
	int fd;

	if (fdp_worker_open_env(&w, 10000) < 0 || fdp_worker_take_listeners(w) < 0) {
		fprintf(stderr, "dsg-fdpass-worker: not started by fdpass serve --exec?\n");
		return 1;
	}
	for (;;) {
		struct pollfd p = {.fd = fdp_worker_fd(w), .events = POLLIN};
		struct fdp_conn c;

		while ((fd = fdp_worker_accept(w, &c)) >= 0) {
			int flags = fcntl(fd, F_GETFL);

			fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* served blocking, as the designs do */
			dsg_echo(fd);                            /* closes it */
			fdp_worker_done(w, c.id);
		}
		if (fd != -EAGAIN)
			break; /* drained (-ESHUTDOWN), or the master is gone */
		if (fdp_worker_flush(w) == -EPIPE)
			break;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
	}
	fdp_worker_flush_wait(w, 1000);
	fdp_worker_close(w);
	return 0;
}
