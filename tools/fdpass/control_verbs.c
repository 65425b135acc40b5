/*
 * fdpass reload, fdpass stop and fdpass upgrade: send one command to a running server's control
 * socket (docs/SERVE.md, "The control socket") and report its answer: "ok ..." is printed on stdout
 * and exits 0, "error ..." on stderr and exits 1, as does a server that cannot be reached or
 * does not answer.
 */
#include "commands.h"
#include "pidfile.h"
#include "serve.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long an answer the server gives at once may take. */
#define ANSWER_NOW_MS 5000

#define CONTROL_HELP                                                                               \
	"  --control PATH  the server's control socket (default: the one `fdpass serve` uses\n"    \
	"                  by default: $XDG_RUNTIME_DIR/fdpass.sock, else "                        \
	"fdpass-$UID/control.sock\n"                                                               \
	"                  in $TMPDIR or /tmp). A server that runs as neither root nor you is\n"   \
	"                  refused.\n"                                                             \
	"  --timeout SECS  give up (exit 1) when no answer came within SECS (0.001..86400).\n"

static const char reload_usage[] =
        "usage: fdpass reload [--control PATH] [--timeout SECS]\n"
        "\n"
        "Replace every worker of a running `fdpass serve`, as SIGHUP does, and wait until the\n"
        "reload is complete: each new worker ready, each old one drained. Says what the\n"
        "server answered.\n"
        "\n"
        "Options:\n" CONTROL_HELP "                  Default: no limit (the server answers "
        "within its --start-timeout\n"
        "                  and --drain-timeout).\n"
        "  --help          show this help.\n"
        "\n"
        "Exit status: 0 every worker replaced; 1 the server said error (a worker could not be\n"
        "replaced: that slot keeps its old worker; the server is stopping), no server answers\n"
        "there, or no answer in time; 2 bad command line.\n";

static const char stop_usage[] =
        "usage: fdpass stop [--wait] [--control PATH] [--timeout SECS]\n"
        "\n"
        "Stop a running `fdpass serve`, as SIGTERM does: the master stops accepting, its\n"
        "workers finish their connections (within its --drain-timeout), and it exits 0. A\n"
        "second stop, while it drains, stops it at once. Returns once the master has started\n"
        "draining, or with --wait once the master process has exited.\n"
        "\n"
        "Options:\n"
        "  --wait          wait until the server has stopped: every worker exited and the\n"
        "                  master process gone (its control socket and --pid-file "
        "removed).\n" CONTROL_HELP
        "                  Default: 5 without --wait, no limit with it.\n"
        "  --help          show this help.\n"
        "\n"
        "Exit status: 0 stopping (or, with --wait, stopped); 1 the server said error, no\n"
        "server answers there, or no answer in time; 2 bad command line.\n";

static const char upgrade_usage[] =
        "usage: fdpass upgrade [--control PATH] [--timeout SECS]\n"
        "\n"
        "Replace a running `fdpass serve`'s master by a new one, as SIGUSR2 does (a hot\n"
        "upgrade: the new master, the server's --upgrade-binary, inherits every listening\n"
        "socket and the control socket), and wait until the new master's workers are all\n"
        "ready (the old master then drains and exits 0), or the upgrade was rolled back.\n"
        "\n"
        "Options:\n" CONTROL_HELP "                  Default: no limit (the server answers "
        "within its\n"
        "                  --upgrade-timeout).\n"
        "  --help          show this help.\n"
        "\n"
        "Exit status: 0 upgraded (the answer names the new master's pid); 1 the server said\n"
        "error (the new master failed: the old one serves on; an upgrade already running; the\n"
        "server is stopping), no server answers there, or no answer in time; 2 bad command\n"
        "line.\n";

struct verb_opts {
	const char *control;
	int wait;
	int timeout_ms; /* -1: none */
};

/* Returns -1 when the options are good, else the exit status. */
static int parse_verb(const char *verb, const char *usage, int can_wait, int argc, char **argv,
                      struct verb_opts *o)
{
	static const struct option longopts[] = {{"control", required_argument, NULL, 'c'},
	                                         {"timeout", required_argument, NULL, 't'},
	                                         {"wait", no_argument, NULL, 'w'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	unsigned ms;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'c' && *optarg) {
			o->control = optarg;
		} else if (c == 'c') {
			return fdpass_usage_error(verb,
			                          "invalid value '' for --control: expected a "
			                          "socket path");
		} else if (c == 't') {
			if (fdpass_parse_ms(optarg, 1, 86400e3, &ms) < 0)
				return fdpass_usage_error(
				        verb,
				        "invalid value '%s' for --timeout: expected "
				        "seconds from 0.001 to 86400",
				        optarg);
			o->timeout_ms = (int)ms;
		} else if (c == 'w' && can_wait) {
			o->wait = 1;
		} else if (c == 'w') {
			return fdpass_usage_error(verb, "unknown option '--wait'");
		} else if (c == 'h') {
			fputs(usage, stdout);
			return FDPASS_EXIT_OK;
		} else {
			return fdpass_getopt_error(verb, c, argv, longopts);
		}
	}
	if (optind < argc)
		return fdpass_usage_error(verb, "unexpected argument '%s'", argv[optind]);
	return -1;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The server's answer to a command: report it; returns the exit status. */
static int report(const char *verb, const char *control, const char *reply, int timed_out)
{
	size_t len = strcspn(reply, "\n");

	if (strncmp(reply, "ok", 2) == 0 && (reply[2] == ' ' || reply[2] == '\n' || !reply[2])) {
		if (reply[2] == ' ')
			printf("%.*s\n", (int)(len - 3), reply + 3);
		return FDPASS_EXIT_OK;
	}
	if (strncmp(reply, "error ", 6) == 0)
		fprintf(stderr, "fdpass %s: %.*s\n", verb, (int)(len - 6), reply + 6);
	else if (!*reply && timed_out)
		fprintf(stderr, "fdpass %s: %s: no answer in time (see --timeout)\n", verb,
		        control);
	else if (!*reply)
		fprintf(stderr,
		        "fdpass %s: %s: the server closed the connection without answering\n", verb,
		        control);
	else if (strncmp(reply, "master ", 7) == 0)
		fprintf(stderr,
		        "fdpass %s: %s: the server answered with its status: it takes no commands "
		        "(an older fdpass serve?)\n",
		        verb, control);
	else
		fprintf(stderr, "fdpass %s: %s: unexpected answer: %.*s\n", verb, control,
		        (int)(len < 200 ? len : 200), reply);
	return FDPASS_EXIT_FAILURE;
}

/* Send command and report the answer; *server gets the pid that answered (0: none). */
static int call(const char *verb, const char *control, const char *command, int timeout_ms,
                pid_t *server)
{
	long long start = now_ms();
	char *reply;
	int status;

	*server = 0;
	reply = fdpass_control_call_pid(verb, control, command, timeout_ms, server);
	if (!reply)
		return FDPASS_EXIT_FAILURE;
	status = report(verb, control, reply,
	                timeout_ms >= 0 && now_ms() - start >= (long long)timeout_ms);
	free(reply);
	return status;
}

/*
 * A descriptor that becomes readable when process pid exits (pidfd_open(2), Linux 5.3), or -1
 * when this system has none or pid is gone. A pid is only safe to watch while it is known to
 * be the server: right after it answered.
 */
static int pid_watch(pid_t pid)
{
#ifdef SYS_pidfd_open
	return pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1; /* close-on-exec */
#else
	(void)pid;
	return -1;
#endif
}

/* Wait until the watched process has exited, within timeout_ms (-1: no limit); 0 or -1. */
static int wait_exit(int pidfd, int timeout_ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	long long deadline = now_ms() + timeout_ms;
	int r;

	for (;;) {
		long long left = deadline - now_ms();

		r = poll(&p, 1, timeout_ms < 0 ? -1 : left > 0 ? (int)left : 0);
		if (r >= 0 || errno != EINTR)
			return r > 0 ? 0 : -1;
	}
}

int cmd_reload(int argc, char **argv)
{
	struct verb_opts o = {.timeout_ms = -1};
	char path[512];
	pid_t server;
	int status = parse_verb("reload", reload_usage, 0, argc, argv, &o);

	if (status >= 0)
		return status;
	if (fdpass_control_resolve("reload", &o.control, path, sizeof(path)) < 0)
		return FDPASS_EXIT_FAILURE;
	return call("reload", o.control, "reload", o.timeout_ms, &server);
}

int cmd_upgrade(int argc, char **argv)
{
	struct verb_opts o = {.timeout_ms = -1};
	char path[512];
	pid_t server;
	int status = parse_verb("upgrade", upgrade_usage, 0, argc, argv, &o);

	if (status >= 0)
		return status;
	if (fdpass_control_resolve("upgrade", &o.control, path, sizeof(path)) < 0)
		return FDPASS_EXIT_FAILURE;
	return call("upgrade", o.control, "upgrade", o.timeout_ms, &server);
}

int cmd_stop(int argc, char **argv)
{
	struct verb_opts o = {.timeout_ms = -2};
	char path[512];
	pid_t server, stopped, said;
	char *reply;
	int status = parse_verb("stop", stop_usage, 1, argc, argv, &o), pidfd;

	if (status >= 0)
		return status;
	if (o.timeout_ms == -2)
		o.timeout_ms = o.wait ? -1 : ANSWER_NOW_MS;
	if (fdpass_control_resolve("stop", &o.control, path, sizeof(path)) < 0)
		return FDPASS_EXIT_FAILURE;
	if (!o.wait)
		return call("stop", o.control, "stop", o.timeout_ms, &server);
	/*
	 * "stop wait" is answered once every worker has exited; the master still has to close
	 * its sockets and remove its files. Its exit is what a script waits for (to start a new
	 * server on the same pid file, control path and addresses), so watch the master: ask its
	 * status first, to learn its pid while it is certainly alive. SO_PEERCRED names the
	 * process that made the socket, which after a hot upgrade is the old master, gone: the
	 * pid the status gives is then taken when it is an fdpass here (not one of another pid
	 * namespace's numbers); with neither, the answer is all there is to wait for.
	 */
	server = 0;
	reply = fdpass_control_call_pid("stop", o.control, "status", ANSWER_NOW_MS, &server);
	if (!reply)
		return FDPASS_EXIT_FAILURE;
	said = strncmp(reply, "master pid=", 11) == 0 ? (pid_t)atoi(reply + 11) : 0;
	free(reply);
	if (said != server)
		server = fdpass_pid_is_fdpass(said) ? said : 0;
	pidfd = pid_watch(server); /* ours, closed below */
	status = call("stop", o.control, "stop wait", o.timeout_ms, &stopped);
	if (status == FDPASS_EXIT_OK && pidfd >= 0 && wait_exit(pidfd, o.timeout_ms) < 0) {
		fprintf(stderr, "fdpass stop: %s: the master (pid %d) has not exited in time\n",
		        o.control, (int)server);
		status = FDPASS_EXIT_FAILURE;
	}
	if (pidfd >= 0)
		close(pidfd);
	return status;
}
