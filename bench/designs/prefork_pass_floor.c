/*
 * Not one of the textbook's designs: the least work any design in which a parent accepts and
 * passes every connection can do, as a reference row. The parent waits for the listener,
 * accepts every connection the backlog holds, sends each to the next child in turn with
 * fdp_send_fd() and closes its copy; it never hears back (no idle byte, no acknowledgement,
 * no count), so it cannot choose by load nor give a dead child's connections to another. The
 * children receive, serve and close. Any passing design pays at least this much more than
 * the designs whose children accept for themselves.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"
#include "skeleton.h"

static int chans[DSG_MAX_WORKERS]; /* the parent's ends; in a child, its own end at its index */

static void child(struct dsg_server *s, int index)
{
	while (!dsg_stopping) {
		int fd = fdp_recv_fd(chans[index]);

		if (fd < 0)
			return; /* -EPIPE: the parent is gone */
		if (dsg_echo(fd) == 0)
			dsg_count(s, index);
	}
}

/* Accept until the backlog is empty, each connection to the next child. */
static int hand_all(struct dsg_server *s, int *next)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC), r;

		if (fd < 0)
			return errno == EAGAIN || dsg_accept_transient(errno) ? 0 : -errno;
		r = fdp_send_fd(chans[*next], fd);
		close(fd);
		if (r < 0)
			return r;
		*next = (*next + 1) % s->workers;
	}
}

static int parent_loop(struct dsg_server *s)
{
	struct pollfd pfd = {.fd = s->listen_fd, .events = POLLIN};
	int next = 0, flags = fcntl(s->listen_fd, F_GETFL);

	if (flags < 0 || fcntl(s->listen_fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	while (!dsg_stopping) {
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (hand_all(s, &next) < 0)
			return dsg_stopping ? 0 : -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct dsg_server s;
	int r;

	dsg_init(&s, argc, argv, "prefork-pass-floor", DSG_POOL);
	for (int i = 0; i < s.workers; i++)
		if (dsg_spawn_channel(&s, child, i, &chans[i]) < 0)
			return dsg_finish(&s) | 1;
	dsg_ready(&s);
	r = parent_loop(&s);
	if (r < 0)
		fprintf(stderr, "dsg-prefork-pass-floor: parent loop failed (%d)\n", r);
	return dsg_finish(&s) | (r < 0);
}
