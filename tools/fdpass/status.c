/*
 * fdpass status: connect to a server's control socket, read its status (one "master ..." line
 * and one "worker ..." line per worker process, each a list of key=value) and show it as a
 * table, or as JSON with --json; or, with --prometheus, its metrics in Prometheus's text format
 * (the control socket's `metrics` command), printed as they come.
 */
#include "commands.h"
#include "serve.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_TIMEOUT_MS 5000

/* Shown, but not every slot has a ready worker, or the master stops (see --help). */
#define STATUS_EXIT_NOT_READY 3

static const char usage_text[] =
        "usage: fdpass status [--json | --prometheus] [--control PATH]\n"
        "\n"
        "Show a running `fdpass serve`: for the master, connections accepted, handed over,\n"
        "re-handed after a worker died, closed unserved (by reason), lost with a worker that\n"
        "died after acknowledging them, workers killed as hung (no acknowledgement within\n"
        "--ack-timeout), connections handed back at a reload, and uptime; for each worker,\n"
        "its index, pid, generation, state, open connections, connections served and\n"
        "restarts; with --policy route, clients waiting for their key or their worker and\n"
        "what became of them (routed by hash or map; timed out, too big, rejected, over the\n"
        "cap, worker unavailable, gone before sending; defaulted or closed).\n"
        "\n"
        "Options:\n"
        "  --json          print JSON instead of a table.\n"
        "  --prometheus    print the server's metrics in Prometheus's text format instead\n"
        "                  (the text `fdpass serve --metrics` serves; for node_exporter's\n"
        "                  textfile collector). docs/SERVE.md lists them.\n"
        "  --control PATH  the server's control socket (default: the one `fdpass serve` uses\n"
        "                  by default: $XDG_RUNTIME_DIR/fdpass.sock, else fdpass-$UID/control.sock\n"
        "                  in $TMPDIR or /tmp). A server that runs as neither root nor you is\n"
        "                  refused.\n"
        "  --help          show this help.\n"
        "\n"
        "Exit status: 0 shown, and every worker slot has a ready worker; 3 shown, but the\n"
        "server is not fully ready: a slot's worker is still starting (or restarting after\n"
        "a crash), or the master is stopping; 1 no server answers there or it refused; 2 bad\n"
        "command line. So `until fdpass status >/dev/null; do sleep 0.1; done` waits until\n"
        "a server answers and is ready.\n";

/* The value of key in a "kind k=v k=v" line, copied into out ("" if absent). */
static const char *field(const char *line, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	const char *p = line;

	out[0] = '\0';
	while ((p = strstr(p, key))) {
		if ((p == line || p[-1] == ' ') && p[klen] == '=') {
			size_t n = strcspn(p + klen + 1, " \n");

			if (n >= size)
				n = size - 1;
			memcpy(out, p + klen + 1, n);
			out[n] = '\0';
			break;
		}
		p += klen;
	}
	return out;
}

static int is_number(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* One line as a JSON object: every key=value, numbers bare and words quoted. */
static void print_json_object(const char *line)
{
	const char *p = strchr(line, ' ');
	int first = 1;

	putchar('{');
	while (p && *p == ' ') {
		char key[64], val[256];
		size_t k, v;

		p++;
		k = strcspn(p, "=\n");
		if (p[k] != '=' || k >= sizeof(key))
			break;
		memcpy(key, p, k);
		key[k] = '\0';
		v = strcspn(p + k + 1, " \n");
		if (v >= sizeof(val))
			v = sizeof(val) - 1;
		memcpy(val, p + k + 1, v);
		val[v] = '\0';
		printf(is_number(val) ? "%s\"%s\":%s" : "%s\"%s\":\"%s\"", first ? "" : ",", key,
		       val);
		first = 0;
		p += k + 1 + strcspn(p + k + 1, " \n");
	}
	putchar('}');
}

/* The line of a kind ("route "), or NULL. */
static const char *find_line(const char *reply, const char *kind)
{
	for (const char *l = reply; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, kind, strlen(kind)) == 0)
			return l;
	return NULL;
}

/* Every line of a kind, as a JSON array named name. */
static void print_json_list(const char *reply, const char *kind, const char *name)
{
	int n = 0;

	printf(",\"%s\":[", name);
	for (const char *l = reply; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, kind, strlen(kind)) != 0)
			continue;
		if (n++)
			putchar(',');
		print_json_object(l);
	}
	putchar(']');
}

static void print_json(const char *reply)
{
	const char *route = find_line(reply, "route ");
	int nworkers = 0;

	printf("{\"master\":");
	print_json_object(reply);
	if (route) {
		printf(",\"route\":");
		print_json_object(route);
	}
	if (find_line(reply, "kernel ")) {
		printf(",\"kernel\":");
		print_json_object(find_line(reply, "kernel "));
	}
	if (find_line(reply, "dispatchers ")) {
		printf(",\"dispatchers\":");
		print_json_object(find_line(reply, "dispatchers "));
		print_json_list(reply, "dispatcher ", "dispatcher_list");
	}
	printf(",\"workers\":[");
	for (const char *l = reply; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "worker ", 7) != 0)
			continue;
		if (nworkers++)
			putchar(',');
		print_json_object(l);
	}
	printf("]}\n");
}

/* The route policy's line: clients waiting, routed, and every failure by cause. */
static void print_route(const char *l)
{
	char a[64], b[64], c[64], d[64], e[64], f[64], g[64];

	if (!l)
		return;
	printf("  route by %s: waiting for key %s, held for their worker %s; routed by hash %s, "
	       "by map %s\n",
	       field(l, "key", a, sizeof(a)), field(l, "waiting", b, sizeof(b)),
	       field(l, "held", c, sizeof(c)), field(l, "hashed", d, sizeof(d)),
	       field(l, "mapped", e, sizeof(e)));
	printf("  route failures: timeout %s, too big %s, rejected %s, over the cap %s, "
	       "worker unavailable %s;",
	       field(l, "timeout", a, sizeof(a)), field(l, "too_big", b, sizeof(b)),
	       field(l, "rejected", c, sizeof(c)), field(l, "overflow", d, sizeof(d)),
	       field(l, "unavailable", e, sizeof(e)));
	printf(" to default worker %s, closed %s (%s); client gone %s\n",
	       field(l, "defaulted", a, sizeof(a)), field(l, "closed", b, sizeof(b)),
	       field(l, "on_fail", f, sizeof(f)), field(l, "eof", g, sizeof(g)));
}

static void print_table(const char *reply)
{
	char a[64], b[64], c[64], d[64], e[64], f[64], g[64];
	double up = atof(field(reply, "uptime_ms", a, sizeof(a))) / 1000.0;

	printf("master pid %s, %s, policy %s, up %.1f s\n", field(reply, "pid", a, sizeof(a)),
	       field(reply, "state", b, sizeof(b)), field(reply, "policy", c, sizeof(c)), up);
	printf("  connections: accepted %s, handed over %s, re-handed %s, pending %s\n",
	       field(reply, "accepted", a, sizeof(a)), field(reply, "handed", b, sizeof(b)),
	       field(reply, "rehanded", c, sizeof(c)), field(reply, "pending", d, sizeof(d)));
	printf("  closed unserved: no worker %s, shutdown %s, error %s\n",
	       field(reply, "closed_no_worker", a, sizeof(a)),
	       field(reply, "closed_shutdown", b, sizeof(b)),
	       field(reply, "closed_error", c, sizeof(c)));
	printf("  lost with a dead worker %s, workers killed as hung %s, handed back at a reload %s\n",
	       field(reply, "lost", c, sizeof(c)), field(reply, "ack_timeouts", a, sizeof(a)),
	       field(reply, "returned", b, sizeof(b)));
	print_route(find_line(reply, "route "));
	if (find_line(reply, "kernel "))
		printf("  kernel dispatch on %s listener(s): %s slot(s) live, accepted by the "
		       "workers themselves %s\n",
		       field(find_line(reply, "kernel "), "listeners", a, sizeof(a)),
		       field(find_line(reply, "kernel "), "live", c, sizeof(c)),
		       field(find_line(reply, "kernel "), "accepted", b, sizeof(b)));
	if (find_line(reply, "dispatchers ")) {
		const char *l = find_line(reply, "dispatchers ");

		printf("  dispatchers: %s of %s running; they accepted %s, handed over %s, "
		       "re-handed %s\n",
		       field(l, "running", a, sizeof(a)), field(l, "wanted", b, sizeof(b)),
		       field(l, "accepted", c, sizeof(c)), field(l, "handed", d, sizeof(d)),
		       field(l, "rehanded", e, sizeof(e)));
		for (l = reply; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
			if (strncmp(l, "dispatcher ", 11) == 0)
				printf("    dispatcher %s pid %s generation %s %s\n",
				       field(l, "tag", a, sizeof(a)), field(l, "pid", b, sizeof(b)),
				       field(l, "generation", c, sizeof(c)),
				       field(l, "state", d, sizeof(d)));
	}
	printf("\n%-6s %-8s %-4s %-9s %8s %10s %8s\n", "index", "pid", "gen", "state", "open",
	       "served", "restarts");
	for (const char *l = reply; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "worker ", 7) != 0)
			continue;
		printf("%-6s %-8s %-4s %-9s %8s %10s %8s\n", field(l, "index", a, sizeof(a)),
		       field(l, "pid", b, sizeof(b)), field(l, "generation", c, sizeof(c)),
		       field(l, "state", d, sizeof(d)), field(l, "open", e, sizeof(e)),
		       field(l, "served", f, sizeof(f)), field(l, "restarts", g, sizeof(g)));
	}
}

/*
 * Is the server fully ready: running (not stopping), and each of its worker slots with a
 * worker in state ready? A reload's new worker starting beside the old one still serving
 * leaves its slot ready.
 */
static int server_ready(const char *reply)
{
	char v[64];
	long workers = atol(field(reply, "workers", v, sizeof(v)));
	unsigned char *ready;
	long n = 0;

	if (strcmp(field(reply, "state", v, sizeof(v)), "stopping") == 0 || workers <= 0)
		return 0;
	ready = calloc((size_t)workers, 1);
	if (!ready)
		return 0;
	for (const char *l = reply; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		long i;

		if (strncmp(l, "worker ", 7) != 0 ||
		    strcmp(field(l, "state", v, sizeof(v)), "ready") != 0)
			continue;
		i = atol(field(l, "index", v, sizeof(v)));
		if (i >= 0 && i < workers && !ready[i]) {
			ready[i] = 1;
			n++;
		}
	}
	free(ready);
	return n == workers;
}

/*
 * --prometheus: the server's text, once it is known to be whole: it ends with the line
 * METRICS_END (the control socket's answer to `metrics`, docs/SERVE.md), which is not printed.
 */
#define METRICS_END "# end of the metrics\n"

static int print_metrics(const char *control)
{
	char *reply = fdpass_control_call("status", control, "metrics", READ_TIMEOUT_MS);
	size_t len, end = strlen(METRICS_END);

	if (!reply)
		return FDPASS_EXIT_FAILURE;
	len = strlen(reply);
	if (strncmp(reply, "# HELP ", 7) != 0 || len < end ||
	    strcmp(reply + len - end, METRICS_END) != 0) {
		fprintf(stderr, "fdpass status: %s: %s", control,
		        strncmp(reply, "error ", 6) == 0 ? reply + 6
		        : strncmp(reply, "master ", 7) == 0
		                ? "this server has no metrics command (an older fdpass?)\n"
		                : "no metrics, or cut short\n");
		free(reply);
		return FDPASS_EXIT_FAILURE;
	}
	reply[len - end] = '\0';
	fputs(reply, stdout);
	free(reply);
	return fflush(stdout) == 0 && !ferror(stdout) ? FDPASS_EXIT_OK : FDPASS_EXIT_FAILURE;
}

int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
	                                         {"prometheus", no_argument, NULL, 'P'},
	                                         {"control", required_argument, NULL, 'c'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	char path[512];
	const char *control = NULL;
	char *reply;
	int json = 0, prometheus = 0, c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'j') {
			json = 1;
		} else if (c == 'P') {
			prometheus = 1;
		} else if (c == 'c') {
			control = optarg;
		} else if (c == 'h') {
			fputs(usage_text, stdout);
			return FDPASS_EXIT_OK;
		} else {
			return fdpass_getopt_error("status", c, argv, longopts);
		}
	}
	if (optind < argc)
		return fdpass_usage_error("status", "unexpected argument '%s'", argv[optind]);
	if (json && prometheus)
		return fdpass_usage_error("status", "--json and --prometheus exclude each other");
	if (fdpass_control_resolve("status", &control, path, sizeof(path)) < 0)
		return FDPASS_EXIT_FAILURE;
	if (prometheus)
		return print_metrics(control);
	reply = fdpass_control_call("status", control, "status", READ_TIMEOUT_MS);
	if (!reply)
		return FDPASS_EXIT_FAILURE;
	if (strncmp(reply, "master ", 7) != 0) {
		fprintf(stderr, "fdpass status: %s: %s", control,
		        strncmp(reply, "error ", 6) == 0 ? reply + 6 : "no status\n");
		free(reply);
		return FDPASS_EXIT_FAILURE;
	}
	if (json)
		print_json(reply);
	else
		print_table(reply);
	c = server_ready(reply) ? FDPASS_EXIT_OK : STATUS_EXIT_NOT_READY;
	free(reply);
	return c;
}
