/*
 * Pre-forked, SO_REUSEPORT: every child accepts on a listening socket of its own, all bound
 * to the same port, and the kernel spreads incoming connections over them by a hash of the
 * client's address and port. No lock and no shared accept queue, but also no choice: a busy
 * child's queue keeps filling while another child idles.
 */
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

	dsg_init(&s, argc, argv, "prefork-reuseport", DSG_POOL | DSG_NO_LISTENER);
	return dsg_main_each(&s, listeners, NULL, child);
}
