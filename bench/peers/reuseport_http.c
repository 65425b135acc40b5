/*
 * The bare SO_REUSEPORT HTTP server: the peer with no master at all. N pre-forked children,
 * each with a listening socket of its own on the same port (the kernel picks the child by a
 * hash of the client's address and port), each serving many connections at once on its own
 * epoll loop. Every request gets the same kind of answer as fdpass's built-in http handler
 * (headers, a body naming the worker, Connection: close), and the connection is closed after
 * the answer: the cost measured is accepting, reading a request, writing a response, closing.
 *
 * Options and the runner contract (ready <port>, --stats, SIGTERM) are the classic designs'
 * skeleton: bench/designs/README.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "skeleton.h"

#define REQUEST_MAX 4096 /* a longer header block is refused: the load sends under 200 bytes */
#define EVENTS_MAX  64
#define ACCEPT_MAX  64 /* accepts per wake-up before looking at the connections again */

struct conn {
	int fd;
	size_t len;
	size_t sent, outlen; /* outlen > 0: the answer is built and being written */
	char peer[INET_ADDRSTRLEN + 8];
	char buf[REQUEST_MAX];
};

static int listeners[DSG_MAX_WORKERS];
static unsigned long conn_number;

static void conn_free(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Build the answer in c->buf once the header block is complete. */
static void conn_answer(struct conn *c, int index)
{
	char body[256];
	int nb, nh;

	nb = snprintf(body, sizeof(body), "worker=%d pid=%d generation=1 conn=%lu id=%lu peer=%s\n",
	              index, (int)getpid(), conn_number, conn_number, c->peer);
	nh = snprintf(c->buf, sizeof(c->buf),
	              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
	              "%d\r\nConnection: close\r\n\r\n%s",
	              nb, body);
	c->outlen = (size_t)nh;
	c->sent = 0;
}

/*
 * Read what there is, answer once the request is complete, write what fits. Returns 1 when
 * the connection is finished (served or failed), 0 when it waits for the socket.
 */
static int conn_step(struct dsg_server *s, int index, struct conn *c, int *want_out)
{
	*want_out = 0;
	while (!c->outlen) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0 || c->len + (size_t)n >= sizeof(c->buf) - 1)
			return 1;
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
		if (strstr(c->buf, "\r\n\r\n")) {
			conn_number++;
			conn_answer(c, index);
		}
	}
	while (c->sent < c->outlen) {
		ssize_t n = write(c->fd, c->buf + c->sent, c->outlen - c->sent);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			*want_out = 1;
			return 0;
		}
		if (n < 0)
			return 1;
		c->sent += (size_t)n;
	}
	dsg_count(s, index);
	return 1;
}

/* Take a step on c and either finish it or (re)arm it for the event it waits for. */
static void conn_run(struct dsg_server *s, int index, int ep, struct conn *c, int added)
{
	struct epoll_event ev = {.data.ptr = c};
	int want_out;

	if (conn_step(s, index, c, &want_out)) {
		if (added)
			conn_free(ep, c);
		else {
			close(c->fd);
			free(c);
		}
		return;
	}
	ev.events = want_out ? EPOLLOUT : EPOLLIN;
	if (epoll_ctl(ep, added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		close(c->fd);
		free(c);
	}
}

/* Accept what is queued; try each new connection at once, as its request is usually there. */
static void accept_some(struct dsg_server *s, int index, int ep, int lfd)
{
	for (int i = 0; i < ACCEPT_MAX; i++) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		int fd =
		        accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0)
			return; /* EAGAIN, or a transient error: the next wake-up retries */
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->len = c->outlen = c->sent = 0;
		inet_ntop(AF_INET, &peer.sin_addr, c->peer, INET_ADDRSTRLEN);
		snprintf(c->peer + strlen(c->peer), sizeof(c->peer) - strlen(c->peer), ":%u",
		         (unsigned)ntohs(peer.sin_port));
		conn_run(s, index, ep, c, 0);
	}
}

static void child(struct dsg_server *s, int index)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[EVENTS_MAX];
	int lfd = listeners[index], ep;

	/* Keep only our own socket, so our queue closes with us. */
	for (int i = 0; i < s->workers; i++)
		if (i != index)
			close(listeners[i]);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || fcntl(lfd, F_SETFL, O_NONBLOCK) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("bench-reuseport-http: epoll");
		return;
	}
	for (;;) { /* until SIGTERM, whose default action ends the child */
		int n = epoll_wait(ep, evs, EVENTS_MAX, -1);

		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				accept_some(s, index, ep, lfd);
			else
				conn_run(s, index, ep, evs[i].data.ptr, 1);
		}
		if (n < 0 && errno != EINTR)
			return;
	}
}

int main(int argc, char **argv)
{
	struct dsg_server s;

	dsg_init(&s, argc, argv, "reuseport-http", DSG_POOL | DSG_NO_LISTENER);
	/* All sockets listen before any child starts or readiness is announced. */
	for (int i = 0; i < s.workers; i++) {
		listeners[i] = dsg_listen(s.port, 1, &s.port);
		if (listeners[i] < 0) {
			fprintf(stderr, "bench-reuseport-http: listen: %s\n",
			        strerror(-listeners[i]));
			return 1;
		}
	}
	for (int i = 0; i < s.workers; i++)
		if (dsg_spawn(&s, child, i) < 0)
			return dsg_finish(&s) | 1;
	for (int i = 0; i < s.workers; i++)
		close(listeners[i]);
	dsg_ready(&s);
	dsg_wait_stop();
	return dsg_finish(&s);
}
