/*
 * Recycling (cfg recycle_conns, recycle_ms): a worker that has been handed its share of
 * connections, or has been up its time, is replaced the way a reload replaces it, but one slot
 * at a time: its successor starts first (fdp__spawn(), successor), takes the slot once it says
 * READY, and only then does the old one drain (supervise.c's promote()). The old one keeps
 * taking connections while its successor starts, so no client waits for a fork; a successor
 * that fails to start leaves it serving, and the next try comes RECYCLE_RETRY_MS later.
 *
 * The master sees connections, not requests: a keep-alive connection counts once. Called by
 * the loop at each round (a hand-over is counted by conns.c; the next round sees it); calls
 * supervise.c and log.c.
 */
#include "master.h"

#include <stdio.h>
#include <unistd.h>

#define RECYCLE_RETRY_MS FDP__BACKOFF_MAX_MS

/* A limit raised by a random 0..recycle_jitter_pct percent of itself (xorshift64). */
static uint64_t jittered(struct fdp_master *m, uint64_t limit)
{
	uint64_t x = m->recycle_rand, span;

	if (!limit || !m->cfg.recycle_jitter_pct)
		return limit;
	if (!x)
		x = ((uint64_t)fdp__now_ms() << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	m->recycle_rand = x;
	span = limit * (m->cfg.recycle_jitter_pct > 100 ? 100 : m->cfg.recycle_jitter_pct) / 100;
	return limit + x % (span + 1);
}

/* p's limits, drawn once: its lifetime counts from its start. */
static void set_limits(struct fdp_master *m, struct fdp__proc *p)
{
	if (p->recycle_set)
		return;
	p->recycle_set = 1;
	p->recycle_conns = jittered(m, m->cfg.recycle_conns);
	if (m->cfg.recycle_ms)
		p->recycle_at = p->started_ms + (long long)jittered(m, m->cfg.recycle_ms);
}

/* Why p is due for replacement (why, size), or 0 if it is not; lowers *next to when it is. */
static int due(const struct fdp__proc *p, long long now, long long *next, char *why, size_t size)
{
	if (p->recycle_conns && p->handed >= p->recycle_conns) {
		snprintf(why, size, "handed %llu connections (max %llu)",
		         (unsigned long long)p->handed, (unsigned long long)p->recycle_conns);
		return 1;
	}
	if (p->recycle_at && now >= p->recycle_at) {
		snprintf(why, size, "up %lld ms (max %lld)", now - p->started_ms,
		         p->recycle_at - p->started_ms);
		return 1;
	}
	if (p->recycle_at && p->recycle_at < *next)
		*next = p->recycle_at;
	return 0;
}

static void recycle_slot(struct fdp_master *m, unsigned i, long long now, long long *next)
{
	struct fdp__slot *s = &m->slots[i];
	struct fdp__proc *p = s->proc;
	char why[96];

	if (!p || p->state != PROC_READY || !fdp__proc_usable(p))
		return;
	set_limits(m, p);
	if (s->next)
		return; /* its successor (a recycling's or a reload's) is on its way */
	if (p->recycling) {
		/* Its successor ended before it was ready (supervise.c logged how). */
		p->recycling = 0;
		p->recycle_retry_at = now + RECYCLE_RETRY_MS;
		fdp__log(m, FDP_LOG_WARN,
		         "worker %u pid %d generation %u keeps serving; its replacement is tried "
		         "again in %d ms",
		         i, (int)p->pid, p->generation, RECYCLE_RETRY_MS);
	}
	if (!due(p, now, next, why, sizeof(why)))
		return;
	if (now < p->recycle_retry_at) {
		if (p->recycle_retry_at < *next)
			*next = p->recycle_retry_at;
		return;
	}
	fdp__log(m, FDP_LOG_INFO,
	         "worker %u pid %d generation %u %s: replacing it (its successor starts first)", i,
	         (int)p->pid, p->generation, why);
	p->recycling = 1;
	fdp__spawn(m, i, 1); /* a failure leaves s->next empty: the next round retries later */
}

void fdp__recycle_timers(struct fdp_master *m, long long now, long long *next)
{
	if ((!m->cfg.recycle_conns && !m->cfg.recycle_ms) || fdp__stop_begun(m))
		return;
	for (unsigned i = 0; i < m->cfg.workers; i++)
		recycle_slot(m, i, now, next);
}
