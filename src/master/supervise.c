/*
 * Supervision: forking workers (one channel each), noticing at once when one dies (a pidfd per
 * worker in the master's epoll), replacing it in its slot with a capped exponential backoff
 * for workers that keep dying right after they start, draining, and reloading.
 */
#include "master.h"
#include "proto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
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

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0); /* pidfds are close-on-exec */

	return fd < 0 ? -errno : fd;
#else
	return -ENOSYS;
#endif
}

/* In the child: keep stdio and the channel (moved to descriptor 3), close everything else. */
static int child_keep_only(int chan)
{
	DIR *d;
	struct dirent *e;

	if (chan != 3) {
		if (dup2(chan, 3) < 0)
			return -1;
		chan = 3;
	}
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 4, ~0U, 0) == 0)
		return 3;
#endif
	d = opendir("/proc/self/fd");
	if (!d)
		return 3;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (fd > 3 && fd != dirfd(d))
			close(fd);
	}
	closedir(d);
	return 3;
}

static __attribute__((noreturn)) void run_child(struct fdp_master *m, struct fdp__proc *self,
                                                int chan)
{
	struct fdp_worker *w;
	sigset_t all;
	int status = 127, err;

	m->in_child = 1;
	/* The master's end of this worker's channel is the master's, not the worker's. */
	fdp_channel_close(self->ch);
	free(self);
	/* Out of the terminal's process group: Ctrl-C reaches the master, which drains. */
	setpgid(0, 0);
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	chan = child_keep_only(chan);
	if (chan < 0)
		_exit(127);
	if (!m->cfg.worker_main) {
		char num[16];

		snprintf(num, sizeof(num), "%d", chan);
		fcntl(chan, F_SETFD, 0); /* the one descriptor the program must inherit */
		setenv(FDP_WORKER_ENV, num, 1);
		execvp(m->cfg.exec_argv[0], m->cfg.exec_argv);
		_exit(127);
	}
	err = fdp_worker_open(&w, chan, 5000);
	if (err < 0)
		_exit(126);
	status = m->cfg.worker_main(w, m->cfg.worker_arg);
	fdp_worker_close(w);
	_exit(status);
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

int fdp__spawn(struct fdp_master *m, unsigned slot)
{
	struct fdp__slot *s = &m->slots[slot];
	struct fdp__proc *p = calloc(1, sizeof(*p));
	unsigned char hello[FDP_PROTO_HELLO_SIZE];
	int sv[2], err;

	if (!p)
		return -ENOMEM;
	err = fdp_socketpair(SOCK_SEQPACKET, sv);
	if (err < 0)
		goto fail_free;
	err = fdp_channel_open(&p->ch, sv[0], NULL);
	if (err < 0) {
		close(sv[1]);
		goto fail_free;
	}
	p->slot = slot;
	p->generation = ++s->generation;
	/* The greeting waits in the socket, so the worker finds it as soon as it starts. */
	fdp_proto_hello_encode(hello,
	                       &(struct fdp_proto_hello){FDP_PROTO_VERSION, slot, p->generation});
	err = fdp_channel_send(p->ch, FDP_PROTO_HELLO, hello, sizeof(hello), NULL, 0, 0);
	if (err < 0)
		goto fail_close;
	p->pid = fork();
	if (p->pid < 0) {
		err = -errno;
		goto fail_close;
	}
	if (p->pid == 0)
		run_child(m, p, sv[1]);
	close(sv[1]);
	sv[1] = -1;
	p->started_ms = fdp__now_ms();
	/* Without pidfds (old kernels, valgrind) the master learns of deaths from SIGCHLD. */
	p->pidfd = pidfd_open_(p->pid);
	err = watch_proc(m, p);
	if (err < 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		if (p->pidfd >= 0)
			close(p->pidfd);
		goto fail_close;
	}
	p->next = m->procs;
	m->procs = p;
	s->proc = p;
	s->respawn_at = 0;
	fdp__log(m, FDP_LOG_INFO, "worker %u pid %d generation %u started", slot, (int)p->pid,
	         p->generation);
	return 0;
fail_close:
	if (sv[1] >= 0)
		close(sv[1]);
	fdp_channel_close(p->ch);
fail_free:
	free(p);
	fdp__log(m, FDP_LOG_ERROR, "cannot start worker %u: %s", slot, fdp_strerror(err));
	s->respawn_at = fdp__now_ms() + FDP__BACKOFF_MAX_MS;
	return err;
}

void fdp__proc_lost(struct fdp_master *m, struct fdp__proc *p)
{
	if (!p->ch)
		return;
	epoll_ctl(m->epfd, EPOLL_CTL_DEL, fdp_channel_fd(p->ch), NULL);
	fdp_channel_close(p->ch);
	p->ch = NULL;
	fdp__rehand_inflight(m, p);
	/*
	 * A worker without a channel can never be told anything again: it must end. One that
	 * closed its channel on the way out gets a moment to finish exiting first.
	 */
	if (p->state != PROC_DEAD)
		p->kill_at = fdp__now_ms() + FDP__LOST_GRACE_MS;
}

static void log_exit(struct fdp_master *m, struct fdp__proc *p, int status, long long up)
{
	enum fdp_log_level lvl =
	        m->stopping || p->state == PROC_DRAINING ? FDP_LOG_INFO : FDP_LOG_WARN;

	if (WIFSIGNALED(status))
		fdp__log(m, lvl, "worker %u pid %d killed by signal %d (%s) after %lld ms", p->slot,
		         (int)p->pid, WTERMSIG(status), strsignal(WTERMSIG(status)), up);
	else
		fdp__log(m, lvl, "worker %u pid %d exited with status %d after %lld ms", p->slot,
		         (int)p->pid, WEXITSTATUS(status), up);
}

/* Decide when the slot's next worker starts: at once, or after a growing pause. */
static void schedule_respawn(struct fdp_master *m, struct fdp__slot *s, unsigned slot, long long up)
{
	long long delay = 0;

	if (up < FDP__STABLE_MS)
		s->quick_fails++;
	else
		s->quick_fails = 0;
	if (s->quick_fails >= 2) {
		unsigned shift = s->quick_fails - 2 > 16 ? 16 : s->quick_fails - 2;

		delay = (long long)FDP__BACKOFF_BASE_MS << shift;
		if (delay > FDP__BACKOFF_MAX_MS)
			delay = FDP__BACKOFF_MAX_MS;
		fdp__log(m, FDP_LOG_WARN,
		         "worker %u died %u times in a row within %d ms of starting: backoff, "
		         "restarting in %lld ms",
		         slot, s->quick_fails, FDP__STABLE_MS, delay);
	}
	s->respawn_at = fdp__now_ms() + delay;
}

void fdp__reap(struct fdp_master *m, struct fdp__proc *p)
{
	struct fdp__slot *s = &m->slots[p->slot];
	long long up = fdp__now_ms() - p->started_ms;
	int status;
	pid_t r;

	do
		r = waitpid(p->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return; /* not gone yet */
	if (r < 0)
		status = 0; /* someone else reaped it; it is gone all the same */
	log_exit(m, p, status, up);
	fdp__proc_lost(m, p);
	p->state = PROC_DEAD;
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
	if (s->proc == p) {
		s->proc = NULL;
		if (!m->stopping)
			schedule_respawn(m, s, p->slot, up);
	}
	if (m->reloading) {
		for (struct fdp__proc *q = m->procs; q; q = q->next)
			if (q->state == PROC_DRAINING)
				return;
		m->reloading = 0;
		fdp__log(m, FDP_LOG_INFO, "reload complete: every worker replaced");
	}
}

void fdp__free_dead(struct fdp_master *m)
{
	while (m->dead) {
		struct fdp__proc *p = m->dead;

		m->dead = p->next;
		free(p);
	}
}

/* Ask p to finish its connections and exit; it gets drain_timeout_ms before SIGKILL. */
static void drain_proc(struct fdp_master *m, struct fdp__proc *p)
{
	if (p->state == PROC_DRAINING || p->state == PROC_DEAD)
		return;
	p->state = PROC_DRAINING;
	p->drain_deadline = fdp__now_ms() + m->cfg.drain_timeout_ms;
	if (p->ch && fdp_channel_send(p->ch, FDP_PROTO_DRAIN, NULL, 0, NULL, 0, 0) < 0 &&
	    fdp_channel_queued(p->ch) >= FDP_CHANNEL_HIGH_WATER) {
		/* Full queue: it cannot be told; it ends with the deadline. */
		p->drain_deadline = fdp__now_ms();
	}
	p->dirty = 1;
}

void fdp__start_drain(struct fdp_master *m)
{
	unsigned n = 0;

	m->stopping = 1;
	/* Connections already accepted still get a worker before the workers are told. */
	fdp__dispatch_pending(m);
	for (struct fdp__proc *p = m->procs; p; p = p->next, n++)
		drain_proc(m, p);
	fdp__log(m, FDP_LOG_INFO,
	         "draining: stopped accepting; %u worker(s) finishing their connections (up to "
	         "%u ms)",
	         n, m->cfg.drain_timeout_ms);
}

void fdp__stop_now(struct fdp_master *m)
{
	m->stopping = 2;
	fdp__log(m, FDP_LOG_WARN, "stopping now: killing every worker");
	for (struct fdp__proc *p = m->procs; p; p = p->next)
		kill(p->pid, SIGKILL);
}

void fdp__reload(struct fdp_master *m)
{
	fdp__log(m, FDP_LOG_INFO, "reloading: starting %u new worker(s), draining the old ones",
	         m->cfg.workers);
	for (unsigned i = 0; i < m->cfg.workers; i++) {
		struct fdp__proc *old = m->slots[i].proc;

		if (fdp__spawn(m, i) < 0) {
			m->slots[i].proc = old; /* keep serving with the old one */
			continue;
		}
		if (old) {
			drain_proc(m, old);
			m->reloading = 1;
		}
	}
	if (!m->reloading)
		fdp__log(m, FDP_LOG_INFO, "reload complete: every worker replaced");
}

void fdp__supervise_timers(struct fdp_master *m, long long now, long long *next)
{
	for (struct fdp__proc *p = m->procs; p; p = p->next) {
		if (p->kill_at && now >= p->kill_at) {
			fdp__log(m, FDP_LOG_WARN,
			         "worker %u pid %d closed its channel but did not exit: killing it",
			         p->slot, (int)p->pid);
			kill(p->pid, SIGKILL);
			p->kill_at = 0;
		} else if (p->kill_at && p->kill_at < *next) {
			*next = p->kill_at;
		}
		if (p->state != PROC_DRAINING)
			continue;
		if (now >= p->drain_deadline) {
			fdp__log(m, FDP_LOG_WARN,
			         "worker %u pid %d still busy after the drain timeout: killing it",
			         p->slot, (int)p->pid);
			kill(p->pid, SIGKILL);
			p->drain_deadline = now + 1000 * 1000; /* once */
		} else if (p->drain_deadline < *next) {
			*next = p->drain_deadline;
		}
	}
	if (m->stopping)
		return;
	for (unsigned i = 0; i < m->cfg.workers; i++) {
		struct fdp__slot *s = &m->slots[i];

		if (s->proc || !s->respawn_at)
			continue;
		if (now >= s->respawn_at) {
			s->restarts++;
			fdp__spawn(m, i);
		} else if (s->respawn_at < *next) {
			*next = s->respawn_at;
		}
	}
}
