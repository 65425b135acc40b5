/*
 * A dispatcher's own process (cfg.dispatchers > 1; docs/ROUTING.md, "Several dispatchers").
 * disps.c forks it from the master. It keeps nothing of the master's but the route listeners,
 * which it shares with the master and the other dispatchers (one accept queue: whoever is free
 * takes the next client), and its socketpair to the master. It reads each client's key with
 * route_policy.c and hands the connection over with conns.c, exactly as the master does, on
 * its own copy of each worker's channel socket, which the master sends it (WORKER). A worker
 * cannot tell its dispatcher's CONN messages from its master's.
 *
 * It never reads a worker's channel: the worker's ACKs go to the master, which sends this
 * process the ones of its connections (ACKS; the ids carry its tag). Until then its copy of
 * each connection is kept, as the master keeps its own, so a worker that dies before taking
 * one loses nothing: the master says LOST once it has reaped it and read its last ACKs, and
 * what is left goes to the slot's next worker. The master sends a worker DRAIN only after
 * every dispatcher has said DRAINED for it, so no CONN follows a DRAIN. A worker that leaves a
 * connection unacknowledged is reported (HUNG): the master kills it.
 *
 * STOP ends it: it closes its listeners and, at the master's stop, the connections still
 * sending their key (as the master closes its own); at a reload's it routes them first. It
 * exits once it holds nothing. It dies with the master (its parent death signal).
 */
#include "master.h"
#include "proto.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_EVENTS 64

/* What a proc of this process's (a worker it hands to) has besides the master's fields. */
#define DP_UNWATCHED 1 /* its socket left the epoll set (hung up, or failed) */
#define DP_REPORTED  2 /* its missing ACK was reported (HUNG) */

struct dispatcher {
	struct fdp_master *d; /* the state conns.c and route_policy.c work on: this process's */
	struct fdp__watch wmaster;
	int retiring; /* STOP came: accept nothing more */
	struct fdp__disp_row last; /* the counts as last added to the shared row */
};

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int close_range_(unsigned from, unsigned to)
{
#ifdef SYS_close_range
	return (int)syscall(SYS_close_range, from, to, 0);
#else
	(void)from, (void)to;
	return -1;
#endif
}

/* Close every descriptor above stdio but keep[0..n) (sorted here). */
static void keep_only(int *keep, size_t n)
{
	long maxfd = sysconf(_SC_OPEN_MAX);
	unsigned from = 3;

	if (maxfd < 0 || maxfd > 1 << 20)
		maxfd = 1 << 20;
	qsort(keep, n, sizeof(*keep), cmp_int);
	for (size_t i = 0; i <= n; i++) {
		unsigned to = i < n ? (unsigned)keep[i] : ~0u;

		if (to > from && close_range_(from, to - 1) < 0)
			for (unsigned fd = from; fd < to && fd < (unsigned)maxfd; fd++)
				close((int)fd);
		if (i < n && (unsigned)keep[i] + 1 > from) /* one on stdio changes nothing */
			from = (unsigned)keep[i] + 1;
	}
}

static int send_to_master(struct fdp_master *d, unsigned type, const struct fdp__proc *p)
{
	struct fdp__d_worker w = {.slot = p->slot, .generation = p->generation, .pid = p->pid};

	return fdp_channel_send(d->dch, type, &w, sizeof(w), NULL, 0, FDP_CHANNEL_MORE);
}

static struct fdp__proc *find_proc(struct fdp_master *d, const struct fdp__d_worker *w)
{
	for (struct fdp__proc *p = d->procs; p; p = p->next)
		if (p->slot == w->slot && p->generation == w->generation)
			return p;
	return NULL;
}

static void unwatch(struct fdp_master *d, struct fdp__proc *p)
{
	if (p->disp_flags & DP_UNWATCHED || !p->ch)
		return;
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, fdp_channel_fd(p->ch), NULL);
	p->disp_flags |= DP_UNWATCHED;
}

/* WORKER: hand the slot's connections to this process from now on, over fd. */
static void add_worker(struct fdp_master *d, const struct fdp__d_worker *w, int fd)
{
	struct fdp__proc *p = calloc(1, sizeof(*p));
	/* Nothing is read here; a worker's messages are the master's. */
	struct epoll_event ev = {.events = 0};

	if (!p || w->slot >= FDP__MAX_WORKERS || find_proc(d, w)) {
		close(fd);
		free(p);
		return;
	}
	if (fdp_channel_open(&p->ch, fd, NULL) < 0) { /* it closed fd */
		free(p);
		return;
	}
	p->slot = w->slot;
	p->generation = w->generation;
	p->pid = w->pid;
	p->pidfd = -1;
	p->state = PROC_READY;
	p->said_ready = 1;
	p->ready_ms = fdp__now_ms();
	p->wch = (struct fdp__watch){.kind = W_CHANNEL, .proc = p};
	p->unwatched_in = 1;
	ev.data.ptr = &p->wch;
	/* Registered for its hang-up (and, while something waits to leave, writability). */
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		p->disp_flags |= DP_UNWATCHED;
	p->next = d->procs;
	d->procs = p;
	d->slots[p->slot].proc = p;
}

/* DRAIN: nothing more for p; DRAINED once what is queued for it has left (say_drained()). */
static void drain_worker(struct fdp_master *d, struct fdp__proc *p)
{
	if (d->slots[p->slot].proc == p)
		d->slots[p->slot].proc = NULL;
	p->state = PROC_DRAINING;
	p->drain_pending = 1;
	p->dirty = 1;
}

/* LOST: p is gone and its last ACKs came before this: the rest is handed again or held. */
static void lose_worker(struct fdp_master *d, struct fdp__proc *p)
{
	unwatch(d, p);
	fdp_channel_close(p->ch); /* what it queued was lent: our copies are in p->inflight */
	p->ch = NULL;
	fdp__conns_take_back(d, p);
	if (d->slots[p->slot].proc == p)
		d->slots[p->slot].proc = NULL;
	for (struct fdp__proc **pp = &d->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p->lost)
		d->flagged--;
	/* Freed after this round of events: its channel's event may be in the same round. */
	p->next = d->dead;
	d->dead = p;
}

/* ACKS: the worker has its copies of these connections of ours. */
static void acked(struct fdp_master *d, const unsigned char *payload, size_t len)
{
	struct fdp__d_worker w;
	struct fdp__proc *p;

	memcpy(&w, payload, sizeof(w));
	p = find_proc(d, &w);
	for (size_t off = sizeof(w); p && off + 8 <= len; off += 8) {
		uint64_t id;

		memcpy(&id, payload + off, 8);
		/* One it no longer holds (a late ACK after LOST) is nothing to close. */
		if (fdp__conns_ack(d, p, id) == 0 && p->open)
			p->open--; /* the master counts it open from now on */
	}
}

static void stop(struct dispatcher *x, int retire)
{
	struct fdp_master *d = x->d;

	x->retiring = 1;
	if (!retire)
		d->stopping = 1; /* route_policy.c closes what still sends its key, as the master's */
	for (size_t i = 0; i < d->nlisteners; i++) {
		struct fdp__listener *l = &d->listeners[i];

		if (l->fd >= 0) {
			/* Out of the epoll first: the master's copy keeps the socket, and with it a
			 * registration that would outlive the close (and take wake-ups). */
			if (l->registered)
				epoll_ctl(d->epfd, EPOLL_CTL_DEL, l->fd, NULL);
			close(l->fd);
			l->fd = -1;
			l->registered = 0;
		}
	}
}

/* What the master said; -1 once it is gone (end of file, or a broken channel). */
static int master_input(struct dispatcher *x)
{
	struct fdp_master *d = x->d;
	struct fdp_channel_msg *msg = &d->msg;

	for (int k = 0; k < 256; k++) {
		int r = fdp_channel_recv(d->dch, msg);
		struct fdp__d_worker w;
		struct fdp__proc *p = NULL;

		if (r == -EAGAIN)
			return 0;
		if (r <= 0)
			return -1;
		if (msg->len >= sizeof(w)) {
			memcpy(&w, msg->payload, sizeof(w));
			p = find_proc(d, &w);
		}
		if (msg->type == FDP__D_WORKER && msg->len == sizeof(w) && msg->nfds == 1)
			add_worker(d, &w, fdp_channel_msg_take_fd(msg, 0));
		else if (msg->type == FDP__D_DRAIN && msg->len == sizeof(w) && p)
			drain_worker(d, p);
		else if (msg->type == FDP__D_DRAIN && msg->len == sizeof(w))
			fdp_channel_send(d->dch, FDP__D_DRAINED, &w, sizeof(w), NULL, 0,
			                 FDP_CHANNEL_MORE); /* never told of it: nothing to wait for */
		else if (msg->type == FDP__D_LOST && p)
			lose_worker(d, p);
		else if (msg->type == FDP__D_ACKS && msg->len >= sizeof(w))
			acked(d, msg->payload, msg->len);
		else if (msg->type == FDP__D_STOP && msg->len == 1)
			stop(x, ((const unsigned char *)msg->payload)[0]);
		fdp_channel_msg_release(msg);
	}
	return 0;
}

/* A drained worker's DRAINED once nothing for it waits here; a hung one's HUNG, once. */
static void report(struct fdp_master *d)
{
	for (struct fdp__proc *p = d->procs; p; p = p->next) {
		if (p->lost) /* a failed send, or no ACK in time: nothing more goes to it */
			unwatch(d, p);
		if (p->drain_pending && (!fdp__proc_usable(p) || !fdp_channel_queued(p->ch))) {
			p->drain_pending = 0;
			send_to_master(d, FDP__D_DRAINED, p);
		}
		if (p->lost && p->lost_err == -ETIMEDOUT && !(p->disp_flags & DP_REPORTED)) {
			p->disp_flags |= DP_REPORTED;
			send_to_master(d, FDP__D_HUNG, p);
		}
	}
}

static void add(uint64_t *to, uint64_t now, uint64_t *last)
{
	__atomic_fetch_add(to, now - *last, __ATOMIC_RELAXED);
	*last = now;
}

/* The counts into this process's row, where the master reads them; its open counts out. */
static void publish(struct dispatcher *x)
{
	struct fdp_master *d = x->d;
	struct fdp__disp_row *row = &d->dshared->row[d->disp_self];
	struct fdp__route_stats st;
	uint64_t now[10];

	fdp__route_stats(d, &st);
	now[0] = st.hashed, now[1] = st.mapped, now[2] = st.timeout, now[3] = st.too_big;
	now[4] = st.rejected, now[5] = st.overflow, now[6] = st.eof, now[7] = st.unavailable;
	now[8] = st.defaulted, now[9] = st.closed;
	add(&row->accepted, d->conns.accepted, &x->last.accepted);
	add(&row->handed, d->conns.handed, &x->last.handed);
	add(&row->rehanded, d->conns.rehanded, &x->last.rehanded);
	add(&row->acked, d->conns.acked, &x->last.acked);
	for (int i = 0; i < CLOSE_NREASONS; i++)
		add(&row->closed[i], d->conns.closed[i], &x->last.closed[i]);
	for (int i = 0; i < 10; i++)
		add(&row->route[i], now[i], &x->last.route[i]);
	__atomic_store_n(&row->waiting, d->conns.routing, __ATOMIC_RELAXED);
	__atomic_store_n(&row->held, d->conns.held.n, __ATOMIC_RELAXED);
	for (struct fdp__proc *p = d->procs; p; p = p->next)
		p->open_other = d->slots[p->slot].proc == p
		                        ? __atomic_load_n(&d->dshared->open[p->slot], __ATOMIC_RELAXED)
		                        : 0;
}

static void watch_listeners(struct dispatcher *x, long long now, long long *next)
{
	struct fdp_master *d = x->d;
	int room = !x->retiring && !fdp__route_full(d) &&
	           !(d->cfg.max_connections && fdp__conns_open(d) >= d->cfg.max_connections);

	for (size_t i = 0; i < d->nlisteners; i++) {
		struct fdp__listener *l = &d->listeners[i];
		/* One woken for each connection, not every waiter: the queue is shared. */
		struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &l->w};
		int on = room && now >= l->paused_until;

		if (l->fd >= 0 && now < l->paused_until && l->paused_until < *next)
			*next = l->paused_until;
		if (l->fd < 0 || l->registered == on)
			continue;
		if (epoll_ctl(d->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->fd, &ev) == 0)
			l->registered = on;
	}
}

/* A flush that said "later" (-ETOOMANYREFS, -ENOMEM: dispatch.c) is tried again when due. */
static void retry_flushes(struct fdp_master *d, long long now, long long *next)
{
	for (struct fdp__proc *p = d->procs; p; p = p->next) {
		if (!p->retry_at)
			continue;
		if (now >= p->retry_at) {
			p->retry_at = 0;
			p->dirty = 1;
		} else if (p->retry_at < *next) {
			*next = p->retry_at;
		}
	}
}

static void free_dead_procs(struct fdp_master *d)
{
	while (d->dead) {
		struct fdp__proc *p = d->dead;

		d->dead = p->next;
		free(p);
	}
}

static int holds_nothing(const struct fdp_master *d)
{
	if (d->conns.routing || d->conns.held.n)
		return 0;
	for (const struct fdp__proc *p = d->procs; p; p = p->next)
		if (p->inflight.n)
			return 0;
	return 1;
}

/* This process's state, on the master's copy: what it needs of the master's, nothing else. */
static struct fdp_master *state(struct fdp_master *m, unsigned tag, unsigned gen, int sock)
{
	struct fdp_master *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->cfg = m->cfg;
	d->cfg.event = NULL; /* the program's events are the master's */
	/* And so is its log: its descriptor (a file, a socket) was closed here with the rest,
	 * and its number may now be another's. What the master must know, it is told. */
	d->in_child = 1;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->sigfd = d->ctlfd = -1;
	d->up.pidfd = d->up.sock = d->up.from_sock = -1;
	d->listeners = calloc(m->nlisteners ? m->nlisteners : 1, sizeof(*d->listeners));
	d->slots = calloc(FDP__MAX_WORKERS, sizeof(*d->slots));
	if (d->epfd < 0 || !d->listeners || !d->slots ||
	    fdp_channel_open(&d->dch, sock, &(struct fdp_channel_config){
	                                            .size = sizeof(struct fdp_channel_config),
	                                            .high_water = (size_t)1 << 20}) < 0)
		return NULL; /* the process exits: nothing to free */
	d->nlisteners = m->nlisteners;
	for (size_t i = 0; i < m->nlisteners; i++) {
		const struct fdp__listener *l = &m->listeners[i];
		int route = l->policy == FDP_POLICY_ROUTE && !l->steer;

		d->listeners[i] = (struct fdp__listener){.fd = route ? l->fd : -1,
		                                         .policy = l->policy,
		                                         .tag = l->tag,
		                                         .w = {.kind = W_LISTENER, .index = (unsigned)i}};
	}
	fdp__route_forked(d, m->router);
	fdp__conns_hold_for(d, m->conns.hold_ms);
	d->conns.next_id = (uint64_t)tag << FDP__DISP_TAG_SHIFT |
	                   (uint64_t)(gen & 0xff) << FDP__DISP_GEN_SHIFT;
	d->conn_cap = m->conn_cap;
	d->dshared = m->dshared;
	d->disp_self = tag;
	return d;
}

static void handle(struct dispatcher *x, const struct epoll_event *ev, int phase)
{
	struct fdp_master *d = x->d;
	struct fdp__watch *w = ev->data.ptr;

	if (phase == 0 && w->kind == W_CHANNEL) {
		struct fdp__proc *p = w->proc;

		if (!p->ch) /* LOST in this round already */
			return;
		if (ev->events & (EPOLLHUP | EPOLLERR)) { /* the worker went: LOST will come */
			fdp__proc_flag_lost(d, p, -EPIPE);
			unwatch(d, p);
		} else if (ev->events & EPOLLOUT) {
			p->dirty = 1;
		}
	} else if (phase == 0 && w->kind == W_LISTENER && d->listeners[w->index].fd >= 0 &&
	           !x->retiring) {
		fdp__accept_from(d, &d->listeners[w->index]);
	} else if (phase == 1 && w->kind == W_ROUTE && !d->stopping) {
		fdp__route_input(d, w, ev->events); /* last: it may free w */
	}
}

void fdp__dispatcher_main(struct fdp_master *m, unsigned tag, unsigned gen, int sock,
                          pid_t master)
{
	struct dispatcher x = {.wmaster = {.kind = W_DISP}};
	struct epoll_event evs[MAX_EVENTS], ev = {.events = EPOLLIN, .data.ptr = &x.wmaster};
	int *keep = malloc((m->nlisteners + 1) * sizeof(*keep));
	size_t nkeep = 0;

	/* It must not outlive the master: its copies of the workers' channels would keep them
	 * from seeing their master go. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != master)
		_exit(1);
	setpgid(0, 0); /* not the terminal's: a Ctrl-C is the master's to act on */
	if (!keep)
		_exit(1);
	keep[nkeep++] = sock;
	for (size_t i = 0; i < m->nlisteners; i++)
		if (m->listeners[i].policy == FDP_POLICY_ROUTE && !m->listeners[i].steer &&
		    m->listeners[i].fd >= 0)
			keep[nkeep++] = m->listeners[i].fd;
	keep_only(keep, nkeep);
	free(keep);
	x.d = state(m, tag, gen, sock);
	if (!x.d || epoll_ctl(x.d->epfd, EPOLL_CTL_ADD, sock, &ev) < 0)
		_exit(1);
	for (;;) {
		struct fdp_master *d = x.d;
		long long now = fdp__now_ms(), next = now + 1000;
		int n;

		fdp__route_timers(d, now, &next);
		fdp__conns_ack_deadlines(d, now, &next);
		retry_flushes(d, now, &next);
		report(d);
		publish(&x);
		if (x.retiring && holds_nothing(d))
			break;
		watch_listeners(&x, now, &next);
		if (fdp_channel_flush(d->dch) == -EAGAIN)
			next = now + 1; /* the master reads slowly: look again soon */
		n = epoll_wait(d->epfd, evs, MAX_EVENTS, (int)(next > now ? next - now : 0));
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++)
			if (evs[i].data.ptr == &x.wmaster && master_input(&x) < 0)
				_exit(0); /* the master is gone: so is everything this process was for */
		for (int phase = 0; phase < 2; phase++)
			for (int i = 0; i < n; i++)
				if (evs[i].data.ptr != &x.wmaster)
					handle(&x, &evs[i], phase);
		fdp__conns_dispatch_held(d);
		fdp__flush_dirty(d);
		free_dead_procs(d);
	}
	report(x.d);
	publish(&x);
	fdp_channel_flush_wait(x.d->dch, 1000);
	_exit(0);
}
