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

int main(int argc, char **argv)
{
	struct dsg_server s;
	int err;

	dsg_init(&s, argc, argv, "prefork-reuseport", DSG_POOL | DSG_NO_LISTENER);
	err = dsg_listen_each(&s, listeners);
	if (err < 0) {
		fprintf(stderr, "dsg-prefork-reuseport: listen: %s\n", strerror(-err));
		return 1;
	}
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
