/*
 * The master's event loop: one thread, one epoll. Signals arrive on a signalfd, worker deaths
 * on a pidfd per worker, timers are the epoll_wait() timeout computed from the nearest
 * deadline (respawn, drain, pending expiry, accept pause), which needs no timerfd to re-arm.
 *
 * Each round handles worker events (signals, deaths, channel input), then new connections,
 * then control and metrics requests, so a count a worker reported before a client's next
 * connect is already applied when that connection is dispatched, and a status (or the
 * metrics) read after a connect already counts it.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

static void listener_watch(struct fdp_master *m, struct fdp__listener *l, int on)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->w};

	if (l->fd < 0 || l->registered == on)
		return;
	if (epoll_ctl(m->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->fd, &ev) == 0)
		l->registered = on;
}

/*
 * Close the listeners. A steered one's group (its sockets filtered and emptied by the stop) is
 * closed only with steered set, once the workers are gone: its shared state is what tells the
 * master how many connections each worker still holds, so that none is handed one it has no
 * descriptor for while it drains.
 */
static void close_listeners(struct fdp_master *m, int steered)
{
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];
		char addr[FDP_ADDR_STRLEN];

		fdp__kparts_free(l->kparts); /* an old master's group never adopted */
		l->kparts = NULL;
		if (l->fd < 0)
			continue;
		listener_watch(m, l, 0);
		if (l->steer) { /* every slot's socket, slot 0's (l->fd) too */
			if (steered)
				fdp__kernel_close(m, l);
			continue;
		}
		/* A Unix listener's file goes with it (only in the master, not a forked worker),
		 * unless an upgrade's new master took it, or the socket is shared: its giver keeps
		 * it, file and all. */
		if (!m->in_child && !l->handed && !l->shared &&
		    fdp_addr_local(l->fd, addr, sizeof(addr)) > 0 &&
		    strncmp(addr, "unix:/", 6) == 0)
			unlink(addr + 5);
		close(l->fd);
		l->fd = -1;
	}
}

/*
 * Before a stop closes the listeners: a client whose handshake is complete is in the kernel's
 * accept queue, and closing the listener would reset it. Stop new handshakes, then take every
 * connection queued (as far as the pending limit allows), so that they are handed out before
 * the workers drain. Returns how many. A shared listener (config listener_shared) is left as
 * it is: its giver keeps it open, so what waits in its queue waits for the next server, and a
 * filter would stay on it for that server too.
 */
static unsigned long accept_queued(struct fdp_master *m)
{
	unsigned long total = 0;

	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];
		struct fdp__queue q;

		if (l->steer)
			total += fdp__kernel_accept_queued(m, l);
		else if (fdp__stop_queues(l, &q)) /* handed: the new master has it */
			total += fdp__accept_closing(m, l, &q, 1);
	}
	return total;
}

/*
 * A listener must be listening, and non-blocking: accepting loops until EAGAIN, which on a
 * blocking socket (one inherited from systemd, say) would freeze the master in accept().
 */
static int listener_prepare(int fd)
{
	int on = 0, flags;
	socklen_t len = sizeof(on);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0)
		return -errno;
	if (!on)
		return -EINVAL;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int config_check(const struct fdp_master_config *cfg)
{
	if (!cfg->workers || cfg->workers > FDP__MAX_WORKERS ||
	    cfg->dispatchers > FDP__MAX_DISPATCHERS ||
	    (!cfg->worker_main && (!cfg->exec_argv || !cfg->exec_argv[0])) ||
	    (cfg->upgrade &&
	     (!cfg->upgrade_argv || !cfg->upgrade_argv[0] || cfg->upgrade_argv[0][0] != '/')))
		return -EINVAL;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		int err = listener_prepare(cfg->listeners[i]);

		if (err < 0)
			return err;
	}
	if (cfg->metrics_fd && *cfg->metrics_fd >= 0)
		return listener_prepare(*cfg->metrics_fd);
	return 0;
}

/* The metrics listener of a config no master was made from: the caller's to give too. */
static void close_metrics_fd(const struct fdp_master_config *given)
{
	size_t end = offsetof(struct fdp_master_config, metrics_fd) + sizeof(given->metrics_fd);

	if (given->size >= end && given->metrics_fd && *given->metrics_fd >= 0)
		close(*given->metrics_fd);
}

/* The first published layout of struct fdp_master_config ends with start_timeout_ms. */
#define CONFIG_SIZE_MIN (offsetof(struct fdp_master_config, start_timeout_ms) + sizeof(unsigned))

/*
 * Copy the caller's config and its route config (into *route) by their sizes, so that the
 * rest of the master reads only structs of this library's layout.
 */
static int config_copy(struct fdp_master_config *cfg, struct fdp_route_config *route,
                       const struct fdp_master_config *given)
{
	int err = fdp__config_copy(cfg, sizeof(*cfg), given, CONFIG_SIZE_MIN);

	if (err < 0 || !cfg->route)
		return err;
	err = fdp__config_copy(route, sizeof(*route), cfg->route, FDP__ROUTE_CONFIG_SIZE_MIN);
	cfg->route = route;
	return err;
}

int fdp_master_open(struct fdp_master **out, const struct fdp_master_config *given)
{
	struct fdp_master_config c, *cfg = &c;
	struct fdp_route_config route;
	struct fdp_master *m = calloc(1, sizeof(*m));
	int err = config_copy(cfg, &route, given), copied = err == 0;

	if (err == 0)
		err = config_check(cfg);
	if (!m || err < 0) {
		/* The listeners follow size in every layout: they are the caller's to give. */
		for (size_t i = 0; i < given->nlisteners; i++)
			close(given->listeners[i]);
		close_metrics_fd(given);
		if (copied) /* the caller's to give, like the listeners */
			fdp_upgrade_free(cfg->upgraded_from);
		free(m);
		return m ? err : -ENOMEM;
	}
	m->cfg = *cfg;
	m->epfd = m->sigfd = m->ctlfd = -1;
	m->up.pidfd = m->up.sock = m->up.from_sock = -1;
	m->up.from = cfg->upgraded_from; /* upgrade.c's from here on, freed on failure below */
	m->cfg.upgraded_from = NULL;
	m->listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*m->listeners));
	m->nlisteners = m->listeners ? cfg->nlisteners : 0; /* closed below when it failed */
	/* Every slot the count may grow to at a reload (fdp__supervise_resize()). */
	m->slots = calloc(FDP__MAX_WORKERS, sizeof(*m->slots));
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		if (m->listeners)
			m->listeners[i] = (struct fdp__listener){
			        .fd = cfg->listeners[i],
			        .policy = cfg->listener_policy ? cfg->listener_policy[i]
			                                       : cfg->policy,
			        .tag = cfg->listener_tag ? cfg->listener_tag[i] : cfg->tag,
			        .shared = cfg->listener_shared && cfg->listener_shared[i],
			        .defer = cfg->listener_defer && cfg->listener_defer[i],
			        .w = {.kind = W_LISTENER, .index = (unsigned)i}};
		else
			close(cfg->listeners[i]);
	}
	if (cfg->metrics_fd && *cfg->metrics_fd >= 0)
		err = fdp__metrics_open(m, *cfg->metrics_fd); /* it closes it on failure */
	/* An upgrade's new master: what it took stays the old master's until it says READY. */
	for (size_t i = 0; i < m->nlisteners && err == 0; i++) {
		m->listeners[i].handed = fdp__upgrade_took(m, m->listeners[i].fd);
		if (m->listeners[i].handed) /* with its steering group, if it had one */
			err = fdp__upgrade_take_steer(m, m->listeners[i].fd, &m->listeners[i].kparts);
	}
	if (err == 0 && cfg->metrics_fd && fdp__upgrade_took(m, *cfg->metrics_fd))
		fdp__metrics_handed(m);
	m->cfg.metrics_fd = NULL; /* taken: the pointer is not kept */
	if (err < 0 || !m->listeners || !m->slots) {
		err = err < 0 ? err : -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < m->nlisteners && !m->router; i++) {
		if (m->listeners[i].policy != FDP_POLICY_ROUTE)
			continue;
		err = fdp__route_open(m, cfg->route);
		if (err < 0)
			goto fail;
	}
	for (size_t i = 0; i < m->nlisteners && !m->ip_ring.n; i++) {
		if (m->listeners[i].policy != FDP_POLICY_HASH_IP)
			continue;
		err = fdp__hashring_build(&m->ip_ring, cfg->workers, FDP__RING_POINTS);
		if (err < 0)
			goto fail;
	}
	err = fdp__kernel_open(m);
	/* An old master's steering group this one did not adopt stays the old one's: it then
	 * stops that group as its own (READY reports it not taken). */
	for (size_t i = 0; i < m->nlisteners; i++)
		if (m->listeners[i].kparts) {
			fdp__upgrade_untake_steer(m, m->listeners[i].kparts);
			m->listeners[i].kparts = NULL;
		}
	if (err < 0)
		goto fail;
	fdp__kernel_defer(m); /* on the slot sockets too, now that the groups exist */
	err = fdp__control_open(m);
	if (err < 0)
		goto fail;
	m->cfg.route = NULL;           /* read above; its copy lived on this stack */
	m->cfg.listener_shared = NULL; /* read above, into the listeners */
	m->cfg.listener_defer = NULL;
	*out = m;
	return 0;
fail:
	fdp_master_close(m);
	return err;
}

void fdp_master_close(struct fdp_master *m)
{
	if (!m)
		return;
	fdp__disps_close(m);
	fdp__upgrade_close(m);
	close_listeners(m, 1);
	fdp__control_close(m);
	fdp__metrics_close(m);
	while (m->procs) {
		struct fdp__proc *p = m->procs;

		m->procs = p->next;
		/* Only after fdp_master_run() failed: leave no worker behind, orphaned. */
		if (!m->in_child) {
			fdp__proc_kill(p);
			while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		fdp__output_close(m, p);
		fdp_channel_close(p->ch);
		fdp_channel_close(p->lost_ch);
		if (p->pidfd >= 0)
			close(p->pidfd);
		fdp__conns_free_proc(p);
		free(p);
	}
	fdp__free_dead(m);
	fdp__route_close(m);
	fdp__hashring_free(&m->ip_ring);
	fdp__conns_free(m);
	if (m->sigfd >= 0)
		close(m->sigfd);
	if (m->epfd >= 0)
		close(m->epfd);
	free(m->listeners);
	free(m->slots);
	free(m);
}

static void control_watch(struct fdp_master *m, int on)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &m->wctl};

	if (m->ctlfd < 0 || m->ctl_registered == on)
		return;
	if (epoll_ctl(m->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, m->ctlfd, &ev) == 0)
		m->ctl_registered = on;
}

/*
 * The stop: take what is queued on the listeners, close them, drain the workers. After an
 * upgrade (upgrade: the new master is ready) what it took is only closed here, with no filter
 * (the new master accepts on it), and the control socket it took is left to it: unwatched
 * first, since a registration lives as long as the socket, which the new master holds.
 */
static void stop_serving(struct fdp_master *m, int upgrade)
{
	unsigned long n;

	fdp__disps_stop(m); /* they close their copies of the listeners first */
	n = accept_queued(m);
	if (n)
		fdp__log(m, FDP_LOG_INFO,
		         "took %lu connection(s) still queued on the listeners before closing them",
		         n);
	close_listeners(m, 0);
	if (upgrade && m->up.ctl_handed) {
		control_watch(m, 0);
		fdp__control_handed(m);
	}
	fdp__start_drain(m);
}

static void upgrade_signal(struct fdp_master *m)
{
	int err = fdp__upgrade_start(m, NULL, NULL);

	if (err == -EBUSY)
		fdp__log(m, FDP_LOG_WARN, "upgrade requested during an upgrade: ignored");
	else if (err < 0)
		fdp__log(m, FDP_LOG_WARN, "upgrade: cannot start a new master: %s",
		         fdp_strerror(err));
}

/*
 * SIGTERM, SIGINT or a control client's stop: a drain (after a linger for the handshakes a
 * deferred listener holds, linger.c), and a second one stops at once.
 */
static void begin_stop(struct fdp_master *m)
{
	if (m->linger == 1) {
		m->linger = 2;
		stop_serving(m, 0);
		fdp__stop_now(m);
	} else if (m->stopping) {
		fdp__stop_now(m);
	} else {
		fdp__upgrade_cancel(m); /* a new master not ready yet goes with this one */
		if (!fdp__linger_begin(m))
			stop_serving(m, 0);
	}
}

static void handle_signals(struct fdp_master *m)
{
	struct signalfd_siginfo si;

	while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			/* Only this master's own workers, each by pid: never another child (unless
			 * it reaps every child: orphans.c). */
			for (struct fdp__proc *p = m->procs, *next; p; p = next) {
				next = p->next;
				if (p->pidfd < 0)
					fdp__reap(m, p);
			}
			fdp__disps_sigchld(m);
			fdp__upgrade_sigchld(m); /* first: it is the new master's status */
			fdp__orphans_reap(m);
			continue;
		}
		if (si.ssi_signo == SIGUSR2) {
			fdp__log(m, FDP_LOG_INFO, "received %s", strsignal((int)si.ssi_signo));
			upgrade_signal(m);
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			if (!fdp__stop_begun(m))
				fdp__reconfigure(m);
			continue;
		}
		if (si.ssi_signo == SIGUSR1) { /* only in the set with cfg.reopen */
			fdp__log(m, FDP_LOG_INFO, "received SIGUSR1: reopening the log");
			m->cfg.reopen(m->cfg.log_arg);
			continue;
		}
		fdp__log(m, FDP_LOG_INFO, "received %s", strsignal((int)si.ssi_signo));
		begin_stop(m);
	}
}

/*
 * The signals the master reads from its signalfd: four always, and each optional one only when
 * the config asks for what it does (an embedder that does not ask need not block it): SIGUSR1
 * with reopen, SIGUSR2 with upgrade.
 */
static void master_signals(const struct fdp_master *m, sigset_t *set)
{
	static const int always[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
	const struct {
		int sig, wanted;
	} optional[] = {
	        {SIGUSR1, m->cfg.reopen != NULL},
	        {SIGUSR2, m->cfg.upgrade != 0},
	};

	sigemptyset(set);
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		sigaddset(set, always[i]);
	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
		if (optional[i].wanted)
			sigaddset(set, optional[i].sig);
}

/*
 * They must be blocked in this thread: one that is not never reaches the signalfd, and its
 * default action runs instead (a SIGTERM would kill the master, leaving its workers behind).
 */
static int signals_blocked(const struct fdp_master *m)
{
	sigset_t want, cur;

	master_signals(m, &want);
	if (sigprocmask(SIG_BLOCK, NULL, &cur) < 0)
		return 0;
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(&want, sig) == 1 && sigismember(&cur, sig) != 1)
			return 0;
	return 1;
}

static int setup(struct fdp_master *m)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &m->wsig};
	sigset_t set;

	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (m->epfd < 0)
		return -errno;
	master_signals(m, &set);
	m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->sigfd < 0)
		return -errno;
	m->wsig.kind = W_SIGNAL;
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->sigfd, &ev) < 0)
		return -errno;
	return 0;
}

/*
 * At cfg max_connections open, no listener is watched (the kernel's backlog holds the new
 * clients) until one finishes. Says so once per pause, at most every FDP__LOG_INTERVAL_MS.
 */
static int conns_limited(struct fdp_master *m)
{
	int full = m->cfg.max_connections && fdp__conns_open(m) >= m->cfg.max_connections;

	if (full && !m->conns_limited)
		fdp__log_limited(m, &m->rl_limit, FDP_LOG_WARN,
		                 "%u connections open (max-connections): not accepting until one "
		                 "finishes",
		                 m->cfg.max_connections);
	m->conns_limited = full;
	return full;
}

/* Accept only while there is room for what is accepted, and not during an EMFILE pause. */
static void update_listeners(struct fdp_master *m, long long now, long long *next)
{
	int limited = conns_limited(m);

	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];
		/* A route listener with dispatchers is theirs (disps.c), but at a stop. */
		int on = !l->steer && !m->stopping && !limited &&
		         !(l->policy == FDP_POLICY_ROUTE && m->dshared) &&
		         m->conns.pending.n < FDP__MAX_PENDING &&
		         now >= l->paused_until &&
		         !(l->policy == FDP_POLICY_ROUTE && fdp__route_full(m));

		if (now < l->paused_until && l->paused_until < *next)
			*next = l->paused_until;
		listener_watch(m, l, on);
	}
	if (now < m->ctl_paused_until && m->ctl_paused_until < *next)
		*next = m->ctl_paused_until;
	control_watch(m, now >= m->ctl_paused_until && m->ctl_nclients < FDP__CONTROL_CLIENTS);
	fdp__metrics_timers(m, now, next); /* its clients' deadlines, and its listener's watch */
}

static void handle_event(struct fdp_master *m, struct epoll_event *ev, int phase)
{
	struct fdp__watch *w = ev->data.ptr;

	if (phase == 0) {
		if (w->kind == W_SIGNAL)
			handle_signals(m);
		else if (w->kind == W_UPGRADE && fdp__upgrade_event(m, w) && !m->stopping)
			stop_serving(m, 1);
		else if (w->kind == W_PIDFD && w->proc->state != PROC_DEAD)
			fdp__reap(m, w->proc);
		else if (w->kind == W_DISP || w->kind == W_DISPPID)
			fdp__disps_event(m, w);
		else if (w->kind == W_CHANNEL && fdp__proc_usable(w->proc)) {
			if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				fdp__channel_input(m, w->proc);
			if (fdp__proc_usable(w->proc) && (ev->events & EPOLLOUT))
				w->proc->dirty = 1;
		} else if (w->kind == W_OUTPUT) {
			fdp__output_input(m, w->proc, w->index);
		}
		/* What it flagged (a READY, a lost channel) is settled before the next event. */
		fdp__supervise_flagged(m);
	} else if (phase == 1) {
		if (w->kind == W_LISTENER && m->listeners[w->index].fd >= 0 && !m->stopping)
			fdp__accept_from(m, &m->listeners[w->index]);
		else if (w->kind == W_KSLOT)
			fdp__kernel_event(m, w);
	} else if (w->kind == W_CONTROL) {
		fdp__control_accept(m);
	} else if (w->kind == W_CTLCLIENT) {
		fdp__control_input(m, w);
	} else if (w->kind == W_METRICS || w->kind == W_METRICS_CLIENT) {
		fdp__metrics_event(m, w, ev->events);
	} else if (w->kind == W_ROUTE && !m->stopping) {
		/* Last: handling it may free w, and no later phase may look at it. */
		fdp__route_input(m, w, ev->events);
	}
}

static void log_listeners(struct fdp_master *m)
{
	for (size_t i = 0; i < m->nlisteners; i++) {
		char addr[FDP_ADDR_STRLEN];

		if (fdp_addr_local(m->listeners[i].fd, addr, sizeof(addr)) > 0)
			fdp__log(m, FDP_LOG_INFO, "listening on %s", addr);
	}
	if (m->control_path)
		fdp__log(m, FDP_LOG_INFO, "control socket %s", m->control_path);
	if (m->cfg.worker_set_ids)
		fdp__log(m, FDP_LOG_INFO, "workers run as uid %u gid %u", (unsigned)m->cfg.worker_uid,
		         (unsigned)m->cfg.worker_gid);
	fdp__metrics_log(m);
}

/* The program's periodic event (config tick_ms): a watchdog that stops when the loop does. */
static void tick(struct fdp_master *m, long long now, long long *next)
{
	if (!m->next_tick)
		return;
	if (now >= m->next_tick) {
		m->next_tick = now + m->cfg.tick_ms;
		fdp__event(m, FDP_MASTER_TICK);
	}
	if (m->next_tick < *next)
		*next = m->next_tick;
}

int fdp_master_run(struct fdp_master *m)
{
	struct epoll_event evs[MAX_EVENTS];
	struct fdp__disp_row d;
	int err = signals_blocked(m) ? setup(m) : -EINVAL;

	if (err < 0)
		return err;
	m->start_ms = fdp__now_ms();
	m->conn_cap = fdp__conn_cap(m); /* now: the caller may have raised the limit since open */
	if (m->cfg.event && m->cfg.tick_ms)
		m->next_tick = m->start_ms + m->cfg.tick_ms;
	log_listeners(m);
	fdp__upgrade_run(m);
	fdp__orphans_start(m);
	err = fdp__disps_start(m); /* first: each is told of every worker as it starts */
	if (err < 0)
		return err;
	for (unsigned i = 0; i < m->cfg.workers && !m->start_err; i++)
		fdp__spawn(m, i, 0);
	while ((!m->stopping || m->procs || m->disps) && !m->start_err) {
		long long now = fdp__now_ms(), next = now + 60000;
		int n;

		fdp__linger_timers(m, &next);
		tick(m, now, &next);
		fdp__supervise_timers(m, now, &next);
		fdp__recycle_timers(m, now, &next);
		fdp__conns_expire_pending(m, now, &next);
		fdp__conns_ack_deadlines(m, now, &next);
		fdp__route_timers(m, now, &next);
		fdp__control_timers(m, now, &next);
		fdp__upgrade_timers(m, now, &next);
		fdp__kernel_timers(m, now, &next);
		fdp__disps_timers(m, now, &next);
		fdp__channel_poll(m, now, &next);
		fdp__supervise_flagged(m); /* a held connection handed on its deadline may fail */
		update_listeners(m, now, &next);
		n = epoll_wait(m->epfd, evs, MAX_EVENTS, (int)(next > now ? next - now : 0));
		if (n < 0 && errno != EINTR)
			return -errno;
		for (int phase = 0; phase < 3; phase++)
			for (int i = 0; i < n; i++)
				handle_event(m, &evs[i], phase);
		if (m->want_stop) {
			m->want_stop = 0;
			begin_stop(m);
		}
		if (fdp__linger_over(m)) /* where a stop begins: what it hands leaves below */
			stop_serving(m, 0);
		fdp__conns_dispatch_pending(m);
		fdp__conns_dispatch_held(m);
		/* Hand-overs only flag a failed channel: its worker is settled before a drain. */
		fdp__supervise_flagged(m);
		fdp__send_drains(m);
		fdp__kernel_settle(m); /* after the drains and the settling: its LISTENs flush now */
		fdp__flush_dirty(m);
		fdp__disps_flush(m);
		fdp__supervise_flagged(m);
		fdp__upgrade_forward(m);
		fdp__free_dead(m);
		if (m->reload_due && !fdp__stop_begun(m)) { /* one asked for during the last reload */
			m->reload_due = 0;
			fdp__reconfigure(m);
		}
	}
	if (m->start_err) {
		/* fdp_master_close() kills and reaps the workers that did start. */
		fdp__log(m, FDP_LOG_ERROR, "cannot start: %s",
		         m->start_err == -EPERM ? "the workers could not take their user and group"
		                                : "a worker program could not be executed");
		return m->start_err;
	}
	fdp__upgrade_finish(m);
	fdp__conns_shutdown(m);
	close_listeners(m, 1); /* the steered groups, the workers gone: their counts are final */
	fdp__disps_totals(m, &d); /* the dispatchers' too: they are gone, theirs are final */
	fdp__log(m, FDP_LOG_INFO,
	         "stopped: accepted %llu, handed %llu, re-handed %llu, closed unserved %llu",
	         (unsigned long long)(m->conns.accepted + d.accepted),
	         (unsigned long long)(m->conns.handed + d.handed),
	         (unsigned long long)(m->conns.rehanded + d.rehanded),
	         (unsigned long long)(m->conns.closed[CLOSE_NO_WORKER] +
	                              m->conns.closed[CLOSE_SHUTDOWN] +
	                              m->conns.closed[CLOSE_ERROR] + d.closed[CLOSE_NO_WORKER] +
	                              d.closed[CLOSE_SHUTDOWN] + d.closed[CLOSE_ERROR]));
	if (m->dshared)
		fdp__log(m, FDP_LOG_INFO, "of which the dispatchers accepted %llu and handed %llu",
		         (unsigned long long)d.accepted, (unsigned long long)d.handed);
	if (m->kernel)
		fdp__log(m, FDP_LOG_INFO, "accepted by the workers themselves (kernel dispatch): %llu",
		         (unsigned long long)fdp__kernel_accepted(m)); /* counted at the close */
	/* What each slot served over the run, for the log reader and the benchmarks' spread:
	 * under kernel dispatch, with what its workers accepted themselves (all done by now). */
	for (unsigned i = 0; i < m->cfg.workers; i++)
		fdp__log(m, FDP_LOG_INFO, "worker %u served %llu connections", i,
		         (unsigned long long)(m->slots[i].served + m->slots[i].kaccepted));
	fdp__control_stopped(m);
	return 0;
}
