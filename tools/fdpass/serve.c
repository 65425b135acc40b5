/*
 * fdpass serve: the pre-forked server. Parses the options, binds the listeners (so an address
 * in use is reported with the address, before anything starts), and runs the library's master
 * with a built-in handler or an external worker program. Logs go to stderr or --log-file
 * (log.c), with the workers' output, without ever blocking the master.
 */
#include "activation.h"
#include "commands.h"
#include "log.h"
#include "notify.h"
#include "pidfile.h"
#include "serve.h"
#include "serve_limits.h"
#include "serve_route.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN 64

#define MAX_WORKERS 1024 /* the master's FDP__MAX_WORKERS */

/* getopt_long values of the built-in handlers' limits (after serve_route.h's). */
enum {
	OPT_HEADER_TIMEOUT = 512,
	OPT_IDLE_TIMEOUT,
	OPT_MAX_OUTPUT,
	OPT_METRICS,
	OPT_CONFIG,
	OPT_CHECK,
	OPT_LOG_FORMAT,
	OPT_LOG_FILE,
	OPT_UPGRADE_TIMEOUT,
	OPT_UPGRADE_BINARY,
	OPT_DISPATCH,
	OPT_DISPATCHERS,
};

/* getopt_long values of the process options (the cli block: 1792..). */
enum {
	OPT_PID_FILE = 1792,
};

static const char usage_text[] =
        "usage: fdpass serve [OPTIONS]\n"
        "\n"
        "Run a pre-forked server: the master accepts every connection and hands it to the\n"
        "worker the policy picks, over that worker's channel (SCM_RIGHTS).\n"
        "\n"
        "Options:\n"
        "  --listen ADDR[,policy=NAME][,tag=TAG][,dispatch=MODE][,defer=on]\n"
        "                        listen on ADDR; repeatable. HOST:PORT (IPv4), [HOST]:PORT\n"
        "                        (IPv6), or unix:PATH. HOST is an address, never a name to\n"
        "                        resolve (localhost is 127.0.0.1); *:PORT is every IPv4\n"
        "                        address (0.0.0.0), [::]:PORT every IPv6 one. Default\n"
        "                        127.0.0.1:8080. Port 0 picks a free port (the log says\n"
        "                        which). fd:N or fd:NAME: a socket passed by systemd\n"
        "                        ($LISTEN_FDS, named in $LISTEN_FDNAMES) or open on\n"
        "                        descriptor N. An address a passed socket is bound to takes\n"
        "                        that socket instead of binding; with sockets passed and no\n"
        "                        --listen, each is used. policy= gives this listener its own\n"
        "                        policy; tag= (raw, echo, http or a number) the protocol its\n"
        "                        connections are tagged with (the built-in handlers speak\n"
        "                        echo or http by it); dispatch= its --dispatch. defer=on,\n"
        "                        for TCP clients that speak first (HTTP): the kernel hands\n"
        "                        a connection over only once its first bytes are in\n"
        "                        (TCP_DEFER_ACCEPT; one that sends nothing after 1 s), a\n"
        "                        read and a wake-up fewer per connection; a stop waits (up\n"
        "                        to 1.5 s) for the clients it finds between their handshake\n"
        "                        and request; not where the server speaks first\n"
        "                        (docs/SERVE.md).\n"
        "  --workers N           worker processes, 1..1024. Default: one per CPU.\n"
        "  --handler NAME        built-in handler: http (answers with the worker that served\n"
        "                        it) or echo. Default http.\n"
        "  --exec COMMAND        run COMMAND as each worker instead of a built-in handler:\n"
        "                        split on blanks and executed itself, or through /bin/sh\n"
        "                        when it has shell characters; it finds its channel in\n"
        "                        $FDPASS_CHANNEL_FD (see docs/WORKER.md and docs/SERVE.md).\n"
        "  --policy NAME         round-robin, least-conn, hash-ip or route. Default\n"
        "                        round-robin. route: the master peeks at what the client\n"
        "                        sends and hands it to the worker its key maps to (always the\n"
        "                        same one); see docs/ROUTING.md.\n"
        "  --dispatch MODE       how connections reach the workers: pass (the master\n"
        "                        accepts each one and hands it over), kernel (a BPF\n"
        "                        program picks the worker of each new TCP connection and\n"
        "                        the worker accepts it on a socket of its own: the master\n"
        "                        is off the path; round-robin, least-conn and hash-ip only;\n"
        "                        needs root or CAP_BPF, Linux 5.12; not with\n"
        "                        --max-connections or --max-requests), or auto (kernel\n"
        "                        where it can, else pass; the log says which and why).\n"
        "                        Default auto. A worker that dies or hangs loses nothing\n"
        "                        that waits on its socket: the master hands it to another.\n"
        "                        See docs/STEERING.md.\n"
        "  --route-key SPEC      the routing key: line, line:N (Nth token), line:N:C (Nth\n"
        "                        field split at C), http-host, http-path, http-header:NAME,\n"
        "                        prefix:N or length-prefixed[:1|2|4]. Required by route.\n"
        "  --route-map FILE      lines \"KEY INDEX\" or \"PREFIX* INDEX\" pinning keys to worker\n"
        "                        slots; the rest are hashed.\n"
        "  --route-timeout SECS  time a client has to send its key (0.001..3600). Default 5.\n"
        "                        From 1 s up, a TCP route listener takes a client only once\n"
        "                        its first bytes are in (TCP_DEFER_ACCEPT); one that sends\n"
        "                        nothing gets about 1 s more.\n"
        "  --route-max-bytes N   the key must lie in the first N bytes. Default 8192.\n"
        "  --route-max-pending N clients waiting at once for their key or their worker;\n"
        "                        past it accepting pauses (the backlog holds the rest).\n"
        "                        Default 1024.\n"
        "  --route-fail ACTION   a client with no key (timed out, too long, malformed):\n"
        "                        close, or default:N to hand it to worker N. Default close.\n"
        "  --dispatchers N       processes that accept and route the route listeners'\n"
        "                        clients in place of the master (0..16; 0, the default: the\n"
        "                        master does). Each is a core's worth of routed connections\n"
        "                        per second; they share the listeners' queue, route every\n"
        "                        key to the same worker, and need nothing of the workers.\n"
        "                        One that dies is restarted; nothing queued is lost. See\n"
        "                        docs/ROUTING.md.\n"
        "  --backlog N           listen backlog, 1..65535. Default 4096.\n"
        "  --drain-timeout SECS  on SIGTERM/SIGINT/SIGHUP, how long workers may take to finish\n"
        "                        their connections before they are killed (0..86400). Default 10.\n"
        "  --start-timeout SECS  how long a new worker may take to say it is ready before it\n"
        "                        is killed; on SIGHUP the old worker then keeps serving\n"
        "                        (1..86400). Default 60.\n"
        "  --ack-timeout SECS    how long a ready worker may leave a connection handed to it\n"
        "                        unacknowledged (it has stopped reading its channel) before it\n"
        "                        is killed and its connections go to other workers\n"
        "                        (0.01..3600, fractions allowed). Default 2.\n"
        "  --header-timeout SECS built-in handlers: time a client has to send a request head\n"
        "                        (0.001..3600). Late: 408 and close; nothing sent: close.\n"
        "                        Default 10.\n"
        "  --idle-timeout SECS   built-in handlers: a keep-alive connection between requests\n"
        "                        that sends nothing this long is closed, as is one whose\n"
        "                        answers it does not read for this long (0.001..86400).\n"
        "                        Default 60.\n"
        "  --max-output BYTES    built-in handlers: while more than this is unsent to a\n"
        "                        client, it is not read (1024..1073741824). Default 262144.\n"
        "  --user USER[:GROUP]   run every worker as USER (a name or number) and GROUP\n"
        "                        (default: USER's login group), with no supplementary groups\n"
        "                        and no new privileges; the master stays root (it binds the\n"
        "                        listeners, owns the control socket and the log). Needs root.\n"
        "  --max-requests N      replace a worker once it has been handed N connections (the\n"
        "                        master sees connections, not the requests on them): its\n"
        "                        successor starts first, then it drains, as on SIGHUP.\n"
        "  --max-lifetime SECS   replace a worker, the same way, once it has been up SECS\n"
        "                        (0.1..4000000, fractions allowed).\n"
        "  --recycle-jitter PCT  raise each worker's --max-requests and --max-lifetime by a\n"
        "                        random 0..PCT percent, so that workers are not all replaced\n"
        "                        at once (0..100). Default 0.\n"
        "  --max-connections N   at most N connections open at once (accepted and not yet\n"
        "                        finished by a worker); at N accepting pauses, the backlog\n"
        "                        holds new clients. Default: no limit.\n"
        "  --reap-all            become a child subreaper and reap every process orphaned\n"
        "                        below the server (always done when running as PID 1).\n"
        "  --upgrade-timeout SECS\n"
        "                        on SIGUSR2, how long the new master may take to have every\n"
        "                        worker ready before it is killed and this one serves on\n"
        "                        (1..86400). Default 60.\n"
        "  --upgrade-binary PATH the program SIGUSR2 starts as the new master, with these\n"
        "                        arguments. Default: this fdpass, by the path it was started\n"
        "                        as (made absolute, not resolved), so that after a package\n"
        "                        upgrade the new file runs.\n"
        "  --control PATH        control socket for `fdpass status`, `fdpass reload` and\n"
        "                        `fdpass stop`. Default $XDG_RUNTIME_DIR/fdpass.sock, else\n"
        "                        fdpass-$UID/control.sock in $TMPDIR or /tmp (a directory\n"
        "                        of yours, mode 0700).\n"
        "                        \"none\" disables it.\n"
        "  --metrics ADDR        serve the master's metrics over HTTP on ADDR (as --listen:\n"
        "                        HOST:PORT, [HOST]:PORT or unix:PATH; port 0 picks one, the\n"
        "                        log says which): GET /metrics answers Prometheus's text\n"
        "                        format (counters per listener and worker slot, the ACK\n"
        "                        latency histogram; docs/SERVE.md lists them). Default: off;\n"
        "                        `fdpass status --prometheus` prints the same text.\n"
        "  --log-level LEVEL     error, warn, info or debug. Default info.\n"
        "  --log-format FORMAT   text (\"TIME fdpass[PID] LEVEL: MESSAGE\") or json (one\n"
        "                        object a line: time, level, msg, and worker, pid, stream for\n"
        "                        a worker's output). TIME is RFC 3339 in the local time zone\n"
        "                        (TZ), to the millisecond. Default text.\n"
        "  --log-file PATH       append the log to PATH (created with mode 0640 less the\n"
        "                        umask) instead of stderr; SIGUSR1 reopens it (logrotate).\n"
        "                        Workers' stdout and stderr go to the log, line by line, with\n"
        "                        their slot and pid: stdout's at info, stderr's at warn.\n"
        "  --pid-file PATH       write the master's pid to PATH once the listeners are bound\n"
        "                        (atomically: a file in the same directory, renamed), remove\n"
        "                        it at exit; refuse to start while PATH names a running\n"
        "                        fdpass (exit 1); a stale one is replaced.\n"
        "  --config FILE         read options from FILE first, one per line: \"workers 4\",\n"
        "                        \"listen 127.0.0.1:8080,policy=hash-ip\" (a leading -- is\n"
        "                        fine; # comments). The command line overrides them; its\n"
        "                        --listen list replaces the file's. SIGHUP reads it again.\n"
        "  --check               check the options, the file, the route map, the --exec\n"
        "                        program and the addresses, print \"configuration OK\", and\n"
        "                        exit 0 (else 2 with the reason); binds and starts nothing.\n"
        "  --help                show this help.\n"
        "\n"
        "Signals: SIGTERM/SIGINT drain and exit 0 (a second one stops at once); SIGHUP reads\n"
        "--config's file and the route map again, applies the workers, policies, routing and\n"
        "timeouts, and replaces every worker without failing a request (a file that does not\n"
        "parse changes nothing; new --listen addresses need an upgrade); SIGUSR1 reopens\n"
        "--log-file; SIGUSR2 starts a new master (hot upgrade: it inherits every socket, and\n"
        "this one exits 0 once it is ready; `fdpass reload`, `fdpass upgrade` and `fdpass\n"
        "stop` do these through the control socket). Exit status: 0 stopped, 1 failure\n"
        "(address in use, control socket, log file, a running server's --pid-file), 2 bad\n"
        "command line or configuration. See\n"
        "docs/SERVE.md and docs/OPERATIONS.md.\n"
        "\n"
        "Under systemd (docs/OPERATIONS.md): with $NOTIFY_SOCKET set, the master sends READY=1\n"
        "once every worker is ready, RELOADING=1 then READY=1 around a SIGHUP's reload,\n"
        "STOPPING=1, STATUS=, WATCHDOG=1 (with $WATCHDOG_USEC), and each listener it bound\n"
        "itself to the descriptor store (FDSTORE=1), which a restart gets back in $LISTEN_FDS.\n";

struct serve_opts {
	const char *listen[MAX_LISTEN];
	struct fdpass_listen_opts lopts[MAX_LISTEN];
	size_t nlisten;
	struct fdp_route_config route;
	int route_given;
	long workers, backlog, dispatchers;
	long long drain_ms, start_ms;
	unsigned ack_ms;
	const struct fdpass_handler *handler;
	const char *exec;
	enum fdp_policy policy;
	enum fdp_dispatch dispatch;
	const char *control;
	const char *metrics; /* --metrics ADDR, or NULL */
	enum fdp_log_level log_level;
	enum fdpass_log_format log_format;
	const char *log_file;
	struct fdpass_limits limits;
	unsigned upgrade_ms;
	const char *upgrade_binary;
	struct fdpass_proc_limits plimits;
	const char *pid_file; /* --pid-file, or NULL */
	/* --config and --check (config.c), and which of the parses fills this in: */
	const char *config;
	int check;
	int prescan;        /* finding --config and --check on the command line, nothing else */
	int in_file;        /* a line of the file: --config, --check and --help are refused */
	int cmdline_listen; /* the command line gave a --listen: its list replaces the file's */
};

/* A bad value, in one line; main() adds the one pointing at --help (commands.h). */
static int bad_value(const char *opt, const char *value, const char *accepts)
{
	return fdpass_usage_error("serve", "invalid value '%s' for --%s: expected %s", value, opt,
	                          accepts);
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int fdpass_parse_ms(const char *s, double min_ms, double max_ms, unsigned *out)
{
	char *end;
	double ms;

	errno = 0;
	ms = strtod(s, &end) * 1000;
	if (!*s || *end || errno || !(ms >= min_ms - 1e-6 && ms <= max_ms))
		return -1;
	*out = (unsigned)(ms + 0.5);
	return 0;
}

/* The built-in handlers' limits; -1 when good, else the exit status. */
static int limit_option(int opt, const char *value, struct fdpass_limits *lim)
{
	long v;

	switch (opt) {
	case OPT_HEADER_TIMEOUT:
		if (fdpass_parse_ms(value, 1, 3600e3, &lim->header_timeout_ms) < 0)
			return bad_value("header-timeout", value, "seconds from 0.001 to 3600");
		break;
	case OPT_IDLE_TIMEOUT:
		if (fdpass_parse_ms(value, 1, 86400e3, &lim->idle_timeout_ms) < 0)
			return bad_value("idle-timeout", value, "seconds from 0.001 to 86400");
		break;
	default:
		if (parse_long(value, 1024, 1L << 30, &v) < 0)
			return bad_value("max-output", value, "a number from 1024 to 1073741824");
		lim->max_output = (size_t)v;
		break;
	}
	return -1;
}

static int pick(const char *value, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(value, names[i]) == 0)
			return i;
	return -1;
}

static int not_in_file(const char *opt)
{
	fprintf(stderr, "fdpass serve: --%s is not allowed in a configuration file\n", opt);
	return FDPASS_EXIT_USAGE;
}

/* Returns -1 when the options are good, else the exit status. */
static int parse_opts(int argc, char **argv, struct serve_opts *o)
{
	static const struct option longopts[] = {
	        {"listen", required_argument, NULL, 'l'},
	        {"workers", required_argument, NULL, 'w'},
	        {"handler", required_argument, NULL, 'H'},
	        {"exec", required_argument, NULL, 'e'},
	        {"policy", required_argument, NULL, 'p'},
	        {"backlog", required_argument, NULL, 'b'},
	        {"drain-timeout", required_argument, NULL, 'd'},
	        {"start-timeout", required_argument, NULL, 's'},
	        {"ack-timeout", required_argument, NULL, 'A'},
	        {"control", required_argument, NULL, 'c'},
	        {"log-level", required_argument, NULL, 'L'},
	        {"route-key", required_argument, NULL, FDPASS_OPT_ROUTE_KEY},
	        {"route-map", required_argument, NULL, FDPASS_OPT_ROUTE_MAP},
	        {"route-timeout", required_argument, NULL, FDPASS_OPT_ROUTE_TIMEOUT},
	        {"route-max-bytes", required_argument, NULL, FDPASS_OPT_ROUTE_MAX_BYTES},
	        {"route-max-pending", required_argument, NULL, FDPASS_OPT_ROUTE_MAX_PENDING},
	        {"route-fail", required_argument, NULL, FDPASS_OPT_ROUTE_FAIL},
	        {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
	        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	        {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
	        {"metrics", required_argument, NULL, OPT_METRICS},
	        {"config", required_argument, NULL, OPT_CONFIG},
	        {"check", no_argument, NULL, OPT_CHECK},
	        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	        {"log-file", required_argument, NULL, OPT_LOG_FILE},
	        {"upgrade-timeout", required_argument, NULL, OPT_UPGRADE_TIMEOUT},
	        {"upgrade-binary", required_argument, NULL, OPT_UPGRADE_BINARY},
	        {"pid-file", required_argument, NULL, OPT_PID_FILE},
	        {"dispatch", required_argument, NULL, OPT_DISPATCH},
	        {"dispatchers", required_argument, NULL, OPT_DISPATCHERS},
	        FDPASS_PROC_LIMITS_OPTIONS,
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0}};
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	static const char *const formats[] = {"text", "json"}; /* enum fdpass_log_format's order */
	int c, i;
	long v;

	opterr = 0;
	optind = 0; /* parsed more than once: the file's lines, the command line, each reload */
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (o->prescan) {
			if (c == OPT_CONFIG)
				o->config = optarg;
			o->check |= c == OPT_CHECK;
			continue;
		}
		switch (c) {
		case 'l':
			if (!o->in_file && !o->cmdline_listen) {
				o->cmdline_listen = 1;
				o->nlisten = 0; /* the command line's list replaces the file's */
			}
			if (o->nlisten == MAX_LISTEN)
				return bad_value("listen", optarg, "at most 64 addresses");
			if ((i = fdpass_listen_parse(optarg, &o->lopts[o->nlisten])) >= 0)
				return i;
			o->listen[o->nlisten++] = optarg;
			break;
		case 'w':
			if (parse_long(optarg, 1, MAX_WORKERS, &o->workers) < 0)
				return bad_value("workers", optarg, "a number from 1 to 1024");
			break;
		case 'H':
			if (strcmp(optarg, "http") == 0)
				o->handler = &fdpass_handler_http;
			else if (strcmp(optarg, "echo") == 0)
				o->handler = &fdpass_handler_echo;
			else
				return bad_value("handler", optarg, "http or echo");
			break;
		case 'e':
			if (!optarg[strspn(optarg, " \t")]) /* blank: no program to run */
				return bad_value("exec", optarg, "a command");
			o->exec = optarg;
			break;
		case 'p':
			if ((i = fdpass_policy_parse(optarg)) < 0)
				return bad_value("policy", optarg,
				                 "round-robin, least-conn, hash-ip or route");
			o->policy = (enum fdp_policy)i;
			break;
		case 'b':
			if (parse_long(optarg, 1, 65535, &o->backlog) < 0)
				return bad_value("backlog", optarg, "a number from 1 to 65535");
			break;
		case 'd':
			if (parse_long(optarg, 0, 86400, &v) < 0)
				return bad_value("drain-timeout", optarg,
				                 "whole seconds from 0 to 86400");
			o->drain_ms = v * 1000LL;
			break;
		case 's':
			if (parse_long(optarg, 1, 86400, &v) < 0)
				return bad_value("start-timeout", optarg,
				                 "whole seconds from 1 to 86400");
			o->start_ms = v * 1000LL;
			break;
		case 'A':
			if (fdpass_parse_ms(optarg, 10, 3600e3, &o->ack_ms) < 0)
				return bad_value("ack-timeout", optarg, "seconds from 0.01 to 3600");
			break;
		case 'c':
			if (!*optarg)
				return bad_value("control", optarg, "a socket path or \"none\"");
			o->control = optarg;
			break;
		case 'L':
			if ((i = pick(optarg, levels, 4)) < 0)
				return bad_value("log-level", optarg, "error, warn, info or debug");
			o->log_level = (enum fdp_log_level)i;
			break;
		case OPT_LOG_FORMAT:
			if ((i = pick(optarg, formats, 2)) < 0)
				return bad_value("log-format", optarg, "text or json");
			o->log_format = (enum fdpass_log_format)i;
			break;
		case OPT_LOG_FILE:
			if (!*optarg)
				return bad_value("log-file", optarg, "a file's path");
			o->log_file = optarg;
			break;
		case OPT_METRICS: {
			struct sockaddr_storage sa;
			socklen_t salen;

			/* A bad address is a bad command line, said before anything is bound. */
			if (fdp_addr_parse(optarg, &sa, &salen) < 0)
				return bad_value("metrics", optarg,
				                 "HOST:PORT, [HOST]:PORT or unix:PATH");
			o->metrics = optarg;
			break;
		}
		case 'h':
			if (o->in_file)
				return not_in_file("help");
			fputs(usage_text, stdout);
			return FDPASS_EXIT_OK;
		case OPT_CONFIG: /* read before the command line (config_load()) */
			if (o->in_file)
				return not_in_file("config");
			break;
		case OPT_CHECK:
			if (o->in_file)
				return not_in_file("check");
			o->check = 1;
			break;
		case FDPASS_OPT_ROUTE_KEY:
		case FDPASS_OPT_ROUTE_MAP:
		case FDPASS_OPT_ROUTE_TIMEOUT:
		case FDPASS_OPT_ROUTE_MAX_BYTES:
		case FDPASS_OPT_ROUTE_MAX_PENDING:
		case FDPASS_OPT_ROUTE_FAIL:
			if ((i = fdpass_route_option(c, optarg, &o->route)) >= 0)
				return i;
			o->route_given = 1;
			break;
		case OPT_UPGRADE_TIMEOUT:
			if (parse_long(optarg, 1, 86400, &v) < 0)
				return bad_value("upgrade-timeout", optarg,
				                 "whole seconds from 1 to 86400");
			o->upgrade_ms = (unsigned)v * 1000;
			break;
		case OPT_UPGRADE_BINARY:
			if (!*optarg)
				return bad_value("upgrade-binary", optarg, "a program's path");
			o->upgrade_binary = optarg;
			break;
		case OPT_HEADER_TIMEOUT:
		case OPT_IDLE_TIMEOUT:
		case OPT_MAX_OUTPUT:
			if ((i = limit_option(c, optarg, &o->limits)) >= 0)
				return i;
			break;
		case OPT_DISPATCH:
			if ((i = fdpass_dispatch_parse(optarg)) < 0)
				return bad_value("dispatch", optarg, "pass, kernel or auto");
			o->dispatch = (enum fdp_dispatch)i;
			break;
		case OPT_DISPATCHERS:
			if (parse_long(optarg, 0, 16, &o->dispatchers) < 0)
				return bad_value("dispatchers", optarg, "a number from 0 to 16");
			break;
		case OPT_PID_FILE:
			if (!*optarg)
				return bad_value("pid-file", optarg, "a file name");
			o->pid_file = optarg;
			break;
		case FDPASS_OPT_USER:
		case FDPASS_OPT_MAX_REQUESTS:
		case FDPASS_OPT_MAX_LIFETIME:
		case FDPASS_OPT_RECYCLE_JITTER:
		case FDPASS_OPT_MAX_CONNECTIONS:
		case FDPASS_OPT_REAP_ALL:
			if ((i = fdpass_proc_limit_option(c, optarg, &o->plimits)) >= 0)
				return i;
			break;
		default:
			return fdpass_getopt_error("serve", c, argv, longopts);
		}
	}
	if (optind < argc && !o->prescan) /* said once, by the parse that takes the options */
		return fdpass_usage_error("serve", "unexpected argument '%s'", argv[optind]);
	return fdpass_proc_limits_check(&o->plimits);
}

static struct fdpass_log log_sink; /* the master's log, opened once the options are read */

/*
 * Open /dev/null on any of descriptors 0..2 that is closed. Otherwise the first listener or
 * channel would land there, where anything that writes to "stderr" (or a worker that takes
 * 0..2 for its stdio) would write into it.
 */
static void open_missing_stdio(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int null;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		null = open("/dev/null", O_RDWR); /* the lowest free number: fd, 0..fd-1 are open */
		if (null >= 0 && null != fd)
			close(null);
	}
}

/*
 * Raise the soft limit on open descriptors to the hard one: the master holds a descriptor per
 * connection until a worker acknowledges it, a worker one per connection it serves, and the
 * soft limit (often 1024) is a default for programs that do not. Says what it did in what.
 */
static void raise_nofile_limit(char *what, size_t size)
{
	struct rlimit rl;
	unsigned long long was;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		snprintf(what, size, "open files limit: %s", strerror(errno));
		return;
	}
	was = (unsigned long long)rl.rlim_cur;
	if (rl.rlim_cur == rl.rlim_max) {
		snprintf(what, size, "open files limit %llu (the hard limit)", was);
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		snprintf(what, size, "open files limit %llu: cannot raise it to %llu: %s", was,
		         (unsigned long long)rl.rlim_max, strerror(errno));
	else
		snprintf(what, size, "open files limit %llu raised to %llu (the hard limit)", was,
		         (unsigned long long)rl.rlim_max);
}

/* The sockets a service manager passed (read once, at the start), and their fd:N names. */
static struct fdpass_activation serve_act; /* 16 KiB of names: off the stack */
static char serve_fd_specs[FDPASS_INHERITED_MAX][16];

/*
 * One configuration as read (the defaults, then --config's file, then the command line) and
 * what it gives the master. The first is read at the start; each SIGHUP reads another
 * (serve_reload()), kept while the master uses it: the workers it forks get it (worker_arg:
 * the built-in handler's options) or run its exec_argv.
 */
struct serve_gen {
	struct serve_opts o;
	char **args; /* the command line's copy (one block): --listen's values are split in place */
	struct fdpass_config_file *file; /* the file's text, which the file's options point into */
	char **exec_argv;
	enum fdp_policy policies[MAX_LISTEN];
	enum fdp_dispatch dispatches[MAX_LISTEN];
	unsigned char defers[MAX_LISTEN];
	unsigned tags[MAX_LISTEN], tag;
	int routing;
	struct serve_gen *next;
};

/* What serve_reload() needs: the command line to read again, and the configurations kept. */
struct serve_ctx {
	int argc;
	char **argv;
	struct serve_gen *gens; /* newest first; only the one in force survives a reload */
	/* What the running listeners and control socket were made from (a reload keeps them): */
	const char **names; /* each listener's --listen (copy_names()) */
	size_t nlisten;
	long backlog;
	char *control; /* --control as given (malloc'd), or NULL */
};

/* A worker of a built-in handler: arg is its serve_gen, copied into it by the fork. */
static int run_handler(struct fdp_worker *w, void *arg)
{
	const struct serve_gen *g = arg;

	/* A SIGUSR1 meant for the master (`pkill -USR1 fdpass`) does not kill a built-in worker:
	 * its output goes through the master's log, and it has nothing to reopen. */
	signal(SIGUSR1, SIG_IGN);
	return fdpass_handler_run(w, g->o.handler, &g->o.limits);
}

static void gen_free(struct serve_gen *g)
{
	if (!g)
		return;
	fdpass_config_free(g->file);
	free(g->exec_argv);
	free(g->args);
	free(g);
}

static char **copy_args(int argc, char **argv)
{
	size_t size = (size_t)(argc + 1) * sizeof(char *);
	char **copy, *p;

	for (int i = 0; i < argc; i++)
		size += strlen(argv[i]) + 1;
	copy = malloc(size);
	if (!copy)
		return NULL;
	p = (char *)(copy + argc + 1);
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(argv[i]) + 1;

		copy[i] = memcpy(p, argv[i], len);
		p += len;
	}
	copy[argc] = NULL;
	return copy;
}

/* One line of --config's file, through the command line's parser. */
static int apply_line(void *arg, int argc, char **argv)
{
	return parse_opts(argc, argv, arg);
}

/*
 * Read a configuration into g: the defaults, the file --config names (its options first), the
 * command line (which overrides them; its --listen list replaces the file's), then what they
 * mean together. Returns -1 when good, else the exit status after printing why to stderr.
 */
static int config_load(struct serve_gen *g, int argc, char **argv)
{
	static const char *const default_listen = "127.0.0.1:8080";
	struct serve_opts *o = &g->o;
	unsigned tag;
	int status;

	*o = (struct serve_opts){.route = {.size = sizeof(struct fdp_route_config)},
	                         .workers = sysconf(_SC_NPROCESSORS_ONLN),
	                         .backlog = 4096,
	                         .drain_ms = 10000,
	                         .start_ms = 60000,
	                         .ack_ms = 2000,
	                         .handler = &fdpass_handler_http,
	                         .policy = FDP_POLICY_ROUND_ROBIN,
	                         .dispatch = FDP_DISPATCH_AUTO,
	                         .log_level = FDP_LOG_INFO};
	g->args = copy_args(argc, argv);
	if (!g->args) {
		fprintf(stderr, "fdpass serve: out of memory\n");
		return FDPASS_EXIT_FAILURE;
	}
	o->prescan = 1;
	parse_opts(argc, g->args, o);
	o->prescan = 0;
	if (o->config) {
		o->in_file = 1;
		status = fdpass_config_read(o->config, apply_line, o, &g->file);
		o->in_file = 0;
		if (status >= 0)
			return status;
	}
	status = parse_opts(argc, g->args, o);
	if (status >= 0)
		return status;
	if (o->workers < 1) /* the CPU count, unless --workers said otherwise */
		o->workers = 1;
	if (o->workers > MAX_WORKERS)
		o->workers = MAX_WORKERS;
	for (size_t i = 0; o->nlisten == 0 && i < serve_act.n; i++) { /* each passed socket */
		snprintf(serve_fd_specs[i], sizeof(serve_fd_specs[i]), "fd:%d", serve_act.v[i].fd);
		o->listen[i] = serve_fd_specs[i];
		if (i + 1 == serve_act.n)
			o->nlisten = serve_act.n;
	}
	if (o->nlisten == 0)
		o->listen[o->nlisten++] = default_listen;
	tag = o->exec                              ? FDP_TAG_RAW
	      : o->handler == &fdpass_handler_http ? FDPASS_TAG_HTTP
	                                           : FDPASS_TAG_ECHO;
	g->tag = tag;
	for (size_t i = 0; i < o->nlisten; i++) {
		g->policies[i] = o->lopts[i].policy_set ? o->lopts[i].policy : o->policy;
		g->tags[i] = o->lopts[i].tag_set ? o->lopts[i].tag : tag;
		g->dispatches[i] = o->lopts[i].dispatch_set ? o->lopts[i].dispatch : o->dispatch;
		g->defers[i] = (unsigned char)o->lopts[i].defer;
		/* A worker that may be given slot sockets says it takes them. */
		o->limits.take_listeners |= g->dispatches[i] != FDP_DISPATCH_PASS;
		g->routing |= g->policies[i] == FDP_POLICY_ROUTE;
	}
	status = fdpass_route_check(&o->route, g->routing, o->route_given, (unsigned)o->workers);
	if (status >= 0)
		return status;
	if (o->dispatchers && !g->routing)
		return fdpass_usage_error("serve",
		                          "--dispatchers %ld: only route listeners have dispatchers "
		                          "(--policy route, or policy=route on a --listen)",
		                          o->dispatchers);
	if (o->exec && (!(g->exec_argv = fdpass_exec_argv(o->exec)) || !g->exec_argv[0])) {
		fprintf(stderr,
		        g->exec_argv ? "fdpass serve: invalid value '%s' for --exec: expected "
		                       "a command\n"
		                     : "fdpass serve: --exec %s: out of memory\n",
		        o->exec);
		return g->exec_argv ? FDPASS_EXIT_USAGE : FDPASS_EXIT_FAILURE;
	}
	return -1;
}

/*
 * fdpass serve --check: what config_load() checked (every option, the file, the route map),
 * and what starting would find wrong without binding anything: every --listen address parses
 * (an address in use is not looked for: the running server holds it), and the --exec program
 * is found on PATH and executable, by the master's own search. A shell command (/bin/sh -c)
 * is checked for /bin/sh only. Starts nothing.
 */
static int check_only(const struct serve_gen *g)
{
	const struct serve_opts *o = &g->o;

	for (size_t i = 0; i < o->nlisten; i++) {
		struct sockaddr_storage ss;
		socklen_t len;

		/* fd:N, a socket a service manager passes, exists only when it is started so */
		if (strncmp(o->listen[i], "fd:", 3) != 0 &&
		    fdp_addr_parse(o->listen[i], &ss, &len) < 0) {
			fprintf(stderr,
			        "fdpass serve: invalid value '%s' for --listen: expected HOST:PORT, "
			        "[HOST]:PORT or unix:PATH\n",
			        o->listen[i]);
			return FDPASS_EXIT_USAGE;
		}
	}
	if (g->exec_argv) {
		int why = fdpass_exec_find(g->exec_argv[0]);

		if (why) {
			fprintf(stderr, "fdpass serve: --exec %s: cannot execute %s: %s\n", o->exec,
			        g->exec_argv[0], strerror(why));
			return FDPASS_EXIT_USAGE;
		}
	}
	printf("configuration OK\n");
	return FDPASS_EXIT_OK;
}

/* Whether o asks for the listeners running (ctx): the same --listen list and --backlog. */
static int same_listeners(const struct serve_ctx *ctx, const struct serve_opts *o)
{
	if (o->nlisten != ctx->nlisten || o->backlog != ctx->backlog)
		return 0;
	for (size_t i = 0; i < o->nlisten; i++)
		if (strcmp(o->listen[i], ctx->names[i]) != 0)
			return 0;
	return 1;
}

/* Log what the parser printed, line by line, without its "fdpass serve: " prefix. */
static void log_printed(enum fdp_log_level level, char *text)
{
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char msg[900];

		if (strncmp(line, "fdpass serve: ", 14) == 0)
			line += 14;
		if (strncmp(line, "Run 'fdpass serve --help'", 25) == 0)
			continue;
		snprintf(msg, sizeof(msg), "reload: %s", line);
		fdpass_log_msg(&log_sink, level, msg);
	}
}

/* g into the master's config; its listeners' policies and tags too when per_listener is set. */
static void fill_config(struct fdp_master_config *c, struct serve_gen *g, int per_listener)
{
	c->workers = (unsigned)g->o.workers;
	c->policy = g->o.policy;
	c->tag = g->tag;
	c->dispatch = g->o.dispatch;
	c->listener_dispatch = g->dispatches; /* read at open only */
	c->listener_defer = g->defers;        /* read at open only */
	c->dispatchers = (unsigned)g->o.dispatchers; /* read at open only */
	if (per_listener) {
		c->listener_policy = g->policies;
		c->listener_tag = g->tags;
	}
	c->route = g->routing ? &g->o.route : NULL;
	c->drain_timeout_ms = (unsigned)g->o.drain_ms;
	c->start_timeout_ms = (unsigned)g->o.start_ms;
	c->ack_timeout_ms = g->o.ack_ms;
	c->worker_main = g->o.exec ? NULL : run_handler;
	c->worker_arg = g;
	c->exec_argv = g->exec_argv;
	c->log_level = g->o.log_level;
	fdpass_proc_limits_apply(&g->o.plimits, c);
}

/*
 * SIGHUP (the master's reload callback): read the configuration again, the file and the
 * command line as at the start. One that does not parse is refused (the master then replaces
 * no worker), its reason logged. Listeners stay: a changed --listen set (or --backlog) needs
 * an upgrade, and --control a restart; both are logged and ignored.
 */
static int serve_reload(void *arg, struct fdp_master_config *next, char *why, size_t why_size)
{
	struct serve_ctx *ctx = arg;
	struct serve_gen *live = next->worker_arg, *g, **pp;
	struct fdpass_capture cap;
	char *said;
	int status, listeners;

	/* The master shows which configuration is in force: the others are used no more. */
	for (pp = &ctx->gens; *pp;) {
		g = *pp;
		if (g == live) {
			pp = &g->next;
			continue;
		}
		*pp = g->next;
		gen_free(g);
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	fdpass_capture_begin(&cap);
	status = config_load(g, ctx->argc, ctx->argv);
	said = fdpass_capture_end(&cap);
	if (status >= 0) {
		if (said) { /* the first line says why; the rest, if any, goes to the log */
			char *eol = strchr(said, '\n');

			if (eol)
				*eol++ = '\0';
			snprintf(why, why_size, "%s",
			         strncmp(said, "fdpass serve: ", 14) ? said : said + 14);
			if (eol)
				log_printed(FDP_LOG_ERROR, eol);
		}
		free(said);
		gen_free(g);
		return -EINVAL;
	}
	free(said);
	/* Against what runs, not the last reload's wishes: it is logged at every reload. */
	listeners = same_listeners(ctx, &g->o);
	if (!listeners)
		fdpass_log_msg(&log_sink, FDP_LOG_WARN,
		           "reload: the --listen addresses (or --backlog) changed: that needs an "
		           "upgrade (SIGUSR2); the listeners stay as they are, with their "
		           "policies");
	if ((g->o.control || ctx->control) &&
	    (!g->o.control || !ctx->control || strcmp(g->o.control, ctx->control) != 0))
		fdpass_log_msg(&log_sink, FDP_LOG_WARN,
		           "reload: --control changed: that needs a restart; the control socket "
		           "stays where it is");
	/* Listeners changed: next keeps the policies and tags the master has (prefilled). */
	fill_config(next, g, listeners);
	g->next = ctx->gens;
	ctx->gens = g;
	return 0;
}

/*
 * Bind every listener now, so a bad address fails before any worker exists. A master started
 * by an upgrade first takes the old master's socket of the same --listen argument (or bound
 * address): it is never bound again, so no client is refused in between. A socket a service
 * manager passed for it (activation.c) is taken instead of binding too, and is then shared:
 * the master leaves it as it is at a stop. A passed socket that no --listen takes is an
 * error: clients connect to it, and nobody would accept them.
 */
/* fdpass_bpf_allowed(), asked once. */
static int bpf_allowed(void)
{
	static int known = -1;

	if (known < 0)
		known = fdpass_bpf_allowed();
	return known;
}

static int open_listeners(const struct serve_opts *o, int *fds, struct fdpass_activation *act,
                          unsigned char *shared, struct fdp_upgrade *up)
{
	char why[512];
	size_t i;

	for (i = 0; i < o->nlisten; i++) {
		const char *name;
		enum fdp_dispatch d;

		shared[i] = 0;
		fds[i] = fdp_upgrade_take_listener(up, o->listen[i]);
		if (fds[i] >= 0) {
			shared[i] = (unsigned char)fdp_upgrade_shared(up, fds[i]); /* systemd's still */
			continue;
		}
		fds[i] = fdpass_activation_take(act, o->listen[i], &name, why, sizeof(why));
		shared[i] = fds[i] >= 0;
		if (fds[i] >= 0) {
			char msg[600];

			snprintf(msg, sizeof(msg), "--listen %s: inherited socket %d%s%s%s",
			         o->listen[i], fds[i], name[0] ? " (name '" : "", name,
			         name[0] ? "')" : "");
			fdpass_log_msg(&log_sink, FDP_LOG_INFO, msg);
			continue;
		}
		if (fds[i] == -EINVAL) {
			fprintf(stderr, "fdpass serve: --listen %s\n", why);
			break;
		}
		/* Kernel dispatch makes its slot sockets in the listener's reuseport group; auto
		 * only where it can load its program (else the socket stays a plain one). */
		d = o->lopts[i].dispatch_set ? o->lopts[i].dispatch : o->dispatch;
		if (d == FDP_DISPATCH_KERNEL || (d == FDP_DISPATCH_AUTO && bpf_allowed()))
			fds[i] = fdpass_listen_reuseport(o->listen[i], (int)o->backlog);
		else
			fds[i] = fdp_listen(o->listen[i], (int)o->backlog);
		if (fds[i] >= 0)
			continue;
		if (fds[i] == -EINVAL)
			fdpass_usage_error("serve",
			                   "invalid value '%s' for --listen: expected HOST:PORT, "
			                   "[HOST]:PORT or unix:PATH",
			                   o->listen[i]);
		else
			fprintf(stderr, "fdpass serve: cannot listen on %s: %s\n", o->listen[i],
			        fdp_strerror(fds[i]));
		int status = fds[i] == -EINVAL ? FDPASS_EXIT_USAGE : FDPASS_EXIT_FAILURE;

		fdp_close_fds(fds, i);
		fdpass_activation_close(act);
		return status;
	}
	if (i == o->nlisten && fdpass_activation_left(act, why, sizeof(why)) == 0)
		return -1;
	if (i == o->nlisten)
		fprintf(stderr, "fdpass serve: %s\n", why);
	fdp_close_fds(fds, i);
	fdpass_activation_close(act);
	return FDPASS_EXIT_FAILURE;
}

/*
 * Hand the listeners this process bound to the service manager's descriptor store, named by
 * their address, so that a master restarted after a crash gets the same sockets (inherited
 * ones are the manager's already). When the store is known to keep them, they are shared.
 */
static void store_listeners(const struct serve_opts *o, const int *fds, unsigned char *shared,
                            int *store_fds, char (*names)[FDP_ADDR_STRLEN])
{
	const char *name_ptrs[MAX_LISTEN];
	size_t idx[MAX_LISTEN], n = 0;

	for (size_t i = 0; i < o->nlisten; i++) {
		if (shared[i])
			continue;
		if (fdp_addr_local(fds[i], names[n], FDP_ADDR_STRLEN) <= 0)
			snprintf(names[n], FDP_ADDR_STRLEN, "%s", o->listen[i]);
		name_ptrs[n] = names[n];
		store_fds[n] = fds[i];
		idx[n++] = i;
	}
	if (n && fdpass_notify_fdstore(store_fds, name_ptrs, n))
		for (size_t k = 0; k < n; k++)
			shared[idx[k]] = 1;
}

/*
 * Bind --metrics ADDR (into *fd; -1 without it), or, started by an upgrade, take the old
 * master's metrics listener on that address; -1 when good, else the exit status.
 */
static int open_metrics(const struct serve_opts *o, int *fd, struct fdp_upgrade *up)
{
	*fd = -1;
	if (!o->metrics)
		return -1;
	*fd = up ? fdp_upgrade_take_metrics(up, o->metrics) : -ENOENT;
	if (*fd < 0)
		*fd = fdp_listen(o->metrics, 64);
	if (*fd >= 0)
		return -1;
	if (*fd == -EINVAL) {
		fprintf(stderr,
		        "fdpass serve: invalid value '%s' for --metrics: expected HOST:PORT, "
		        "[HOST]:PORT or unix:PATH\n",
		        o->metrics);
		return FDPASS_EXIT_USAGE;
	}
	fprintf(stderr, "fdpass serve: cannot listen on %s for --metrics: %s\n", o->metrics,
	        fdp_strerror(*fd));
	return FDPASS_EXIT_FAILURE;
}

/*
 * What SIGUSR2 runs: --upgrade-binary, else this program by the path it was executed as
 * (AT_EXECFN: what execve() was given, which a shell found on PATH already), made absolute
 * against the directory it started in. Not /proc/self/exe, which names the deleted old file
 * once a package upgrade has replaced it, and not realpath(): a deploy that switches a symlink
 * to the new release must be followed. Then this command's own arguments.
 */
static char **upgrade_argv(const char *given, int argc, char **argv)
{
	const char *path = given ? given : (const char *)getauxval(AT_EXECFN);
	char cwd[4096], *abs;
	char **av;

	if (!path || !*path)
		return NULL;
	if (path[0] == '/')
		abs = strdup(path);
	else if (getcwd(cwd, sizeof(cwd)) && (abs = malloc(strlen(cwd) + strlen(path) + 2)))
		sprintf(abs, "%s/%s", cwd, path[0] == '.' && path[1] == '/' ? path + 2 : path);
	else
		return NULL;
	av = abs ? calloc((size_t)argc + 2, sizeof(*av)) : NULL;
	if (!av) {
		free(abs);
		return NULL;
	}
	av[0] = abs;
	for (int i = 0; i < argc; i++) /* argv[0] is "serve" */
		av[i + 1] = argv[i];
	return av;
}

static void upgrade_argv_free(char **av)
{
	if (av)
		free(av[0]);
	free(av);
}

/*
 * The listeners' names (their --listen arguments), which an upgrade hands over with them, in
 * one block: they must outlive the configuration they were read from, which a reload frees.
 */
static const char **copy_names(const struct serve_opts *o)
{
	size_t size = o->nlisten * sizeof(char *);
	const char **names;
	char *p;

	for (size_t i = 0; i < o->nlisten; i++)
		size += strlen(o->listen[i]) + 1;
	names = malloc(size);
	if (!names)
		return NULL;
	p = (char *)(names + o->nlisten);
	for (size_t i = 0; i < o->nlisten; i++) {
		size_t len = strlen(o->listen[i]) + 1;

		names[i] = memcpy(p, o->listen[i], len);
		p += len;
	}
	return names;
}

/* What the old master does when an upgrade's new master is ready (upgrade_ready()). */
struct upgrade_hooks {
	char *pid_file; /* --pid-file (a copy: a reload frees the options), or NULL */
	int notify;     /* under systemd: tell it the new main pid */
};

/*
 * An upgrade's new master is ready (on this, the old master's, thread; it stops next): it is
 * the service's main process from now on, and the pid file names it (it removes the file at
 * its exit). A new master that fails never touches the file, so a rolled back upgrade leaves
 * this pid there.
 */
static void upgrade_ready(void *arg, pid_t pid)
{
	const struct upgrade_hooks *h = arg;
	char why[512], line[600];

	if (h->notify)
		fdpass_notify_mainpid(pid);
	if (!h->pid_file || fdpass_pidfile_write(h->pid_file, pid, why, sizeof(why)) == 0)
		return;
	snprintf(line, sizeof(line), "upgrade: --pid-file: %s", why);
	fdpass_log_msg(&log_sink, FDP_LOG_WARN, line);
}

int cmd_serve(int argc, char **argv)
{
	struct serve_ctx ctx = {.argc = argc, .argv = argv};
	struct fdp_master_config mc = {.size = sizeof(struct fdp_master_config)};
	char control[512], why[512], nofile[128], **up_argv = NULL;
	char store_names[MAX_LISTEN][FDP_ADDR_STRLEN];
	unsigned char shared[MAX_LISTEN];
	int fds[MAX_LISTEN], store_fds[MAX_LISTEN], metrics_fd = -1, status, err, notifying;
	struct upgrade_hooks hooks = {NULL, 0};
	struct fdp_upgrade *up = NULL;
	struct fdp_master *m;
	struct serve_gen *g;
	struct serve_opts *o;
	sigset_t sigs;

	open_missing_stdio();
	/* Read and cleared before anything forks: no worker may see them. config_load() reads
	 * it for the default listeners, at the start and at each reload. */
	if (fdpass_activation_read(&serve_act, why, sizeof(why)) < 0) {
		fprintf(stderr, "fdpass serve: socket activation: %s\n", why);
		fdpass_activation_close(&serve_act);
		return FDPASS_EXIT_FAILURE;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		fprintf(stderr, "fdpass serve: out of memory\n");
		return FDPASS_EXIT_FAILURE;
	}
	ctx.gens = g;
	o = &g->o;
	status = config_load(g, argc, argv);
	if (status < 0 && o->check)
		status = check_only(g);
	if (status >= 0)
		goto out;
	/* Open until the process exits (--log-format and --log-file apply from the start: a
	 * reload does not move the log). */
	err = fdpass_log_open(&log_sink, o->log_format, o->log_file, o->log_level);
	if (err < 0) {
		fprintf(stderr, "fdpass serve: cannot open the log file %s: %s\n", o->log_file,
		        strerror(-err));
		status = FDPASS_EXIT_FAILURE;
		goto out;
	}
	notifying = fdpass_notify_open(fdpass_log_msg, &log_sink);
	raise_nofile_limit(nofile, sizeof(nofile));
	if (o->log_level >= FDP_LOG_DEBUG)
		fdpass_log_msg(&log_sink, FDP_LOG_DEBUG, nofile);
	status = FDPASS_EXIT_FAILURE;
	if (o->control && strcmp(o->control, "none") == 0)
		control[0] = '\0';
	else if (o->control)
		snprintf(control, sizeof(control), "%s", o->control);
	else if (fdpass_default_control_path(control, sizeof(control), 1, why, sizeof(why)) < 0) {
		fprintf(stderr, "fdpass serve: control socket: %s\n", why);
		goto out;
	}
	/* Started by an upgrade: the old master's sockets, before anything is bound. */
	err = fdp_upgrade_receive(&up, 10000);
	if (err < 0) {
		fprintf(stderr, "fdpass serve: upgrade: cannot take the old master's sockets: %s\n",
		        fdp_strerror(err));
		fdpass_activation_close(&serve_act);
		goto out;
	}
	/*
	 * Before binding: a running server's addresses would fail with less to say. A new master
	 * an upgrade started finds the old one there, alive: the old one writes this one's pid
	 * when it is ready (upgrade_ready()).
	 */
	if (o->pid_file && !up && fdpass_pidfile_check(o->pid_file, why, sizeof(why)) < 0) {
		fprintf(stderr, "fdpass serve: --pid-file: %s\n", why);
		fdpass_activation_close(&serve_act);
		goto out;
	}
	if (o->pid_file && !(hooks.pid_file = strdup(o->pid_file))) {
		fprintf(stderr, "fdpass serve: out of memory\n");
		fdp_upgrade_free(up);
		goto out;
	}
	status = open_listeners(o, fds, &serve_act, shared, up);
	if (status >= 0) {
		fdp_upgrade_free(up);
		goto out;
	}
	status = open_metrics(o, &metrics_fd, up);
	if (status >= 0) {
		fdp_close_fds(fds, o->nlisten);
		fdp_upgrade_free(up);
		goto out;
	}
	if (notifying)
		store_listeners(o, fds, shared, store_fds, store_names);
	/* The master reads these from a signalfd; workers get the mask back when forked. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGUSR1); /* cfg.reopen: always set, so a stray SIGUSR1 never kills it */
	sigaddset(&sigs, SIGUSR2);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	up_argv = upgrade_argv(o->upgrade_binary, argc, argv);
	if (!up_argv)
		fdpass_log_msg(&log_sink, FDP_LOG_WARN,
		           "upgrade: this program's path is unknown: SIGUSR2 is ignored");
	status = FDPASS_EXIT_FAILURE;
	ctx.names = copy_names(o);
	ctx.nlisten = o->nlisten;
	ctx.backlog = o->backlog;
	ctx.control = o->control ? strdup(o->control) : NULL;
	if (!ctx.names || (o->control && !ctx.control)) {
		fprintf(stderr, "fdpass serve: out of memory\n");
		fdp_close_fds(fds, o->nlisten);
		if (metrics_fd >= 0)
			close(metrics_fd);
		fdp_upgrade_free(up);
		goto out;
	}
	fill_config(&mc, g, 1);
	mc.listeners = fds;
	mc.nlisteners = o->nlisten;
	mc.control_path = control[0] ? control : NULL;
	mc.metrics_fd = metrics_fd >= 0 ? &metrics_fd : NULL;
	mc.log = fdpass_log_msg;
	mc.log_arg = &log_sink;
	mc.capture_output = 1;
	mc.log_output = fdpass_log_output;
	mc.reopen = fdpass_log_reopen;
	mc.reload = serve_reload;
	mc.reload_arg = &ctx;
	mc.upgrade = up_argv != NULL;
	mc.upgrade_argv = up_argv;
	mc.upgrade_timeout_ms = o->upgrade_ms;
	mc.listener_names = ctx.names;
	hooks.notify = notifying;
	mc.upgrade_ready = upgrade_ready;
	mc.upgrade_arg = &hooks;
	mc.upgraded_from = up;
	mc.event = notifying ? fdpass_notify_event : NULL;
	mc.tick_ms = fdpass_notify_tick_ms();
	mc.listener_shared = shared;
	mc.upgrade_env = notifying ? fdpass_notify_env() : NULL;
	err = fdp_master_open(&m, &mc);
	if (err < 0) {
		if (err == -EADDRINUSE)
			fprintf(stderr,
			        "fdpass serve: control socket %s: another server is running there "
			        "(stop it, or use --control PATH)\n",
			        control);
		else if (control[0]) /* listeners and routing were checked: the control socket */
			fprintf(stderr, "fdpass serve: control socket %s: %s\n", control,
			        fdp_strerror(err));
		else
			fprintf(stderr, "fdpass serve: cannot start: %s\n", fdp_strerror(err));
		goto out;
	}
	/* Listeners and control socket bound, no worker yet: the server is this pid from now. */
	if (hooks.pid_file && !up &&
	    fdpass_pidfile_write(hooks.pid_file, getpid(), why, sizeof(why)) < 0) {
		fprintf(stderr, "fdpass serve: --pid-file: %s\n", why);
		fdp_master_close(m);
		fdpass_notify_close();
		goto out;
	}
	err = fdp_master_run(m);
	fdp_master_close(m);
	fdpass_notify_close();
	if (hooks.pid_file) /* an upgrade's new master that took over has its pid there */
		fdpass_pidfile_remove(hooks.pid_file, getpid());
	if (err == -ENOEXEC) /* the master logged what it could not execute, and why */
		fprintf(stderr, "fdpass serve: cannot start: --exec %s could not be executed\n",
		        ctx.gens->o.exec);
	else if (err == -EPERM) /* and which step of taking the user failed, and why */
		fprintf(stderr, "fdpass serve: cannot start: the workers cannot run as --user %s\n",
		        ctx.gens->o.plimits.user);
	else if (err < 0)
		fprintf(stderr, "fdpass serve: %s\n", fdp_strerror(err));
	else
		status = FDPASS_EXIT_OK;
out:
	free(hooks.pid_file);
	upgrade_argv_free(up_argv);
	free(ctx.names);
	free(ctx.control);
	while (ctx.gens) {
		g = ctx.gens;
		ctx.gens = g->next;
		gen_free(g);
	}
	return status;
}
