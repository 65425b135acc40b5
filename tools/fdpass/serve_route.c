/*
 * fdpass serve's routing options (--route-*) and per-listener options (--listen ADDR,policy=
 * NAME,tag=NAME). Each bad value is reported naming its option, with exit status 2.
 */
#include "commands.h"
#include "serve_route.h"
#include "serve.h"

#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

const char *const fdpass_policy_names[FDPASS_NPOLICIES] = {"round-robin", "least-conn", "hash-ip",
                                                           "route"};

/* A bad value; main() adds the line pointing at --help (commands.h). */
static int bad(const char *opt, const char *value, const char *accepts)
{
	return fdpass_usage_error("serve", "invalid value '%s' for --%s: expected %s", value, opt,
	                          accepts);
}

int fdpass_policy_parse(const char *name)
{
	for (int i = 0; i < FDPASS_NPOLICIES; i++)
		if (strcmp(name, fdpass_policy_names[i]) == 0)
			return i;
	return -1;
}

int fdpass_dispatch_parse(const char *name)
{
	static const char *const names[] = {"pass", "kernel", "auto"};

	for (int i = 0; i < 3; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

int fdpass_bpf_allowed(void)
{
#ifdef __NR_bpf
	union bpf_attr attr;
	long fd;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	fd = syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return 0;
	close((int)fd);
	return 1;
#else
	return 0;
#endif
}

int fdpass_listen_reuseport(const char *addr, int backlog)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int one = 1, fd, e, probe;

	if (fdp_addr_parse(addr, &sa, &len) < 0 || (sa.ss_family != AF_INET &&
	                                            sa.ss_family != AF_INET6))
		return fdp_listen(addr, backlog);
	/* A plain bind first: it fails while any socket holds the port, reuseport or not. */
	if (((struct sockaddr_in *)&sa)->sin_port) {
		probe = fdp_listen(addr, 1);
		if (probe < 0)
			return probe;
		close(probe);
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (sa.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, backlog) < 0) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static int parse_tag(const char *s)
{
	static const char *const names[] = {"raw", "echo", "http"};
	char *end;
	long v;

	for (int i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	errno = 0;
	v = strtol(s, &end, 10);
	return *s && !*end && !errno && v >= 0 && v <= 65535 ? (int)v : -1;
}

/* The address alone (the options cut off): one serve takes, or the exit status. */
static int listen_addr(const char *addr)
{
	char why[256];

	if (fdpass_listen_addr_check(addr, why, sizeof(why)) < 0)
		return fdpass_usage_error("serve", "invalid value '%s' for --listen: %s", addr,
		                          why);
	return -1;
}

int fdpass_listen_parse(char *arg, struct fdpass_listen_opts *lo)
{
	char *p = arg, *opt;

	/* The address ends at the first ",policy=", ",tag=", ",dispatch=" or ",defer=" (a Unix
	 * path may hold commas). */
	for (opt = strchr(p, ','); opt; opt = strchr(opt + 1, ','))
		if (!strncmp(opt, ",policy=", 8) || !strncmp(opt, ",tag=", 5) ||
		    !strncmp(opt, ",dispatch=", 10) || !strncmp(opt, ",defer=", 7))
			break;
	if (!opt)
		return listen_addr(arg);
	*opt++ = '\0';
	while (opt) {
		char *next = strchr(opt, ',');
		int v;

		if (next)
			*next++ = '\0';
		if (!strncmp(opt, "policy=", 7)) {
			if ((v = fdpass_policy_parse(opt + 7)) < 0)
				return bad("listen", opt,
				           "policy=round-robin|least-conn|hash-ip|route");
			lo->policy = (enum fdp_policy)v;
			lo->policy_set = 1;
		} else if (!strncmp(opt, "tag=", 4)) {
			if ((v = parse_tag(opt + 4)) < 0)
				return bad("listen", opt, "tag=raw|echo|http or a number 0..65535");
			lo->tag = (unsigned)v;
			lo->tag_set = 1;
		} else if (!strncmp(opt, "dispatch=", 9)) {
			if ((v = fdpass_dispatch_parse(opt + 9)) < 0)
				return bad("listen", opt, "dispatch=pass|kernel|auto");
			lo->dispatch = (enum fdp_dispatch)v;
			lo->dispatch_set = 1;
		} else if (!strncmp(opt, "defer=", 6)) {
			if (strcmp(opt + 6, "on") && strcmp(opt + 6, "off"))
				return bad("listen", opt, "defer=on|off");
			lo->defer = !strcmp(opt + 6, "on");
		} else {
			return bad("listen", opt,
			           "ADDR[,policy=NAME][,tag=NAME][,dispatch=MODE][,defer=on|off]");
		}
		opt = next;
	}
	if (lo->defer && !strncmp(arg, "unix:", 5))
		return bad("listen", arg, "a TCP address with defer=on (a Unix socket has no "
		                          "TCP_DEFER_ACCEPT)");
	return listen_addr(arg);
}

static int parse_size(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int fdpass_route_option(int opt, const char *value, struct fdp_route_config *rc)
{
	unsigned long long v;

	switch (opt) {
	case FDPASS_OPT_ROUTE_KEY:
		rc->key = value;
		break;
	case FDPASS_OPT_ROUTE_MAP:
		if (!*value)
			return bad("route-map", value, "a file name");
		rc->map_path = value;
		break;
	case FDPASS_OPT_ROUTE_TIMEOUT:
		if (fdpass_parse_ms(value, 1, 3600e3, &rc->timeout_ms) < 0)
			return bad("route-timeout", value, "seconds from 0.001 to 3600");
		break;
	case FDPASS_OPT_ROUTE_MAX_BYTES:
		if (parse_size(value, 1, 1u << 24, &v) < 0)
			return bad("route-max-bytes", value, "a number from 1 to 16777216");
		rc->max_bytes = (size_t)v;
		break;
	case FDPASS_OPT_ROUTE_MAX_PENDING:
		if (parse_size(value, 1, 1000000, &v) < 0)
			return bad("route-max-pending", value, "a number from 1 to 1000000");
		rc->max_pending = (unsigned)v;
		break;
	case FDPASS_OPT_ROUTE_FAIL:
		if (!strcmp(value, "close")) {
			rc->on_fail = FDP_ROUTE_FAIL_CLOSE;
		} else if (!strncmp(value, "default:", 8) &&
		           parse_size(value + 8, 0, 1023, &v) == 0) {
			rc->on_fail = FDP_ROUTE_FAIL_DEFAULT;
			rc->default_worker = (unsigned)v;
		} else {
			return bad("route-fail", value, "close or default:N (a worker index)");
		}
		break;
	default:
		return FDPASS_EXIT_USAGE;
	}
	return -1;
}

int fdpass_route_check(const struct fdp_route_config *rc, int routing, int given, unsigned workers)
{
	struct fdp_route_config no_map = *rc;
	char err[512];
	int r;

	if (!routing) {
		if (!given)
			return -1;
		fprintf(stderr, "fdpass serve: --route-* options need --policy route (or a "
		                "--listen with policy=route)\n");
		return FDPASS_EXIT_USAGE;
	}
	if (!rc->key) {
		fprintf(stderr, "fdpass serve: --policy route needs --route-key SPEC\n");
		return FDPASS_EXIT_USAGE;
	}
	/* Check without the map first, so an error names the option it comes from. */
	no_map.map_path = NULL;
	r = fdp_route_config_check(&no_map, workers, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "fdpass serve: --%s: %s\n",
		        strncmp(err, "route key", 9) == 0 ? "route-key"
		        : strstr(err, "default worker")   ? "route-fail"
		                                          : "route-max-bytes",
		        err);
		return FDPASS_EXIT_USAGE;
	}
	r = fdp_route_config_check(rc, workers, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "fdpass serve: --route-map: %s\n", err);
		return FDPASS_EXIT_USAGE;
	}
	return -1;
}
