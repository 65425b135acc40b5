/*
 * Design 3, pre-forked, no locking: every child blocks in accept() on the shared listener and
 * the kernel wakes one of them per connection.
 */
#include "skeleton.h"

static void child(struct dsg_server *s, int index)
{
	while (!dsg_stopping) {
		int fd = dsg_accept(s->listen_fd);
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

	dsg_init(&s, argc, argv, "prefork-nolock", DSG_POOL);
	for (int i = 0; i < s.workers; i++)
		if (dsg_spawn(&s, child, i) < 0)
			return dsg_finish(&s) | 1;
	dsg_ready(&s);
	dsg_wait_stop();
	return dsg_finish(&s);
}
