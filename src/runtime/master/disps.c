/*
 * The dispatchers, as the master sees them (cfg.dispatchers > 1; docs/ROUTING.md, "Several
 * dispatchers"; their own side is dispatcher.c). The master forks cfg.dispatchers of them and
 * leaves its route listeners to them: it accepts there only at a stop, to empty the queue
 * before the listeners close (loop.c), and its CPU per routed connection is what forwarding
 * the ACKs costs. Each gets a socketpair to the master, over which the master tells it
 * of the workers (WORKER with a duplicate of the master's end of the worker's channel, DRAIN,
 * LOST) and forwards the ACKs of its connections (dispatch.c puts them in its queue). They
 * answer DRAINED (supervise.c sends a worker's DRAIN only once all have) and HUNG.
 *
 * One that dies is reaped here and started again (after a pause if it died young); what it
 * was reading dies with it, what waits in the shared listener does not. A reload's new
 * routing starts new ones and tells the old ones to finish (restart). The master's stop tells
 * them all to finish; it waits for them as for its workers, and kills them at the drain
 * timeout.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define QUICK_MS 1000 /* one that dies younger than this is restarted after a pause */

static int live(const struct fdp__disp *d)
{
	return d->pid > 0 && d->ch && !d->killed;
}

/*
 * Queue a message for d. One it cannot take (its queue at the high-water mark of a million
 * messages: it reads nothing; or its channel broken) is never dropped: d is killed, and its
 * pidfd reaps it. Returns 0, or -EPIPE then (fd, if any, closed).
 */
static int send_to(struct fdp_master *m, struct fdp__disp *d, unsigned type, const void *payload,
                   size_t len, int fd)
{
	int err = live(d) ? fdp_channel_send(d->ch, type, payload, len, fd >= 0 ? &fd : NULL,
	                                     fd >= 0, FDP_CHANNEL_MORE)
	                  : -EPIPE;

	if (err == 0)
		return 0;
	if (fd >= 0)
		close(fd);
	if (live(d)) {
		fdp__log(m, FDP_LOG_ERROR, "dispatcher %u pid %d: its channel: %s; killing it", d->tag,
		         (int)d->pid, fdp_strerror(err));
		kill(d->pid, SIGKILL);
		d->killed = 1;
	}
	return -EPIPE;
}

static int send_worker_msg(struct fdp_master *m, struct fdp__disp *d, unsigned type,
                           const struct fdp__proc *p, int fd)
{
	struct fdp__d_worker w = {.slot = p->slot, .generation = p->generation, .pid = p->pid};

	return send_to(m, d, type, &w, sizeof(w), fd);
}

/* Tell d of p, the current worker of its slot: its channel's socket goes with it. */
static void tell_worker(struct fdp_master *m, struct fdp__disp *d, struct fdp__proc *p)
{
	int fd;

	/* Only once it is ready: a dispatcher's ACK deadlines start when it is told. */
	if (!live(d) || !fdp__proc_usable(p) || !p->said_ready)
		return;
	fd = fcntl(fdp_channel_fd(p->ch), F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		fdp__log(m, FDP_LOG_WARN, "dispatcher %u: cannot give it worker %u: %s", d->tag,
		         p->slot, fdp_strerror(-errno));
		return;
	}
	send_worker_msg(m, d, FDP__D_WORKER, p, fd);
}

static int spawn(struct fdp_master *m)
{
	struct fdp__disp *d = calloc(1, sizeof(*d));
	unsigned tag = 1;
	pid_t master = getpid();
	int sv[2] = {-1, -1}, err;

	while (tag < FDP__DISP_TAGS && (m->disp_tags >> tag & 1))
		tag++;
	if (!d)
		return -ENOMEM;
	if (tag == FDP__DISP_TAGS) { /* every tag taken, by reloads' finishing dispatchers */
		free(d);
		return -EBUSY;
	}
	err = fdp_socketpair(SOCK_SEQPACKET, sv);
	if (err < 0) {
		free(d);
		return err;
	}
	/* A slow dispatcher is never refused an ACK: one that reads nothing is killed. */
	err = fdp_channel_open(&d->ch, sv[0], &(struct fdp_channel_config){
	                                              .size = sizeof(struct fdp_channel_config),
	                                              .high_water = (size_t)1 << 20,
	                                              .max_fds = fdp_channel_fds_none});
	if (err < 0) { /* sv[0] is closed */
		close(sv[1]);
		free(d);
		return err;
	}
	d->tag = tag;
	d->generation = ++m->disp_gen;
	d->pid = fork();
	if (d->pid == 0)
		fdp__dispatcher_main(m, tag, d->generation, sv[1], master);
	close(sv[1]);
	if (d->pid < 0) {
		err = -errno;
		fdp_channel_close(d->ch);
		free(d);
		return err;
	}
	setpgid(d->pid, d->pid);
	d->started_ms = fdp__now_ms();
	d->pidfd = fdp__pidfd_open(d->pid);
	d->wch = (struct fdp__watch){.kind = W_DISP, .disp = d};
	d->wpid = (struct fdp__watch){.kind = W_DISPPID, .disp = d};
	epoll_ctl(m->epfd, EPOLL_CTL_ADD, fdp_channel_fd(d->ch),
	          &(struct epoll_event){.events = EPOLLIN, .data.ptr = &d->wch});
	if (d->pidfd >= 0)
		epoll_ctl(m->epfd, EPOLL_CTL_ADD, d->pidfd,
		          &(struct epoll_event){.events = EPOLLIN, .data.ptr = &d->wpid});
	m->disp_tags |= UINT64_C(1) << tag;
	d->next = m->disps;
	m->disps = d;
	for (unsigned i = 0; i < m->cfg.workers; i++)
		if (m->slots[i].proc)
			tell_worker(m, d, m->slots[i].proc);
	/* Now, not after the loop's next wake-up, which an idle server may not have for long. */
	if (live(d) && fdp_channel_flush(d->ch) == -EAGAIN)
		fdp__disps_flush(m);
	fdp__log(m, FDP_LOG_INFO, "dispatcher %u pid %d started", tag, (int)d->pid);
	return 0;
}

static unsigned running(const struct fdp_master *m)
{
	unsigned n = 0;

	for (const struct fdp__disp *d = m->disps; d; d = d->next)
		n += !d->retiring;
	return n;
}

/* Start what is missing of the wanted count (not while stopping). */
static void fill(struct fdp_master *m)
{
	while (!m->stopping && running(m) < m->disps_wanted) {
		int err = spawn(m);

		if (err < 0) {
			fdp__log(m, FDP_LOG_ERROR, "cannot start a dispatcher: %s; trying again in %d ms",
			         err == -EBUSY ? "the dispatchers of earlier reloads are still finishing"
			                       : fdp_strerror(err),
			         FDP__BACKOFF_MAX_MS);
			m->disp_respawn_at = fdp__now_ms() + FDP__BACKOFF_MAX_MS;
			return;
		}
	}
}

int fdp__disps_start(struct fdp_master *m)
{
	void *shared;
	int route = 0, handed = 0;

	if (!m->cfg.dispatchers)
		return 0;
	for (size_t i = 0; i < m->nlisteners; i++) {
		const struct fdp__listener *l = &m->listeners[i];

		route |= l->policy == FDP_POLICY_ROUTE && !l->steer;
		handed |= l->policy == FDP_POLICY_ROUTE && !l->steer && l->handed;
	}
	if (!route) {
		fdp__log(m, FDP_LOG_WARN,
		         "%u dispatchers asked for, but no listener routes: the master dispatches "
		         "alone",
		         m->cfg.dispatchers);
		return 0;
	}
	shared = mmap(NULL, sizeof(*m->dshared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	              -1, 0);
	if (shared == MAP_FAILED)
		return -errno;
	m->dshared = shared;
	m->disps_wanted = m->cfg.dispatchers;
	/* An upgrade's new master: the old one serves the listeners until this one is ready,
	 * and so must its dispatchers (fdp__disps_owned()). */
	if (handed)
		fdp__log(m, FDP_LOG_INFO, "dispatchers: starting once the old master hands over");
	else
		fill(m);
	return 0;
}

void fdp__disps_owned(struct fdp_master *m)
{
	if (m->dshared && !m->disps)
		fill(m);
}

void fdp__disps_worker(struct fdp_master *m, struct fdp__proc *p)
{
	for (struct fdp__disp *d = m->disps; d; d = d->next)
		tell_worker(m, d, p);
}

void fdp__disps_drain(struct fdp_master *m, struct fdp__proc *p)
{
	for (struct fdp__disp *d = m->disps; d; d = d->next)
		if (live(d) && send_worker_msg(m, d, FDP__D_DRAIN, p, -1) == 0)
			p->disp_wait |= UINT64_C(1) << d->tag;
}

void fdp__disps_lost(struct fdp_master *m, struct fdp__proc *p)
{
	p->disp_wait = 0;
	for (struct fdp__disp *d = m->disps; d; d = d->next)
		if (live(d))
			send_worker_msg(m, d, FDP__D_LOST, p, -1);
}

/* STOP: retire (a reload's: route what it holds, then exit), or the master's stop, which a
 * retiring one gets too (it then closes what it still reads, as the master does). */
static void send_stop(struct fdp_master *m, struct fdp__disp *d, unsigned char retire)
{
	if (live(d) && (!d->retiring || !retire))
		send_to(m, d, FDP__D_STOP, &retire, 1, -1);
	d->retiring = 1;
}

void fdp__disps_stop(struct fdp_master *m)
{
	for (struct fdp__disp *d = m->disps; d; d = d->next)
		send_stop(m, d, 0);
	m->disp_respawn_at = 0;
	m->disp_stop_at = fdp__now_ms() + m->cfg.drain_timeout_ms;
}

void fdp__disps_restart(struct fdp_master *m)
{
	if (!m->dshared || m->stopping)
		return;
	for (struct fdp__disp *d = m->disps; d; d = d->next)
		send_stop(m, d, 1);
	fdp__log(m, FDP_LOG_INFO, "reload: starting %u new dispatcher(s) with the new routing",
	         m->disps_wanted);
	fill(m);
}

/* d has exited (status) or must be forgotten: what it was owed is not waited for. */
static void forget(struct fdp_master *m, struct fdp__disp *d, int status)
{
	long long up = fdp__now_ms() - d->started_ms;
	int quiet = d->retiring;

	for (struct fdp__proc *p = m->procs; p; p = p->next)
		p->disp_wait &= ~(UINT64_C(1) << d->tag);
	for (struct fdp__disp **dd = &m->disps; *dd; dd = &(*dd)->next)
		if (*dd == d) {
			*dd = d->next;
			break;
		}
	m->disp_tags &= ~(UINT64_C(1) << d->tag);
	if (d->ch)
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, fdp_channel_fd(d->ch), NULL);
	fdp_channel_close(d->ch);
	d->ch = NULL;
	if (d->pidfd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, d->pidfd, NULL);
		close(d->pidfd);
		d->pidfd = -1;
	}
	if (WIFSIGNALED(status))
		fdp__log(m, quiet ? FDP_LOG_INFO : FDP_LOG_WARN,
		         "dispatcher %u pid %d killed by signal %d (%s) after %lld ms", d->tag,
		         (int)d->pid, WTERMSIG(status), strsignal(WTERMSIG(status)), up);
	else
		fdp__log(m, quiet ? FDP_LOG_INFO : FDP_LOG_WARN,
		         "dispatcher %u pid %d exited with status %d after %lld ms", d->tag, (int)d->pid,
		         WEXITSTATUS(status), up);
	d->pid = 0;
	/* Freed after this round of events (fdp__disps_flush()): another may point at it. */
	d->next = m->disps_dead;
	m->disps_dead = d;
	if (quiet || m->stopping)
		return;
	m->disp_quick_fails = up < QUICK_MS ? m->disp_quick_fails + 1 : 0;
	if (m->disp_quick_fails >= 2) {
		unsigned shift = m->disp_quick_fails - 2 > 6 ? 6 : m->disp_quick_fails - 2;

		m->disp_respawn_at = fdp__now_ms() + ((long long)FDP__BACKOFF_BASE_MS << shift);
		fdp__log(m, FDP_LOG_WARN, "dispatchers died %u times in a row: restarting in %lld ms",
		         m->disp_quick_fails, (long long)FDP__BACKOFF_BASE_MS << shift);
	} else {
		m->disp_respawn_at = fdp__now_ms();
	}
}

/* Reap d if it has exited: 1 when it did (d is freed). */
static int reap(struct fdp_master *m, struct fdp__disp *d)
{
	int status;
	pid_t r;

	if (d->pid <= 0)
		return 0; /* reaped already, in this round of events */
	do
		r = waitpid(d->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	if (r < 0)
		status = 0; /* someone else reaped it: gone all the same */
	forget(m, d, status);
	return 1;
}

int fdp__disps_reap_pid(struct fdp_master *m, pid_t pid)
{
	for (struct fdp__disp *d = m->disps; d; d = d->next)
		if (d->pid == pid)
			return reap(m, d);
	return 0;
}

void fdp__disps_sigchld(struct fdp_master *m)
{
	for (struct fdp__disp *d = m->disps, *next; d; d = next) {
		next = d->next;
		if (d->pidfd < 0)
			reap(m, d);
	}
}

/* What a dispatcher said: DRAINED and HUNG, each naming a worker. */
static void input(struct fdp_master *m, struct fdp__disp *d)
{
	for (int k = 0; k < FDP__INPUT_BATCH; k++) {
		struct fdp_channel_msg *msg = &m->msg;
		struct fdp__d_worker w;
		int r = fdp_channel_recv(d->ch, msg);

		if (r == -EAGAIN)
			return;
		if (r <= 0) { /* it is exiting: its pidfd (or SIGCHLD) reaps it */
			epoll_ctl(m->epfd, EPOLL_CTL_DEL, fdp_channel_fd(d->ch), NULL);
			fdp_channel_close(d->ch);
			d->ch = NULL;
			for (struct fdp__proc *p = m->procs; p; p = p->next)
				p->disp_wait &= ~(UINT64_C(1) << d->tag);
			return;
		}
		if (msg->len == sizeof(w)) {
			memcpy(&w, msg->payload, sizeof(w));
			for (struct fdp__proc *p = m->procs; p; p = p->next) {
				if (p->slot != w.slot || p->generation != w.generation)
					continue;
				if (msg->type == FDP__D_DRAINED)
					p->disp_wait &= ~(UINT64_C(1) << d->tag);
				if (msg->type == FDP__D_HUNG && fdp__proc_usable(p)) {
					m->conns.ack_timeouts++;
					m->slots[p->slot].ack_timeouts++;
					fdp__log(m, FDP_LOG_WARN,
					         "worker %u pid %d acknowledged no connection of dispatcher "
					         "%u in time: killing it; they go to its successor",
					         p->slot, (int)p->pid, d->tag);
					fdp__proc_flag_lost(m, p, -ETIMEDOUT);
				}
			}
		}
		fdp_channel_msg_release(msg);
	}
}

void fdp__disps_event(struct fdp_master *m, struct fdp__watch *w)
{
	struct fdp__disp *d = w->disp;

	if (w->kind == W_DISPPID)
		reap(m, d);
	else if (d->ch)
		input(m, d);
}

void fdp__disps_timers(struct fdp_master *m, long long now, long long *next)
{
	if (!m->dshared)
		return;
	if (m->disp_respawn_at && !m->stopping) {
		if (now >= m->disp_respawn_at) {
			m->disp_respawn_at = 0;
			fill(m);
		} else if (m->disp_respawn_at < *next) {
			*next = m->disp_respawn_at;
		}
	}
	/* At a stop they have the workers' drain timeout to finish, then SIGKILL. */
	for (struct fdp__disp *d = m->disps; d && m->disp_stop_at; d = d->next) {
		if (d->killed)
			continue;
		if (now >= m->disp_stop_at || m->stopping == 2) {
			kill(d->pid, SIGKILL);
			d->killed = 1;
		} else if (m->disp_stop_at < *next) {
			*next = m->disp_stop_at;
		}
	}
}

static void free_dead(struct fdp_master *m)
{
	while (m->disps_dead) {
		struct fdp__disp *d = m->disps_dead;

		m->disps_dead = d->next;
		free(d);
	}
}

void fdp__disps_flush(struct fdp_master *m)
{
	free_dead(m);
	if (!m->dshared)
		return;
	for (struct fdp__disp *d = m->disps; d; d = d->next) {
		int err, want;

		if (!d->ch)
			continue;
		err = fdp_channel_flush(d->ch);
		if (err < 0 && err != -EAGAIN && err != -ETOOMANYREFS && err != -ENOMEM) {
			/* Broken: it is dying, or dead; its pidfd says when. */
			epoll_ctl(m->epfd, EPOLL_CTL_DEL, fdp_channel_fd(d->ch), NULL);
			fdp_channel_close(d->ch);
			d->ch = NULL;
			continue;
		}
		want = fdp_channel_wants_write(d->ch);
		if (want != d->epollout &&
		    epoll_ctl(m->epfd, EPOLL_CTL_MOD, fdp_channel_fd(d->ch),
		              &(struct epoll_event){.events = EPOLLIN | (want ? EPOLLOUT : 0),
		                                    .data.ptr = &d->wch}) == 0)
			d->epollout = want;
	}
	/* What they read for the per-worker cap and max_connections. */
	for (unsigned i = 0; i < m->cfg.workers; i++) {
		const struct fdp__proc *p = m->slots[i].proc;

		__atomic_store_n(&m->dshared->open[i], p ? p->open + fdp__proc_own_open(m, p) : 0,
		                 __ATOMIC_RELAXED);
	}
	__atomic_store_n(&m->dshared->open_total, fdp__conns_open(m), __ATOMIC_RELAXED);
}

void fdp__disps_close(struct fdp_master *m)
{
	while (m->disps) {
		struct fdp__disp *d = m->disps;

		kill(d->pid, SIGKILL);
		while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
			;
		d->retiring = 1;
		forget(m, d, 0);
	}
	free_dead(m);
	if (m->dshared)
		munmap(m->dshared, sizeof(*m->dshared));
	m->dshared = NULL;
}

unsigned fdp__disps_totals(const struct fdp_master *m, struct fdp__disp_row *sum)
{
	unsigned n = 0;

	memset(sum, 0, sizeof(*sum));
	if (!m->dshared)
		return 0;
	for (unsigned t = 0; t < FDP__DISP_TAGS; t++) {
		const uint64_t *from = (const uint64_t *)&m->dshared->row[t];
		uint64_t *to = (uint64_t *)sum;

		for (size_t k = 0; k < sizeof(*sum) / sizeof(uint64_t); k++)
			to[k] += __atomic_load_n(&from[k], __ATOMIC_RELAXED);
	}
	for (const struct fdp__disp *d = m->disps; d; d = d->next)
		n += live(d);
	return n;
}
