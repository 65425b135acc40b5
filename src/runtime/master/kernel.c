/*
 * Kernel dispatch (docs/STEERING.md): a TCP listener whose policy needs no peek gets a steering
 * group (steer/): one listening socket per worker slot in one SO_REUSEPORT group, and a BPF
 * program that picks each new connection's slot. This file decides which listeners are steered,
 * gives each worker that said ACCEPTS its slot's socket (LISTEN), and keeps the slots honest:
 *
 *   a slot takes new connections (live) exactly while its current worker is ready, was sent
 *   its sockets, and is neither draining nor lost; otherwise it is taken out, and the master
 *   watches its socket and accepts what still lands there (a SYN already past the program,
 *   what was queued when the worker died), handing it over as it hands any connection. The
 *   master never closes a slot's socket while it runs, so no queue is ever reset;
 *
 *   a timer (FDP__KERNEL_TICK_MS) looks at every live slot: connections queued on its socket
 *   (TCP_INFO) and no accept by its worker for the ACK timeout make the worker hung, flagged
 *   like one that leaves a handed connection unacknowledged; and every slot's count is set
 *   back to what is open (fdp__steer_count_resync()) once a second.
 *
 * Who owns what: the group owns every slot's socket (slot 0's is the listener the caller gave)
 * and its program and maps; a LISTEN carries duplicates, given to the channel.
 */
#include "master.h"
#include "proto.h"
#include "steer.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define FDP__KERNEL_TICK_MS   250
#define FDP__KERNEL_STEAL_MAX 32 /* up to this many slots, each worker gets every slot's socket */
#define FDP__KERNEL_RESYNC_MS 1000

/*
 * TCP_DEFER_ACCEPT (FDP__DEFER_S) on every TCP listener whose clients speak first: those the
 * config says so of (listener_defer) and those that route (fdp__route_defers()); under kernel
 * dispatch on every slot socket of the group, since the workers accept there. The kernel then
 * hands a connection over only once its first bytes are in, so the first read (or the route's
 * first peek) finds them, where otherwise about half the connections came before their bytes
 * and cost a read that found nothing and an epoll round trip (docs/BENCHMARKS.md). Run after
 * every change that may matter (the open, once the groups exist; a reload's commit, which may
 * have added slots or taken route away; an upgrade's READY): setting it again is harmless, and
 * a listener that no longer wants it has it cleared. A listener an upgrade's new master took
 * waits for that master's READY (the old one serves on it until then, and must find it as it
 * left it if the new one fails). A setting a socket came with (systemd's DeferAcceptSec=, an
 * old master's) is left alone where this master wants none. A Unix socket refuses the option.
 */
void fdp__kernel_defer(struct fdp_master *m)
{
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];
		int want = l->defer || (l->policy == FDP_POLICY_ROUTE && fdp__route_defers(m));
		int secs = want ? FDP__DEFER_S : 0, set = 0, err = 0;
		unsigned n = l->steer ? fdp__steer_slots(l->steer) : 1;
		char addr[FDP_ADDR_STRLEN] = "?";

		if (l->handed || l->fd < 0 || (!want && !l->deferred))
			continue;
		for (unsigned k = 0; k < n; k++) {
			int fd = l->steer ? fdp__steer_fd(l->steer, k) : l->fd;

			if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) == 0)
				set++;
			else
				err = errno;
		}
		fdp_addr_local(l->fd, addr, sizeof(addr));
		/* A route listener over Unix is read as it connects; one the config asks to defer
		 * (or a slot socket that refused) is said so. */
		if (err && (l->defer || set))
			fdp__log(m, FDP_LOG_WARN,
			         "listener %zu %s: TCP_DEFER_ACCEPT refused on %u of %u socket(s): %s; "
			         "those accept as clients connect",
			         i, addr, n - (unsigned)set, n, fdp_strerror(-err));
		if (!set || want == l->deferred)
			continue;
		l->deferred = want;
		if (want)
			fdp__log(m, FDP_LOG_INFO,
			         "listener %zu %s: a client is accepted once its first bytes are in "
			         "(TCP_DEFER_ACCEPT, %d s)",
			         i, addr, FDP__DEFER_S);
		else
			fdp__log(m, FDP_LOG_INFO,
			         "listener %zu %s: accepted as clients connect again (TCP_DEFER_ACCEPT "
			         "off)",
			         i, addr);
	}
}

static enum fdp_dispatch listener_dispatch(const struct fdp_master *m, size_t i)
{
	return m->cfg.listener_dispatch ? m->cfg.listener_dispatch[i] : m->cfg.dispatch;
}

/* Why l cannot be steered, or NULL: what needs no kernel feature. */
static const char *cannot_steer(const struct fdp_master *m, const struct fdp__listener *l)
{
	int domain = 0;
	socklen_t len = sizeof(domain);

	if (l->policy == FDP_POLICY_ROUTE)
		return "the route policy reads each connection first";
	if (getsockopt(l->fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    (domain != AF_INET && domain != AF_INET6))
		return "not a TCP listener";
	if (m->cfg.max_connections)
		return "max_connections needs the master to count every connection";
	if (m->cfg.recycle_conns)
		return "recycling by connections needs the master to count them";
	return NULL;
}

static enum fdp__steer_policy steer_policy(enum fdp_policy p)
{
	switch (p) {
	case FDP_POLICY_LEAST_CONN:
		return FDP__STEER_LEAST_CONN;
	case FDP_POLICY_HASH_IP:
		return FDP__STEER_HASH_IP;
	default:
		return FDP__STEER_ROUND_ROBIN;
	}
}

int fdp__kernel_reconfig_check(const struct fdp_master *m, const struct fdp_master_config *next,
                               const enum fdp_policy *policy, char *why, size_t size)
{
	if (!m->kernel)
		return 0;
	if (next->max_connections || next->recycle_conns) {
		snprintf(why, size, "kernel dispatch: %s needs the master to count every connection",
		         next->max_connections ? "max_connections" : "recycling by connections");
		return -EINVAL;
	}
	for (size_t i = 0; i < m->nlisteners; i++) {
		if (m->listeners[i].steer && policy[i] == FDP_POLICY_ROUTE) {
			snprintf(why, size,
			         "listener %zu: kernel dispatch cannot route (the route policy reads "
			         "each connection first): restart it with --dispatch pass",
			         i);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Resize the steered listeners from first to first + n - 1 to workers slots and their policy,
 * all or none: when one fails, those already changed go back to what they were. Those
 * changed are the groups holding a program to undo (every resize ends here in a keep or an
 * undo, so none holds one on entry).
 */
static int reconfigure(struct fdp_master *m, size_t first, size_t n, unsigned workers,
                       const enum fdp_policy *policy, char *why, size_t size)
{
	int err = 0;

	for (size_t i = first; i < first + n && err == 0; i++) {
		struct fdp__listener *l = &m->listeners[i];
		enum fdp__steer_policy p = steer_policy(policy ? policy[i] : l->policy);
		char reason[256];

		if (!l->steer ||
		    (fdp__steer_active(l->steer) == workers && fdp__steer_policy(l->steer) == p))
			continue;
		err = fdp__steer_resize(l->steer, workers, p, reason, sizeof(reason));
		if (err < 0)
			snprintf(why, size, "listener %zu: kernel dispatch over %u slots: %s", i, workers,
			         reason);
		else
			m->kernel_dirty = 1;
	}
	for (size_t i = first; i < first + n; i++) {
		struct fdp__listener *l = &m->listeners[i];
		int rc;

		if (!l->steer)
			continue;
		if (err == 0) {
			if (fdp__steer_keep(l->steer))
				fdp__log(m, FDP_LOG_INFO, "listener %zu: kernel dispatch (%s) over %u slots",
				         i, fdp__steer_policy_name(fdp__steer_policy(l->steer)), workers);
		} else if ((rc = fdp__steer_undo(l->steer)) == 0) {
			fdp__log(m, FDP_LOG_INFO, "listener %zu: kernel dispatch (%s) back over %u slots",
			         i, fdp__steer_policy_name(fdp__steer_policy(l->steer)),
			         fdp__steer_active(l->steer));
		} else if (rc != -ENOENT) {
			fdp__log(m, FDP_LOG_ERROR, "listener %zu: kernel dispatch left over %u slots: %s",
			         i, fdp__steer_active(l->steer), strerror(-rc));
		}
	}
	return err;
}

int fdp__kernel_reconfigure(struct fdp_master *m, unsigned workers, const enum fdp_policy *policy,
                            char *why, size_t size)
{
	return reconfigure(m, 0, m->nlisteners, workers, policy, why, size);
}

void fdp__kparts_free(struct fdp__kparts *k)
{
	if (!k)
		return;
	for (unsigned s = 1; s < k->slots; s++) /* fds[0] is the listener: the master's */
		if (k->fds[s] >= 0)
			close(k->fds[s]);
	if (k->prog >= 0)
		close(k->prog);
	if (k->sockarray >= 0)
		close(k->sockarray);
	if (k->state >= 0)
		close(k->state);
	free(k->fds);
	free(k);
}

/*
 * An upgrade's new master: adopt the old master's group, which both masters' workers then
 * share (resized to this master's worker count and policy). 1 when adopted, 0 when not (why
 * says why; the parts stay in l->kparts), or a negative errno.
 */
static int adopt(struct fdp_master *m, struct fdp__listener *l, const char **why)
{
	char reason[384]; /* "listener N: kernel dispatch over N slots: " and the resize's 256 */
	struct fdp__kparts *k = l->kparts;
	int rc;

	rc = fdp__steer_adopt(&l->steer, k->fds, k->slots, (enum fdp__steer_policy)k->policy,
	                      k->prog, k->sockarray, k->state);
	if (rc < 0) { /* the parts stay in l->kparts, for the old master */
		*why = "the old master's steering group could not be taken over";
		return 0;
	}
	l->kparts = NULL;
	free(k->fds);
	free(k);
	l->kadopted = 1;
	/* Another worker count or policy than the old master's: this master's program. */
	if (reconfigure(m, (size_t)(l - m->listeners), 1, m->cfg.workers, NULL, reason,
	                sizeof(reason)) < 0)
		fdp__log(m, FDP_LOG_WARN, "%s; it keeps the old master's %u", reason,
		         fdp__steer_active(l->steer));
	return 1;
}

int fdp__kernel_open(struct fdp_master *m)
{
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];
		enum fdp_dispatch d = listener_dispatch(m, i);
		char addr[FDP_ADDR_STRLEN] = "?", err[256] = "";
		const char *why;
		int rc;

		/* An old master's group not adopted here stays in l->kparts: loop.c gives it back. */
		if (d == FDP_DISPATCH_PASS || l->fd < 0)
			continue;
		fdp_addr_local(l->fd, addr, sizeof(addr));
		why = cannot_steer(m, l);
		if (!why && l->kparts) {
			rc = adopt(m, l, &why);
			if (rc < 0)
				return rc;
		}
		if (why) {
			if (d == FDP_DISPATCH_KERNEL) {
				fdp__log(m, FDP_LOG_ERROR, "listener %zu %s: kernel dispatch: %s", i,
				         addr, why);
				return -EINVAL;
			}
			fdp__log(m, FDP_LOG_INFO, "listener %zu %s: passing connections: %s", i, addr,
			         why);
			continue;
		}
		/* Every slot a reload may grow to: a watch points into this array. */
		l->kslots = calloc(FDP__STEER_MAX_SLOTS, sizeof(*l->kslots));
		if (!l->kslots)
			return -ENOMEM;
		rc = l->steer ? 0
		              : fdp__steer_open_fd(&l->steer, l->fd, m->cfg.workers,
		                                   steer_policy(l->policy), err, sizeof(err));
		if (rc < 0) {
			free(l->kslots);
			l->kslots = NULL;
			if (d == FDP_DISPATCH_KERNEL) {
				fdp__log(m, FDP_LOG_ERROR, "listener %zu %s: kernel dispatch: %s", i,
				         addr, err);
				return rc;
			}
			fdp__log(m, FDP_LOG_INFO, "listener %zu %s: passing connections: %s", i, addr,
			         err);
			continue;
		}
		/* No worker accepts anywhere yet: every slot out until one does (an adopted
		 * group's slots are the old master's workers' until this master is ready, and
		 * what they accepted so far is not this master's to count). */
		for (unsigned s = 0; s < FDP__STEER_MAX_SLOTS; s++) {
			if (!l->kadopted && s < fdp__steer_slots(l->steer))
				fdp__steer_slot_out(l->steer, s);
			l->kslots[s].counted = fdp__steer_state(l->steer)->accepted[s];
			l->kslots[s].w = (struct fdp__watch){.kind = W_KSLOT, .index = (unsigned)i,
			                                     .sub = s};
		}
		m->kernel = 1;
		m->kernel_dirty = 1;
		fdp__log(m, FDP_LOG_INFO,
		         "listener %zu %s: kernel dispatch (%s), %u slot sockets%s; workers accept "
		         "there",
		         i, addr, fdp__steer_policy_name(fdp__steer_policy(l->steer)),
		         m->cfg.workers, l->kadopted ? " taken over from the old master" : "");
	}
	return 0;
}

/*
 * l's group is shared with the other master of an upgrade (l->kadopted) and not yet, or no
 * more, this one's to decide: a new master's before it is ready, an old master's after.
 */
static int shared(const struct fdp__listener *l)
{
	return l->kadopted && l->handed;
}

/* Watch slot s's socket (the master accepts there) or not. */
static void slot_watch(struct fdp_master *m, struct fdp__listener *l, unsigned s, int on)
{
	struct fdp__kslot *k = &l->kslots[s];
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &k->w};

	if (k->watched == on || m->epfd < 0)
		return;
	if (epoll_ctl(m->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fdp__steer_fd(l->steer, s),
	              &ev) == 0)
		k->watched = on;
}

/* What the workers accepted on l's slot s since the last look, into the counters. */
static void count_accepted(struct fdp_master *m, struct fdp__listener *l, unsigned s)
{
	uint32_t acc = __atomic_load_n(&fdp__steer_state(l->steer)->accepted[s], __ATOMIC_RELAXED);
	uint32_t delta = acc - l->kslots[s].counted;

	l->kaccepted += delta;
	m->slots[s].kaccepted += delta;
	l->kslots[s].counted = acc;
}

void fdp__kernel_refresh(struct fdp_master *m)
{
	for (size_t i = 0; i < m->nlisteners; i++)
		for (unsigned s = 0; m->listeners[i].steer && s < fdp__steer_slots(m->listeners[i].steer);
		     s++)
			count_accepted(m, &m->listeners[i], s);
}

void fdp__kernel_close(struct fdp_master *m, struct fdp__listener *l)
{
	if (!l->steer)
		return;
	for (unsigned s = 0; s < fdp__steer_slots(l->steer); s++) {
		slot_watch(m, l, s, 0);
		count_accepted(m, l, s);
	}
	/* Slot 0 may outlive this master (systemd's, the descriptor store's, or a passing new
	 * master's): leave it free for the next group. Not a group the other master uses. */
	if (!shared(l) && !m->in_child)
		fdp__steer_detach(l->steer);
	fdp__steer_close(l->steer); /* slot 0's socket is l->fd */
	l->steer = NULL;
	l->fd = -1;
	free(l->kslots);
	l->kslots = NULL;
}

/* p takes new connections on its slot's sockets now. */
static int accepting(const struct fdp__proc *p)
{
	return p && p->listening && p->state == PROC_READY && !p->drain_pending &&
	       fdp__proc_usable(p) && !p->kill_at;
}

/*
 * p holds as many connections as it has descriptors for (the master's conn_cap, what passing
 * never exceeds either): its slots are taken out while it does, so that the kernel sends the
 * rest elsewhere and the master hands on what waits there, and a full worker is not hung.
 */
static int full(const struct fdp_master *m, const struct fdp__proc *p)
{
	return m->conn_cap && p->open + fdp__proc_own_open(m, p) >= m->conn_cap;
}

/* Send p a LISTEN for every steered listener: 0, or the channel's error (p is flagged). */
/* One LISTEN to p: slot's socket of listener i, and the state. 0, or an error (see below). */
static int send_listen(struct fdp_master *m, struct fdp__proc *p, size_t i, unsigned slot,
                       uint32_t flags)
{
	struct fdp__listener *l = &m->listeners[i];
	unsigned char buf[FDP_PROTO_LISTEN_SIZE];
	struct fdp_proto_listen msg = {.listener = (unsigned)i,
	                               .tag = l->tag,
	                               .slot = slot,
	                               .state_size = (uint32_t)fdp__steer_state_size(l->steer),
	                               .flags = flags};
	int fds[2], err;

	fds[0] = fcntl(fdp__steer_fd(l->steer, slot), F_DUPFD_CLOEXEC, 0);
	fds[1] = fds[0] < 0 ? -1 : fcntl(fdp__steer_state_fd(l->steer), F_DUPFD_CLOEXEC, 0);
	if (fds[1] < 0) {
		err = -errno;
		if (fds[0] >= 0)
			close(fds[0]);
		return err; /* out of descriptors: tried again at the next settling */
	}
	/* Given: the channel closes them once the message has left (or on failure). */
	err = fdp_channel_send(p->ch, FDP_PROTO_LISTEN, buf, fdp_proto_listen_encode(buf, &msg), fds,
	                       2, FDP_CHANNEL_MORE);
	if (err < 0) {
		if (err != -ENOBUFS)
			fdp__proc_flag_lost(m, p, err);
		return err;
	}
	p->dirty = 1;
	return 0;
}

/*
 * Send p its LISTENs, per steered listener its own slot's socket first, then (stealing, with
 * at most FDP__KERNEL_STEAL_MAX slots, not under hash-ip) every other slot's: 0, or the channel's error (p is
 * flagged) or -EAGAIN (its slot has no socket yet: a reload's grow failed). p->listen_next
 * counts the LISTENs sent, so that a later call goes on where this one stopped.
 */
static int send_listens(struct fdp_master *m, struct fdp__proc *p)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];
		unsigned slots, active;
		int steal;

		if (!l->steer)
			continue;
		slots = fdp__steer_slots(l->steer);
		active = fdp__steer_active(l->steer);
		if (p->slot >= slots)
			return -EAGAIN;
		/* No stealing under hash-ip: a client's worker is its address's, stopped or not. */
		steal = active <= FDP__KERNEL_STEAL_MAX &&
		        fdp__steer_policy(l->steer) != FDP__STEER_HASH_IP;
		for (unsigned k = 0; k <= (steal ? active : 0); k++) {
			/* k 0: its own slot; then the others below the count, each once. */
			unsigned slot = k == 0 ? p->slot : k - 1;
			int err;

			if ((k > 0 && (slot == p->slot || slot >= slots)) || n++ < p->listen_next)
				continue;
			err = send_listen(m, p, i, slot, k ? FDP_PROTO_LISTEN_STEAL : 0);
			if (err < 0)
				return err;
			p->listen_next = n;
		}
	}
	p->listening = 1;
	return 0;
}

void fdp__kernel_settle(struct fdp_master *m)
{
	long long now = fdp__now_ms();

	if (!m->kernel_dirty)
		return;
	m->kernel_dirty = 0;
	/* Workers that asked for their sockets and may have them now. */
	for (struct fdp__proc *p = m->procs; p; p = p->next)
		if (p->accepts_own && !p->listening && p->state == PROC_READY &&
		    !p->drain_pending && fdp__proc_usable(p) && !m->stopping &&
		    send_listens(m, p) < 0)
			m->kernel_dirty = 1; /* again at the next settling or tick */
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];

		if (!l->steer)
			continue;
		if (shared(l)) { /* the other master's: it accepts what lands on a dead slot */
			for (unsigned s = 0; s < fdp__steer_slots(l->steer); s++)
				slot_watch(m, l, s, 0);
			continue;
		}
		for (unsigned s = 0; s < fdp__steer_slots(l->steer); s++) {
			struct fdp__kslot *k = &l->kslots[s];
			struct fdp__proc *p = s < m->cfg.workers ? m->slots[s].proc : NULL;
			int live = accepting(p) && !full(m, p) && !m->stopping;

			if (live && !fdp__steer_slot_live(l->steer, s)) {
				/* From now: its progress counts from what it has accepted so far. */
				k->seen = fdp__steer_state(l->steer)->accepted[s];
				k->stalled_since = 0;
			}
			if (live)
				fdp__steer_slot_in(l->steer, s);
			else
				fdp__steer_slot_out(l->steer, s);
			/* Taken out: the master accepts what still lands there (after a pause, and
			 * while its pending ring has room: the queue holds the rest meanwhile). */
			slot_watch(m, l, s,
			           !live && !m->stopping && now >= k->paused_until &&
			                   m->conns.pending.n < FDP__MAX_PENDING);
			if (!live && (now < k->paused_until || m->conns.pending.n >= FDP__MAX_PENDING))
				m->kernel_dirty = 1;
		}
	}
}

void fdp__kernel_event(struct fdp_master *m, const struct fdp__watch *w)
{
	struct fdp__listener *l = &m->listeners[w->index];
	struct fdp__kslot *k;
	int fd;

	if (!l->steer || m->stopping || shared(l))
		return;
	k = &l->kslots[w->sub];
	fd = fdp__steer_fd(l->steer, w->sub);
	fdp__accept_on(m, l, fd, &k->paused_until);
	if (k->paused_until > fdp__now_ms() || m->conns.pending.n >= FDP__MAX_PENDING) {
		slot_watch(m, l, w->sub, 0);
		m->kernel_dirty = 1; /* watched again once the pause is over */
	}
}

/* How many connections p's slot holds open: those it accepted itself, those handed to it. */
static uint32_t slot_open(const struct fdp_master *m, const struct fdp__steer_state *st,
                          unsigned s)
{
	uint64_t open = __atomic_load_n(&st->open[s], __ATOMIC_RELAXED);

	for (const struct fdp__proc *p = m->procs; p; p = p->next)
		if (p->slot == s)
			open += p->open + p->inflight.n;
	return open > UINT32_MAX ? UINT32_MAX : (uint32_t)open;
}

/* A live slot whose queue waits and whose worker accepted nothing for the ACK timeout. */
static void check_hung(struct fdp_master *m, struct fdp__listener *l, unsigned s, long long now)
{
	struct fdp__kslot *k = &l->kslots[s];
	struct fdp__proc *p = m->slots[s].proc;
	uint32_t acc = __atomic_load_n(&fdp__steer_state(l->steer)->accepted[s], __ATOMIC_RELAXED);
	uint32_t stolen = __atomic_load_n(&fdp__steer_state(l->steer)->stolen[s], __ATOMIC_RELAXED);
	long long wait = m->cfg.ack_timeout_ms ? m->cfg.ack_timeout_ms : FDP__ACK_WAIT_MS;
	int robbed = stolen != k->stolen_seen;
	long queued;

	k->stolen_seen = stolen;
	if (acc != k->seen || !accepting(p) || full(m, p)) {
		k->seen = acc;
		k->stalled_since = 0;
		return;
	}
	/* Work waited for it: queued now, or taken by the others since the last look. */
	queued = fdp__steer_queued(l->steer, s);
	if (queued <= 0 && !robbed) {
		k->stalled_since = 0;
		return;
	}
	if (!k->stalled_since) {
		k->stalled_since = now;
		return;
	}
	if (now - k->stalled_since < wait)
		return;
	m->conns.ack_timeouts++;
	m->slots[s].ack_timeouts++;
	fdp__log(m, FDP_LOG_WARN,
	         "worker %u pid %d accepted none of the connections waiting on its socket for "
	         "%lld ms (%ld waiting now): killing it; they go to other workers",
	         s, (int)p->pid, now - k->stalled_since, queued < 0 ? 0 : queued);
	k->stalled_since = 0;
	fdp__proc_flag_lost(m, p, -ETIMEDOUT);
	m->kernel_dirty = 1;
}

void fdp__kernel_timers(struct fdp_master *m, long long now, long long *next)
{
	int resync;

	if (!m->kernel)
		return;
	if (now >= m->kernel_next) {
		resync = m->kernel_ticks++ % (FDP__KERNEL_RESYNC_MS / FDP__KERNEL_TICK_MS) == 0;
		m->kernel_next = now + FDP__KERNEL_TICK_MS;
		m->kernel_dirty = 1; /* paused slots, LISTENs that could not leave */
		for (size_t i = 0; i < m->nlisteners; i++) {
			struct fdp__listener *l = &m->listeners[i];

			if (!l->steer)
				continue;
			for (unsigned s = 0; s < fdp__steer_slots(l->steer); s++) {
				count_accepted(m, l, s);
				if (shared(l))
					continue;
				if (fdp__steer_slot_live(l->steer, s) == 1)
					check_hung(m, l, s, now);
				if (resync)
					fdp__steer_count_resync(
					        l->steer, s,
					        slot_open(m, fdp__steer_state(l->steer), s));
			}
		}
	}
	if (m->kernel_next < *next)
		*next = m->kernel_next;
}


void fdp__kernel_reaped(struct fdp_master *m, struct fdp__proc *p)
{
	uint64_t lost = 0;

	if (!p->listening)
		return;
	/* A successor of the slot accepting on the same sockets keeps the slot's count. */
	for (const struct fdp__proc *q = m->procs; q; q = q->next)
		if (q != p && q->slot == p->slot && q->listening && q->state != PROC_DEAD)
			return;
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];
		struct fdp__steer_state *st;

		if (!l->steer || p->slot >= fdp__steer_slots(l->steer) || shared(l))
			continue;
		st = fdp__steer_state(l->steer);
		lost += __atomic_exchange_n(&st->open[p->slot], 0, __ATOMIC_RELAXED);
	}
	if (!lost)
		return;
	m->conns.lost += lost;
	m->slots[p->slot].lost += lost;
	fdp__log(m, FDP_LOG_WARN,
	         "worker %u pid %d died with %llu connection(s) it had accepted itself and not "
	         "finished",
	         p->slot, (int)p->pid, (unsigned long long)lost);
}

uint64_t fdp__kernel_accepted(const struct fdp_master *m)
{
	uint64_t n = 0;

	for (size_t i = 0; i < m->nlisteners; i++)
		n += m->listeners[i].kaccepted;
	return n;
}

size_t fdp__kernel_status(struct fdp_master *m, char *line, size_t size)
{
	unsigned n = 0, live = 0;
	int len;

	fdp__kernel_refresh(m);
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];

		if (!l->steer)
			continue;
		n++;
		for (unsigned s = 0; s < fdp__steer_slots(l->steer); s++)
			live += fdp__steer_slot_live(l->steer, s) == 1;
	}
	/* live: slots taking new connections, over every steered listener (a worker that has
	 * not said ACCEPTS yet, or is dead, hung or draining, leaves its slot out). */
	len = snprintf(line, size, "kernel listeners=%u live=%u accepted=%llu\n", n, live,
	               (unsigned long long)fdp__kernel_accepted(m));
	return len < 0 ? 0 : (size_t)len;
}

/* An upgrade's new master failed: its program had replaced ours on the group; ours again. */
void fdp__kernel_reattach(struct fdp_master *m)
{
	for (size_t i = 0; i < m->nlisteners; i++)
		if (m->listeners[i].steer && fdp__steer_attach(m->listeners[i].steer) < 0)
			fdp__log(m, FDP_LOG_WARN,
			         "listener %zu: cannot attach the steering program again: connections "
			         "go by the kernel's hash until the next restart",
			         i);
}

unsigned fdp__kernel_stop_queues(struct fdp__listener *l, struct fdp__queue *q)
{
	unsigned n = 0;

	if (shared(l)) /* the other master's workers accept on every one of its sockets */
		return 0;
	for (unsigned s = 0; l->steer && s < fdp__steer_slots(l->steer); s++)
		if (s != 0 || (!l->handed && !l->shared))
			q[n++] = (struct fdp__queue){fdp__steer_fd(l->steer, s),
			                             &l->kslots[s].paused_until};
	return n;
}

unsigned long fdp__kernel_accept_queued(struct fdp_master *m, struct fdp__listener *l)
{
	struct fdp__queue q[FDP__STEER_MAX_SLOTS];
	unsigned n = fdp__kernel_stop_queues(l, q);

	for (unsigned s = 0; l->steer && !shared(l) && s < fdp__steer_slots(l->steer); s++)
		fdp__steer_slot_out(l->steer, s);
	return fdp__accept_closing(m, l, q, n);
}
