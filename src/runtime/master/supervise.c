/*
 * Supervision: forking workers (one channel each), noticing at once when one dies (a pidfd per
 * worker in the master's epoll), replacing it in its slot with a capped exponential backoff
 * for workers that keep dying right after they start, draining, and reloading.
 */
#include "master.h"
#include "proto.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

const char *fdp__proc_state_name(enum fdp__proc_state s)
{
	static const char *const names[] = {"starting", "ready", "draining", "dead"};

	return names[s];
}

static int watch_proc(struct fdp_master *m, struct fdp__proc *p)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->wch};

	p->wch = (struct fdp__watch){.kind = W_CHANNEL, .proc = p};
	p->wpid = (struct fdp__watch){.kind = W_PIDFD, .proc = p};
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fdp_channel_fd(p->ch), &ev) < 0)
		return -errno;
	ev.data.ptr = &p->wpid;
	if (p->pidfd >= 0 && epoll_ctl(m->epfd, EPOLL_CTL_ADD, p->pidfd, &ev) < 0)
		return -errno;
	return 0;
}

/*
 * A worker whose program could not be executed (err: the errno of its execve()), or that could
 * not take the workers' user and group (step: which call failed): at startup (a first
 * generation) the master gives up (fdp_master_run() returns -ENOEXEC, or -EPERM); a
 * successor (a reload's, a recycling's) leaves the old worker serving; a replacement is tried
 * again later (fail_free).
 */
static void child_failed(struct fdp_master *m, struct fdp__proc *p, int successor,
                         enum fdp__child_fail step, int err)
{
	if (step == CHILD_EXEC)
		fdp__log(m, FDP_LOG_ERROR, "worker %u generation %u: cannot execute %s: %s", p->slot,
		         p->generation, m->cfg.exec_argv[0], fdp_strerror(err));
	else
		fdp__log(m, FDP_LOG_ERROR,
		         "worker %u generation %u: cannot run as uid %u gid %u: %s: %s", p->slot,
		         p->generation, (unsigned)m->cfg.worker_uid, (unsigned)m->cfg.worker_gid,
		         fdp__child_fail_step(step), fdp_strerror(err));
	if (successor)
		fdp__log(m, FDP_LOG_WARN, "%s: generation %u keeps serving in slot %u",
		         m->reloading ? "reload" : "replacement", p->generation - 1, p->slot);
	else if (p->generation == 1)
		m->start_err = step == CHILD_EXEC ? -ENOEXEC : -EPERM;
}

/*
 * Start a process in slot: its current one, or (successor, on reload) the one that replaces
 * the current one once it says READY (promote()), so a new program that fails to start
 * never takes the slot from a working one.
 */
int fdp__spawn(struct fdp_master *m, unsigned slot, int successor)
{
	struct fdp__slot *s = &m->slots[slot];
	struct fdp__proc *p = calloc(1, sizeof(*p));
	unsigned char hello[FDP_PROTO_HELLO_SIZE];
	enum fdp__child_fail failed = CHILD_STARTED;
	int sv[2], err;

	if (!p)
		return -ENOMEM;
	err = fdp_socketpair(SOCK_SEQPACKET, sv);
	if (err < 0)
		goto fail_free;
	/* A worker's READY, ACK and DONE carry no descriptor: one that sends any is broken. */
	err = fdp_channel_open(&p->ch, sv[0], &(struct fdp_channel_config){
	                                              .size = sizeof(struct fdp_channel_config),
	                                              .max_fds = fdp_proto_max_fds});
	if (err < 0) {
		close(sv[1]);
		goto fail_free;
	}
	p->slot = slot;
	p->generation = ++s->generation;
	/* The greeting waits in the socket, so the worker finds it as soon as it starts. */
	err = fdp_channel_send(p->ch, FDP_PROTO_HELLO, hello,
	                       fdp_proto_hello_encode(hello, &(struct fdp_proto_hello){
	                                                             FDP_PROTO_VERSION, slot,
	                                                             p->generation}),
	                       NULL, 0, 0);
	if (err == 0)
		err = fdp__output_open(m, p);
	if (err == 0)
		err = fdp__fork_worker(m, p, sv[1], &failed);
	fdp__output_forked(p);
	close(sv[1]);
	if (err < 0)
		goto fail_close;
	p->started_ms = fdp__now_ms();
	p->start_deadline = p->started_ms + (m->cfg.start_timeout_ms ? m->cfg.start_timeout_ms
	                                                             : FDP__READY_WAIT_MS);
	/* Without pidfds (old kernels, valgrind) the master learns of deaths from SIGCHLD. */
	p->pidfd = fdp__pidfd_open(p->pid);
	err = watch_proc(m, p);
	if (err < 0) {
		fdp__proc_kill(p); /* never seen by the loop: reaped right here */
		waitpid(p->pid, NULL, 0);
		if (p->pidfd >= 0)
			close(p->pidfd);
		goto fail_close;
	}
	p->next = m->procs;
	m->procs = p;
	if (successor) {
		s->next = p;
	} else {
		s->proc = p;
		s->respawn_at = 0;
	}
	fdp__log(m, FDP_LOG_INFO, "worker %u pid %d generation %u started", slot, (int)p->pid,
	         p->generation);
	return 0;
fail_close:
	fdp__output_close(m, p);
	fdp_channel_close(p->ch);
	if (failed)
		child_failed(m, p, successor, failed, err);
fail_free:
	if (!failed)
		fdp__log(m, FDP_LOG_ERROR, "cannot start worker %u: %s", slot, fdp_strerror(err));
	free(p);
	if (!successor)
		s->respawn_at = fdp__now_ms() + FDP__BACKOFF_MAX_MS;
	return err;
}

/*
 * SIGKILL p: through its pidfd where it has one, else by pid (not reaped yet: still ours);
 * then its process group (its pid, set by fdp__spawn() and the child), so that what it
 * started cannot keep serving its connections or hold its channel. Unreaped, p keeps the
 * group's id from being reused, and p goes first: nothing it has is served by two processes.
 */
void fdp__proc_kill(struct fdp__proc *p)
{
#ifdef SYS_pidfd_send_signal
	if (p->pidfd < 0 || syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0) < 0)
#endif
		kill(p->pid, SIGKILL);
	kill(-p->pid, SIGKILL);
}

/*
 * p's channel can no longer be used (err: why; 0 for end of file): met here, or flagged below
 * (fdp__proc_flag_lost()) and settled by settle(). Nothing more is handed to p. Its
 * unacknowledged connections are handed again only once p is gone (fdp__reap): a process
 * that lost its channel may still hold them, and the built-in worker shuts its sockets down
 * when its channel ends, which would kill a copy handed to another worker. So a live p with
 * connections in flight is killed at once, its channel kept (out of epoll) for the ACKs still
 * in it; one with none gets FDP__LOST_GRACE_MS to finish exiting on its own.
 * A worker that broke the protocol is killed at once and nothing more of it is read.
 */
void fdp__proc_lost(struct fdp_master *m, struct fdp__proc *p, int err)
{
	int alive = p->state != PROC_DEAD;
	/* With dispatchers, connections of theirs may be in flight to it too (the master cannot
	 * see them): their ACKs must be read before the dispatchers take the rest back, and it
	 * cannot see its channel end while they hold it. */
	int theirs = m->dshared != NULL;

	if (p->lost) { /* flagged: this settles it */
		p->lost = 0;
		m->flagged--;
	}
	if (!p->ch)
		return;
	epoll_ctl(m->epfd, EPOLL_CTL_DEL, fdp_channel_fd(p->ch), NULL);
	if (alive)
		fdp__disps_drain(m, p); /* the dispatchers hand it nothing more either */
	if (alive && (p->inflight.n || theirs) && err != -EPROTO)
		p->lost_ch = p->ch;
	else
		fdp_channel_close(p->ch);
	p->ch = NULL;
	if (!alive)
		return;
	if (p->inflight.n || theirs || err == -EPROTO) {
		fdp__log(
		        m, FDP_LOG_WARN,
		        "worker %u pid %d: channel %s with %zu connection(s) in flight: killing it "
		        "before they go to another worker",
		        p->slot, (int)p->pid, err ? fdp_strerror(err) : "closed", p->inflight.n);
		fdp__proc_kill(p);
	} else {
		if (err)
			fdp__log(m, FDP_LOG_WARN, "worker %u pid %d: channel: %s", p->slot,
			         (int)p->pid, fdp_strerror(err));
		p->kill_at = fdp__now_ms() + FDP__LOST_GRACE_MS;
	}
}

static void log_exit(struct fdp_master *m, struct fdp__proc *p, int status, long long up)
{
	enum fdp_log_level lvl = m->stopping || p->state == PROC_DRAINING || p->drain_pending
	                                 ? FDP_LOG_INFO
	                                 : FDP_LOG_WARN;

	if (WIFSIGNALED(status))
		fdp__log(m, lvl, "worker %u pid %d killed by signal %d (%s) after %lld ms", p->slot,
		         (int)p->pid, WTERMSIG(status), strsignal(WTERMSIG(status)), up);
	else
		fdp__log(m, lvl, "worker %u pid %d exited with status %d after %lld ms", p->slot,
		         (int)p->pid, WEXITSTATUS(status), up);
}

/* Decide when the slot's next worker starts: at once, or after a growing pause. */
static void schedule_respawn(struct fdp_master *m, struct fdp__slot *s, unsigned slot, long long up,
                             int was_ready)
{
	long long delay = 0;

	/* One that was never ready failed to start, however long it hung. */
	if (up < FDP__STABLE_MS || !was_ready)
		s->quick_fails++;
	else
		s->quick_fails = 0;
	if (s->quick_fails >= 2) {
		unsigned shift = s->quick_fails - 2 > 16 ? 16 : s->quick_fails - 2;

		delay = (long long)FDP__BACKOFF_BASE_MS << shift;
		if (delay > FDP__BACKOFF_MAX_MS)
			delay = FDP__BACKOFF_MAX_MS;
		fdp__log(m, FDP_LOG_WARN,
		         "worker %u died %u times in a row before it was ready or within %d ms of "
		         "starting: backoff, restarting in %lld ms",
		         slot, s->quick_fails, FDP__STABLE_MS, delay);
	}
	s->respawn_at = fdp__now_ms() + delay;
}

static void promote(struct fdp_master *m, struct fdp__proc *p);
static void retire_slots(struct fdp_master *m);
static void reload_start(struct fdp_master *m, int chained);

/* Once every slot's current worker is ready, say so (once). */
static void log_all_ready(struct fdp_master *m)
{
	if (m->ready_logged)
		return;
	for (unsigned i = 0; i < m->cfg.workers; i++) {
		struct fdp__proc *q = m->slots[i].proc;

		if (!q || q->state != PROC_READY)
			return;
	}
	m->ready_logged = 1;
	fdp__log(m, FDP_LOG_INFO, "ready: %u workers, pid %d", m->cfg.workers, (int)getpid());
	if (!fdp__stop_begun(m)) /* no READY after STOPPING (a linger serves on: linger.c) */
		fdp__event(m, FDP_MASTER_READY);
}

/*
 * What the files below flagged on p, in the order it was read: a READY (it may take its slot),
 * then a lost channel. Here, not where they were met, so that the calls run one way: dispatch.c
 * and conns.c never call up into this file.
 */
static void settle(struct fdp_master *m, struct fdp__proc *p)
{
	if (p->ready_seen) {
		p->ready_seen = 0;
		m->flagged--;
		promote(m, p);
		if (m->slots[p->slot].proc == p) /* its slot's now: the dispatchers hand to it too */
			fdp__disps_worker(m, p);
		log_all_ready(m);
	}
	if (p->lost)
		fdp__proc_lost(m, p, p->lost_err);
}

/*
 * The loop's settling points (after each worker event, after the hand-overs, after the
 * flush): every flagged worker is settled there, before anything else can look at it.
 */
void fdp__supervise_flagged(struct fdp_master *m)
{
	if (m->flagged)
		fdp__kernel_flag(m); /* a worker ready or lost: its slot may change */
	for (struct fdp__proc *p = m->procs; p && m->flagged; p = p->next)
		settle(m, p);
}

/*
 * Reap p if it has exited (returns 0 if not yet). Its process group is killed first, while
 * p's zombie still keeps the group's id from being reused: what it left behind must not go
 * on serving the connections it held, which are handed again, nor hold its channel.
 */
static int reap_group(struct fdp__proc *p, int *status)
{
	siginfo_t si = {0};
	int r;

	do
		r = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT);
	while (r < 0 && errno == EINTR);
	if (r == 0 && si.si_pid != p->pid)
		return 0; /* not gone yet */
	if (r == 0)
		kill(-p->pid, SIGKILL);
	do
		r = waitpid(p->pid, status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		*status = 0; /* someone else reaped it; it is gone all the same */
	return r != 0;
}

void fdp__reap(struct fdp_master *m, struct fdp__proc *p)
{
	struct fdp__slot *s = &m->slots[p->slot];
	long long up = fdp__now_ms() - p->started_ms;
	int status;

	if (!reap_group(p, &status))
		return;
	fdp__kernel_flag(m);
	fdp__output_close(m, p); /* its last words before its exit */
	log_exit(m, p, status, up);
	fdp__check_start_exit(m, p, status);
	p->state = PROC_DEAD;
	if (p->lost_ch) { /* kept for this: the ACKs it sent before it went */
		p->ch = p->lost_ch;
		p->lost_ch = NULL;
	}
	/* Its last ACKs first: the connections they name are not handed again. */
	fdp__channel_drain(m, p);
	fdp__kernel_reaped(m, p);
	settle(m, p);
	fdp__proc_lost(m, p, 0);
	fdp__disps_lost(m, p); /* after its last ACKs, which went to them too */
	fdp__conns_take_back(m, p);
	if (p->pidfd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
		close(p->pidfd);
		p->pidfd = -1;
	}
	for (struct fdp__proc **pp = &m->procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	/* Freed after this round of events: another event may still point at it. */
	p->next = m->dead;
	m->dead = p;
	if (p->drain_pending) {
		p->drain_pending = 0;
		m->drains_pending--;
	}
	if (s->next == p) {
		s->next = NULL;
		m->reload_failed++;
		fdp__log(m, FDP_LOG_WARN,
		         "%s: worker %u generation %u ended before it was ready; generation %u "
		         "keeps serving",
		         m->reloading ? "reload" : "replacement", p->slot, p->generation,
		         s->proc ? s->proc->generation : 0);
	} else if (s->proc == p) {
		/* A successor on its way takes the slot now; else a replacement starts. */
		s->proc = s->next;
		s->next = NULL;
		if (s->proc) /* told now if it is ready, else at its READY (settle()) */
			fdp__disps_worker(m, s->proc);
		/* A slot past the count (fdp__supervise_resize()) was retired: no respawn. */
		if (!s->proc && !m->stopping && p->slot < m->cfg.workers)
			schedule_respawn(m, s, p->slot, up, p->said_ready);
	}
	fdp__reload_check(m);
}

void fdp__free_dead(struct fdp_master *m)
{
	while (m->dead) {
		struct fdp__proc *p = m->dead;

		m->dead = p->next;
		free(p);
	}
}

/*
 * Ask p to finish its connections and exit; it gets drain_timeout_ms before SIGKILL. The DRAIN
 * itself leaves from fdp__send_drains(), when it may: no CONN can follow it.
 */
static void drain_proc(struct fdp_master *m, struct fdp__proc *p)
{
	if (p->state == PROC_DRAINING || p->state == PROC_DEAD || p->drain_pending)
		return;
	p->drain_pending = 1;
	m->drains_pending++;
	fdp__kernel_flag(m); /* its slot takes no more connections through it */
	fdp__disps_drain(m, p); /* nor through a dispatcher: its DRAIN waits for them */
	p->drain_deadline = fdp__now_ms() + m->cfg.drain_timeout_ms;
}

static void send_drain(struct fdp_master *m, struct fdp__proc *p)
{
	/* A reload has successors to serve what the worker hands back, and an upgrade a new
	 * master (upgrade.c); a stop has nobody. */
	unsigned char flags[FDP_PROTO_DRAIN_SIZE];
	unsigned handback = !m->stopping || m->up.committed ? FDP_PROTO_DRAIN_HANDBACK : 0;
	int err = fdp_channel_send(p->ch, FDP_PROTO_DRAIN, flags,
	                           fdp_proto_drain_encode(flags, handback), NULL, 0,
	                           FDP_CHANNEL_MORE);

	if (err == -ENOBUFS) { /* a full queue: it shrinks as the worker reads; then */
		p->dirty = 1;
		return;
	}
	p->drain_pending = 0;
	m->drains_pending--;
	if (err < 0) {
		fdp__proc_lost(m, p, err);
		return;
	}
	p->state = PROC_DRAINING;
	p->dirty = 1;
}

/*
 * While stopping, the DRAIN that ends a worker's intake waits until no accepted connection
 * waits for a worker; and while any connection is unacknowledged (it comes back if its worker
 * dies) one worker is kept taking, preferably one with nothing in flight. So no accepted
 * connection is closed unserved while a worker that could take it lives.
 */
static struct fdp__proc *drain_spare(struct fdp_master *m)
{
	struct fdp__proc *spare = NULL;
	int busy = 0;

	for (struct fdp__proc *p = m->procs; p; p = p->next)
		busy |= p->inflight.n > 0;
	for (struct fdp__proc *p = m->procs; busy && p; p = p->next)
		if (p->drain_pending && p->ch && (!spare || (spare->inflight.n && !p->inflight.n)))
			spare = p;
	return spare;
}

void fdp__send_drains(struct fdp_master *m)
{
	struct fdp__proc *spare = NULL;

	if (!m->drains_pending || (m->stopping && m->conns.pending.n))
		return;
	if (m->stopping)
		spare = drain_spare(m);
	for (struct fdp__proc *p = m->procs; p; p = p->next)
		if (p->drain_pending && p->ch && p != spare && !p->disp_wait)
			send_drain(m, p);
}

void fdp__start_drain(struct fdp_master *m)
{
	unsigned n = 0;

	if (!m->stopping) {
		m->stopping = 1;
		if (!m->linger) /* a linger told it already (linger.c) */
			fdp__event(m, FDP_MASTER_STOPPING);
	}
	for (struct fdp__proc *p = m->procs; p; p = p->next, n++)
		drain_proc(m, p);
	fdp__log(m, FDP_LOG_INFO,
	         "draining: stopped accepting; %u worker(s) finishing their connections (up to "
	         "%u ms)",
	         n, m->cfg.drain_timeout_ms);
}

void fdp__stop_now(struct fdp_master *m)
{
	int was = m->stopping;

	m->stopping = 2;
	if (!was)
		fdp__event(m, FDP_MASTER_STOPPING);
	fdp__log(m, FDP_LOG_WARN, "stopping now: killing every worker");
	for (struct fdp__proc *p = m->procs; p; p = p->next)
		fdp__proc_kill(p);
}

/*
 * Start a reload: each slot gets a successor. chained: it was queued behind the last one, whose
 * RELOADING event told the program of it already.
 */
static void reload_start(struct fdp_master *m, int chained)
{
	fdp__log(m, FDP_LOG_INFO,
	         "reloading: starting %u new worker(s); each old one drains once its successor is "
	         "ready",
	         m->cfg.workers);
	m->reloading = 1;
	m->reload_failed = 0;
	if (!chained)
		fdp__event(m, FDP_MASTER_RELOADING);
	for (unsigned i = 0; i < m->cfg.workers; i++) {
		struct fdp__slot *s = &m->slots[i];

		/* A recycling's successor (recycle.c) may run the old program: this one replaces
		 * it. It was never handed a connection; a READY it still sends is ignored. */
		if (s->next) {
			fdp__log(m, FDP_LOG_INFO, "reload: worker %u pid %d is replaced before it started",
			         i, (int)s->next->pid);
			s->next->start_failed = 1;
			s->next->start_deadline = 0;
			fdp__proc_kill(s->next);
			s->next = NULL;
		}
		/* A slot waiting to restart runs the new program when it does. */
		if (s->proc && fdp__spawn(m, i, 1) < 0)
			m->reload_failed++;
	}
	fdp__reload_check(m);
}

/*
 * Replace every worker: each slot gets a successor, which takes the slot when it says READY
 * (the old one then drains). A SIGHUP during a reload is remembered and runs once this one is
 * complete, so a burst of them starts at most one more process per slot.
 */
void fdp__reload(struct fdp_master *m)
{
	if (m->reloading) {
		if (!m->reload_again)
			fdp__log(m, FDP_LOG_INFO, "reload requested during a reload: it follows");
		m->reload_again = 1;
		fdp__event(m, FDP_MASTER_RELOADING);
		return;
	}
	reload_start(m, m->reload_chained);
	m->reload_chained = 0;
}

/* p said READY: if it is its slot's successor, it takes the slot and the old one drains. */
static void promote(struct fdp_master *m, struct fdp__proc *p)
{
	struct fdp__slot *s = &m->slots[p->slot];
	struct fdp__proc *old = s->proc;

	if (s->next != p)
		return;
	s->next = NULL;
	s->proc = p;
	if (old)
		drain_proc(m, old);
	fdp__reload_check(m);
}

/* The reload is complete when no successor is starting and no replaced worker is left. */
void fdp__reload_check(struct fdp_master *m)
{
	if (!m->reloading)
		return;
	for (unsigned i = 0; i < m->cfg.workers; i++)
		if (m->slots[i].next)
			return;
	if (m->retire_end) /* a shrink: the slots past the count drain now (retire_slots()) */
		retire_slots(m);
	for (struct fdp__proc *p = m->procs; p; p = p->next)
		if (p->state == PROC_DRAINING || p->drain_pending)
			return;
	m->reloading = 0;
	m->reloads_done++;
	m->last_reload_failed = m->reload_failed;
	if (m->reload_failed)
		fdp__log(m, FDP_LOG_WARN,
		         "reload complete: %u of %u worker(s) not replaced; they keep the old "
		         "program",
		         m->reload_failed, m->cfg.workers);
	else
		fdp__log(m, FDP_LOG_INFO, "reload complete: every worker replaced");
	if (m->reload_again && !fdp__stop_begun(m)) {
		/* The loop runs it (fdp__reconfigure()): the configuration is read again first. */
		m->reload_again = 0;
		m->reload_due = 1;
		m->reload_chained = 1; /* its RELOADING was told when it was queued */
		return;
	}
	if (m->ready_logged && !fdp__stop_begun(m))
		fdp__event(m, FDP_MASTER_READY);
}

/* Respawn what is due first: a new worker's start deadline then counts below. */
static void respawn_timers(struct fdp_master *m, long long now, long long *next)
{
	for (unsigned i = 0; i < m->cfg.workers && !m->stopping; i++) {
		struct fdp__slot *s = &m->slots[i];

		if (s->proc || !s->respawn_at)
			continue;
		if (now >= s->respawn_at) {
			s->restarts++;
			fdp__spawn(m, i, 0);
		} else if (s->respawn_at < *next) {
			*next = s->respawn_at;
		}
	}
}

/*
 * A draining worker's time is up. Only a busy one is killed: one with connections to finish,
 * or unread ones (it is hung: they go to a worker still taking connections once it is gone).
 * A worker kept taking connections for those (its DRAIN not yet sent) is idle, not late: it
 * gets another drain timeout. One that was told to drain, has nothing, and is still there
 * loses nothing by being killed.
 */
static void drain_deadline(struct fdp_master *m, struct fdp__proc *p, long long now)
{
	if (p->drain_pending && p->open == 0 && p->inflight.n == 0) {
		p->drain_deadline = now + m->cfg.drain_timeout_ms;
		return;
	}
	if (p->inflight.n)
		fdp__log(m, FDP_LOG_WARN,
		         "worker %u pid %d has not read %zu connection(s) by the drain timeout: "
		         "killing it; they go to a worker still taking connections",
		         p->slot, (int)p->pid, p->inflight.n);
	else
		fdp__log(m, FDP_LOG_WARN, "worker %u pid %d still %s after the drain timeout: killing it",
		         p->slot, (int)p->pid, p->open ? "busy" : "there");
	fdp__proc_kill(p);
	p->drain_deadline = now + 1000 * 1000; /* once */
}

void fdp__supervise_timers(struct fdp_master *m, long long now, long long *next)
{
	respawn_timers(m, now, next);
	for (struct fdp__proc *p = m->procs; p; p = p->next) {
		if (p->retry_at && now >= p->retry_at) {
			p->retry_at = 0;
			p->dirty = 1;
			*next = now; /* flushed at the end of this round: no waiting before it */
		} else if (p->retry_at && p->retry_at < *next) {
			*next = p->retry_at;
		}
		if (p->kill_at && now >= p->kill_at) {
			fdp__log(m, FDP_LOG_WARN,
			         "worker %u pid %d closed its channel but did not exit: killing it",
			         p->slot, (int)p->pid);
			fdp__proc_kill(p);
			p->kill_at = 0;
		} else if (p->kill_at && p->kill_at < *next) {
			*next = p->kill_at;
		}
		/* A READY already in its channel counts: read it before deciding. */
		if (p->start_deadline && now >= p->start_deadline && fdp__proc_usable(p)) {
			fdp__channel_input(m, p);
			settle(m, p);
		}
		if (p->start_deadline && now >= p->start_deadline) {
			p->start_failed = 1; /* a READY that still comes is not listened to */
			fdp__log(m, FDP_LOG_WARN,
			         "worker %u pid %d generation %u did not say READY within %lld ms: "
			         "killing it",
			         p->slot, (int)p->pid, p->generation,
			         p->start_deadline - p->started_ms);
			fdp__proc_kill(p);
			p->start_deadline = 0;
		} else if (p->start_deadline && p->start_deadline < *next) {
			*next = p->start_deadline;
		}
		if (p->state != PROC_DRAINING && !p->drain_pending)
			continue;
		if (now >= p->drain_deadline)
			drain_deadline(m, p, now);
		else if (p->drain_deadline < *next)
			*next = p->drain_deadline;
	}
}

/*
 * Reconfiguration (reconfig.c) changes the worker count to n, around fdp__reload(): slots
 * from the old count up to n start a first worker each (after the reload's successors, so
 * they get none); slots from n up are retired: nothing is handed to them from now on and
 * nothing respawns there (fdp__reap() checks the count), and their workers drain once every
 * remaining slot's successor is ready (fdp__reload_check() calls retire_slots()), so the
 * keep-alive connections they hand back go to a new worker, not to one about to drain. The
 * slots array always has FDP__MAX_WORKERS entries: a retired slot's process keeps its slot.
 */
static void retire_slots(struct fdp_master *m)
{
	for (unsigned i = m->cfg.workers; i < m->retire_end; i++) {
		struct fdp__slot *s = &m->slots[i];

		if (s->next)
			drain_proc(m, s->next);
		if (s->proc)
			drain_proc(m, s->proc);
	}
	m->retire_end = 0;
}

void fdp__supervise_resize(struct fdp_master *m, unsigned n)
{
	unsigned old = m->cfg.workers;

	m->cfg.workers = n;
	if (n < old) {
		for (unsigned i = n; i < old; i++)
			m->slots[i].respawn_at = 0;
		if (old > m->retire_end)
			m->retire_end = old;
		fdp__log(m, FDP_LOG_INFO,
		         "workers: %u -> %u: slot(s) %u..%u drain once the others' new workers are "
		         "ready, and are not replaced",
		         old, n, n, old - 1);
		return;
	}
	if (n == old)
		return;
	fdp__log(m, FDP_LOG_INFO, "workers: %u -> %u: starting slot(s) %u..%u", old, n, old, n - 1);
	m->ready_logged = 0; /* "ready: N workers" once the new slots are ready too */
	for (unsigned i = old; i < n; i++) {
		struct fdp__slot *s = &m->slots[i];

		/* A slot used before keeps counting generations: a pid and generation stay unique. */
		s->quick_fails = 0;
		s->respawn_at = 0;
		fdp__spawn(m, i, 0);
	}
}
