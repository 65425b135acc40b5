/*
 * The event loop of a built-in handler's worker, written on the public worker API: one epoll
 * with the master's channel, the worker's own listening sockets under kernel dispatch (both
 * registered there by fdp_worker_watch(), nothing nested) and every client connection. A new
 * connection is read only once its ACK has left, and a finished one is closed only once its
 * DONE has left, so when a client sees the close, the master already has (in its socket
 * buffer) the news that this worker has one less. While the master is slow to read, finished
 * sockets wait for the channel; at exit for at most EXIT_FLUSH_MS.
 *
 * Limits (struct fdpass_limits): a connection whose unsent output exceeds max_output is not
 * read, so a client that sends without reading fills its own socket, not this process. Each
 * connection of a handler with requests is on one timer list, by what it waits for (enum
 * fdpass_timer). Every connection on a list has the same timeout and joins the list's tail
 * with its clock started now, so each list is ordered by deadline: joining, leaving, moving
 * and finding the next deadline are O(1), with no scan of the connections and no timer
 * descriptor (the next deadline is epoll_wait()'s timeout).
 */
#include "serve.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 128

/* How long an exiting worker waits for a slow master to take its last ACKs and DONEs. */
#define EXIT_FLUSH_MS 1000

/* How long a connection closed after an error answer may take to close its side (see linger). */
#define LINGER_MS 2000

/* At most this many reads of a lingering client per wakeup: one that floods us is not served. */
#define LINGER_READS 16

struct timer_list {
	struct fdpass_conn *head, *tail; /* by deadline: since + ms */
	long long ms;
};

struct fdpass_worker_loop {
	struct fdp_worker *w;
	const struct fdpass_handler *h;
	int epfd;
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
	struct fdpass_conn **served; /* the list serve_fresh() took last, kept for its room */
	size_t capserved;
	/* Finished connections to close gracefully once their DONE has left (see linger). */
	struct fdpass_conn **lingering;
	size_t nlingering, caplingering;
	struct fdpass_limits limits;
	long long now; /* monotonic ms, read after each wait */
	/* Structs of closed connections, kept for the next ones (linked by tnext): at a
	 * connection per request, no allocation per connection. */
	struct fdpass_conn *spare;
	size_t nspare;
	struct timer_list timers[FDPASS_TIMERS];
};

static long long clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct fdp_worker *fdpass_conn_worker(const struct fdpass_conn *c)
{
	return c->loop->w;
}

int fdpass_conn_draining(const struct fdpass_conn *c)
{
	return fdp_worker_draining(c->loop->w);
}

int fdpass_conn_output_full(const struct fdpass_conn *c)
{
	return c->outlen - c->outoff > c->loop->limits.max_output;
}

/* May c be read now: not finished, room in c->in, and its output below the limit. */
static int conn_reads(const struct fdpass_conn *c)
{
	return !c->close_after_write && c->inlen < sizeof(c->in) && !fdpass_conn_output_full(c);
}

static void timer_unlink(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	struct timer_list *t;

	if (c->timer == FDPASS_TIMER_NONE)
		return;
	t = &l->timers[c->timer];
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		t->head = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	else
		t->tail = c->tprev;
	c->tprev = c->tnext = NULL;
	c->timer = FDPASS_TIMER_NONE;
}

/* Put c at the tail of a timer list, its clock starting now: the list stays in order. */
static void timer_set(struct fdpass_worker_loop *l, struct fdpass_conn *c, enum fdpass_timer k)
{
	struct timer_list *t = &l->timers[k];

	timer_unlink(l, c);
	c->rearm = 0;
	c->since = l->now;
	if (k == FDPASS_TIMER_NONE)
		return;
	c->timer = k;
	c->tprev = t->tail;
	if (t->tail)
		t->tail->tnext = c;
	else
		t->head = c;
	t->tail = c;
}

/*
 * Register c for what it waits for. A new connection is registered only if its first read
 * finds nothing: most requests are already there when the connection arrives.
 */
static void watch(struct fdpass_conn *c)
{
	unsigned want = (conn_reads(c) ? EPOLLIN : 0) | (c->outlen > c->outoff ? EPOLLOUT : 0);
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
		c->rearm = 1; /* the client takes its output: the write timeout starts again */
	}
	c->outoff = c->outlen = 0;
	return 0;
}

int fdpass_conn_write(struct fdpass_conn *c, const void *data, size_t len)
{
	char *out;

	c->answered = 1;
	c->rearm = 1; /* an answer: the next request's head has its own time */
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

/* Queue a finished socket to be shut down and closed once its DONE has left. */
static void closing_add(struct fdpass_worker_loop *l, int fd)
{
	if (l->nclosing == l->capclosing) {
		size_t cap = l->capclosing ? l->capclosing * 2 : 64;
		int *v = realloc(l->closing, cap * sizeof(*v));

		if (!v) {
			/* Out of memory: end it now, the ordering is a nicety. */
			shutdown(fd, SHUT_WR);
			close(fd);
			return;
		}
		l->closing = v;
		l->capclosing = cap;
	}
	l->closing[l->nclosing++] = fd;
}

#define MAX_SPARE 64

static void conn_free(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	if (l->nspare == MAX_SPARE) {
		free(c);
		return;
	}
	c->tnext = l->spare;
	l->spare = c;
	l->nspare++;
}

/*
 * The connection is finished: its DONE is queued. The socket closes once the DONE has left;
 * one that lingers (c->linger) keeps its struct until then, and the linger after.
 */
/* Take c out of the loop: epoll, its timer, the list, the count, its output. */
static void conn_unlink(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	/* The master may still hold a copy of the socket: closing ours does not unregister it. */
	if (c->watched)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->watched = 0;
	timer_unlink(l, c);
	l->conns[c->at] = l->conns[--l->nconns]; /* the last takes its place */
	l->conns[c->at]->at = c->at;
	l->open--;
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
}

static void conn_close(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	fdp_worker_done(l->w, c->id);
	conn_unlink(l, c);
	if (c->linger && grow(&l->lingering, l->nlingering, &l->caplingering) == 0) {
		l->lingering[l->nlingering++] = c;
		return;
	}
	/* Accepted here (kernel dispatch): no copy in the master, no DONE to wait for. */
	if (c->id & FDP_CONN_OWN)
		close(c->fd);
	else
		closing_add(l, c->fd);
	conn_free(l, c);
}

/*
 * Hand an idle connection back to the master, for the next generation to serve its next
 * request (a reload). Nothing of that request has been read, so the next worker starts at its
 * first byte. Returns 0 with the connection gone from this loop (its socket is the channel's:
 * no DONE, no shutdown), or -1 when it could not be handed back and is still here.
 */
static int conn_hand_back(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	if (fdp_worker_return(l->w, c->fd, &c->meta) < 0)
		return -1;
	conn_unlink(l, c);
	conn_free(l, c);
	return 0;
}

/*
 * Drop this worker's reference to a connection it will not finish (the master is gone, or the
 * channel is lost): close() only. The master may re-hand a connection it has no ACK for to
 * another worker, and a shutdown() would end it there too.
 */
static void conn_abandon(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	timer_unlink(l, c);
	close(c->fd);
	l->conns[--l->nconns] = NULL; /* callers abandon from the end */
	l->open--;
	free(c->out);
	conn_free(l, c);
}

/* A connection just taken: kept, unread, until its ACK has left (see serve_fresh()). */
static struct fdpass_conn *conn_open(struct fdpass_worker_loop *l, int fd,
                                     const struct fdp_conn *meta)
{
	struct fdpass_conn *c = l->spare;

	if (c) {
		l->spare = c->tnext;
		l->nspare--;
	} else {
		c = malloc(sizeof(*c));
	}
	if (c)
		memset(c, 0, offsetof(struct fdpass_conn, in)); /* in[] is read only up to inlen */
	if (!c || grow(&l->conns, l->nconns, &l->capconns) < 0 ||
	    grow(&l->fresh, l->nfresh, &l->capfresh) < 0) {
		if (c)
			conn_free(l, c);
		fdp_worker_done(l->w, meta->id);
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->id = meta->id;
	c->meta = *meta;
	c->number = ++l->count;
	c->loop = l;
	c->timer = FDPASS_TIMER_NONE;
	c->at = l->nconns;
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

/*
 * The timer a connection waits on. Only a handler with requests has timeouts: a stream (echo)
 * has no request to time.
 */
static enum fdpass_timer timer_want(const struct fdpass_worker_loop *l, const struct fdpass_conn *c)
{
	if (!handler_for(l, c)->on_timeout)
		return FDPASS_TIMER_NONE;
	if (c->outlen > c->outoff)
		return FDPASS_TIMER_WRITE;
	if (c->inlen || !c->answered)
		return FDPASS_TIMER_HEAD;
	return FDPASS_TIMER_IDLE;
}

/* c waits: on the timer its state says (its clock restarted if it moved), and in epoll. */
static void conn_wait(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	enum fdpass_timer k = timer_want(l, c);

	if (k != c->timer || c->rearm)
		timer_set(l, c, k);
	watch(c);
}

/* Close c if it is done: answered with close_after_write and all written. Returns -1 if so. */
static int conn_settle(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	if (c->close_after_write && c->outlen == 0) {
		conn_close(l, c);
		return -1;
	}
	return 0;
}

/* Let the handler take what c->in holds; returns -1 once c is closed. */
static int conn_serve(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	if (handler_for(l, c)->on_data(c) < 0) {
		conn_close(l, c);
		return -1;
	}
	/* A full buffer the handler neither used nor answered can never make progress. */
	if (c->inlen == sizeof(c->in) && !c->close_after_write && !fdpass_conn_output_full(c)) {
		conn_close(l, c);
		return -1;
	}
	return conn_settle(l, c);
}

/* Read what the client sent and let the handler answer, while c may be read. */
static void conn_input(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	while (conn_reads(c)) {
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
		if (conn_serve(l, c) < 0)
			return;
	}
	conn_wait(l, c);
}

/*
 * Write what waits for the client. Once the output falls to the limit, the requests held in
 * c->in are answered and reading resumes; readable: the client sent more meanwhile.
 */
static void conn_output(struct fdpass_worker_loop *l, struct fdpass_conn *c, int readable)
{
	int was_full = fdpass_conn_output_full(c);

	if (write_out(c) < 0) {
		conn_close(l, c);
		return;
	}
	if (conn_settle(l, c) < 0)
		return;
	if (!was_full && !readable) {
		conn_wait(l, c);
		return;
	}
	if (was_full && c->inlen && !fdpass_conn_output_full(c) && conn_serve(l, c) < 0)
		return;
	conn_input(l, c);
}

/*
 * A graceful close, for a connection whose client may still be sending when it is answered
 * (a refused or timed-out request head). Closing a socket with unread input makes the kernel
 * send a reset instead of the FIN (RFC 1122 4.2.2.13), and a reset can make the client's
 * kernel drop our answer before the client has read it. So: send the FIN (shutdown), then
 * read and drop what still comes until the client closes too, or for at most LINGER_MS. Only
 * once the DONE has left, as for every finished socket.
 */
static void linger_end(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	if (c->watched)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	timer_unlink(l, c);
	close(c->fd);
	conn_free(l, c);
}

static void linger_input(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

	for (int i = 0; i < LINGER_READS; i++) {
		ssize_t n = read(c->fd, c->in, sizeof(c->in));

		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		linger_end(l, c); /* the client closed (or failed): nothing left to reset */
		return;
	}
	if (!c->watched && epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		linger_end(l, c);
		return;
	}
	c->watched = 1;
}

static void linger_start(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	shutdown(c->fd, SHUT_WR);
	timer_set(l, c, FDPASS_TIMER_LINGER);
	linger_input(l, c);
}

static void conn_event(struct fdpass_worker_loop *l, struct fdpass_conn *c, unsigned events)
{
	if (c->timer == FDPASS_TIMER_LINGER)
		linger_input(l, c);
	/* A client gone while its output waits: the write says so (it is not read meanwhile). */
	else if (c->outlen > c->outoff && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		conn_output(l, c, (events & EPOLLIN) != 0);
	else
		conn_input(l, c);
}

/* A request head did not complete in time: the handler answers it (408), or it just goes. */
static void head_expired(struct fdpass_worker_loop *l, struct fdpass_conn *c)
{
	if (!c->inlen || handler_for(l, c)->on_timeout(c) < 0 || !c->close_after_write) {
		conn_close(l, c);
		return;
	}
	if (conn_settle(l, c) == 0)
		conn_wait(l, c); /* the answer waits for the client: on the write timer */
}

/*
 * Act on every deadline that has passed. Each action takes the connection off its list (it
 * closes it, or moves it to another list's tail), so each loop ends.
 */
static void expire_timers(struct fdpass_worker_loop *l)
{
	for (int k = 0; k < FDPASS_TIMERS; k++) {
		struct timer_list *t = &l->timers[k];

		while (t->head && t->head->since + t->ms <= l->now) {
			if (k == FDPASS_TIMER_HEAD)
				head_expired(l, t->head);
			else if (k == FDPASS_TIMER_LINGER)
				linger_end(l, t->head);
			else
				conn_close(l, t->head); /* idle, or a client that takes no output */
		}
	}
}

/* epoll_wait()'s timeout: until the first deadline, -1 for none. */
static int next_timeout(const struct fdpass_worker_loop *l)
{
	long long first = -1, wait;

	for (int k = 0; k < FDPASS_TIMERS; k++) {
		const struct fdpass_conn *c = l->timers[k].head;

		if (c && (first < 0 || c->since + l->timers[k].ms < first))
			first = c->since + l->timers[k].ms;
	}
	if (first < 0)
		return -1;
	wait = first - clock_ms();
	return wait < 0 ? 0 : wait > INT_MAX ? INT_MAX : (int)wait;
}

/*
 * The master asked for a drain: idle connections of a protocol with requests (the handler of
 * each connection's tag says) go now, busy ones when they finish. At a reload they go to the
 * next generation, which serves the client's next request on the same TCP connection; at a
 * stop (or if it cannot take them) they are closed. Idle means between requests:
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
		/* Idle: nothing unanswered read, nothing to send, no body of the last request due. */
		if (i >= l->nconns || l->conns[i] != c || c->inlen != 0 || c->outlen != 0 ||
		    c->body_left != 0)
			continue;
		if (!fdp_worker_handback(l->w) || conn_hand_back(l, c) < 0)
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
	size_t n = l->nfresh, cap = l->capfresh;

	/* conn_input() may close connections; taking the list first keeps it out of the way.
	 * The two lists trade places, so that no wake-up allocates one. */
	l->fresh = l->served;
	l->capfresh = l->capserved;
	l->nfresh = 0;
	l->served = fresh;
	l->capserved = cap;
	for (size_t i = 0; i < n; i++)
		fresh[i]->ack_sent = 1;
	for (size_t i = 0; i < n; i++)
		conn_input(l, fresh[i]); /* closes it, or watches it */
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
		if (fd == -EAGAIN || fd == -ENOMEM) /* -ENOMEM: the connection waits for the next try */
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
 * The lingering ones start their linger now; an exiting worker does not wait for them.
 */
static void close_finished(struct fdpass_worker_loop *l, int exiting)
{
	for (size_t i = 0; i < l->nclosing; i++)
		shutdown(l->closing[i], SHUT_WR);
	fdp_close_fds(l->closing, l->nclosing);
	l->nclosing = 0;
	for (size_t i = 0; i < l->nlingering; i++) {
		if (exiting) {
			shutdown(l->lingering[i]->fd, SHUT_WR);
			linger_end(l, l->lingering[i]);
		} else {
			linger_start(l, l->lingering[i]);
		}
	}
	l->nlingering = 0;
	while (exiting && l->timers[FDPASS_TIMER_LINGER].head)
		linger_end(l, l->timers[FDPASS_TIMER_LINGER].head);
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

	while (err == 0 && l->nfresh) {
		serve_fresh(l);
		err = fdp_worker_flush(l->w);
	}
	/* Still waiting for the channel: the worker watches it for writability in our set. */
	if (err != -EAGAIN)
		close_finished(l, 0);
}

/* The limits asked for, a zero (or absent) one by its default; the timer lists' timeouts. */
static void set_limits(struct fdpass_worker_loop *l, const struct fdpass_limits *limits)
{
	const struct fdpass_limits none = {0};
	const struct fdpass_limits *in = limits ? limits : &none;

	l->limits.header_timeout_ms =
	        in->header_timeout_ms ? in->header_timeout_ms : FDPASS_HEADER_TIMEOUT_MS;
	l->limits.idle_timeout_ms =
	        in->idle_timeout_ms ? in->idle_timeout_ms : FDPASS_IDLE_TIMEOUT_MS;
	l->limits.max_output = in->max_output ? in->max_output : FDPASS_MAX_OUTPUT;
	l->timers[FDPASS_TIMER_HEAD].ms = l->limits.header_timeout_ms;
	l->timers[FDPASS_TIMER_IDLE].ms = l->limits.idle_timeout_ms;
	l->timers[FDPASS_TIMER_WRITE].ms = l->limits.idle_timeout_ms;
	l->timers[FDPASS_TIMER_LINGER].ms = LINGER_MS;
}

int fdpass_handler_run(struct fdp_worker *w, const struct fdpass_handler *h,
                       const struct fdpass_limits *limits)
{
	struct fdpass_worker_loop l = {.w = w, .h = h};
	int status;

	set_limits(&l, limits);
	/* Kernel dispatch: connections come from our slot's sockets too, behind the same fd. */
	if (limits && limits->take_listeners && fdp_worker_take_listeners(w) < 0)
		return 1;
	l.now = clock_ms();
	l.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l.epfd < 0)
		return 1;
	/* The worker's channel and sockets in our own set, beside the connections (whose
	 * data.ptr are structs, never below 64 KiB): data.u64 from 1 are the worker's. */
	if (fdp_worker_watch(w, l.epfd, 1) < 0) {
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
		n = epoll_wait(l.epfd, evs, MAX_EVENTS, next_timeout(&l));
		l.now = clock_ms();
		for (int i = 0; i < n; i++) {
			if (fdp_worker_event(w, &evs[i]))
				channel = 1;
			else
				conn_event(&l, evs[i].data.ptr, evs[i].events);
		}
		/* After the events: a head completed in this batch is served, not timed out. */
		expire_timers(&l);
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
	close_finished(&l, 1);
	while (l.spare) {
		struct fdpass_conn *c = l.spare;

		l.spare = c->tnext;
		free(c);
	}
	free(l.closing);
	free(l.lingering);
	free(l.conns);
	free(l.fresh);
	free(l.served);
	close(l.epfd);
	return status;
}
