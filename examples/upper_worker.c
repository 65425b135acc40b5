/*
 * A complete small worker for `fdpass serve --exec`: it answers every line a client sends
 * with the same line in upper case, serving many clients at once from one poll() loop.
 *
 *   fdpass serve --listen 127.0.0.1:9000 --exec ./build/examples/upper_worker
 *   printf 'hello\n' | nc -q1 127.0.0.1 9000        # HELLO
 *
 * The master starts it with its channel in FDPASS_CHANNEL_FD. It takes connections with
 * fdp_worker_accept(), reports each finished with fdp_worker_done(), and exits when the
 * master drains it (after its clients are done) or goes away. fdp_worker_accept() returns a
 * connection only once its acknowledgement has left, so the worker may read it at once (until
 * then the master could re-hand it, and a re-handed copy must start at byte one). Two rules
 * remain the worker's:
 *   - end a finished connection with shutdown(SHUT_WR) + close(): the client sees the end
 *     now, not when the master drops its copy;
 *   - abandon connections (master gone) with close() alone: shutdown() would act on a socket
 *     the master may have handed to another worker.
 */
#include <fdpass_runtime.h>

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 1024

struct client {
	int fd;
	uint64_t id;
};

static struct client clients[MAX_CLIENTS];
static int nclients;

static void finish(struct fdp_worker *w, int i)
{
	fdp_worker_done(w, clients[i].id);
	fdp_worker_flush(w); /* usually the master learns before the client sees the close */
	shutdown(clients[i].fd, SHUT_WR);
	close(clients[i].fd);
	clients[i] = clients[--nclients];
}

/* Echo what the client sent, upper-cased; returns -1 when the client is done. */
static int serve(struct client *c)
{
	char buf[4096];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	for (ssize_t i = 0; i < n; i++)
		buf[i] = (char)toupper((unsigned char)buf[i]);
	/* A real worker queues what the socket will not take; this one is small on purpose. */
	return send(c->fd, buf, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* Take every connection waiting on the channel; returns -1 when the master is gone. */
static int take(struct fdp_worker *w)
{
	for (;;) {
		struct fdp_conn conn;
		int fd = fdp_worker_accept(w, &conn);

		if (fd == -EAGAIN || fd == -ESHUTDOWN)
			return 0;
		if (fd < 0)
			return -1;
		if (nclients == MAX_CLIENTS) {
			fdp_worker_done(w, conn.id); /* full: refuse by closing */
			close(fd);
			continue;
		}
		clients[nclients++] = (struct client){fd, conn.id};
	}
}

int main(void)
{
	static struct pollfd pfd[MAX_CLIENTS + 1];
	struct fdp_worker *w;
	int err = fdp_worker_open_env(&w, 5000);

	if (err < 0) {
		fprintf(stderr, "upper_worker: not started by fdpass serve? %s\n",
		        fdp_strerror(err));
		return 1;
	}
	/* Connections may have arrived with the greeting: take them before the first wait. */
	if (take(w) < 0)
		return 1;
	while (!fdp_worker_draining(w) || nclients > 0) {
		pfd[0] = (struct pollfd){fdp_worker_fd(w),
		                         POLLIN | (fdp_worker_wants_write(w) ? POLLOUT : 0), 0};
		for (int i = 0; i < nclients; i++)
			pfd[i + 1] = (struct pollfd){clients[i].fd, POLLIN, 0};
		if (poll(pfd, (nfds_t)nclients + 1, -1) < 0 && errno != EINTR)
			break;
		/* Clients first, from the end, so finishing one does not move an unvisited one. */
		for (int i = nclients - 1; i >= 0; i--)
			if (pfd[i + 1].revents && serve(&clients[i]) < 0)
				finish(w, i);
		if (pfd[0].revents && take(w) < 0) {
			while (nclients > 0) /* the master is gone: nobody to serve for */
				close(clients[--nclients].fd);
			break;
		}
		fdp_worker_flush(w); /* the DONE reports; acknowledgements left in accept */
	}
	while (nclients > 0)
		finish(w, nclients - 1);
	fdp_worker_flush_wait(w, 1000); /* the last reports, before the channel closes */
	fdp_worker_close(w);
	return 0;
}
