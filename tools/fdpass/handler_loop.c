/*
 * The event loop of a built-in handler's worker, written on the public worker API: one epoll
 * with the master's channel and every client connection. A new connection is read only once
 * its ACK has left, and a finished one is closed only once its DONE has left, so when a client
 * sees the close, the master already has (in its socket buffer) the news that this worker has
 * one less. While the master is slow to read, finished sockets wait for the channel; at exit
 * for at most EXIT_FLUSH_MS.
 */
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 128

/* How long an exiting worker waits for a slow master to take its last ACKs and DONEs. */
#define EXIT_FLUSH_MS 1000

struct fdpass_worker_loop {
	struct fdp_worker *w;
	const struct fdpass_handler *h;
	int epfd;
	int worker_out; /* EPOLLOUT requested on the channel */
	unsigned long count, open;
	int *closing; /* finished sockets: closed once their DONE has left */
	size_t nclosing, capclosing;
	struct fdpass_conn **conns; /* every open connection, for the drain */
	size_t nconns, capconns;
	/*
	 * Connections whose ACK has not left yet: neither read nor watched until a flush has
	 * written it, because the master re-hands a connection it has no ACK for if this worker
	 * dies, and the copy it re-hands must start from the client's first byte.
	 */
	struct fdpass_conn **fresh;
	size_t nfresh, capfresh;
};

struct fdp_worker *fdpass_conn_worker(const struct fdpass_conn *c)
{
	return c->loop->w;
}

int fdpass_conn_draining(const struct fdpass_conn *c)
{
	return fdp_worker_draining(c->loop->w);
}

/*
 * Register c for what it waits for. A new connection is registered only if its first read
 * finds nothing: most requests are already there when the connection arrives.
 */
static void watch(struct fdpass_conn *c)
{
	unsigned want = EPOLLIN | (c->outlen > c->outoff ? EPOLLOUT : 0);
	struct epoll_event ev = {.events = want, .data.ptr = c};

	if (c->watched && want == c->events)
		return;
	if (epoll_ctl(c->loop->epfd, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == 0) {
		c->watched = 1;
		c->events = want;
	}
}

/* Write what the socket takes; returns -1 if the client is gone. */
static int write_out(struct fdpass_conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		c->outoff += (size_t)n;
	}
	c->outoff = c->outlen = 0;
	return 0;
}

int fdpass_conn_write(struct fdpass_conn *c, const void *data, size_t len)
{
	char *out;

	c->answered = 1;
	/* Nothing queued: straight to the socket, and keep only what it did not take. */
	while (c->outlen == 0 && len > 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -1;
		data = (const char *)data + n;
		len -= (size_t)n;
	}
	if (len == 0)
		return 0;
	out = realloc(c->out, c->outlen + len);
	if (!out)
		return -1;
	c->out = out;
	memcpy(c->out + c->outlen, data, len);
	c->outlen += len;
	return write_out(c);
}

static void conn_close(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	/* The master may still hold a copy of the socket: closing ours does not unregister it. */
	if (c->watched)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	fdp_worker_done(l->w, c->id);
	if (l->nclosing == l->capclosing) {
		size_t cap = l->capclosing ? l->capclosing * 2 : 64;
		int *v = realloc(l->closing, cap * sizeof(*v));

		if (!v) {
			/* Out of memory: end it now, the ordering is a nicety. */
			shutdown(c->fd, SHUT_WR);
			close(c->fd);
			goto free_conn;
		}
		l->closing = v;
		l->capclosing = cap;
	}
	l->closing[l->nclosing++] = c->fd;
free_conn:
	for (size_t i = 0; i < l->nconns; i++) {
		if (l->conns[i] == c) {
			l->conns[i] = l->conns[--l->nconns];
			break;
		}
	}
	l->open--;
	free(c->out);
	free(c);
}

/* Make room for one more pointer in *v (n used of *cap); returns -1 out of memory. */
static int grow(struct fdpass_conn ***v, size_t n, size_t *cap)
{
	if (n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct fdpass_conn **nv = realloc(*v, ncap * sizeof(**v));

		if (!nv)
			return -1;
		*v = nv;
		*cap = ncap;
	}
	return 0;
}

/*
 * Drop this worker's reference to a connection it will not finish (the master is gone, or the
 * channel is lost): close() only. The master may re-hand a connection it has no ACK for to
 * another worker, and a shutdown() would end it there too.
 */
static void conn_abandon(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	close(c->fd);
	l->conns[--l->nconns] = NULL; /* callers abandon from the end */
	l->open--;
	free(c->out);
	free(c);
}

/* A connection just taken: kept, unread, until its ACK has left (see serve_fresh()). */
static struct fdpass_conn *conn_open(struct fdpass_worker_loop *l, int fd,
                                     const struct fdp_conn *meta)
{
	struct fdpass_conn *c = calloc(1, sizeof(*c));

	if (!c || grow(&l->conns, l->nconns, &l->capconns) < 0 ||
	    grow(&l->fresh, l->nfresh, &l->capfresh) < 0) {
		free(c);
		fdp_worker_done(l->w, meta->id);
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->id = meta->id;
	c->meta = *meta;
	c->number = ++l->count;
	c->loop = l;
	l->conns[l->nconns++] = c;
	l->fresh[l->nfresh++] = c;
	l->open++;
	return c;
}

/* The protocol a connection's tag names (a listener's tag=), else the worker's handler. */
static const struct fdpass_handler *handler_for(const struct fdpass_worker_loop *l,
                                                const struct fdpass_conn *c)
{
	if (c->meta.tag == FDPASS_TAG_ECHO)
		return &fdpass_handler_echo;
	if (c->meta.tag == FDPASS_TAG_HTTP)
		return &fdpass_handler_http;
	return l->h;
}

/* Read what the client sent and let the handler answer. */
static void conn_input(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_close(l, c);
			return;
		}
		c->inlen += (size_t)n;
		if (handler_for(l, c)->on_data(c) < 0 || c->inlen == sizeof(c->in)) {
			conn_close(l, c);
			return;
		}
		if (c->close_after_write && c->outlen == 0) {
			conn_close(l, c);
			return;
		}
	}
	watch(c);
}

static void conn_output(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	if (write_out(c) < 0 || (c->close_after_write && c->outlen == 0))
		conn_close(l, c);
	else
		watch(c);
}

/*
 * The master asked for a drain: idle connections of a protocol with requests (the handler of
 * each connection's tag says) go now, busy ones when they finish. Idle means between requests:
 * a connection not yet answered is a client whose first request is still on its way (it may
 * have been handed over just before the drain), and it is served, with Connection: close.
 * Fresh ones are left alone too: they are served once their ACK has left.
 */
static void drain_idle(struct fdpass_worker_loop *l)
{
	for (size_t i = l->nconns; i-- > 0;) {
		struct fdpass_conn *c = l->conns[i];

		if (i >= l->nconns || !c->ack_sent || !c->answered ||
		    !handler_for(l, c)->close_idle_on_drain)
			continue;
		conn_input(l, c); /* bytes may have arrived since the last wakeup */
		if (i < l->nconns && l->conns[i] == c && c->inlen == 0 && c->outlen == 0)
			conn_close(l, c);
	}
}

/*
 * Serve the fresh connections, now that their ACK has left: read each at once (most requests
 * are already there when the connection arrives), or wait for it.
 */
static void serve_fresh(struct fdpass_worker_loop *l)
{
	struct fdpass_conn **fresh = l->fresh;
	size_t n = l->nfresh;

	/* conn_input() may close connections; taking the list first keeps it out of the way. */
	l->fresh = NULL;
	l->nfresh = l->capfresh = 0;
	for (size_t i = 0; i < n; i++)
		fresh[i]->ack_sent = 1;
	for (size_t i = 0; i < n; i++)
		conn_input(l, fresh[i]); /* closes it, or watches it */
	free(fresh);
}

/* Returns 1 to keep going, -1 when the master is gone. */
static int take_connections(struct fdpass_worker_loop *l)
{
	for (;;) {
		struct fdp_conn meta;
		int fd = fdp_worker_accept(l->w, &meta);

		if (fd >= 0) {
			conn_open(l, fd, &meta);
			continue;
		}
		if (fd == -EAGAIN)
			return 1;
		if (fd == -ESHUTDOWN) {
			drain_idle(l);
			return 1;
		}
		return -1;
	}
}

/*
 * End a finished connection with shutdown(SHUT_WR) before the close: until the master has read
 * the ACK it holds a copy, and the client would see the end only when that copy goes (and the
 * FIN, and the TCP teardown, would come from the master, the one process every connection goes
 * through). Only for connections this worker finished: their ACK left before they were read,
 * so the master re-hands none of them. shutdown() acts on the socket, every copy of it.
 */
static void close_finished(struct fdpass_worker_loop *l)
{
	for (size_t i = 0; i < l->nclosing; i++)
		shutdown(l->closing[i], SHUT_WR);
	fdp_close_fds(l->closing, l->nclosing);
	l->nclosing = 0;
}

/*
 * Flush what is queued for the master. Once everything has left (0), the fresh connections'
 * ACKs are with the master and they can be read, and the finished ones' DONEs are, so their
 * sockets can be closed. While output waits for the channel (-EAGAIN), both wait with it;
 * on any other error nothing more will leave, and the finished sockets are closed anyway.
 */
static void flush_and_close(struct fdpass_worker_loop *l)
{
	int err = fdp_worker_flush(l->w);
	struct epoll_event ev = {.events = EPOLLIN};
	int want;

	while (err == 0 && l->nfresh) {
		serve_fresh(l);
		err = fdp_worker_flush(l->w);
	}
	want = err == -EAGAIN;
	if (!want)
		close_finished(l);
	if (want != l->worker_out) {
		ev.events |= want ? EPOLLOUT : 0;
		ev.data.ptr = NULL;
		epoll_ctl(l->epfd, EPOLL_CTL_MOD, fdp_worker_fd(l->w), &ev);
		l->worker_out = want;
	}
}

int fdpass_handler_run(struct fdp_worker *w, const struct fdpass_handler *h)
{
	struct fdpass_worker_loop l = {.w = w, .h = h};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int status;

	l.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l.epfd < 0)
		return 1;
	if (epoll_ctl(l.epfd, EPOLL_CTL_ADD, fdp_worker_fd(w), &ev) < 0) {
		close(l.epfd);
		return 1;
	}
	/* Connections may have come with the greeting, already read from the socket. */
	status = take_connections(&l) < 0;
	while (!status) {
		struct epoll_event evs[MAX_EVENTS];
		int n, channel = 0;

		flush_and_close(&l);
		if (fdp_worker_draining(w) && l.open == 0)
			break;
		n = epoll_wait(l.epfd, evs, MAX_EVENTS, -1);
		for (int i = 0; i < n; i++) {
			struct fdpass_conn *c = evs[i].data.ptr;

			if (!c)
				channel = 1;
			else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_input(&l, c);
			else if (evs[i].events & EPOLLOUT)
				conn_output(&l, c);
		}
		/* Last: a drain may close connections that later events of this batch name. */
		if (channel && take_connections(&l) < 0)
			status = 1; /* the master is gone: nobody to serve for */
	}
	/* Left open only when the master is gone: no DONE to send, nothing to shut down. */
	l.nfresh = 0;
	while (l.nconns)
		conn_abandon(&l, l.conns[l.nconns - 1]);
	/* A slow master still gets the last reports; a stuck one does not hold the exit long. */
	fdp_worker_flush_wait(w, EXIT_FLUSH_MS);
	close_finished(&l);
	free(l.closing);
	free(l.conns);
	free(l.fresh);
	close(l.epfd);
	return status;
}
