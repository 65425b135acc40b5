/*
 * Choosing the worker for a connection. Only a slot's current process can be chosen (never a
 * draining one), and only while its channel has room and its unacknowledged and open
 * connections are under their limits: a full worker is skipped, the master never waits for one.
 */
#include "master.h"
#include "steer.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>

uint64_t fdp__proc_own_open(const struct fdp_master *m, const struct fdp__proc *p)
{
	uint64_t open = 0;

	if (!p->listening || m->slots[p->slot].proc != p)
		return 0; /* a draining one's are not told apart from its successor's */
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__steer *g = m->listeners[i].steer;

		if (g && p->slot < fdp__steer_slots(g))
			open += __atomic_load_n(&fdp__steer_state(g)->open[p->slot], __ATOMIC_RELAXED);
	}
	return open;
}

/* Its own connections count too (kernel dispatch): a handed one needs a descriptor as well. */
int fdp__proc_can_take(const struct fdp_master *m, const struct fdp__proc *p)
{
	return p && fdp__proc_usable(p) && (p->state == PROC_STARTING || p->state == PROC_READY) &&
	       fdp_channel_queued(p->ch) < FDP_CHANNEL_HIGH_WATER &&
	       p->inflight.n < FDP__MAX_INFLIGHT &&
	       p->open + p->open_other + fdp__proc_own_open(m, p) < m->conn_cap;
}

/* The open connections a worker may hold: configured, or the descriptors it will have. */
uint64_t fdp__conn_cap(const struct fdp_master *m)
{
	struct rlimit rl;

	if (m->cfg.max_conns_per_worker)
		return m->cfg.max_conns_per_worker;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > FDP__CONN_CAP_MAX + FDP__FD_RESERVE)
		return FDP__CONN_CAP_MAX;
	if (rl.rlim_cur > 2 * FDP__FD_RESERVE)
		return rl.rlim_cur - FDP__FD_RESERVE;
	return rl.rlim_cur / 2 ? rl.rlim_cur / 2 : 1;
}

static struct fdp__proc *pick_round_robin(struct fdp_master *m)
{
	unsigned n = m->cfg.workers;

	for (unsigned k = 0; k < n; k++) {
		unsigned i = (m->rr_cursor + k) % n;

		if (fdp__proc_can_take(m, m->slots[i].proc)) {
			m->rr_cursor = (i + 1) % n;
			return m->slots[i].proc;
		}
	}
	return NULL;
}

/* Fewest open connections; ties go round the slots so equal workers share the load. */
static struct fdp__proc *pick_least_conn(struct fdp_master *m)
{
	unsigned n = m->cfg.workers, best_i = 0;
	struct fdp__proc *best = NULL;

	for (unsigned k = 0; k < n; k++) {
		unsigned i = (m->rr_cursor + k) % n;
		struct fdp__proc *p = m->slots[i].proc;

		if (fdp__proc_can_take(m, p) && (!best || p->open < best->open)) {
			best = p;
			best_i = i;
		}
	}
	if (best)
		m->rr_cursor = (best_i + 1) % n;
	return best;
}

/*
 * The slot is the client's address (not its port) placed on the consistent-hash ring that
 * routing uses: a function of the address and the slot numbers only, so a replaced worker gets
 * the same clients back, and a server restarted with one more worker moves about 1/(N+1) of
 * its clients, not nearly all of them as a modulo would. While the slot cannot take a
 * connection (its worker is restarting or full) the next slot that can serves it.
 */
static struct fdp__proc *pick_hash_ip(struct fdp_master *m, const struct fdp__conn *c)
{
	unsigned n = m->cfg.workers, first;
	const void *addr;
	size_t len;

	if (c->peer.ss_family == AF_INET) {
		addr = &((const struct sockaddr_in *)&c->peer)->sin_addr;
		len = 4;
	} else if (c->peer.ss_family == AF_INET6) {
		addr = &((const struct sockaddr_in6 *)&c->peer)->sin6_addr;
		len = 16;
	} else { /* a Unix socket's clients have no address to tell them apart: spread them */
		return pick_round_robin(m);
	}
	/* A steered listener's connection the master accepted (its slot was taken out): the
	 * slot the steering program's table gives its address, so both paths agree. */
	if (m->listeners[c->listener].steer)
		first = fdp__steer_state(m->listeners[c->listener].steer)
		                ->table[fdp__steer_bucket((const struct sockaddr *)&c->peer)] %
		        n;
	else
		first = fdp__hashring_slot(&m->ip_ring, fdp__route_hash(addr, len));

	for (unsigned k = 0; k < n; k++) {
		struct fdp__proc *p = m->slots[(first + k) % n].proc;

		if (fdp__proc_can_take(m, p))
			return p;
	}
	return NULL;
}

/* A routed connection only ever goes to its slot (route.c hands most of them itself). */
static struct fdp__proc *pick_route(struct fdp_master *m, const struct fdp__conn *c)
{
	struct fdp__proc *p = c->routed ? m->slots[c->slot].proc : NULL;

	return fdp__proc_can_take(m, p) ? p : c->routed ? NULL : pick_round_robin(m);
}

struct fdp__proc *fdp__policy_pick(struct fdp_master *m, const struct fdp__conn *c)
{
	switch (m->listeners[c->listener].policy) {
	case FDP_POLICY_ROUTE:
		return pick_route(m, c);
	case FDP_POLICY_LEAST_CONN:
		return pick_least_conn(m);
	case FDP_POLICY_HASH_IP:
		return pick_hash_ip(m, c);
	case FDP_POLICY_ROUND_ROBIN:
	default:
		return pick_round_robin(m);
	}
}

const char *fdp__policy_name(enum fdp_policy p)
{
	switch (p) {
	case FDP_POLICY_LEAST_CONN:
		return "least-conn";
	case FDP_POLICY_HASH_IP:
		return "hash-ip";
	case FDP_POLICY_ROUTE:
		return "route";
	default:
		return "round-robin";
	}
}
