/*
 * Reaping every child (cfg reap_all, or as PID 1): a process orphaned below the master (a
 * worker's daemonised grandchild) is re-parented to PID 1 of its namespace, or to the nearest
 * child subreaper, and stays a zombie until that process waits for it. A container's init must
 * therefore reap what it never started.
 *
 * Without stealing a worker's status: supervise.c reaps each worker itself (fdp__reap(), when
 * its pidfd says it has exited). So a zombie is only looked at first (waitid() with WNOWAIT):
 * a worker's goes to fdp__reap(), as if its pidfd had said so first; any other is waited for
 * here. Called by the loop on SIGCHLD; calls supervise.c and log.c.
 */
#include "master.h"

#include <errno.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

void fdp__orphans_start(struct fdp_master *m)
{
	int pid1 = getpid() == 1;

	if (m->cfg.reap_all && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		fdp__log(m, FDP_LOG_WARN, "cannot become a child subreaper: %s",
		         fdp_strerror(-errno));
	m->reap_all = m->cfg.reap_all || pid1;
	if (m->reap_all)
		fdp__log(m, FDP_LOG_INFO, "reaping every child process (%s)",
		         pid1 ? "running as PID 1" : "a child subreaper");
	fdp__orphans_reap(m); /* what exited before: no SIGCHLD will come for it */
}

static struct fdp__proc *worker_of(struct fdp_master *m, pid_t pid)
{
	for (struct fdp__proc *p = m->procs; p; p = p->next)
		if (p->pid == pid && p->state != PROC_DEAD)
			return p;
	return NULL;
}

/* Every child that has exited; a worker through supervise.c, the others here. */
void fdp__orphans_reap(struct fdp_master *m)
{
	if (!m->reap_all)
		return;
	for (;;) {
		siginfo_t si = {0};
		struct fdp__proc *p;
		int status;

		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			return; /* ECHILD: no child at all */
		}
		if (si.si_pid == 0)
			return; /* none has exited */
		if (fdp__disps_reap_pid(m, si.si_pid))
			continue; /* a dispatcher: disps.c's */
		p = worker_of(m, si.si_pid);
		if (p) {
			fdp__reap(m, p);
			if (p->state != PROC_DEAD)
				return; /* cannot happen: a zombie is reaped; never spin on it */
			continue;
		}
		if (waitpid(si.si_pid, &status, WNOHANG) <= 0)
			return; /* a thread of the caller's took it: never spin on it */
		fdp__log(m, FDP_LOG_DEBUG, "reaped pid %d, not a worker (status 0x%x)",
		         (int)si.si_pid, (unsigned)status);
	}
}
