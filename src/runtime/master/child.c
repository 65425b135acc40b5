/*
 * A forked worker's first steps, before it runs the handler or execs the program: it forgets
 * the master (its end of the channel, its process group, its signal mask) and keeps only
 * stdio and its channel. Called by supervise.c in the child; calls no other master file.
 */
#include "master.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* In the child: keep stdio and the channel (moved to descriptor 3), close everything else. */
static int child_keep_only(int chan)
{
	DIR *d;
	struct dirent *e;

	/* dup3, not dup2: a handler's system() or popen() must not inherit the channel. */
	if (chan != 3) {
		if (dup3(chan, 3, O_CLOEXEC) < 0)
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

/*
 * A worker starts with every signal at its default (docs/WORKER.md), whatever the master's
 * caller ignored. Ignoring first discards one already pending, blocked: a Ctrl-C that reached
 * the child before it left the terminal's process group would otherwise kill it on unblock.
 */
static void child_reset_signals(void)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, dfl = {.sa_handler = SIG_DFL};

	for (int sig = 1; sig < NSIG; sig++) {
		/* Not the ones the libc keeps for itself (32, 33 in glibc): a sanitizer's sigaction
		 * may let them through, and they would stay ignored. */
		if (sig == SIGKILL || sig == SIGSTOP || (sig > SIGSYS && sig < SIGRTMIN))
			continue;
		sigaction(sig, &ign, NULL);
		sigaction(sig, &dfl, NULL);
	}
}

void fdp__run_child(struct fdp_master *m, struct fdp__proc *self, int chan)
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
	child_reset_signals();
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
