/*
 * The bare SO_REUSEPORT HTTP server: the peer with no master at all. N pre-forked children,
 * each with a listening socket of its own on the same port (the kernel picks the child by a
 * hash of the client's address and port), each serving many connections at once on its own
 * epoll loop. Every request gets the same kind of answer as fdpass's built-in http handler
 * (headers, a body naming the worker, Connection: close), and the connection is closed after
 * the answer: the cost measured is accepting, reading a request, writing a response, closing.
 * As fdpass's handler does, a request for /pad/N (N up to 1 MiB) gets that body padded with
 * 'x' to N bytes, and one for /sleep/N (N up to 1000000) is answered after the child has slept
 * N microseconds, its loop stopped: the peers benchmark's uneven loads.
 *
 * Built with PASS_FLOOR=1 it is bench-pass-http, the passing floor: the same children and
 * the same answers, but one listener in the parent, which accepts everything its backlog holds
 * and sends each connection to the next child in turn over a socketpair (fdp_send_fd()),
 * closing its copy and never hearing back. It is the least a server whose master accepts and
 * passes can do: no choice by load, no recovery of a dead child's connections.
 *
 * Built with SHARED_QUEUE=1 it is bench-shared-http: one listener, made before the fork and
 * watched by every child's own epoll with EPOLLEXCLUSIVE, so that the kernel wakes one child
 * that is waiting (nginx's default, without its master): a child busy with a long request
 * takes nothing new. The floor of a queue the workers pull from, for the uneven load's p99.
 *
 * Options and the runner contract (ready <port>, --stats, SIGTERM) are the classic designs'
 * skeleton: bench/designs/README.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"
#include "skeleton.h"

#ifndef PASS_FLOOR
#define PASS_FLOOR 0
#endif
#ifndef SHARED_QUEUE
#define SHARED_QUEUE 0
#endif

#define REQUEST_MAX 4096 /* a longer header block is refused: the load sends under 200 bytes */
#define EVENTS_MAX  64
#define ACCEPT_MAX  64 /* accepts per wake-up before looking at the connections again */
#define PAD_MAX     (1u << 20)

static char pad[PAD_MAX]; /* 'x' * PAD_MAX, the padding of every /pad/N answer */

struct conn {
	int fd;
	size_t len;
	size_t sent, outlen; /* outlen > 0: the answer is built and being written */
	size_t padlen;       /* then this many bytes of pad[] after buf's outlen */
	char peer[INET_ADDRSTRLEN + 8];
	char buf[REQUEST_MAX];
};

static int listeners[DSG_MAX_WORKERS]; /* the child's own listener, or (passing) its channel */
static unsigned long conn_number;

static void conn_free(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* The N of a request line "METHOD <prefix>N ..." in buf, at most max; else 0. */
static size_t target_number(const char *buf, const char *prefix, size_t max)
{
	const char *p = strchr(buf, ' ');
	size_t plen = strlen(prefix);
	char *end;
	unsigned long n;

	if (!p || strncmp(p + 1, prefix, plen) != 0 || p[1 + plen] < '0' || p[1 + plen] > '9')
		return 0;
	n = strtoul(p + 1 + plen, &end, 10);
	return *end == ' ' && n <= max ? n : 0;
}

/* Build the answer in c->buf once the header block is complete. */
static void conn_answer(struct conn *c, int index)
{
	size_t padto = target_number(c->buf, "/pad/", PAD_MAX), len;
	size_t nap = target_number(c->buf, "/sleep/", 1000000);
	char body[256];
	int nb, nh;

	if (nap) {
		struct timespec ts = {.tv_sec = (time_t)(nap / 1000000),
		                      .tv_nsec = (long)(nap % 1000000) * 1000};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	nb = snprintf(body, sizeof(body), "worker=%d pid=%d generation=1 conn=%lu id=%lu peer=%s\n",
	              index, (int)getpid(), conn_number, conn_number, c->peer);
	len = padto > (size_t)nb ? padto : (size_t)nb;
	nh = snprintf(c->buf, sizeof(c->buf),
	              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
	              "%zu\r\nConnection: close\r\n\r\n%s",
	              len, body);
	c->outlen = (size_t)nh;
	c->padlen = len - (size_t)nb;
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
	while (c->sent < c->outlen + c->padlen) {
		ssize_t n = c->sent < c->outlen ? write(c->fd, c->buf + c->sent, c->outlen - c->sent)
		                                : write(c->fd, pad, c->outlen + c->padlen - c->sent);

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

/*
 * Serve a new connection (peer: its address, or NULL); try it at once, as its request is
 * usually there.
 */
static void conn_start(struct dsg_server *s, int index, int ep, int fd,
                       const struct sockaddr_in *peer)
{
	struct conn *c = malloc(sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->len = c->outlen = c->sent = c->padlen = 0;
	strcpy(c->peer, "-");
	if (peer) {
		inet_ntop(AF_INET, &peer->sin_addr, c->peer, INET_ADDRSTRLEN);
		snprintf(c->peer + strlen(c->peer), sizeof(c->peer) - strlen(c->peer), ":%u",
		         (unsigned)ntohs(peer->sin_port));
	}
	conn_run(s, index, ep, c, 0);
}

/* Take what is queued: accept from the child's listener, or receive from its channel. */
static void take_some(struct dsg_server *s, int index, int ep, int src)
{
	for (int i = 0; i < ACCEPT_MAX; i++) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		int fd = PASS_FLOOR ? fdp_recv_fd(src)
		                    : accept4(src, (struct sockaddr *)&peer, &plen,
		                              SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return; /* EAGAIN, or a transient error: the next wake-up retries */
		if (PASS_FLOOR && fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
			close(fd);
			continue;
		}
		conn_start(s, index, ep, fd, PASS_FLOOR ? NULL : &peer);
	}
}

static void child(struct dsg_server *s, int index)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[EVENTS_MAX];
	int lfd = listeners[index], ep;

	/* Keep only our own socket, so our queue closes with us. */
	for (int i = 0; !SHARED_QUEUE && i < s->workers; i++)
		if (i != index && listeners[i] >= 0)
			close(listeners[i]);
	if (PASS_FLOOR)
		close(s->listen_fd);
	if (SHARED_QUEUE)
		ev.events |= EPOLLEXCLUSIVE; /* one waiting child is woken per connection */
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
				take_some(s, index, ep, lfd);
			else
				conn_run(s, index, ep, evs[i].data.ptr, 1);
		}
		if (n < 0 && errno != EINTR)
			return;
	}
}

/* The passing floor's parent: accept all that is queued, each to the next child. */
static int pass_loop(struct dsg_server *s)
{
	struct pollfd pfd = {.fd = s->listen_fd, .events = POLLIN};
	int next = 0;

	if (fcntl(s->listen_fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	while (!dsg_stopping) {
		int fd;

		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -errno;
		while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			int r = fdp_send_fd(listeners[next], fd);

			close(fd);
			if (r < 0)
				return r;
			next = (next + 1) % s->workers;
		}
		if (errno != EAGAIN && !dsg_accept_transient(errno))
			return dsg_stopping ? 0 : -errno;
	}
	return 0;
}

static int main_pass(struct dsg_server *s)
{
	int r;

	for (int i = 0; i < s->workers; i++)
		listeners[i] = -1;           /* not made yet: a child closes only those that are */
	for (int i = 0; i < s->workers; i++) /* a later child closes the earlier parent ends */
		if (dsg_spawn_channel(s, child, i, &listeners[i]) < 0)
			return dsg_finish(s) | 1;
	dsg_ready(s);
	r = pass_loop(s);
	if (r < 0)
		fprintf(stderr, "bench-pass-http: %s\n", strerror(-r));
	return dsg_finish(s) | (r < 0);
}

int main(int argc, char **argv)
{
	struct dsg_server s;
	int err;

	memset(pad, 'x', sizeof(pad));
	if (PASS_FLOOR) {
		dsg_init(&s, argc, argv, "pass-http", DSG_POOL);
		return main_pass(&s);
	}
	if (SHARED_QUEUE) { /* every child watches the one listener dsg_init() made */
		dsg_init(&s, argc, argv, "shared-http", DSG_POOL);
		for (int i = 0; i < s.workers; i++)
			listeners[i] = s.listen_fd;
	} else {
		dsg_init(&s, argc, argv, "reuseport-http", DSG_POOL | DSG_NO_LISTENER);
		err = dsg_listen_each(&s, listeners);
		if (err < 0) {
			fprintf(stderr, "bench-reuseport-http: listen: %s\n", strerror(-err));
			return 1;
		}
	}
	for (int i = 0; i < s.workers; i++)
		if (dsg_spawn(&s, child, i) < 0)
			return dsg_finish(&s) | 1;
	for (int i = 0; !SHARED_QUEUE && i < s.workers; i++)
		close(listeners[i]);
	dsg_ready(&s);
	dsg_wait_stop();
	return dsg_finish(&s);
}
