/*
 * fdp-rusage: run a server, forward SIGTERM/SIGINT/SIGHUP to it, and once it and every process
 * it started are gone, report their CPU time (user + system of the whole tree).
 *
 * The wrapper makes itself a child subreaper, so workers the server leaves behind are
 * reparented here instead of to init and their CPU time is still counted when they are reaped.
 * The server runs in its own process group; what is left of the group when the server exits
 * is sent SIGTERM, then SIGKILL after the grace period, so the wrapper always ends.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tree {
	pid_t main;
	int main_status;
	int main_alive;
	int killed;        /* SIGKILL had to be used */
	double grace;      /* seconds between SIGTERM and SIGKILL */
	double kill_at;    /* when to escalate; 0: not yet asked to stop */
	double give_up_at; /* stop waiting for processes that ignore even SIGKILL */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: fdp-rusage [-o FILE] [-k GRACE_SECS] -- COMMAND [ARG...]\n"
	        "\n"
	        "Runs COMMAND in its own process group; SIGTERM, SIGINT or SIGHUP sent to\n"
	        "fdp-rusage is passed to it as SIGTERM. When COMMAND and all its descendants are\n"
	        "gone, writes to FILE (default standard error) the lines\n"
	        "  user_us N\n  sys_us N\n  cpu_us N\n  switches N\n  status N\n  killed 0|1\n"
	        "(switches: context switches, voluntary and involuntary, of the whole tree)\n"
	        "and exits with COMMAND's status (128 + signal if it was killed).\n"
	        "  -o FILE   where to write the report\n"
	        "  -k SECS   grace before SIGKILL, for COMMAND after the signal and for leftover\n"
	        "            descendants after COMMAND exits (default 5)\n");
}

static pid_t start(char **argv, const sigset_t *old)
{
	pid_t pid = fork();

	if (pid == 0) {
		setpgid(0, 0);
		sigprocmask(SIG_SETMASK, old, NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "fdp-rusage: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid > 0)
		setpgid(pid, pid); /* also here, so the group exists before any signal is sent */
	return pid;
}

static void reap(struct tree *t)
{
	int status;
	pid_t w;

	while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
		if (w != t->main)
			continue;
		t->main_alive = 0;
		t->main_status = status;
		/* Leftovers in the server's group get the same grace the server had. */
		kill(-t->main, SIGTERM);
		t->kill_at = now_s() + t->grace;
	}
}

static void escalate(struct tree *t)
{
	double now = now_s();

	if (t->kill_at == 0 || now < t->kill_at)
		return;
	if (!t->killed) {
		kill(-t->main, SIGKILL);
		t->killed = 1;
		t->give_up_at = now + t->grace;
	}
}

static int wait_tree(struct tree *t, const sigset_t *set)
{
	const struct timespec tick = {0, 50 * 1000 * 1000};

	for (;;) {
		int sig = sigtimedwait(set, NULL, &tick);

		if ((sig == SIGTERM || sig == SIGINT || sig == SIGHUP) && t->main_alive) {
			kill(t->main, SIGTERM);
			if (t->kill_at == 0)
				t->kill_at = now_s() + t->grace;
			else
				t->kill_at = now_s(); /* asked twice: no more patience */
		}
		reap(t);
		if (!t->main_alive && waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
			return 0;
		escalate(t);
		if (t->give_up_at && now_s() > t->give_up_at)
			return -1;
	}
}

static int report(const struct tree *t, const char *path)
{
	struct rusage ru;
	long user, sys;
	int code;
	FILE *f = path ? fopen(path, "w") : stderr;

	if (!f)
		return -1;
	getrusage(RUSAGE_CHILDREN, &ru);
	user = ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec;
	sys = ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec;
	code = WIFEXITED(t->main_status) ? WEXITSTATUS(t->main_status)
	                                 : 128 + WTERMSIG(t->main_status);
	fprintf(f, "user_us %ld\nsys_us %ld\ncpu_us %ld\nswitches %ld\nstatus %d\nkilled %d\n", user,
	        sys, user + sys, ru.ru_nvcsw + ru.ru_nivcsw, code, t->killed);
	if (path)
		fclose(f);
	return code;
}

int main(int argc, char **argv)
{
	struct tree t = {.main_alive = 1, .grace = 5};
	const char *out = NULL;
	sigset_t set, old;
	int opt, code;

	while ((opt = getopt(argc, argv, "+o:k:h")) != -1) {
		if (opt == 'o') {
			out = optarg;
		} else if (opt == 'k' && atof(optarg) > 0) {
			t.grace = atof(optarg);
		} else if (opt == 'h') {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	t.main = start(argv + optind, &old);
	if (t.main < 0) {
		perror("fdp-rusage: fork");
		return 1;
	}
	if (wait_tree(&t, &set) < 0)
		fprintf(stderr, "fdp-rusage: descendants survived SIGKILL; CPU time incomplete\n");
	code = report(&t, out);
	return t.killed ? 128 + SIGKILL : code;
}
