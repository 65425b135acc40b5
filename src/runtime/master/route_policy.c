/*
 * The route policy: the master looks at what a client sends before choosing its worker.
 *
 * A connection accepted on a route listener is peeked at once. On a TCP listener the kernel
 * completes a connection only once its first bytes are in (TCP_DEFER_ACCEPT, set by kernel.c
 * where fdp__route_defers() says), so the first peek finds them; a client that sends nothing is
 * accepted after the deferral, and a Unix listener's clients come as they connect. Without a
 * key yet, it joins the `reading` list and the master's epoll (edge-triggered: the bytes stay
 * in the socket, so a level-triggered watch would fire for ever); each time more arrives, the
 * stream is peeked again from its first byte into one scratch buffer per master, and the
 * extractor runs over it. Nothing is kept per client but its descriptor and this small
 * record: a thousand slow clients cost no thread and no copy, and a fast one is never queued
 * behind them.
 *
 * Once the key is found, the map or the ring names the slot and the connection goes back to
 * conns.c, which owns it (and lent it here for reading): it hands it to that slot's current
 * worker (the worker reads the stream from its first byte), or when the slot cannot take it now
 * (its worker is restarting, or full) holds it for that slot for up to the route timeout:
 * handing it to another worker would move the key, which is what routing exists to prevent.
 * Every limit ends in the configured failure action, decided here: a deadline, a byte limit,
 * a cap on waiting connections. This file never closes a connection itself: conns.c does, and
 * counts it.
 *
 * The reading list and conns.c's held ring are in deadline order for free: every entry's
 * deadline is its insertion time plus the same timeout, so the expiry check only looks at
 * their heads.
 */
#include "master.h"
#include "route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* What `fdpass status` counts on its "route" line. */
enum fdp__route_counter {
	RC_HASHED,      /* key found, slot from the ring */
	RC_MAPPED,      /* key found, slot from the map */
	RC_TIMEOUT,     /* no key by the deadline */
	RC_TOO_BIG,     /* no key within the byte limit */
	RC_REJECTED,    /* refused by the extractor, or half-closed with part of a key */
	RC_OVERFLOW,    /* accepted past the cap on waiting connections */
	RC_EOF,         /* the client closed, or reset, before sending anything */
	RC_UNAVAILABLE, /* held for its slot until the deadline, the slot never took it */
	RC_DEFAULTED,   /* failures handed to the default worker */
	RC_CLOSED,      /* failures closed */
	RC_NCOUNTERS
};

struct fdp__route_wait {
	struct fdp__watch w; /* first: an epoll event's pointer is the wait's */
	struct fdp__conn c;
	long long deadline;
	int watched; /* in the epoll and the reading list */
	struct fdp__route_wait *prev, *next;
};

struct route_list {
	struct fdp__route_wait *head, *tail;
	size_t n;
};

struct fdp__router {
	struct fdp__route_key key;
	struct fdp__hashring ring;
	struct fdp__route_map map;
	int have_map;
	unsigned timeout_ms, max_pending, default_slot;
	size_t max_bytes;
	enum fdp_route_fail on_fail;
	unsigned char *scratch;
	struct route_list reading;
	uint64_t count[RC_NCOUNTERS];
	char spec[80];
};

static const char *const counter_names[RC_NCOUNTERS] = {
        "hashed",   "mapped", "timeout",     "too_big",   "rejected",
        "overflow", "eof",    "unavailable", "defaulted", "closed",
};

static void list_push(struct route_list *l, struct fdp__route_wait *w)
{
	w->next = NULL;
	w->prev = l->tail;
	if (l->tail)
		l->tail->next = w;
	else
		l->head = w;
	l->tail = w;
	l->n++;
}

static void list_remove(struct route_list *l, struct fdp__route_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		l->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		l->tail = w->prev;
	l->n--;
}

static void router_free(struct fdp__router *r)
{
	if (!r)
		return;
	fdp__hashring_free(&r->ring);
	fdp__route_map_free(&r->map);
	free(r->scratch);
	free(r);
}

/*
 * A router for `workers` slots from rc, not in use yet: fdp__route_open() at the start, and
 * fdp__route_build() at a reconfiguration (the map file is read again). On failure the reason
 * is in err.
 */
static int router_build(const struct fdp_route_config *rc, unsigned workers,
                        struct fdp__router **out, char *err, size_t errlen)
{
	struct fdp__router *r;
	int e;

	if (!rc)
		return fdp__route_error(err, errlen, "no route configuration");
	if ((e = fdp_route_config_check(rc, workers, err, errlen)) < 0)
		return e;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (rc->key)
		fdp__route_key_parse(&r->key, rc->key, err, errlen);
	else
		fdp__route_key_callback(&r->key, rc->key_fn, rc->key_arg);
	snprintf(r->spec, sizeof(r->spec), "%s", rc->key ? rc->key : "callback");
	for (char *p = r->spec; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\')
			*p = '_'; /* the status is space-separated key=value, and `status --json`
			             quotes */
	r->timeout_ms = rc->timeout_ms ? rc->timeout_ms : FDP_ROUTE_TIMEOUT_MS;
	r->max_bytes = rc->max_bytes ? rc->max_bytes : FDP_ROUTE_MAX_BYTES;
	r->max_pending = rc->max_pending ? rc->max_pending : FDP_ROUTE_MAX_PENDING;
	r->on_fail = rc->on_fail;
	r->default_slot = rc->default_worker;
	r->scratch = malloc(r->max_bytes);
	e = r->scratch ? fdp__hashring_build(&r->ring, workers, FDP__RING_POINTS) : -ENOMEM;
	if (e == 0 && rc->map_path) {
		e = fdp__route_map_load(&r->map, rc->map_path, workers, r->key.fold_case, err,
		                        errlen);
		r->have_map = e == 0;
	}
	if (e < 0) {
		if (e == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		router_free(r);
		return e;
	}
	*out = r;
	return 0;
}

int fdp__route_open(struct fdp_master *m, const struct fdp_route_config *rc)
{
	struct fdp__router *r;
	char err[256];
	int e = router_build(rc, m->cfg.workers, &r, err, sizeof(err));

	if (e < 0)
		return e == -ENOMEM ? e : -EINVAL;
	m->router = r;
	fdp__conns_hold_for(m, r->timeout_ms);
	return 0;
}

int fdp__route_build(const struct fdp_route_config *rc, unsigned workers, struct fdp__router **out,
                     char *err, size_t errlen)
{
	return router_build(rc, workers, out, err, errlen);
}

/*
 * Put r in use in place of the current router: the clients still sending their key stay
 * (with the deadline they had; their key then goes through r's map and ring), and so do the
 * counters, so `fdpass status` counts across reloads.
 */
void fdp__route_replace(struct fdp_master *m, struct fdp__router *r)
{
	struct fdp__router *old = m->router;

	if (old) {
		r->reading = old->reading;
		memcpy(r->count, old->count, sizeof(r->count));
		old->reading = (struct route_list){0};
		router_free(old);
	}
	m->router = r;
	fdp__conns_hold_for(m, r->timeout_ms);
}

void fdp__route_discard(struct fdp__router *r)
{
	router_free(r);
}

void fdp__route_forked(struct fdp_master *d, struct fdp__router *r)
{
	r->reading = (struct route_list){0}; /* the master's to serve, not this process's */
	memset(r->count, 0, sizeof(r->count));
	d->router = r;
}

/*
 * A route listener over TCP is deferred (fdp__kernel_defer(): TCP_DEFER_ACCEPT), so that the
 * master's first peek finds the key: without it nearly every connection came before its
 * request, and cost a peek that found nothing, an epoll ADD, a wake-up, a second peek and a
 * DEL, about a fifth of the master's CPU per routed connection (docs/BENCHMARKS.md, "Routing:
 * the master's cost"). A client that sends nothing is accepted once the deferral ends, and its
 * route timeout counts from there; so only where that timeout is at least as long.
 */
int fdp__route_defers(const struct fdp_master *m)
{
	return m->router && m->router->timeout_ms >= FDP__DEFER_S * 1000;
}

/* Take w out of the epoll and the reading list, if it is there. */
static void unwatch(struct fdp_master *m, struct fdp__route_wait *w)
{
	if (!w->watched)
		return;
	epoll_ctl(m->epfd, EPOLL_CTL_DEL, w->c.fd, NULL);
	list_remove(&m->router->reading, w);
	w->watched = 0;
}

/* Close w's connection, counted under why, and forget w. */
static void wait_close(struct fdp_master *m, struct fdp__route_wait *w, enum fdp__close_reason why)
{
	unwatch(m, w);
	fdp__conns_route_close(m, &w->c, why);
	free(w);
}

void fdp__route_close(struct fdp_master *m)
{
	struct fdp__router *r = m->router;

	if (!r)
		return;
	while (r->reading.head)
		wait_close(m, r->reading.head, CLOSE_SHUTDOWN); /* it leaves the list (unwatch) */
	fdp__conns_close_held(m, CLOSE_SHUTDOWN);
	router_free(r);
	m->router = NULL;
}

int fdp__route_full(const struct fdp_master *m)
{
	const struct fdp__router *r = m->router;

	return r && r->reading.n + m->conns.held.n >= r->max_pending;
}

size_t fdp__route_room(const struct fdp_master *m)
{
	const struct fdp__router *r = m->router;
	size_t busy;

	if (!r)
		return SIZE_MAX;
	busy = r->reading.n + m->conns.held.n;
	return busy < r->max_pending ? r->max_pending - busy : 0;
}

/* The slot is chosen: conns.c hands the connection to it now, or holds it for that slot. */
static void deliver(struct fdp_master *m, struct fdp__route_wait *w)
{
	unwatch(m, w);
	fdp__conns_route_deliver(m, &w->c);
	free(w);
}

/* No key will come for c (counted under why): to the default worker, or closed. */
static void route_fail(struct fdp_master *m, struct fdp__conn *c, enum fdp__route_counter why)
{
	struct fdp__router *r = m->router;

	r->count[why]++;
	if (r->on_fail == FDP_ROUTE_FAIL_DEFAULT && !c->route_failed) {
		r->count[RC_DEFAULTED]++;
		c->route_failed = 1;
		c->routed = 1;
		c->slot = r->default_slot;
		fdp__conns_route_deliver(m, c);
		return;
	}
	r->count[RC_CLOSED]++;
	fdp__conns_route_close(m, c, CLOSE_ROUTE);
}

static void wait_fail(struct fdp_master *m, struct fdp__route_wait *w, enum fdp__route_counter why)
{
	unwatch(m, w);
	route_fail(m, &w->c, why);
	free(w);
}

/*
 * Peek at what the client has sent and act on it. Returns 1 while the connection still waits
 * for its key, 0 once it is dealt with (handed, held, failed or closed; w is no longer ours).
 */
static int examine(struct fdp_master *m, struct fdp__route_wait *w, int hangup)
{
	struct fdp__router *r = m->router;
	struct fdp__route_span key;
	enum fdp__route_verdict v;
	ssize_t n;
	int slot = -1;

	n = recv(w->c.fd, r->scratch, r->max_bytes, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR) && !hangup)
		return 1;
	if (n <= 0) { /* gone before sending anything, or reset: nothing to serve */
		r->count[RC_EOF]++;
		wait_close(m, w, CLOSE_ROUTE);
		return 0;
	}
	v = fdp__route_extract(&r->key, r->scratch, (size_t)n, r->max_bytes, &key);
	if (v == ROUTE_MORE && !hangup)
		return 1;
	if (v != ROUTE_FOUND) {
		/* Half-closed without a whole key (MORE with hangup): it never will have one. */
		wait_fail(m, w, v == ROUTE_TOO_BIG ? RC_TOO_BIG : RC_REJECTED);
		return 0;
	}
	if (r->key.fold_case)
		fdp__route_fold(r->scratch + key.off, key.len);
	if (r->have_map)
		slot = fdp__route_map_lookup(&r->map, r->scratch + key.off, key.len);
	r->count[slot >= 0 ? RC_MAPPED : RC_HASHED]++;
	if (slot < 0)
		slot = (int)fdp__hashring_slot(&r->ring,
		                               fdp__route_hash(r->scratch + key.off, key.len));
	w->c.routed = 1;
	w->c.slot = (unsigned)slot;
	deliver(m, w);
	return 0;
}

void fdp__route_accept(struct fdp_master *m, const struct fdp__conn *c)
{
	struct fdp__router *r = m->router;
	struct fdp__route_wait *w = calloc(1, sizeof(*w));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET};

	if (!w) {
		fdp__conns_route_close(m, &(struct fdp__conn){.fd = c->fd, .listener = c->listener},
		                       CLOSE_ERROR);
		return;
	}
	w->w.kind = W_ROUTE;
	w->c = *c;
	if (r->reading.n + m->conns.held.n >= r->max_pending) {
		wait_fail(m, w,
		          RC_OVERFLOW); /* not from accepts (they stop at the cap): a safety net */
		return;
	}
	if (!examine(m, w, 0))
		return; /* the key was there already: the usual case, no epoll round trip */
	w->deadline = c->since_ms + r->timeout_ms;
	ev.data.ptr = &w->w;
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		fdp__log(m, FDP_LOG_WARN, "route: epoll_ctl: %s", strerror(errno));
		wait_close(m, w, CLOSE_ERROR); /* not watched: nothing to unwatch */
		return;
	}
	w->watched = 1;
	list_push(&r->reading, w);
}

void fdp__route_input(struct fdp_master *m, struct fdp__watch *watch, uint32_t events)
{
	examine(m, (struct fdp__route_wait *)watch,
	        (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
}

/* Reading deadlines fail as timed out; held ones (conns.c's) expire, or close if failed already. */
void fdp__route_timers(struct fdp_master *m, long long now, long long *next)
{
	struct fdp__router *r = m->router;
	struct fdp__route_wait *w;
	struct fdp__conn c;
	long long held;

	if (!r)
		return;
	if (m->stopping) {
		while ((w = r->reading.head))
			wait_close(m, w, CLOSE_SHUTDOWN);
		fdp__conns_close_held(m, CLOSE_SHUTDOWN);
		return;
	}
	while ((w = r->reading.head) && w->deadline <= now)
		wait_fail(m, w, RC_TIMEOUT);
	while (fdp__conns_route_expired(m, now, &c)) {
		if (c.route_failed) {
			r->count[RC_CLOSED]++;
			fdp__conns_route_close(m, &c, CLOSE_ROUTE);
		} else {
			route_fail(m, &c, RC_UNAVAILABLE);
		}
	}
	if (r->reading.head && r->reading.head->deadline < *next)
		*next = r->reading.head->deadline;
	held = fdp__conns_held_next(m);
	if (held && held < *next)
		*next = held;
}

/*
 * What the dispatchers counted (their rows of the shared mapping, disps.c), which the master's
 * status and metrics add to its own; nothing in a dispatcher, which reports its own alone.
 */
static void others_counts(const struct fdp_master *m, struct fdp__disp_row *sum)
{
	memset(sum, 0, sizeof(*sum));
	if (!m->dshared || m->disp_self)
		return;
	for (unsigned t = 0; t < FDP__DISP_TAGS; t++) {
		const struct fdp__disp_row *row = &m->dshared->row[t];

		for (int i = 0; i < RC_NCOUNTERS; i++)
			sum->route[i] += __atomic_load_n(&row->route[i], __ATOMIC_RELAXED);
		sum->waiting += __atomic_load_n(&row->waiting, __ATOMIC_RELAXED);
		sum->held += __atomic_load_n(&row->held, __ATOMIC_RELAXED);
	}
}

void fdp__route_status(const struct fdp_master *m, char *buf, size_t size)
{
	const struct fdp__router *r = m->router;
	size_t off;

	buf[0] = '\0';
	if (!r)
		return;
	struct fdp__disp_row others;

	others_counts(m, &others);
	off = (size_t)snprintf(buf, size, "route key=%s on_fail=%s waiting=%zu held=%zu", r->spec,
	                       r->on_fail == FDP_ROUTE_FAIL_DEFAULT ? "default" : "close",
	                       r->reading.n + (size_t)others.waiting,
	                       m->conns.held.n + (size_t)others.held);
	for (int i = 0; i < RC_NCOUNTERS && off < size; i++)
		off += (size_t)snprintf(buf + off, size - off, " %s=%llu", counter_names[i],
		                        (unsigned long long)(r->count[i] + others.route[i]));
	if (off < size)
		snprintf(buf + off, size - off, "\n");
}

void fdp__route_stats(const struct fdp_master *m, struct fdp__route_stats *st)
{
	const struct fdp__router *r = m->router;
	struct fdp__disp_row o;
	uint64_t c[RC_NCOUNTERS];

	memset(st, 0, sizeof(*st));
	if (!r)
		return;
	others_counts(m, &o);
	for (int i = 0; i < RC_NCOUNTERS; i++)
		c[i] = r->count[i] + o.route[i];
	st->waiting = r->reading.n + (size_t)o.waiting;
	st->held = m->conns.held.n + (size_t)o.held;
	st->on_fail_default = r->on_fail == FDP_ROUTE_FAIL_DEFAULT;
	st->hashed = c[RC_HASHED];
	st->mapped = c[RC_MAPPED];
	st->timeout = c[RC_TIMEOUT];
	st->too_big = c[RC_TOO_BIG];
	st->rejected = c[RC_REJECTED];
	st->overflow = c[RC_OVERFLOW];
	st->eof = c[RC_EOF];
	st->unavailable = c[RC_UNAVAILABLE];
	st->defaulted = c[RC_DEFAULTED];
	st->closed = c[RC_CLOSED];
}
