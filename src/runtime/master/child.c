/*
 * A forked worker's first steps, before it runs the handler or execs the program: it forgets
 * the master (its end of the channel, its process group, its signal mask), takes the workers'
 * user and group when configured, and keeps only stdio and its channel. Called by
 * supervise.c around fork(); calls no other master file.
 *
 * The master's caller may have threads, so between fork() and execve() the child makes only
 * async-signal-safe calls: everything that allocates or reads the environment (the program's
 * path on PATH, the environment with the channel's number, the descriptor limit) is prepared
 * before fork() by child_prepare(), and released after it by child_started().
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CHILD_CHAN  3 /* where the worker finds its channel (FDPASS_CHANNEL_FD) */
#define CHILD_ERRFD 4 /* the exec child's end of the error pipe, until execve() */
#define CHILD_HIGH  5 /* both are moved above this first, so neither lands on the other */

static const char channel_env[] = FDP_WORKER_ENV "=3";

/* What a fork needs prepared before it (child_prepare()). */
struct fdp__exec {
	pid_t master;   /* getpid() before the fork: the child's parent, unless it died */
	int maxfd;      /* the descriptor limit, for closing without close_range() */
	char *path;     /* exec_argv[0] found on PATH (NULL: worker_main, or path_err) */
	int path_err;   /* not found: the errno the child reports as its execve()'s */
	char **envp;    /* the environment, with FDPASS_CHANNEL_FD=3 */
	/* Close-on-exec: the child writes a struct child_failure if it cannot start its worker
	 * (its credentials, its execve()); end of file once it has. Not made for a worker_main
	 * child that changes no credentials: nothing can fail before its code runs. */
	int errpipe[2];
	int fail_err;                 /* after the fork: what the child wrote (0: it started) */
	enum fdp__child_fail fail_at; /* and the step that failed */
	int out[2]; /* capture_output: the worker's ends of its stdout and stderr pipes, or -1 */
};

/* What the child writes on its error pipe: the step that failed and its errno. */
struct child_failure {
	int step; /* enum fdp__child_fail */
	int err;
};

const char *fdp__child_fail_step(enum fdp__child_fail step)
{
	static const char *const names[] = {"", "execve", "setgroups", "setgid", "setuid",
	                                    "prctl(PR_SET_NO_NEW_PRIVS)"};

	return names[step];
}

/* 0 if path is a regular file we may execute, else why not (an errno). */
static int executable(const char *path)
{
	struct stat st;

	if (access(path, X_OK) < 0)
		return errno;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? 0 : EACCES;
}

/*
 * name's path as execvp() would find it, searched here because execvp() itself allocates and
 * reads the environment in the child. A name with a slash is taken as it is. Not found: the
 * errno execvp() would report (EACCES if some candidate was there but not executable).
 */
static int resolve(const char *name, char **out)
{
	const char *path = getenv("PATH"), *dir;
	size_t nlen = strlen(name);
	int seen_eacces = 0;
	char *buf;

	if (strchr(name, '/'))
		return (*out = strdup(name)) ? 0 : ENOMEM;
	if (!path)
		path = "/bin:/usr/bin"; /* glibc's default, confstr(_CS_PATH) */
	buf = malloc(strlen(path) + nlen + 3);
	if (!buf)
		return ENOMEM;
	for (dir = path;; dir++) {
		size_t dlen = strcspn(dir, ":");

		/* An empty entry is the current directory, as for execvp(). */
		memcpy(buf, dlen ? dir : ".", dlen ? dlen : 1);
		buf[dlen ? dlen : 1] = '/';
		memcpy(buf + (dlen ? dlen : 1) + 1, name, nlen + 1);
		int why = executable(buf);

		if (!why) {
			*out = buf;
			return 0;
		}
		seen_eacces |= why == EACCES;
		dir += dlen;
		if (!*dir)
			break;
	}
	free(buf);
	return seen_eacces ? EACCES : ENOENT;
}

/* The caller's environment with FDPASS_CHANNEL_FD=3 in place of any of its own. */
static char **child_environ(void)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = malloc((n + 2) * sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], FDP_WORKER_ENV "=", sizeof(FDP_WORKER_ENV)) != 0)
			env[k++] = environ[i];
	env[k++] = (char *)channel_env;
	env[k] = NULL;
	return env;
}

static int child_prepare(struct fdp_master *m, struct fdp__exec *x)
{
	struct rlimit rl;

	*x = (struct fdp__exec){.errpipe = {-1, -1}, .master = getpid()};
	x->maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < INT_MAX ? (int)rl.rlim_cur
	                                                                       : 1 << 20;
	if (m->cfg.worker_main)
		return m->cfg.worker_set_ids && pipe2(x->errpipe, O_CLOEXEC) < 0 ? -errno : 0;
	x->path_err = resolve(m->cfg.exec_argv[0], &x->path);
	if (x->path_err == ENOMEM)
		return -ENOMEM;
	x->envp = child_environ();
	if (!x->envp || pipe2(x->errpipe, O_CLOEXEC) < 0) {
		int err = x->envp ? -errno : -ENOMEM;

		free(x->envp);
		free(x->path);
		return err;
	}
	return 0;
}

/* Read what the child wrote before it failed to start: nothing (EOF) when it started. */
static void read_child_failure(int fd, struct fdp__exec *x)
{
	struct child_failure f = {0};
	ssize_t n;

	do
		n = read(fd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(f) || f.step <= CHILD_STARTED || f.step > CHILD_NO_NEW_PRIVS)
		return;
	x->fail_at = (enum fdp__child_fail)f.step;
	x->fail_err = f.err ? f.err : EPERM;
}

/*
 * In the parent after fork() (pid < 0: it failed): learn whether the child started, reaping
 * one that could not, and release what was prepared. Returns 0, or -errno when fork() failed.
 */
static int child_started(struct fdp__exec *x, pid_t pid)
{
	int err = pid < 0 ? -errno : 0;

	if (x->errpipe[1] >= 0)
		close(x->errpipe[1]);
	if (x->errpipe[0] >= 0) {
		if (pid > 0)
			read_child_failure(x->errpipe[0], x);
		close(x->errpipe[0]);
	}
	/* It exits at once (127): reaped here, never seen by the loop. */
	if (x->fail_err)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	free(x->envp);
	free(x->path);
	x->envp = NULL;
	x->path = NULL;
	return err;
}

/*
 * In the child: keep stdio and the channel (on descriptor 3; dup3, close-on-exec, so that a
 * handler's system() or popen() does not inherit it) and, for an exec, the error pipe on 4;
 * with captured output (out[i] >= 0), its pipes become 1 and 2; close everything else. Only
 * async-signal-safe calls. Returns -1 if it could not.
 */
static int child_keep_only(int chan, int errfd, const int *out, int maxfd)
{
	int first = errfd >= 0 ? CHILD_ERRFD + 1 : CHILD_CHAN + 1, high[2] = {-1, -1};

	/* The output pipes first, above the rest: the dup3()s below may land where they are. */
	for (int i = 0; i < 2; i++)
		if (out[i] >= 0 && (high[i] = fcntl(out[i], F_DUPFD_CLOEXEC, CHILD_HIGH)) < 0)
			return -1;
	/*
	 * Both above the rest before either dup3(): the error pipe may be where the channel goes
	 * (3), and the dup3() would close it. Without its error pipe the exec's failure could not
	 * be told: fail here instead.
	 */
	chan = fcntl(chan, F_DUPFD_CLOEXEC, CHILD_HIGH);
	if (chan < 0 || (errfd >= 0 && (errfd = fcntl(errfd, F_DUPFD_CLOEXEC, CHILD_HIGH)) < 0))
		return -1;
	if (dup3(chan, CHILD_CHAN, O_CLOEXEC) < 0)
		return -1;
	if (errfd >= 0 && dup3(errfd, CHILD_ERRFD, O_CLOEXEC) < 0)
		return -1;
	/* dup2() onto 1 and 2 clears close-on-exec there; a copy above 4 is never already there. */
	for (int i = 0; i < 2; i++)
		if (high[i] >= 0 && dup2(high[i], i + 1) < 0)
			return -1;
#ifdef SYS_close_range
	if (syscall(SYS_close_range, first, ~0U, 0) == 0)
		return 0;
#endif
	for (int fd = first; fd < maxfd; fd++)
		close(fd);
	return 0;
}

/*
 * A worker starts with every signal at its default (docs/WORKER.md), whatever the master's
 * caller ignored. Ignoring first discards one already pending, blocked: a Ctrl-C that reached
 * the child before it left the terminal's process group would otherwise kill it on unblock.
 */
static void child_reset_signals(void)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, dfl = {.sa_handler = SIG_DFL};
	sigset_t all;

	for (int sig = 1; sig < NSIG; sig++) {
		/* Not the ones the libc keeps for itself (32, 33 in glibc): a sanitizer's sigaction
		 * may let them through, and they would stay ignored. */
		if (sig == SIGKILL || sig == SIGSTOP || (sig > SIGSYS && sig < SIGRTMIN))
			continue;
		sigaction(sig, &ign, NULL);
		sigaction(sig, &dfl, NULL);
	}
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
}

int fdp__pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0); /* pidfds are close-on-exec */

	return fd < 0 ? -errno : fd;
#else
	(void)pid;
	return -ENOSYS;
#endif
}

/* Tell the master why this child cannot start its worker (fd: the error pipe), and end. */
static __attribute__((noreturn)) void child_fail(int fd, enum fdp__child_fail step, int err)
{
	struct child_failure f = {.step = (int)step, .err = err};
	ssize_t n = write(fd, &f, sizeof(f));

	/* A parent that is gone cannot be told: nothing else to do either way. */
	(void)n;
	_exit(127);
}

/*
 * The workers' user and group (cfg worker_set_ids), before anything of the worker runs:
 * the supplementary groups go first (they need the privilege setuid() gives up), then the
 * group, the user, and no new privileges for what it executes. Returns the step that failed,
 * errno set, or CHILD_STARTED. Async-signal-safe: in the child only one thread exists, so the
 * libc's calls set the one thread's credentials, which are the process's.
 */
static enum fdp__child_fail child_set_ids(const struct fdp_master_config *cfg)
{
	if (!cfg->worker_set_ids)
		return CHILD_STARTED;
	if (setgroups(0, NULL) < 0)
		return CHILD_SETGROUPS;
	if (setgid(cfg->worker_gid) < 0)
		return CHILD_SETGID;
	if (setuid(cfg->worker_uid) < 0)
		return CHILD_SETUID;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return CHILD_NO_NEW_PRIVS;
	return CHILD_STARTED;
}

/*
 * The exec worker: only async-signal-safe calls from here to execve(). It dies with the
 * master (SIGKILL as the parent death signal): a program need not watch its channel for the
 * master to be able to count on no worker outliving it. getppid() after prctl() closes the
 * race of a master that died before it: the signal would never come. Its credentials are
 * set before (run_child()): changing them clears the parent death signal.
 */
static __attribute__((noreturn)) void exec_child(struct fdp_master *m, const struct fdp__exec *x,
                                                 int chan)
{
	int err = x->path_err;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != x->master)
		_exit(127);
	child_reset_signals();
	if (child_keep_only(chan, x->errpipe[1], x->out, x->maxfd) < 0)
		_exit(127);
	/* The one descriptor the program must inherit. */
	if (!err && fcntl(CHILD_CHAN, F_SETFD, 0) == 0)
		execve(x->path, m->cfg.exec_argv, x->envp);
	if (!err)
		err = errno;
	child_fail(CHILD_ERRFD, CHILD_EXEC, err);
}

static __attribute__((noreturn)) void run_child(struct fdp_master *m, struct fdp__proc *self,
                                                int chan, const struct fdp__exec *x)
{
	struct fdp_worker *w;
	enum fdp__child_fail step;
	int status, err;

	m->in_child = 1;
	/* Out of the terminal's process group: Ctrl-C reaches the master, which drains. Also a
	 * group of its own, which the master kills with it (fdp__proc_kill()). */
	setpgid(0, 0);
	step = child_set_ids(&m->cfg);
	if (step != CHILD_STARTED)
		child_fail(x->errpipe[1], step, errno);
	if (!m->cfg.worker_main)
		exec_child(m, x, chan);
	/* The master learns that the worker runs (end of file on the pipe): closed here, since
	 * without an exec a copy that landed on 0..2 (a caller with stdio closed) would stay. */
	if (x->errpipe[1] >= 0) {
		close(x->errpipe[1]);
		close(x->errpipe[0]);
	}
	/* The master's end of this worker's channel is the master's, not the worker's. */
	fdp_channel_close(self->ch);
	free(self->out); /* its descriptors are closed below, the child's ends kept in x->out */
	free(self);
	child_reset_signals();
	if (child_keep_only(chan, -1, x->out, x->maxfd) < 0)
		_exit(127);
	err = fdp_worker_open(&w, CHILD_CHAN, 5000);
	if (err < 0)
		_exit(126);
	status = m->cfg.worker_main(w, m->cfg.worker_arg);
	fdp_worker_close(w);
	_exit(status);
}

int fdp__fork_worker(struct fdp_master *m, struct fdp__proc *p, int chan,
                     enum fdp__child_fail *failed)
{
	struct fdp__exec x;
	int err = child_prepare(m, &x);

	if (err < 0)
		return err;
	for (int i = 0; i < 2; i++)
		x.out[i] = p->out ? p->out[i].child_fd : -1;
	p->pid = fork();
	if (p->pid == 0)
		run_child(m, p, chan, &x);
	/* Here too: the child may not have run yet when a Ctrl-C comes. */
	if (p->pid > 0)
		setpgid(p->pid, p->pid);
	err = child_started(&x, p->pid);
	*failed = x.fail_at;
	return err < 0 ? err : -x.fail_err;
}

/*
 * A first-generation exec worker that exits 126 or 127 before it is ready is a shell (or
 * exec_argv's program) saying it could not execute the command: startup fails, as when
 * execve() itself failed, rather than restarting it for ever.
 */
void fdp__check_start_exit(struct fdp_master *m, const struct fdp__proc *p, int status)
{
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
	char cmd[256] = "";
	size_t len = 0;

	if (m->cfg.worker_main || p->generation != 1 || p->said_ready || m->stopping ||
	    (code != 126 && code != 127))
		return;
	/* The whole command: with a shell, its argv[0] says nothing of what failed. */
	for (char *const *a = m->cfg.exec_argv; *a && len + 1 < sizeof(cmd); a++)
		len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "%s%s", len ? " " : "", *a);
	fdp__log(m, FDP_LOG_ERROR,
	         "worker %u generation 1: cannot execute %s: it exited with status %d before it "
	         "was ready (%s)",
	         p->slot, cmd, code, code == 127 ? "command not found" : "not executable");
	m->start_err = -ENOEXEC;
}
