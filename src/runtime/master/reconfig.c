/*
 * Reconfiguration at a reload: on SIGHUP the program gives the master its configuration again
 * (cfg.reload, fdpass_runtime.h), the master applies what may change while it runs (the
 * worker count, the policies and tags, routing, the timeouts, the program the workers run,
 * the log level), then replaces every worker (supervise.c's fdp__reload()). Everything that
 * can fail (the router and its map, hash-ip's ring, memory, the steered listeners' programs)
 * is built before anything is changed, so a configuration the master cannot take leaves the
 * one in force untouched.
 * Called by loop.c; calls supervise.c, route_policy.c and log.c.
 */
#include "master.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a new configuration needs built before it can be applied. */
struct reconfig {
	struct fdp_master_config cfg;
	enum fdp_policy *policy, *cur_policy; /* per listener: the new ones, the ones in force */
	unsigned *tag, *cur_tag;
	struct fdp__router *router; /* NULL: the routing in force stays */
	struct fdp__hashring ring;  /* hash-ip's, for the new count (n == 0: the old one stays) */
};

static void reconfig_free(struct reconfig *rc)
{
	free(rc->policy);
	free(rc->tag);
	free(rc->cur_policy);
	free(rc->cur_tag);
	fdp__route_discard(rc->router);
	fdp__hashring_free(&rc->ring);
}

/* Build what next needs; 0, or a negative errno with the reason in why. */
static int reconfig_prepare(struct fdp_master *m, struct reconfig *rc, char *why, size_t size)
{
	const struct fdp_master_config *next = &rc->cfg;
	size_t n = m->nlisteners ? m->nlisteners : 1;
	int routing = 0, hashing = 0, err;

	if (!next->workers || next->workers > FDP__MAX_WORKERS) {
		snprintf(why, size, "%u workers: from 1 to %d", next->workers, FDP__MAX_WORKERS);
		return -EINVAL;
	}
	if (!next->worker_main && (!next->exec_argv || !next->exec_argv[0])) {
		snprintf(why, size, "no worker program");
		return -EINVAL;
	}
	rc->policy = calloc(n, sizeof(*rc->policy));
	rc->tag = calloc(n, sizeof(*rc->tag));
	if (!rc->policy || !rc->tag) {
		snprintf(why, size, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->nlisteners; i++) {
		rc->policy[i] = next->listener_policy ? next->listener_policy[i] : next->policy;
		rc->tag[i] = next->listener_tag ? next->listener_tag[i] : next->tag;
		routing |= rc->policy[i] == FDP_POLICY_ROUTE;
		hashing |= rc->policy[i] == FDP_POLICY_HASH_IP;
	}
	err = fdp__kernel_reconfig_check(m, next, rc->policy, why, size);
	if (err < 0)
		return err;
	if (routing && next->route) {
		struct fdp_route_config route;

		if (fdp__config_copy(&route, sizeof(route), next->route,
		                     FDP__ROUTE_CONFIG_SIZE_MIN) < 0) {
			snprintf(why, size, "a route config of %zu bytes", next->route->size);
			return -EINVAL;
		}
		err = fdp__route_build(&route, next->workers, &rc->router, why, size);
		if (err < 0)
			return err;
	} else if (routing && (!m->router || next->workers != m->cfg.workers)) {
		snprintf(why, size, "routing with %u workers needs its route configuration",
		         next->workers);
		return -EINVAL;
	}
	if (hashing && m->ip_ring.slots != next->workers) {
		err = fdp__hashring_build(&rc->ring, next->workers, FDP__RING_POINTS);
		if (err < 0) {
			snprintf(why, size, "hash-ip: %s", fdp_strerror(err));
			return err;
		}
	}
	/*
	 * Last, as it is the one step here that acts: the steered listeners' programs for the new
	 * count and policies (new slot sockets, a program each). It undoes itself if it fails, and
	 * nothing after it can, so a reload it refuses leaves the configuration in force whole.
	 */
	return fdp__kernel_reconfigure(m, next->workers, rc->policy, why, size);
}

/* Nothing here fails: what could was built by reconfig_prepare(). */
static void reconfig_commit(struct fdp_master *m, struct reconfig *rc)
{
	const struct fdp_master_config *next = &rc->cfg;
	unsigned old = m->cfg.workers;

	for (size_t i = 0; i < m->nlisteners; i++) {
		m->listeners[i].policy = rc->policy[i];
		m->listeners[i].tag = rc->tag[i];
	}
	m->cfg.policy = next->policy;
	m->cfg.tag = next->tag;
	m->cfg.listener_policy = NULL; /* copied into the listeners: not kept */
	m->cfg.listener_tag = NULL;
	m->cfg.drain_timeout_ms = next->drain_timeout_ms;
	m->cfg.start_timeout_ms = next->start_timeout_ms;
	m->cfg.ack_timeout_ms = next->ack_timeout_ms;
	m->cfg.worker_main = next->worker_main;
	m->cfg.worker_arg = next->worker_arg;
	m->cfg.exec_argv = next->exec_argv;
	m->cfg.log_level = next->log_level;
	m->cfg.worker_set_ids = next->worker_set_ids; /* the workers forked from now on */
	m->cfg.worker_uid = next->worker_uid;
	m->cfg.worker_gid = next->worker_gid;
	m->cfg.recycle_conns = next->recycle_conns; /* read at each worker's start (recycle.c) */
	m->cfg.recycle_ms = next->recycle_ms;
	m->cfg.recycle_jitter_pct = next->recycle_jitter_pct;
	m->cfg.max_connections = next->max_connections;
	if (rc->router) {
		fdp__route_replace(m, rc->router);
		rc->router = NULL;
	}
	fdp__kernel_defer(m);
	if (rc->ring.n) {
		fdp__hashring_free(&m->ip_ring);
		m->ip_ring = rc->ring;
		rc->ring = (struct fdp__hashring){0};
	}
	/* Shrunk: the retired slots drain first; grown: the new slots get no successor. */
	if (next->workers < old)
		fdp__supervise_resize(m, next->workers);
	fdp__reload(m);
	if (next->workers > old)
		fdp__supervise_resize(m, next->workers);
	fdp__disps_restart(m); /* new ones with the new routing; the old ones finish */
}

/* A refused reload: logged, and counted for a control client waiting for it (control.c). */
static void refused(struct fdp_master *m, const char *why)
{
	fdp__log(m, FDP_LOG_WARN,
	         "reload refused: %s; the configuration in force stays, no worker replaced", why);
	snprintf(m->refused_why, sizeof(m->refused_why), "%s", why);
	m->reloads_refused++;
	/* A service manager told of the reload hears it is over: the old configuration serves. */
	if (!m->reload_chained)
		fdp__event(m, FDP_MASTER_RELOADING);
	m->reload_chained = 0;
	fdp__event(m, FDP_MASTER_READY);
}

/*
 * SIGHUP (loop.c), a control client's reload (control.c), or a reload asked for during the
 * last one (loop.c, m->reload_due). During a reload the next one waits (fdp__reload()
 * remembers it) and reads the configuration when it runs.
 */
void fdp__reconfigure(struct fdp_master *m)
{
	struct reconfig rc = {.cfg = m->cfg};
	char why[256] = "";
	int err;

	if (m->reloading || !m->cfg.reload) {
		fdp__reload(m);
		return;
	}
	rc.cfg.size = sizeof(rc.cfg);
	rc.cfg.route = NULL;
	/* The callback sees the policies and tags in force, from arrays of the master's. */
	rc.cur_policy = calloc(m->nlisteners ? m->nlisteners : 1, sizeof(*rc.cur_policy));
	rc.cur_tag = calloc(m->nlisteners ? m->nlisteners : 1, sizeof(*rc.cur_tag));
	if (!rc.cur_policy || !rc.cur_tag) {
		reconfig_free(&rc);
		refused(m, "out of memory");
		return;
	}
	for (size_t i = 0; i < m->nlisteners; i++) {
		rc.cur_policy[i] = m->listeners[i].policy;
		rc.cur_tag[i] = m->listeners[i].tag;
	}
	rc.cfg.listener_policy = rc.cur_policy;
	rc.cfg.listener_tag = rc.cur_tag;
	err = m->cfg.reload(m->cfg.reload_arg, &rc.cfg, why, sizeof(why));
	if (err < 0) {
		reconfig_free(&rc);
		why[sizeof(why) - 1] = '\0';
		if (!why[0])
			snprintf(why, sizeof(why), "%s", fdp_strerror(err));
		refused(m, why);
		return;
	}
	err = reconfig_prepare(m, &rc, why, sizeof(why));
	if (err < 0) {
		reconfig_free(&rc);
		refused(m, why);
		return;
	}
	fdp__log(m, FDP_LOG_INFO, "reload: configuration read: %u worker(s), policy %s",
	         rc.cfg.workers, fdp__policy_name(rc.cfg.policy));
	reconfig_commit(m, &rc);
	reconfig_free(&rc);
}
