/*
 * Pre-forked, SO_REUSEPORT: every child accepts on a listening socket of its own, all bound
 * to the same port, and the kernel spreads incoming connections over them by a hash of the
 * client's address and port. No lock and no shared accept queue, but also no choice: a busy
 * child's queue keeps filling while another child idles.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "skeleton.h"

static int listeners[DSG_MAX_WORKERS];

static void child(struct dsg_server *s, int index)
{
	/* Keep only our own socket, so our queue closes with us. */
	for (int i = 0; i < s->workers; i++)
		if (i != index)
			close(listeners[i]);
	while (!dsg_stopping) {
		int fd = dsg_accept(listeners[index]);
		if (fd < 0) {
			if (dsg_accept_transient(-fd))
				continue;
			return;
		}
		if (dsg_echo(fd) == 0)
			dsg_count(s, index);
	}
}

/*
 * All sockets listen before any child starts or readiness is announced, so no connection
 * reaches a port with a missing member. The first picks the port when --port is 0.
 */
static int open_listeners(struct dsg_server *s)
{
	for (int i = 0; i < s->workers; i++) {
		listeners[i] = dsg_listen(s->port, 1, &s->port);
		if (listeners[i] < 0) {
			fprintf(stderr, "dsg-prefork-reuseport: listen: %s\n",
			        strerror(-listeners[i]));
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct dsg_server s;

	dsg_init(&s, argc, argv, "prefork-reuseport", DSG_POOL | DSG_NO_LISTENER);
	if (open_listeners(&s) < 0)
		return 1;
	for (int i = 0; i < s.workers; i++)
		if (dsg_spawn(&s, child, i) < 0)
			return dsg_finish(&s) | 1;
	/* The parent accepts nothing: its copies would only keep dead children's queues open. */
	for (int i = 0; i < s.workers; i++)
		close(listeners[i]);
	dsg_ready(&s);
	dsg_wait_stop();
	return dsg_finish(&s);
}
