/*
 * Design 2, fork per client: the parent accepts and forks a child to serve each client.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "skeleton.h"

static void serve_child(struct dsg_server *s, int fd)
{
	close(s->listen_fd);
	if (dsg_echo(fd) == 0)
		dsg_count(s, 0);
	_exit(0);
}

int main(int argc, char **argv)
{
	struct dsg_server s;

	dsg_init(&s, argc, argv, "fork", 0);
	dsg_ready(&s);
	while (!dsg_stopping) {
		int fd = dsg_accept(s.listen_fd);
		if (fd < 0) {
			if (dsg_accept_transient(-fd))
				continue;
			break;
		}
		pid_t pid = fork();
		if (pid == 0)
			serve_child(&s, fd);
		close(fd);
		/* Reap as we go, as a SIGCHLD handler would: each child's CPU time is counted
		 * in ours only once it is waited for. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	return dsg_finish(&s);
}
