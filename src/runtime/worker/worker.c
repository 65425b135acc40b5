/*
 * The worker side of the runtime: take connections from the master's channel, acknowledge
 * them (batched), report them finished (batched); and, under kernel dispatch, accept on the
 * listening sockets the master gives it (LISTEN). See docs/WORKER.md and docs/STEERING.md.
 */
#include "fdpass_runtime.h"
#include "proto.h"
#include "util.h"
#include "worker_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* A batch of ids waiting to leave in one ACK or DONE message. Grows; never drops an id. */
struct id_batch {
	uint64_t *ids;
	size_t n, cap;
	size_t cap_max; /* 0: no limit but memory's (tests set one: fdp__worker_limit_acks()) */
};

/*
 * A connection taken from the channel, held until its ACK has left: returned earlier, the
 * worker could read from it while the master still thinks it is unacknowledged, and a
 * re-handed copy (were this worker to die) would miss what was read.
 */
struct taken {
	int fd;
	struct fdp_conn meta;
	int queued;       /* its ACK is in the channel's queue ... */
	uint64_t ack_seq; /* ... as message number ack_seq (see fdp_channel_sent()) */
};

/* The connections taken and not yet returned, in order: q[head, head + n). */
struct taken_queue {
	struct taken *q;
	size_t head, n, cap;
};

/*
 * A listening socket of this worker's own (kernel dispatch: a LISTEN), and the steering state
 * it shares with the master and the kernel's program, where it counts what it accepts there.
 */
struct own_listener {
	int fd; /* the slot's socket (a duplicate of the master's): ours; -1 once draining */
	unsigned listener, tag;
	uint32_t slot;
	struct fdp__steer_state *st; /* mapped, st_len bytes: ours until fdp_worker_close() */
	size_t st_len;
	/* Own connections accepted here and not done; once draining (detached) they are no
	 * longer in the slot's counts, which are the successor's from then on. */
	uint32_t open;
	int detached;
	int ready; /* the epoll descriptor said readable: accept there until -EAGAIN */
	int beats; /* the master's state has beat[] (one of an older master may not) */
	/* A steal entry (LISTEN with FDP_PROTO_LISTEN_STEAL): another slot's socket, not
	 * watched; home is our own entry of the same listener, whose mapping st is (st_len 0:
	 * not ours to unmap) and on whose slot what we take is counted. empty_us: when we last
	 * found its queue empty although its counts said otherwise (a connection counted at its
	 * SYN, not yet established): no look again for STEAL_AFTER_US. */
	int steal;
	size_t home;
	long long empty_us;
};

/*
 * A slot whose worker has not come for connections for this long while some wait on its
 * socket is stalled (a long request stops it): other workers take from its queue. Measured
 * (docs/BENCHMARKS.md, "The worker's accept path reworked"): 20-100 µs gave the same p99
 * under the uneven load, 200 a worse one, 0 (take from any queue at any time) the worst.
 */
#define STEAL_AFTER_US FDP_PROTO_STEER_STALL_US

/*
 * At most this many own accepts in a row before the caller gets its -EAGAIN and serves what
 * it took: a connection accepted here cannot be taken by another worker if this one stops
 * in a long request, one still in the queue can. 64 gave a p99 under the uneven load 1.2
 * times that of 1 to 4; the loops it costs did not show in the CPU per connection.
 */
#define OWN_BATCH 4

/* An own connection's id: FDP_PROTO_OWN_ID, its listener's place in own[], a sequence. */
#define OWN_INDEX_SHIFT 48
#define OWN_SEQ_MASK    ((UINT64_C(1) << OWN_INDEX_SHIFT) - 1)

struct fdp_worker {
	struct fdp_channel *ch;
	/*
	 * The epoll set watching the channel (and for writability while ep_out) and own[].fd,
	 * each registered with data.u64 ep_base + its place (0 the channel, i + 1 own[i]); -1
	 * before there is one. fdp_worker_take_listeners() makes one of ours, which
	 * fdp_worker_fd() returns; after fdp_worker_watch() it is the caller's (ep_theirs): no
	 * look of our own at it, its events come through fdp_worker_event().
	 */
	int ep, ep_out, ep_theirs;
	uint64_t ep_base;
	int listening; /* ACCEPTS sent (fdp_worker_take_listeners()) */
	struct own_listener *own;
	size_t nown, own_next; /* own_next: the one to try first (they take turns) */
	unsigned own_burst;    /* accepted there since the last -EAGAIN */
	int own_capped;        /* the burst reached OWN_BATCH: one -EAGAIN is due */
	int own_paused;        /* out of descriptors: own sockets unwatched (pause_own()) */
	/*
	 * What the epoll descriptor said at its last look (poll_ready()), so that each wakeup
	 * reads only what is ready: ch_ready (the channel had something), ch_more (messages may
	 * wait in the channel's buffer: the last read stopped before -EAGAIN), polled (looked
	 * since the last -EAGAIN returned: nothing marked ready means nothing is).
	 */
	int ch_ready, ch_more, polled;
	int stole_last; /* the last connection was stolen: our own queue goes first */
	long long beat_us, look_us; /* our beat's last store; our last look for a stalled slot */
	uint64_t own_seq;
	unsigned index, generation;
	int draining, gone;
	int handback; /* the DRAIN asked for idle connections back (fdp_worker_return()) */
	int held;     /* msg is a CONN kept after -ENOMEM: the next accept takes it again */
	int blocking; /* fdp_worker_set_blocking(): the sockets it returns are blocking */
	struct id_batch acks, dones;
	struct taken_queue taken;
	struct fdp_channel_msg msg;
};

/* The most CONN messages one fdp_worker_accept() reads before acknowledging them. */
#define TAKE_BATCH 64

/* Room for one more id in b: 0, or -ENOMEM with b unchanged. */
static int batch_reserve(struct id_batch *b)
{
	size_t cap = b->cap ? b->cap * 2 : 64;
	uint64_t *ids;

	if (b->n < b->cap)
		return 0;
	if (b->cap_max && cap > b->cap_max)
		cap = b->cap_max;
	if (cap <= b->cap || !(ids = realloc(b->ids, cap * sizeof(*ids))))
		return -ENOMEM;
	b->ids = ids;
	b->cap = cap;
	return 0;
}

static int batch_push(struct id_batch *b, uint64_t id)
{
	int err = batch_reserve(b);

	if (err == 0)
		b->ids[b->n++] = id;
	return err;
}

void fdp__worker_limit_acks(struct fdp_worker *w, size_t max)
{
	w->acks.cap_max = max;
}

/* Room for one more taken connection: 0, or -ENOMEM with the queue unchanged. */
static int taken_reserve(struct taken_queue *t)
{
	size_t cap = t->cap ? t->cap * 2 : 16;
	struct taken *q;

	if (t->head + t->n < t->cap)
		return 0;
	if (t->head) { /* room at the front: move what is left there */
		memmove(t->q, t->q + t->head, t->n * sizeof(*t->q));
		t->head = 0;
		return 0;
	}
	q = realloc(t->q, cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	t->q = q;
	t->cap = cap;
	return 0;
}

/*
 * The ACK message about to be queued (number seq) carries the ids of the next k taken
 * connections whose ACK is not queued yet: the acks batch holds exactly their ids, in order.
 */
static void taken_mark_queued(struct taken_queue *t, size_t k, uint64_t seq)
{
	for (size_t i = 0; i < t->n && k; i++) {
		struct taken *c = &t->q[t->head + i];

		if (c->queued)
			continue;
		c->queued = 1;
		c->ack_seq = seq;
		k--;
	}
}

/* Queue b's ids on the channel in messages of at most FDP_PROTO_MAX_IDS; keep what won't fit. */
static int batch_send(struct fdp_worker *w, struct id_batch *b, unsigned type)
{
	size_t sent = 0;
	int err = 0;

	while (sent < b->n) {
		unsigned char buf[FDP_PROTO_MAX_IDS * 8];
		size_t k = b->n - sent;
		uint64_t seq = fdp_channel_sent(w->ch) + fdp_channel_queued(w->ch);

		if (k > FDP_PROTO_MAX_IDS)
			k = FDP_PROTO_MAX_IDS;
		err = fdp_channel_send(w->ch, type, buf, fdp_proto_ids_encode(buf, b->ids + sent, k),
		                       NULL, 0, FDP_CHANNEL_MORE);
		if (err < 0)
			break;
		if (type == FDP_PROTO_ACK)
			taken_mark_queued(&w->taken, k, seq);
		sent += k;
	}
	if (sent) {
		memmove(b->ids, b->ids + sent, (b->n - sent) * sizeof(uint64_t));
		b->n -= sent;
	}
	return err == -ENOBUFS ? -EAGAIN : err;
}

/* Wait for the master's HELLO (it is normally queued before the worker even starts). */
static int read_hello(struct fdp_worker *w, int timeout_ms)
{
	long long deadline = fdp__now_ms() + timeout_ms;

	for (;;) {
		struct fdp_proto_hello h;
		struct pollfd p = {.fd = fdp_channel_fd(w->ch), .events = POLLIN};
		int r = fdp_channel_recv(w->ch, &w->msg);
		long long left;

		if (r == 1) {
			int bad = w->msg.type != FDP_PROTO_HELLO ||
			          fdp_proto_hello_decode(w->msg.payload, w->msg.len, &h) < 0 ||
			          h.version != FDP_PROTO_VERSION;

			fdp_channel_msg_release(&w->msg);
			if (bad)
				return -EPROTO;
			w->index = h.index;
			w->generation = h.generation;
			return 0;
		}
		if (r == 0)
			return -EPIPE;
		if (r != -EAGAIN)
			return r;
		left = deadline - fdp__now_ms();
		if (timeout_ms >= 0 && left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, timeout_ms < 0 ? -1 : (int)left) < 0 && errno != EINTR)
			return -errno;
	}
}

int fdp_worker_open(struct fdp_worker **out, int sock, int timeout_ms)
{
	struct fdp_worker *w = calloc(1, sizeof(*w));
	unsigned char ready[FDP_PROTO_READY_SIZE];
	int err;

	if (!w) {
		close(sock);
		return -ENOMEM;
	}
	w->ep = -1;
	err = fdp_channel_open(&w->ch, sock, &(struct fdp_channel_config){
	                                             .size = sizeof(struct fdp_channel_config),
	                                             .max_fds = fdp_proto_max_fds});
	if (err < 0) {
		free(w);
		return err;
	}
	err = read_hello(w, timeout_ms);
	if (err < 0)
		goto fail;
	err = fdp_channel_send(w->ch, FDP_PROTO_READY, ready,
	                       fdp_proto_ready_encode(ready, (uint32_t)getpid()), NULL, 0, 0);
	if (err < 0)
		goto fail;
	*out = w;
	return 0;
fail:
	fdp_worker_close(w);
	return err;
}

int fdp_worker_open_env(struct fdp_worker **out, int timeout_ms)
{
	const char *s = getenv(FDP_WORKER_ENV);
	char *end;
	long fd;

	if (!s || !*s)
		return -ENOENT;
	fd = strtol(s, &end, 10);
	if (*end || fd < 0 || fd > 1 << 30)
		return -EINVAL;
	return fdp_worker_open(out, (int)fd, timeout_ms);
}

void fdp_worker_close(struct fdp_worker *w)
{
	if (!w)
		return;
	if (w->held)
		fdp_channel_msg_release(&w->msg);
	for (size_t i = 0; i < w->taken.n; i++)
		close(w->taken.q[w->taken.head + i].fd);
	free(w->taken.q);
	for (size_t i = 0; i < w->nown; i++) {
		/* Out of the caller's set first: the master's copy outlives our close. */
		if (w->own[i].fd >= 0 && w->ep_theirs && !w->own[i].steal)
			epoll_ctl(w->ep, EPOLL_CTL_DEL, w->own[i].fd, NULL);
		if (w->own[i].fd >= 0)
			close(w->own[i].fd);
		if (w->own[i].st_len) /* a steal entry borrows its home's mapping */
			munmap(w->own[i].st, w->own[i].st_len);
	}
	free(w->own);
	if (w->ep_theirs)
		epoll_ctl(w->ep, EPOLL_CTL_DEL, fdp_channel_fd(w->ch), NULL);
	else if (w->ep >= 0)
		close(w->ep);
	fdp_channel_close(w->ch);
	free(w->acks.ids);
	free(w->dones.ids);
	free(w);
}

int fdp_worker_fd(const struct fdp_worker *w)
{
	if (w->ep_theirs)
		return -1; /* the caller's own set has it all */
	return w->ep >= 0 ? w->ep : fdp_channel_fd(w->ch);
}

/*
 * Also while connections are held for their ACK: once it has left they are ready, and a
 * caller that waits for writability (the socket is writable by then) wakes to take them.
 */
int fdp_worker_wants_write(const struct fdp_worker *w)
{
	return w->acks.n || w->dones.n || w->taken.n || fdp_channel_wants_write(w->ch);
}

/*
 * With an epoll descriptor (fdp_worker_take_listeners()): watch the channel for writability
 * exactly while fdp_worker_wants_write() says so, so that a caller waiting for readability of
 * fdp_worker_fd() wakes as it would for writability of the channel.
 */
static void sync_events(struct fdp_worker *w)
{
	int want = fdp_worker_wants_write(w);
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.u64 = w->ep_base};

	if (w->ep < 0 || want == w->ep_out)
		return;
	if (epoll_ctl(w->ep, EPOLL_CTL_MOD, fdp_channel_fd(w->ch), &ev) == 0)
		w->ep_out = want;
}

int fdp_worker_take_listeners(struct fdp_worker *w)
{
	unsigned char buf[FDP_PROTO_ACCEPTS_SIZE];
	struct epoll_event ev = {.events = EPOLLIN};
	int err, made = 0;

	if (w->listening)
		return 0;
	if (w->gone)
		return -EPIPE;
	if (w->ep < 0) {
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (w->ep < 0)
			return -errno;
		made = 1;
		w->ch_more = 1; /* what the channel's buffer holds is not in epoll's view */
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fdp_channel_fd(w->ch), &ev) < 0) {
			err = -errno;
			goto fail;
		}
	}
	err = fdp_channel_send(w->ch, FDP_PROTO_ACCEPTS, buf, fdp_proto_accepts_encode(buf, 0),
	                       NULL, 0, FDP_CHANNEL_MORE);
	if (err < 0)
		goto fail;
	w->listening = 1;
	err = fdp_worker_flush(w);
	if (err < 0 && err != -EAGAIN)
		return err; /* the master is gone or the channel broke: accept says so again */
	sync_events(w);
	return 0;
fail:
	if (made) {
		close(w->ep);
		w->ep = -1;
	}
	return err;
}

/* Register the channel and what is watched of own[] in ep (none of it there yet): 0 or -errno. */
static int watch_all(struct fdp_worker *w, int ep, uint64_t base)
{
	struct epoll_event ev = {.events = EPOLLIN | (w->ep_out ? EPOLLOUT : 0), .data.u64 = base};
	size_t i;
	int err;

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fdp_channel_fd(w->ch), &ev) < 0)
		return -errno;
	for (i = 0; i < w->nown; i++) {
		struct own_listener *o = &w->own[i];

		ev = (struct epoll_event){.events = w->own_paused ? 0 : EPOLLIN,
		                          .data.u64 = base + i + 1};
		if (o->fd >= 0 && !o->steal && epoll_ctl(ep, EPOLL_CTL_ADD, o->fd, &ev) < 0)
			break;
	}
	if (i == w->nown)
		return 0;
	err = -errno;
	while (i-- > 0)
		if (w->own[i].fd >= 0 && !w->own[i].steal)
			epoll_ctl(ep, EPOLL_CTL_DEL, w->own[i].fd, NULL);
	epoll_ctl(ep, EPOLL_CTL_DEL, fdp_channel_fd(w->ch), NULL);
	return err;
}

int fdp_worker_watch(struct fdp_worker *w, int epfd, uint64_t base)
{
	int err;

	if (w->ep_theirs)
		return -EBUSY;
	if (base > UINT64_MAX - FDP_WORKER_WATCH_SPAN)
		return -EINVAL;
	err = watch_all(w, epfd, base);
	if (err < 0)
		return err;
	if (w->ep >= 0)
		close(w->ep); /* ours: its registrations go with it */
	w->ep = epfd;
	w->ep_theirs = 1;
	w->ep_base = base;
	w->ch_more = 1; /* the channel's buffer may hold what no event will announce */
	for (size_t i = 0; i < w->nown; i++)
		w->own[i].ready = 1; /* and the sockets what came before */
	return 0;
}

int fdp_worker_event(struct fdp_worker *w, const struct epoll_event *ev)
{
	uint64_t k = ev->data.u64 - w->ep_base;

	if (!w->ep_theirs || k >= FDP_WORKER_WATCH_SPAN) /* below base, k wraps past it */
		return 0;
	if (k == 0)
		w->ch_ready |= (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
	else if (k <= w->nown)
		w->own[k - 1].ready = 1;
	return 1; /* writability: the next fdp_worker_accept() flushes */
}

/*
 * A steal LISTEN (room for it made in own[]): kept beside our own entry of its listener
 * (which the master sends first), with that entry's mapping; the map descriptor is closed.
 */
static void take_steal(struct fdp_worker *w, const struct fdp_proto_listen *l, int sock, int map)
{
	size_t home = w->nown;

	close(map);
	for (size_t i = 0; i < w->nown; i++)
		if (!w->own[i].steal && w->own[i].listener == l->listener)
			home = i;
	if (home == w->nown || l->slot == w->own[home].slot ||
	    l->state_size < offsetof(struct fdp__steer_state, stolen) +
	                            sizeof(((struct fdp__steer_state *)0)->stolen)) {
		close(sock);
		return;
	}
	w->own[w->nown++] = (struct own_listener){.fd = sock,
	                                          .listener = l->listener,
	                                          .tag = l->tag,
	                                          .slot = l->slot,
	                                          .st = w->own[home].st,
	                                          .steal = 1,
	                                          .home = home};
}

/* Take the socket and the state of a LISTEN (checked), unless draining or never asked for
 * (no ACCEPTS sent: a watched worker has an epoll set without it). A failure drops it:
 * the slot's connections then wait for the master, which notices no progress on them. */
static void take_listen(struct fdp_worker *w)
{
	struct fdp_proto_listen l;
	struct own_listener *o;
	struct epoll_event ev = {.events = EPOLLIN};
	int sock = fdp_channel_msg_take_fd(&w->msg, 0), map = fdp_channel_msg_take_fd(&w->msg, 1);
	long page = sysconf(_SC_PAGESIZE);
	void *st;

	if (fdp_proto_listen_decode(w->msg.payload, w->msg.len, &l) < 0 || !w->listening ||
	    w->draining || l.slot >= FDP_PROTO_STEER_SLOTS ||
	    !FDP_PROTO_STATE_HAS(l.state_size, accepted) ||
	    w->nown >= 1u << 15)
		goto drop;
	o = realloc(w->own, (w->nown + 1) * sizeof(*o));
	if (!o)
		goto drop;
	w->own = o;
	if (l.flags & FDP_PROTO_LISTEN_STEAL) {
		take_steal(w, &l, sock, map);
		return;
	}
	o = &w->own[w->nown];
	o->st_len = ((size_t)l.state_size + (size_t)page - 1) & ~((size_t)page - 1);
	st = mmap(NULL, o->st_len, PROT_READ | PROT_WRITE, MAP_SHARED, map, 0);
	if (st == MAP_FAILED)
		goto drop;
	ev.data.u64 = w->ep_base + w->nown + 1; /* + 0 is the channel */
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, sock, &ev) < 0) {
		munmap(st, o->st_len);
		goto drop;
	}
	close(map); /* the mapping stays */
	*o = (struct own_listener){.fd = sock,
	                           .listener = l.listener,
	                           .tag = l.tag,
	                           .slot = l.slot,
	                           .st = st,
	                           .st_len = o->st_len,
	                           .beats = FDP_PROTO_STATE_HAS(l.state_size, beat),
	                           .ready = 1}; /* connections may wait already */
	w->nown++;
	return;
drop:
	close(sock);
	close(map);
}

/*
 * Out of descriptors (or memory) for a connection: stop watching our own sockets, so that a
 * caller waiting on fdp_worker_fd() does not spin on a queue it cannot take, until one of our
 * connections is done (resume_own()) or the channel says something. Returns -EAGAIN.
 */
static int pause_own(struct fdp_worker *w)
{
	for (size_t i = 0; !w->own_paused && i < w->nown; i++) {
		struct epoll_event ev = {.events = 0, .data.u64 = w->ep_base + i + 1};

		if (w->own[i].fd >= 0 && !w->own[i].steal)
			epoll_ctl(w->ep, EPOLL_CTL_MOD, w->own[i].fd, &ev);
	}
	w->own_paused = 1;
	return -EAGAIN;
}

static void resume_own(struct fdp_worker *w)
{
	for (size_t i = 0; w->own_paused && i < w->nown; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = w->ep_base + i + 1};

		if (w->own[i].fd >= 0 && !w->own[i].steal)
			epoll_ctl(w->ep, EPOLL_CTL_MOD, w->own[i].fd, &ev);
	}
	w->own_paused = 0;
}

/* One less, never below 0 (the master's resync may have corrected the word meanwhile). */
static void count_down(uint32_t *word)
{
	uint32_t v = __atomic_load_n(word, __ATOMIC_RELAXED);

	while (v && !__atomic_compare_exchange_n(word, &v, v - 1, 1, __ATOMIC_RELAXED,
	                                         __ATOMIC_RELAXED))
		;
}

/* A DRAIN: accept no more on our own sockets (their mappings stay, for the counts). */
static void close_own(struct fdp_worker *w)
{
	for (size_t i = 0; i < w->nown; i++) {
		struct own_listener *o = &w->own[i];

		/* Out of the epoll set first: the master's copy keeps the socket (and so our
		 * registration) alive past our close. */
		if (o->fd >= 0) {
			epoll_ctl(w->ep, EPOLL_CTL_DEL, o->fd, NULL);
			close(o->fd);
		}
		o->fd = -1;
		/* What we still hold leaves the slot's counts: they are its next worker's. */
		for (uint32_t k = 0; !o->steal && !o->detached && k < o->open; k++) {
			count_down(&o->st->count[o->slot]);
			count_down(&o->st->open[o->slot]);
		}
		o->detached = 1;
	}
	w->own_paused = 0;
}


/* An own connection is over (done, or returned): its slot's counts go down. 0, or -EINVAL. */
static int own_done(struct fdp_worker *w, uint64_t id)
{
	size_t i = (size_t)((id & ~FDP_PROTO_OWN_ID) >> OWN_INDEX_SHIFT);
	struct own_listener *o;

	if (i >= w->nown)
		return -EINVAL;
	o = &w->own[i];
	if (o->open)
		o->open--;
	if (!o->detached) { /* least-conn's count first: the master reads open, then count */
		count_down(&o->st->count[o->slot]);
		count_down(&o->st->open[o->slot]);
	}
	resume_own(w); /* a descriptor was freed */
	return 0;
}

/*
 * A connection accepted on our own entry i's socket (or stolen for it): its id names the
 * entry, its metadata is the entry's listener's; the slot's open and accepted words go up.
 */
static void own_conn(struct fdp_worker *w, size_t i, const struct sockaddr_storage *peer,
                     socklen_t len, struct fdp_conn *conn)
{
	struct own_listener *o = &w->own[i];

	memset(conn, 0, sizeof(*conn));
	conn->id = FDP_PROTO_OWN_ID | ((uint64_t)i << OWN_INDEX_SHIFT) |
	           (++w->own_seq & OWN_SEQ_MASK);
	conn->listener = o->listener;
	conn->tag = o->tag;
	conn->peer_len = len <= sizeof(conn->peer) ? len : 0;
	memcpy(&conn->peer, peer, conn->peer_len);
	__atomic_fetch_add(&o->st->accepted[o->slot], 1, __ATOMIC_RELAXED);
	o->open++; /* the slot's open word went up before the accept (counted_accept()) */
}

/*
 * A handed connection's socket made blocking (fdp_worker_set_blocking()). It cannot fail on a
 * socket we hold; if it did, the socket would stay as it was.
 */
static void clear_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && (fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/*
 * accept4() on sock for our own entry home (a blocking socket if the worker asked for those),
 * its slot's open word raised first: a worker stopped or killed between the accept and the
 * count still has the connection counted (in the master's lost, when it dies with it).
 * Lowered again when nothing was accepted.
 */
static int counted_accept(const struct fdp_worker *w, const struct own_listener *home, int sock,
                          struct sockaddr_storage *peer, socklen_t *len)
{
	uint32_t *open = &home->st->open[home->slot];
	int flags = SOCK_CLOEXEC | (w->blocking ? 0 : SOCK_NONBLOCK);
	int fd, e;

	__atomic_fetch_add(open, 1, __ATOMIC_RELAXED);
	do
		fd = accept4(sock, (struct sockaddr *)peer, len, flags);
	while (fd < 0 && (errno == ECONNABORTED || errno == EINTR));
	if (fd < 0) {
		e = errno;
		count_down(open);
		errno = e;
	}
	return fd;
}

/*
 * Accept one connection on our own sockets, taking turns; at most OWN_BATCH in a row before
 * one -EAGAIN, so that a caller serving its connections between accepts gets to them (the
 * sockets stay readable: the epoll descriptor wakes it again at once). Returns the socket, or
 * -EAGAIN, or accept's error (-EMFILE and the like: try again later).
 */
static int accept_own(struct fdp_worker *w, struct fdp_conn *conn)
{
	if (w->own_burst >= OWN_BATCH) {
		w->own_burst = 0;
		w->own_capped = 1;
		/* The next call looks again: the channel's news does not wait behind a long
		 * burst (a socket still marked ready would be taken without a look). */
		for (size_t i = 0; i < w->nown; i++)
			w->own[i].ready = 0;
		return -EAGAIN;
	}
	for (size_t k = 0; k < w->nown; k++) {
		size_t i = (w->own_next + k) % w->nown;
		struct own_listener *o = &w->own[i];
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd;

		if (o->fd < 0 || o->steal || !o->ready)
			continue;
		fd = counted_accept(w, o, o->fd, &peer, &len);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				o->ready = 0;
				continue;
			}
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				return pause_own(w); /* the connections wait in the kernel's queue */
			return -errno;
		}
		own_conn(w, i, &peer, len, conn);
		w->own_next = (i + 1) % w->nown;
		w->own_burst++;
		return fd;
	}
	w->own_burst = 0;
	return -EAGAIN;
}

static long long now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/*
 * The state's per-slot words of neighbouring slots share cache lines, which every worker and
 * the program write: the beat is stored at most every BEAT_US and the other slots' words
 * read at most every LOOK_US, so that a busy worker does not move those lines at each call.
 */
#define BEAT_US 8
#define LOOK_US 10

/* We come for connections: each slot we accept for says so in its beat word. */
static void publish_beat(struct fdp_worker *w, long long now)
{
	if (now - w->beat_us < BEAT_US)
		return;
	w->beat_us = now;
	for (size_t i = 0; i < w->nown; i++) {
		struct own_listener *o = &w->own[i];

		if (!o->steal && o->beats && o->fd >= 0)
			__atomic_store_n(&o->st->beat[o->slot], (uint32_t)now, __ATOMIC_RELAXED);
	}
}

/*
 * Take a connection waiting on a stalled slot: one whose worker has not come for connections
 * for STEAL_AFTER_US (its beat) while the program has counted more connections there than
 * that worker has accepted (count - open: what waits in its queue), so that they do not wait
 * for its long request. Counted as ours: our slot's open, accepted and count go up, the other
 * slot's count down (the program counted it there), and its stolen word up (the master's
 * evidence that the slot had work it did not take). Returns the socket or -EAGAIN.
 */
static int steal(struct fdp_worker *w, struct fdp_conn *conn, long long now)
{
	w->look_us = now;
	for (size_t i = 0; i < w->nown; i++) {
		struct own_listener *e = &w->own[i], *home;
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		uint32_t beat;
		int32_t queued;
		int fd;

		if (!e->steal || e->fd < 0 || !w->own[e->home].beats)
			continue;
		beat = __atomic_load_n(&e->st->beat[e->slot], __ATOMIC_RELAXED);
		if ((uint32_t)now - beat < STEAL_AFTER_US || now - e->empty_us < STEAL_AFTER_US)
			continue;
		queued = (int32_t)(__atomic_load_n(&e->st->count[e->slot], __ATOMIC_RELAXED) -
		                   __atomic_load_n(&e->st->open[e->slot], __ATOMIC_RELAXED));
		if (queued <= 0)
			continue;
		fd = counted_accept(w, &w->own[e->home], e->fd, &peer, &len);
		if (fd < 0) {
			e->empty_us = now;
			continue;
		}
		own_conn(w, e->home, &peer, len, conn);
		home = &w->own[e->home];
		__atomic_fetch_add(&home->st->count[home->slot], 1, __ATOMIC_RELAXED);
		count_down(&e->st->count[e->slot]);
		__atomic_fetch_add(&e->st->stolen[e->slot], 1, __ATOMIC_RELAXED);
		return fd;
	}
	return -EAGAIN;
}

unsigned fdp_worker_index(const struct fdp_worker *w)
{
	return w->index;
}

unsigned fdp_worker_generation(const struct fdp_worker *w)
{
	return w->generation;
}

int fdp_worker_draining(const struct fdp_worker *w)
{
	return w->draining;
}

int fdp_worker_handback(const struct fdp_worker *w)
{
	return w->draining && w->handback;
}

int fdp_worker_return(struct fdp_worker *w, int fd, const struct fdp_conn *conn)
{
	unsigned char buf[FDP_PROTO_CONN_MAX];
	size_t len = fdp_proto_conn_encode(buf, conn->id, conn->listener, conn->tag, &conn->peer,
	                                   conn->peer_len);

	int err, fl;

	if (w->gone)
		return -EPIPE;
	/* Back as the master handed it, whatever the caller made of it: the next worker takes it
	 * non-blocking. A return that fails leaves the socket to the caller as it was. */
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	/* Given, not lent: the channel closes its copy once the message has left. */
	err = fdp_channel_send(w->ch, FDP_PROTO_RETURN, buf, len, &fd, 1, FDP_CHANNEL_MORE);
	if (err < 0 && fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl);
	if (err == 0 && (conn->id & FDP_PROTO_OWN_ID))
		own_done(w, conn->id); /* the master's from now on */
	sync_events(w);
	return err;
}

int fdp_worker_done(struct fdp_worker *w, uint64_t id)
{
	int err;

	if (id & FDP_PROTO_OWN_ID) /* accepted here: the master never heard of it */
		return own_done(w, id);
	resume_own(w); /* a descriptor is about to be freed */
	err = batch_push(&w->dones, id);
	sync_events(w);
	return err;
}

static int flush(struct fdp_worker *w)
{
	int err;

	if (w->gone)
		return -EPIPE;
	err = batch_send(w, &w->acks, FDP_PROTO_ACK);
	if (err == 0)
		err = batch_send(w, &w->dones, FDP_PROTO_DONE);
	if (err < 0 && err != -EAGAIN)
		return err;
	err = fdp_channel_flush(w->ch);
	if (err == 0 && (w->acks.n || w->dones.n))
		return -EAGAIN;
	return err;
}

int fdp_worker_flush(struct fdp_worker *w)
{
	int err = flush(w);

	sync_events(w);
	return err;
}

int fdp_worker_flush_wait(struct fdp_worker *w, int timeout_ms)
{
	long long deadline = fdp__now_ms() + timeout_ms;

	for (;;) {
		int err = fdp_worker_flush(w);
		long long left = deadline - fdp__now_ms();

		if (err != -EAGAIN)
			return err;
		if (timeout_ms >= 0 && left <= 0)
			return -ETIMEDOUT;
		/* Ids the channel's queue could not take yet follow once it has emptied. */
		err = fdp_channel_flush_wait(w->ch, timeout_ms < 0 ? -1 : (int)left);
		if (err < 0)
			return err;
	}
}

/*
 * Take the connection of a CONN message into the taken queue, with its id in the ACK batch.
 * Room for both is made first: a connection taken without its ACK queued would wait for a
 * master that never hears of it. Returns 0, -EPROTO if the message is malformed, or -ENOMEM
 * with nothing taken.
 */
static int take_conn(struct fdp_worker *w)
{
	struct taken *t;
	struct fdp_conn meta;

	if (w->msg.nfds != 1 || fdp_proto_conn_decode(w->msg.payload, w->msg.len, &meta) < 0)
		return -EPROTO;
	if (batch_reserve(&w->acks) < 0 || taken_reserve(&w->taken) < 0)
		return -ENOMEM;
	t = &w->taken.q[w->taken.head + w->taken.n++];
	*t = (struct taken){.fd = fdp_channel_msg_take_fd(&w->msg, 0), .meta = meta};
	batch_push(&w->acks, meta.id); /* cannot fail: room was made */
	return 0;
}

/*
 * Read what the channel holds, up to TAKE_BATCH connections. Returns how many were taken, or
 * a negative errno (-ENOMEM with none taken: the message stays for the next try; a broken
 * channel's -EPROTO or -EXFULL). End of file marks the master gone.
 */
static int read_channel(struct fdp_worker *w)
{
	int taken = 0;

	/* Until it says -EAGAIN, more may wait in the channel's buffer than epoll shows. */
	w->ch_ready = 0;
	w->ch_more = 1;
	while (taken < TAKE_BATCH && !w->gone) {
		int r = w->held ? 1 : fdp_channel_recv(w->ch, &w->msg);

		w->held = 0;
		if (r == -EAGAIN) {
			w->ch_more = 0;
			break;
		}
		if (r == 0) {
			w->gone = 1;
			break;
		}
		if (r < 0) /* a broken channel says so again; -ENOMEM may pass */
			return taken ? taken : r;
		if (w->msg.type == FDP_PROTO_CONN) {
			r = take_conn(w);
			if (r == -ENOMEM) {
				w->held = 1; /* the connection stays in the message for the next try */
				return taken ? taken : r;
			}
			fdp_channel_msg_release(&w->msg);
			if (r < 0)
				return r;
			taken++;
			continue;
		}
		if (w->msg.type == FDP_PROTO_DRAIN) {
			w->draining = 1;
			w->handback = (fdp_proto_drain_flags(w->msg.payload, w->msg.len) &
			               FDP_PROTO_DRAIN_HANDBACK) != 0;
			close_own(w);
		}
		if (w->msg.type == FDP_PROTO_LISTEN &&
		    fdp_proto_check(w->msg.type, w->msg.payload, w->msg.len, w->msg.nfds) == 0)
			take_listen(w);
		/* Unknown types are skipped: a newer master may say more than this worker knows. */
		fdp_channel_msg_release(&w->msg);
	}
	return taken;
}

/*
 * The oldest taken connection, if it may be returned: its ACK has left (or the master is
 * gone, and nobody could hand it again).
 */
static int taken_pop(struct fdp_worker *w, struct fdp_conn *conn, int early)
{
	struct taken *t;

	if (!w->taken.n)
		return -EAGAIN; /* and q may be NULL: no pointer into it */
	t = &w->taken.q[w->taken.head];
	if (!early && !w->gone && !(t->queued && fdp_channel_sent(w->ch) > t->ack_seq))
		return -EAGAIN;
	*conn = t->meta;
	w->taken.head++;
	if (--w->taken.n == 0)
		w->taken.head = 0;
	return t->fd;
}

/*
 * With an epoll descriptor: what is ready, the channel or which of our own sockets, so that a
 * wakeup costs one look instead of a read of the channel and an accept on every socket that
 * may have nothing. Level-triggered: what is left unread is said again at the next look.
 */
static void poll_ready(struct fdp_worker *w)
{
	struct epoll_event ev[16];
	int n = epoll_wait(w->ep, ev, 16, 0);

	for (int i = 0; i < n; i++) {
		uint64_t k = ev[i].data.u64;

		if (k == 0)
			w->ch_ready = 1;
		else if (k <= w->nown)
			w->own[k - 1].ready = 1;
	}
	/* A full answer may have left some out: look again once these are taken. */
	w->polled = n < (int)(sizeof(ev) / sizeof(ev[0]));
}

/* Something is marked ready (or the channel's buffer may hold more). */
static int marked_ready(const struct fdp_worker *w)
{
	if (w->ch_ready || w->ch_more)
		return 1;
	for (size_t i = 0; i < w->nown; i++)
		if (w->own[i].ready)
			return 1;
	return 0;
}

static int accept_one(struct fdp_worker *w, struct fdp_conn *conn)
{
	long long now = 0;
	int r, fd;

	fd = taken_pop(w, conn, 0);
	if (fd >= 0)
		return fd;
	if (w->ep >= 0 && !w->ep_theirs && !w->polled && !marked_ready(w))
		poll_ready(w);
	/*
	 * Say we came; then, every other connection, one waiting on a stalled slot (it is older
	 * than ours: its worker stopped while ours kept going). Taking from it first, or from any
	 * queue at any time, measured worse (docs/BENCHMARKS.md, "The worker's accept path").
	 */
	if (w->ep >= 0 && w->nown && !w->draining && !w->gone) {
		now = now_us();
		publish_beat(w, now);
		if (!w->stole_last && now - w->look_us >= LOOK_US && (fd = steal(w, conn, now)) >= 0) {
			w->stole_last = 1;
			return fd;
		}
		w->stole_last = 0;
	}
	/*
	 * In a burst on our own sockets the channel, whose news is rare under kernel dispatch
	 * (a DRAIN, a rescued connection), waits for the burst's end: no read of it per accept.
	 */
	if (w->own_burst && !w->draining && !w->gone) {
		fd = accept_own(w, conn);
		if (fd != -EAGAIN)
			return fd;
	}
	/* A burst already waits for its ACK to leave: the rest wait in the socket, not here.
	 * With an epoll descriptor, the channel is read when it said it has something. */
	r = w->taken.n < TAKE_BATCH && (w->ep < 0 || w->ch_ready || w->ch_more) ? read_channel(w)
	                                                                        : 0;
	if (r < 0 && r != -ENOMEM)
		return r;
	/* Every connection just taken has its ACK in this flush: one message for the burst. */
	if (!w->gone) {
		int err = fdp_worker_flush(w);

		if (err == -EPIPE)
			w->gone = 1;
		else if (err < 0 && err != -EAGAIN)
			return err;
	}
	fd = taken_pop(w, conn, 0);
	if (fd >= 0)
		return fd;
	if (r == -ENOMEM)
		return r;
	/* What the master handed comes first; then what waits on our own sockets (not right
	 * after a full burst: the caller gets its -EAGAIN, and its other connections a turn). */
	if (!w->gone && !w->draining && !w->own_capped) {
		fd = accept_own(w, conn);
		if (fd == -EAGAIN && !w->own_paused && now)
			fd = steal(w, conn, now); /* nothing of ours: from a stalled slot */
		if (fd != -EAGAIN)
			return fd;
	}
	w->own_capped = 0;
	w->polled = 0; /* the next call looks again */
	if (w->taken.n)
		return -EAGAIN; /* held until its ACK leaves: wait for writability */
	if (w->gone)
		return -EPIPE;
	return w->draining ? -ESHUTDOWN : -EAGAIN;
}

int fdp_worker_accept(struct fdp_worker *w, struct fdp_conn *conn)
{
	int r = accept_one(w, conn);

	/* Ours came from accept4() as asked; a handed one as the master left it. */
	if (r >= 0 && w->blocking && !(conn->id & FDP_CONN_OWN))
		clear_nonblock(r);
	sync_events(w);
	return r;
}

void fdp_worker_set_blocking(struct fdp_worker *w, int on)
{
	w->blocking = on != 0;
}

int fdp__worker_accept_early(struct fdp_worker *w, struct fdp_conn *conn)
{
	int r = w->taken.n ? 0 : read_channel(w);

	if (r < 0)
		return r;
	if (w->taken.n)
		return taken_pop(w, conn, 1);
	return w->gone ? -EPIPE : w->draining ? -ESHUTDOWN : -EAGAIN;
}
