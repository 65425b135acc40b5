/*
 * Design 1, iterative: one process accepts and serves one client at a time. No process
 * control at all, so its CPU time per connection is the baseline the others are measured
 * against.
 */
#include "skeleton.h"

int main(int argc, char **argv)
{
	struct dsg_server s;

	dsg_init(&s, argc, argv, "iterative", 0);
	dsg_ready(&s);
	while (!dsg_stopping) {
		int fd = dsg_accept(s.listen_fd);
		if (fd < 0) {
			if (dsg_accept_transient(-fd))
				continue;
			break;
		}
		if (dsg_echo(fd) == 0)
			dsg_count(&s, 0);
	}
	return dsg_finish(&s);
}
