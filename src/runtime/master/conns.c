/*
 * The owner of every connection the master holds. A connection is in exactly one place: the
 * pending ring (accepted, waiting for any worker), a worker's in-flight ring (handed, not yet
 * acknowledged: the master's copy is lent to the CONN message until it leaves), the held ring
 * (routed, waiting for its own slot's worker), or lent to route_policy.c while it reads the
 * routing key. Only this file creates, moves, hands, counts and closes them, so a connection
 * that cannot be served is closed and counted with its reason, never dropped silently.
 *
 * It calls only policy.c (which worker) and log.c. A failure it meets on a worker's channel is
 * flagged on the worker and handled later by the loop (supervise.c), which is above it.
 */
#include "master.h"
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A FIFO that can also take items at its front (re-handed ones go first). */
static int ring_push(struct fdp__ring *r, const struct fdp__conn *c, int front)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct fdp__conn *v = malloc(cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < r->n; i++)
			v[i] = r->v[(r->head + i) % r->cap];
		free(r->v);
		r->v = v;
		r->cap = cap;
		r->head = 0;
	}
	if (front) {
		r->head = (r->head + r->cap - 1) % r->cap;
		r->v[r->head] = *c;
	} else {
		r->v[(r->head + r->n) % r->cap] = *c;
	}
	r->n++;
	return 0;
}

static struct fdp__conn *ring_at(struct fdp__ring *r, size_t i)
{
	return &r->v[(r->head + i) % r->cap];
}

static void ring_remove(struct fdp__ring *r, size_t i)
{
	if (i == 0) {
		r->head = (r->head + 1) % r->cap;
	} else {
		for (size_t k = i; k + 1 < r->n; k++)
			*ring_at(r, k) = *ring_at(r, k + 1);
	}
	r->n--;
}

/* Only when the master is freed: nothing is counted any more. */
static void ring_free(struct fdp__ring *r)
{
	for (size_t i = 0; i < r->n; i++)
		close(ring_at(r, i)->fd);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static void close_conn(struct fdp_master *m, struct fdp__conn *c, enum fdp__close_reason why)
{
	close(c->fd);
	c->fd = -1;
	m->conns.closed[why]++;
	m->listeners[c->listener].closed[why]++;
}

/* The monotonic clock in nanoseconds (fdp__now_ms()'s, finer): for the ACK latency. */
static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Send c to p. On success p holds c in its in-flight ring (the master's copy of the socket),
 * which is lent to the channel message that carries it. A channel that failed loses p: flagged,
 * for the loop to handle (fdp__supervise_flagged()). Returns 0, -ENOBUFS when p cannot take it
 * now, or another negative errno.
 */
static int hand_to(struct fdp_master *m, struct fdp__proc *p, const struct fdp__conn *c)
{
	unsigned char buf[FDP_PROTO_CONN_MAX];
	size_t len = fdp_proto_conn_encode(buf, c->id, c->listener, m->listeners[c->listener].tag,
	                                   &c->peer, c->peer_len);
	int fd = c->fd, err;

	struct fdp__conn *held;

	if (ring_push(&p->inflight, c, 0) < 0)
		return -ENOMEM;
	held = ring_at(&p->inflight, p->inflight.n - 1);
	held->seq = fdp_channel_sent(p->ch) + fdp_channel_queued(p->ch);
	held->handed_ns = now_ns();
	held->handed_ms = held->handed_ns / 1000000; /* as fdp__now_ms() would say */
	/* Lent, not given: the master's copy lives in p->inflight until the worker's ACK, which
	 * cannot come before the message has left, and the channel is closed before a lost
	 * worker's connections are re-handed. */
	err = fdp_channel_send(p->ch, FDP_PROTO_CONN, buf, len, &fd, 1,
	                       FDP_CHANNEL_MORE | FDP_CHANNEL_LEND);
	if (err < 0) {
		p->inflight.n--; /* the push above was at the back */
		if (err == -ENOBUFS)
			p->dirty = 1; /* flush it; the policy skips it while full */
		else if (err != -EMFILE && err != -ENFILE && err != -ENOMEM)
			/* Lost: its connections come back once it is gone. */
			fdp__proc_flag_lost(m, p, err);
		return err;
	}
	p->open++;
	p->handed += !c->again; /* recycle.c counts the clients that came to it */
	p->dirty = 1;
	m->conns.handed++;
	m->slots[p->slot].handed++;
	m->listeners[c->listener].handovers++;
	return 0;
}

/* Hand c to the worker the policy picks; -EAGAIN when no worker can take it now. */
static int hand_over(struct fdp_master *m, const struct fdp__conn *c)
{
	for (unsigned tries = 0; tries <= m->cfg.workers; tries++) {
		struct fdp__proc *p = fdp__policy_pick(m, c);
		int err;

		if (!p)
			return -EAGAIN;
		err = hand_to(m, p, c);
		if (err == 0)
			return 0;
		if (err == -EMFILE || err == -ENFILE || err == -ENOMEM)
			return err; /* the master itself is short: keep it pending, try later */
	}
	return -EAGAIN;
}

/* A routed connection goes to its own slot's current worker or nowhere: its key must not move. */
static int hand_to_slot(struct fdp_master *m, const struct fdp__conn *c)
{
	struct fdp__proc *p = m->slots[c->slot].proc;

	if (!fdp__proc_can_take(m, p))
		return -EAGAIN;
	return hand_to(m, p, c);
}

/*
 * A new connection from listener l. A route listener's is lent to the route policy at once
 * (returns 1, *lent filled): it comes back through fdp__conns_route_*(). Any other is handed
 * now, or waits in the pending ring (returns 0).
 */
int fdp__conns_accept(struct fdp_master *m, const struct fdp__listener *l,
                      const struct fdp_accepted *a, long long now, struct fdp__conn *lent)
{
	struct fdp__conn c = {.id = ++m->conns.next_id,
	                      .fd = a->fd,
	                      .listener = l->w.index,
	                      .since_ms = now,
	                      .peer_len = a->peer_len};

	memcpy(&c.peer, &a->peer, a->peer_len);
	m->conns.accepted++;
	m->listeners[c.listener].accepted++;
	if (l->policy == FDP_POLICY_ROUTE) {
		m->conns.routing++;
		*lent = c;
		return 1;
	}
	/* Keep arrival order: nothing overtakes a connection already waiting. */
	if (m->conns.pending.n == 0 && hand_over(m, &c) == 0)
		return 0;
	if (ring_push(&m->conns.pending, &c, 0) < 0)
		close_conn(m, &c, CLOSE_ERROR);
	return 0;
}

void fdp__conns_dispatch_pending(struct fdp_master *m)
{
	struct fdp__ring *r = &m->conns.pending;

	while (r->n) {
		struct fdp__conn c = *ring_at(r, 0);

		ring_remove(r, 0);
		if (hand_over(m, &c) < 0) {
			/* Back where it was: the slot just freed, so this push cannot fail. */
			ring_push(r, &c, 1);
			break;
		}
	}
}

/*
 * Close what has waited FDP__PENDING_TIMEOUT, and lower *next to the next expiry. The whole
 * ring, not only its head: a connection coming back from a dead worker goes to the front with
 * its wait started over, ahead of older ones.
 */
void fdp__conns_expire_pending(struct fdp_master *m, long long now, long long *next)
{
	struct fdp__ring *r = &m->conns.pending;

	for (size_t i = 0; i < r->n;) {
		struct fdp__conn *c = ring_at(r, i);
		long long due = c->since_ms + FDP__PENDING_TIMEOUT;

		if (now < due) {
			if (due < *next)
				*next = due;
			i++;
			continue;
		}
		close_conn(m, c, CLOSE_NO_WORKER);
		ring_remove(r, i);
		fdp__log_limited(m, &m->rl_expire, FDP_LOG_WARN,
		                 "closed a connection that waited %d ms with no worker to take it",
		                 FDP__PENDING_TIMEOUT);
	}
}

/*
 * A ready worker that leaves a connection unacknowledged past the deadline has stopped reading
 * its channel (hung, or stuck in its own code): it would swallow its share of clients for
 * good. Flag it lost with -ETIMEDOUT: nothing more goes to it, and supervise.c kills it, reads
 * the ACKs still in its channel, and hands the rest to other workers once it is gone, so none
 * is served twice. The in-flight ring is in hand-over order: its head is the oldest. A worker
 * not ready yet is the start timeout's; its deadlines start when it says READY.
 */
void fdp__conns_ack_deadlines(struct fdp_master *m, long long now, long long *next)
{
	long long wait = m->cfg.ack_timeout_ms ? m->cfg.ack_timeout_ms : FDP__ACK_WAIT_MS;

	for (struct fdp__proc *p = m->procs; p; p = p->next) {
		struct fdp__conn *oldest;
		long long due;

		if (!p->said_ready || !p->inflight.n || !fdp__proc_usable(p))
			continue;
		oldest = ring_at(&p->inflight, 0);
		due = (oldest->handed_ms > p->ready_ms ? oldest->handed_ms : p->ready_ms) + wait;
		if (now < due) {
			if (due < *next)
				*next = due;
			continue;
		}
		m->conns.ack_timeouts++;
		m->slots[p->slot].ack_timeouts++;
		fdp__log(m, FDP_LOG_WARN,
		         "worker %u pid %d acknowledged no connection for %lld ms (%zu waiting): "
		         "killing it; they go to other workers",
		         p->slot, (int)p->pid, wait, p->inflight.n);
		fdp__proc_flag_lost(m, p, -ETIMEDOUT);
	}
}

/*
 * p has its copy of connection id: close ours. An acknowledgement for a message still in the
 * channel's queue is a lie (the master's copy is lent to that queued message and its number
 * could be reused at once), and so is one for a connection p does not hold (each is
 * acknowledged once): the worker is broken. Returns 0 or -EPROTO.
 */
int fdp__conns_ack(struct fdp_master *m, struct fdp__proc *p, uint64_t id)
{
	struct fdp__ring *r = &p->inflight;
	size_t i = 0;
	long long ns;
	unsigned b = 0;

	/* Acknowledgements come in hand-over order, so the match is almost always first. */
	while (i < r->n && ring_at(r, i)->id != id)
		i++;
	if (i == r->n || ring_at(r, i)->seq >= fdp_channel_sent(p->ch))
		return -EPROTO;
	ns = now_ns() - ring_at(r, i)->handed_ns;
	while (b < FDP__ACK_BUCKETS && ns > fdp__ack_bound_ns(b))
		b++;
	m->conns.ack_latency[b]++;
	m->conns.ack_latency_sum_ns += (uint64_t)(ns > 0 ? ns : 0);
	m->conns.acked++;
	m->slots[p->slot].acked++;
	close(ring_at(r, i)->fd);
	ring_remove(r, i);
	return 0;
}

/* Finished connections: never more than were handed to p. Returns 0 or -EPROTO. */
int fdp__conns_done(struct fdp_master *m, struct fdp__proc *p, size_t n)
{
	if (n > p->open)
		return -EPROTO;
	p->open -= n;
	p->served += n;
	m->slots[p->slot].served += n;
	return 0;
}

/* Hold a routed connection for its slot until the route timeout; 0, or -ENOMEM. */
static int hold(struct fdp_master *m, struct fdp__conn *c)
{
	c->held_until = fdp__now_ms() + m->conns.hold_ms;
	return ring_push(&m->conns.held, c, 0);
}

/* Where a dead worker's unacknowledged connection goes: 1 if handed again, 0 if closed. */
static int take_back_one(struct fdp_master *m, struct fdp__conn *c)
{
	/*
	 * A routed connection waits for its own slot's next worker: its key must not move, so it
	 * never joins the pending ring, which any worker serves. A drain closes what waits for a
	 * key or a slot, so then it is closed at once.
	 */
	if (c->routed && !m->stopping && hold(m, c) == 0)
		return 1;
	if (c->routed)
		close_conn(m, c, m->stopping ? CLOSE_SHUTDOWN : CLOSE_ERROR);
	else if (m->stopping != 2 && ring_push(&m->conns.pending, c, 1) == 0)
		return 1;
	else
		close_conn(m, c, CLOSE_SHUTDOWN);
	return 0;
}

/*
 * After an upgrade's new master took over, what this master would close for want of a worker
 * (an idle keep-alive connection handed back, one still waiting for its routing key or its
 * slot: nothing of it was read) goes to the new master instead (upgrade.c sends them), if
 * its listener is the new master's too.
 * Returns 1 when c was kept for it.
 */
static int forward(struct fdp_master *m, const struct fdp__conn *c)
{
	/* Only the listeners it took: one its arguments dropped is not the new master's. */
	return m->up.committed && m->up.sock >= 0 && !m->up.ended &&
	       m->listeners[c->listener].handed && ring_push(&m->conns.forward, c, 0) == 0;
}

/*
 * p hands back a connection it had acknowledged, with nothing read of the client's next
 * request (a keep-alive connection between requests, at a reload): no longer p's to count as
 * open, it goes to another worker like one taken back from a dead worker, and the next worker
 * reads the request from its first byte. Routed, it keeps p's slot, whose successor takes it.
 */
void fdp__conns_returned(struct fdp_master *m, struct fdp__proc *p, int fd,
                         const struct fdp_conn *meta)
{
	struct fdp__conn c = {.id = meta->id,
	                      .fd = fd,
	                      .listener = meta->listener < m->nlisteners ? meta->listener : 0,
	                      .since_ms = fdp__now_ms(),
	                      .peer_len = meta->peer_len};

	memcpy(&c.peer, &meta->peer, meta->peer_len);
	c.again = 1;
	c.routed = m->listeners[c.listener].policy == FDP_POLICY_ROUTE;
	c.slot = p->slot;
	/* Accepted by the worker itself, or handed by a dispatcher: new to the master. */
	if ((meta->id & FDP_CONN_OWN) || fdp__disp_tag(meta->id))
		c.id = ++m->conns.next_id;
	if (!(meta->id & FDP_CONN_OWN) && p->open)
		p->open--;
	m->conns.returned++;
	m->slots[p->slot].returned++;
	if (!forward(m, &c))
		take_back_one(m, &c); /* or closed, counted by its reason */
}

struct fdp__conn *fdp__conns_forward_next(struct fdp_master *m)
{
	return m->conns.forward.n ? ring_at(&m->conns.forward, 0) : NULL;
}

/* The first one was sent to the new master (a duplicate went with the message) or not. */
void fdp__conns_forward_done(struct fdp_master *m, int sent)
{
	struct fdp__conn *c = ring_at(&m->conns.forward, 0);

	if (sent) {
		close(c->fd);
		m->conns.forwarded++;
	} else {
		close_conn(m, c, CLOSE_SHUTDOWN);
	}
	ring_remove(&m->conns.forward, 0);
}

/* p is gone: what it did not acknowledge goes to another worker (or is closed, and logged). */
void fdp__conns_take_back(struct fdp_master *m, struct fdp__proc *p)
{
	size_t n = p->inflight.n, again = 0;
	long long now = fdp__now_ms();
	/* What it acknowledged and had not reported done was its own: lost with it. */
	uint64_t lost = p->open > n ? p->open - n : 0;

	m->conns.lost += lost;
	m->slots[p->slot].lost += lost;
	if (lost)
		fdp__log(m, FDP_LOG_WARN,
		         "worker %u pid %d died with %llu acknowledged connection(s) not done: lost",
		         p->slot, (int)p->pid, (unsigned long long)lost);

	/* In reverse, each to the front: they keep their order, ahead of newer arrivals. */
	for (size_t i = n; i-- > 0;) {
		struct fdp__conn *c = ring_at(&p->inflight, i);

		c->since_ms = now; /* its wait for a worker starts over */
		c->again = 1;
		again += (size_t)take_back_one(m, c);
	}
	m->conns.rehanded += again;
	m->slots[p->slot].rehanded += again;
	if (again)
		fdp__log(m, FDP_LOG_WARN,
		         "worker %u pid %d left %zu connection(s) unacknowledged; handing them to "
		         "%s",
		         p->slot, (int)p->pid, again,
		         m->stopping ? "a worker still taking connections" : "other workers");
	if (again < n)
		fdp__log(m, FDP_LOG_WARN,
		         "worker %u pid %d left %zu connection(s) unacknowledged; closed them",
		         p->slot, (int)p->pid, n - again);
	free(p->inflight.v);
	memset(&p->inflight, 0, sizeof(p->inflight));
	p->open = 0;
}

/* The route timeout, which a routed connection waiting for its slot's worker is given. */
void fdp__conns_hold_for(struct fdp_master *m, unsigned ms)
{
	m->conns.hold_ms = ms;
}

/* The route policy gives back c, its slot chosen: to that slot's worker now, or held for it. */
void fdp__conns_route_deliver(struct fdp_master *m, struct fdp__conn *c)
{
	m->conns.routing--;
	if (hand_to_slot(m, c) == 0)
		return;
	if (hold(m, c) < 0)
		close_conn(m, c, CLOSE_ERROR);
}

/* The route policy is done with c without serving it: closed, counted under why. */
void fdp__conns_route_close(struct fdp_master *m, struct fdp__conn *c, enum fdp__close_reason why)
{
	m->conns.routing--;
	if (why != CLOSE_SHUTDOWN || !forward(m, c))
		close_conn(m, c, why);
}

/* Lend the route policy the first held connection whose time is up (1, *c), for its failure
 * action; 0 when none is due. The ring is in deadline order: every hold is as long. */
int fdp__conns_route_expired(struct fdp_master *m, long long now, struct fdp__conn *c)
{
	struct fdp__ring *r = &m->conns.held;

	if (!r->n || ring_at(r, 0)->held_until > now)
		return 0;
	*c = *ring_at(r, 0);
	ring_remove(r, 0);
	m->conns.routing++;
	return 1;
}

/* When the next held connection's time is up; 0 when none is held. */
long long fdp__conns_held_next(const struct fdp_master *m)
{
	const struct fdp__ring *r = &m->conns.held;

	return r->n ? r->v[r->head].held_until : 0;
}

/* Try every held connection again, in order: a slot may have room or a new worker now. */
void fdp__conns_dispatch_held(struct fdp_master *m)
{
	struct fdp__ring *r = &m->conns.held;

	for (size_t k = r->n; k > 0; k--) {
		struct fdp__conn c = *ring_at(r, 0);

		ring_remove(r, 0);
		if (hand_to_slot(m, &c) < 0)
			ring_push(r, &c, 0); /* to the back, where a slot just freed: cannot fail */
	}
}

void fdp__conns_close_held(struct fdp_master *m, enum fdp__close_reason why)
{
	while (m->conns.held.n) {
		if (why != CLOSE_SHUTDOWN || !forward(m, ring_at(&m->conns.held, 0)))
			close_conn(m, ring_at(&m->conns.held, 0), why);
		ring_remove(&m->conns.held, 0);
	}
}

/* The run is over: what still waits for a worker is closed. */
void fdp__conns_shutdown(struct fdp_master *m)
{
	while (m->conns.pending.n) {
		close_conn(m, ring_at(&m->conns.pending, 0), CLOSE_SHUTDOWN);
		ring_remove(&m->conns.pending, 0);
	}
}

uint64_t fdp__conns_open(const struct fdp_master *m)
{
	uint64_t n = m->conns.pending.n + m->conns.held.n + m->conns.routing;

	for (const struct fdp__proc *p = m->procs; p; p = p->next)
		n += p->open;
	/* A dispatcher's own are in flight; the master counts the rest (dispatcher.c). */
	if (m->disp_self)
		n += __atomic_load_n(&m->dshared->open_total, __ATOMIC_RELAXED);
	return n;
}

void fdp__conns_free_proc(struct fdp__proc *p)
{
	ring_free(&p->inflight);
}

void fdp__conns_free(struct fdp_master *m)
{
	ring_free(&m->conns.pending);
	ring_free(&m->conns.held);
	ring_free(&m->conns.forward);
}
