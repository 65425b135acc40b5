/*
 * Accepting connections and handing them to workers. The master keeps its own copy of every
 * handed-over connection until the worker acknowledges it; a worker that dies first gives its
 * unacknowledged connections back, and they go to another worker. A connection that cannot be
 * served is closed and counted with its reason, never dropped silently.
 */
#include "master.h"
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int fdp__ring_push(struct fdp__ring *r, const struct fdp__conn *c, int front)
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

struct fdp__conn *fdp__ring_at(struct fdp__ring *r, size_t i)
{
	return &r->v[(r->head + i) % r->cap];
}

void fdp__ring_remove(struct fdp__ring *r, size_t i)
{
	if (i == 0) {
		r->head = (r->head + 1) % r->cap;
	} else {
		for (size_t k = i; k + 1 < r->n; k++)
			*fdp__ring_at(r, k) = *fdp__ring_at(r, k + 1);
	}
	r->n--;
}

void fdp__ring_free(struct fdp__ring *r)
{
	for (size_t i = 0; i < r->n; i++)
		close(fdp__ring_at(r, i)->fd);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

void fdp__close_conn(struct fdp_master *m, struct fdp__conn *c, enum fdp__close_reason why)
{
	close(c->fd);
	c->fd = -1;
	m->closed[why]++;
}

/*
 * Send c to p. On success p holds c in its in-flight list (the master's copy of the socket),
 * which is lent to the channel message that carries it. Returns 0, -ENOBUFS when p cannot take it
 * now, or another negative errno.
 */
int fdp__hand_to(struct fdp_master *m, struct fdp__proc *p, const struct fdp__conn *c)
{
	unsigned char buf[FDP_PROTO_CONN_MAX];
	size_t len = fdp_proto_conn_encode(buf, c->id, c->listener, m->listeners[c->listener].tag,
	                                   &c->peer, c->peer_len);
	int fd = c->fd, err;

	if (fdp__ring_push(&p->inflight, c, 0) < 0)
		return -ENOMEM;
	fdp__ring_at(&p->inflight, p->inflight.n - 1)->seq =
	        fdp_channel_sent(p->ch) + fdp_channel_queued(p->ch);
	/* Lent, not given: the master's copy lives in p->inflight until the worker's ACK, which
	 * cannot come before the message has left, and the channel is closed before a lost
	 * worker's connections are re-handed. */
	err = fdp_channel_send(p->ch, FDP_PROTO_CONN, buf, len, &fd, 1,
	                       FDP_CHANNEL_MORE | FDP_CHANNEL_LEND);
	if (err < 0) {
		p->inflight.n--; /* the push above was at the back */
		return err;
	}
	p->open++;
	p->dirty = 1;
	m->handed++;
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
		err = fdp__hand_to(m, p, c);
		if (err == 0)
			return 0;
		if (err == -EMFILE || err == -ENFILE || err == -ENOMEM)
			return err; /* the master itself is short: keep it pending, try later */
		if (err != -ENOBUFS)
			fdp__proc_lost(m, p,
			               err); /* its connections go elsewhere once it is gone */
		else
			p->dirty = 1; /* flush it; the policy skips it while full */
	}
	return -EAGAIN;
}

void fdp__dispatch_pending(struct fdp_master *m)
{
	while (m->pending.n) {
		/* A copy: a worker lost on the way puts its connections back into this ring. */
		struct fdp__conn c = *fdp__ring_at(&m->pending, 0);

		fdp__ring_remove(&m->pending, 0);
		if (hand_over(m, &c) < 0) {
			/* Back where it was: the slot just freed, so this push cannot fail. */
			fdp__ring_push(&m->pending, &c, 1);
			break;
		}
	}
}

/*
 * Close what has waited FDP__PENDING_TIMEOUT, and lower *next to the next expiry. The whole
 * ring, not only its head: a connection coming back from a dead worker goes to the front with
 * its wait started over, ahead of older ones.
 */
void fdp__expire_pending(struct fdp_master *m, long long now, long long *next)
{
	for (size_t i = 0; i < m->pending.n;) {
		struct fdp__conn *c = fdp__ring_at(&m->pending, i);
		long long due = c->since_ms + FDP__PENDING_TIMEOUT;

		if (now < due) {
			if (due < *next)
				*next = due;
			i++;
			continue;
		}
		fdp__close_conn(m, c, CLOSE_NO_WORKER);
		fdp__ring_remove(&m->pending, i);
		fdp__log_limited(m, &m->rl_expire, FDP_LOG_WARN,
		                 "closed a connection that waited %d ms with no worker to take it",
		                 FDP__PENDING_TIMEOUT);
	}
}

/*
 * accept() failed for want of something (EMFILE, ENFILE, ENOBUFS, ENOMEM...): the socket stays
 * readable, so it sits out FDP__EMFILE_PAUSE_MS out of epoll instead of spinning the loop; the
 * connections wait in the kernel's backlog.
 */
void fdp__accept_failed(struct fdp_master *m, int control, int err, long long *paused_until)
{
	*paused_until = fdp__now_ms() + FDP__EMFILE_PAUSE_MS;
	fdp__log_limited(m, control ? &m->rl_control : &m->rl_accept, FDP_LOG_WARN,
	                 "accept on %s: %s; pausing it for %d ms",
	                 control ? "the control socket" : "a listener", fdp_strerror(err),
	                 FDP__EMFILE_PAUSE_MS);
}

void fdp__accept_from(struct fdp_master *m, struct fdp__listener *l)
{
	struct fdp_accepted acc[FDP__ACCEPT_BATCH];
	long long now = fdp__now_ms();
	size_t room = m->pending.n < FDP__MAX_PENDING ? FDP__MAX_PENDING - m->pending.n : 0;
	int n;

	/* A route listener takes no more than may wait for a key: the rest stay in the backlog. */
	if (l->policy == FDP_POLICY_ROUTE && fdp__route_room(m) < room)
		room = fdp__route_room(m);
	if (!room)
		return; /* the loop pauses accepting until workers catch up */
	/* Never past the limit: at most the room left (a re-hand may still go over it). */
	n = fdp_accept_batch(l->fd, acc, room < FDP__ACCEPT_BATCH ? room : FDP__ACCEPT_BATCH);
	if (n < 0) {
		if (n != -EAGAIN)
			fdp__accept_failed(m, 0, n, &l->paused_until);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct fdp__conn c = {.id = ++m->next_id,
		                      .fd = acc[i].fd,
		                      .listener = l->w.index,
		                      .since_ms = now,
		                      .peer_len = acc[i].peer_len};

		memcpy(&c.peer, &acc[i].peer, acc[i].peer_len);
		m->accepted++;
		if (l->policy == FDP_POLICY_ROUTE) {
			fdp__route_accept(m, &c); /* route.c takes it from here */
			continue;
		}
		/* Keep arrival order: nothing overtakes a connection already waiting. */
		if (m->pending.n == 0 && hand_over(m, &c) == 0)
			continue;
		if (fdp__ring_push(&m->pending, &c, 0) < 0)
			fdp__close_conn(m, &c, CLOSE_ERROR);
	}
}

/*
 * The worker has its copy of these connections: close ours. An acknowledgement for a message
 * still in the channel's queue is a lie (the master's copy is lent to that queued message and
 * its number could be reused at once), and so is one for a connection this worker does not
 * hold (each is acknowledged once): the worker is broken. Returns 0 or -EPROTO.
 */
static int handle_ack(struct fdp__proc *p, const unsigned char *ids, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		uint64_t id = fdp_proto_id(ids, k);
		size_t i = 0;

		/* Acknowledgements come in hand-over order, so the match is almost always first. */
		while (i < p->inflight.n && fdp__ring_at(&p->inflight, i)->id != id)
			i++;
		if (i == p->inflight.n ||
		    fdp__ring_at(&p->inflight, i)->seq >= fdp_channel_sent(p->ch))
			return -EPROTO;
		close(fdp__ring_at(&p->inflight, i)->fd);
		fdp__ring_remove(&p->inflight, i);
	}
	return 0;
}

/* Finished connections: never more than were handed to this worker. Returns 0 or -EPROTO. */
static int handle_done(struct fdp_master *m, struct fdp__proc *p, size_t n)
{
	if (n > p->open)
		return -EPROTO;
	p->open -= n;
	p->served += n;
	m->slots[p->slot].served += n;
	return 0;
}

/*
 * READY counts once; a worker that repeats it is not listened to again (nor logged), nor one
 * already killed for being late with it (it must not take a slot on its way out).
 */
static void handle_ready(struct fdp_master *m, struct fdp__proc *p)
{
	if (p->said_ready || p->start_failed)
		return;
	p->said_ready = 1;
	p->start_deadline = 0;
	if (p->state == PROC_STARTING)
		p->state = PROC_READY;
	fdp__log(m, FDP_LOG_INFO, "worker %u pid %d generation %u ready", p->slot, (int)p->pid,
	         p->generation);
	fdp__promote(m, p);
	if (!m->ready_logged) {
		for (unsigned i = 0; i < m->cfg.workers; i++) {
			struct fdp__proc *q = m->slots[i].proc;

			if (!q || q->state != PROC_READY)
				return;
		}
		m->ready_logged = 1;
		fdp__log(m, FDP_LOG_INFO, "ready: %u workers, pid %d", m->cfg.workers,
		         (int)getpid());
	}
}

static int handle_message(struct fdp_master *m, struct fdp__proc *p,
                          const struct fdp_channel_msg *msg)
{
	/* Unknown types pass the check and are ignored: a newer worker may say more. */
	int err = fdp_proto_check(msg->type, msg->payload, msg->len, msg->nfds);

	if (err < 0)
		return err;
	if (msg->type == FDP_PROTO_ACK)
		return handle_ack(p, msg->payload, msg->len / 8);
	if (msg->type == FDP_PROTO_DONE)
		return handle_done(m, p, msg->len / 8);
	if (msg->type == FDP_PROTO_READY)
		handle_ready(m, p);
	return 0;
}

/*
 * Apply what p sent, up to max messages or max * 64 ids: the channel is level-triggered, so
 * what is left wakes the loop again, and one worker cannot hold the master. Returns 1 when it
 * stopped at the cap, 0 when the channel said -EAGAIN; a channel that ended or a message that
 * breaks the protocol loses the worker (and returns 0).
 */
static int read_input(struct fdp_master *m, struct fdp__proc *p, unsigned max)
{
	struct fdp_channel_msg *msg = &m->msg;
	unsigned long ids = 0;

	for (unsigned k = 0; p->ch && k < max && ids < 64ul * max; k++) {
		int r = fdp_channel_recv(p->ch, msg);

		if (r == -EAGAIN)
			return 0;
		if (r <= 0) {
			fdp__proc_lost(m, p, r);
			return 0;
		}
		r = handle_message(m, p, msg);
		fdp_channel_msg_release(msg); /* a worker has no business sending descriptors */
		if (r < 0) {
			fdp__log(
			        m, FDP_LOG_ERROR,
			        "worker %u pid %d broke the protocol: message type 0x%x, %zu bytes",
			        p->slot, (int)p->pid, msg->type, msg->len);
			fdp__proc_lost(m, p, r);
			return 0;
		}
		ids += msg->len / 8;
	}
	return p->ch != NULL;
}

void fdp__channel_input(struct fdp_master *m, struct fdp__proc *p)
{
	read_input(m, p, FDP__INPUT_BATCH);
}

/*
 * A worker that has exited can send nothing more: read what it sent before, up to end of file,
 * so that every connection it acknowledged is known as such before the rest are handed again.
 * Bounded by what its socket holds. -EAGAIN twice: the first may come from what the channel's
 * batched reader remembers, without asking the socket.
 */
void fdp__channel_drain(struct fdp_master *m, struct fdp__proc *p)
{
	for (int again = 0; again < 2 && p->ch;)
		again = read_input(m, p, FDP__INPUT_BATCH) ? 0 : again + 1;
}

void fdp__rehand_inflight(struct fdp_master *m, struct fdp__proc *p)
{
	size_t n = p->inflight.n, again = 0;
	long long now = fdp__now_ms();

	/* In reverse, each to the front: they keep their order, ahead of newer arrivals. */
	for (size_t i = n; i-- > 0;) {
		struct fdp__conn *c = fdp__ring_at(&p->inflight, i);

		c->since_ms = now; /* its wait for a worker starts over */
		/*
		 * A routed connection waits for its own slot's next worker: its key must not move,
		 * so it never joins the pending ring, which any worker serves. A drain closes what
		 * waits for a key or a slot, so then it is closed at once.
		 */
		if (c->routed && !m->stopping && fdp__route_hold(m, c) == 0)
			again++;
		else if (c->routed)
			fdp__close_conn(m, c, m->stopping ? CLOSE_SHUTDOWN : CLOSE_ERROR);
		else if (m->stopping != 2 && fdp__ring_push(&m->pending, c, 1) == 0)
			again++;
		else
			fdp__close_conn(m, c, CLOSE_SHUTDOWN);
	}
	m->rehanded += again;
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

/*
 * -ETOOMANYREFS (this user has more descriptors in flight than RLIMIT_NOFILE) and -ENOMEM
 * leave the channel intact and everything queued: try again on a doubling timer, not on
 * writability, which the socket still has and which would spin.
 */
static void flush_later(struct fdp_master *m, struct fdp__proc *p, int err)
{
	if (!p->retry_ms)
		fdp__log(m, FDP_LOG_WARN, "worker %u pid %d: channel: %s; retrying", p->slot,
		         (int)p->pid, fdp_strerror(err));
	p->retry_ms = p->retry_ms ? p->retry_ms * 2 : FDP__RETRY_MIN_MS;
	if (p->retry_ms > FDP__RETRY_MAX_MS)
		p->retry_ms = FDP__RETRY_MAX_MS;
	p->retry_at = fdp__now_ms() + p->retry_ms;
}

/* Watch p's channel for writability only while it has something queued to send. */
static void watch_proc_output(struct fdp_master *m, struct fdp__proc *p)
{
	int want = p->ch && !p->retry_at && fdp_channel_wants_write(p->ch);
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = &p->wch};

	if (!p->ch || want == p->epollout)
		return;
	if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, fdp_channel_fd(p->ch), &ev) == 0)
		p->epollout = want;
}

/* Move the first worker to the end of the list (the next round flushes it last). */
static void rotate_procs(struct fdp_master *m)
{
	struct fdp__proc *head = m->procs, **tail = &m->procs;

	if (!head || !head->next)
		return;
	m->procs = head->next;
	while (*tail)
		tail = &(*tail)->next;
	*tail = head;
	head->next = NULL;
}

void fdp__flush_dirty(struct fdp_master *m)
{
	int flushed = 0;

	for (struct fdp__proc *p = m->procs; p; p = p->next) {
		int err;

		if (!p->dirty || !p->ch || p->retry_at)
			continue;
		p->dirty = 0;
		flushed = 1;
		err = fdp_channel_flush(p->ch);
		if (err == -ETOOMANYREFS || err == -ENOMEM) {
			flush_later(m, p, err);
		} else if (err < 0 && err != -EAGAIN) {
			fdp__proc_lost(m, p, err);
			continue;
		} else if (p->retry_ms) {
			fdp__log(m, FDP_LOG_INFO, "worker %u pid %d: channel writes again", p->slot,
			         (int)p->pid);
			p->retry_ms = 0;
		}
		watch_proc_output(m, p);
	}
	/*
	 * The worker flushed first is woken first and finishes first, round after round: under
	 * least-conn, where finishing first means being picked more, that head start would
	 * become a lasting bias. Taking turns at the front spreads it.
	 */
	if (flushed)
		rotate_procs(m);
}
