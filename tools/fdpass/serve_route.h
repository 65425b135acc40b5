/* fdpass serve's routing and per-listener options (serve_route.c). */
#ifndef FDPASS_SERVE_ROUTE_H
#define FDPASS_SERVE_ROUTE_H

#include "fdpass_runtime.h"

#define FDPASS_NPOLICIES 4
extern const char *const fdpass_policy_names[FDPASS_NPOLICIES]; /* by enum fdp_policy */

/* getopt_long values of the --route-* options. */
enum {
	FDPASS_OPT_ROUTE_KEY = 256,
	FDPASS_OPT_ROUTE_MAP,
	FDPASS_OPT_ROUTE_TIMEOUT,
	FDPASS_OPT_ROUTE_MAX_BYTES,
	FDPASS_OPT_ROUTE_MAX_PENDING,
	FDPASS_OPT_ROUTE_FAIL,
};

/* What one --listen says beyond its address. */
struct fdpass_listen_opts {
	enum fdp_policy policy;
	unsigned tag;
	enum fdp_dispatch dispatch;
	int defer; /* defer=on: TCP_DEFER_ACCEPT, the clients speak first */
	int policy_set, tag_set, dispatch_set;
};

/* pass, kernel or auto (enum fdp_dispatch's order): the value, or -1. */
int fdpass_dispatch_parse(const char *name);

/*
 * A listening socket for ADDR that kernel dispatch can steer: a TCP address is bound with
 * SO_REUSEPORT (after checking that no socket holds it, so that a port in use still fails
 * with -EADDRINUSE instead of joining another server's group); a unix: one as fdp_listen().
 * Returns the descriptor or a negative errno, as fdp_listen().
 */
int fdpass_listen_reuseport(const char *addr, int backlog);

/* Non-zero when this process may create BPF maps (root, CAP_BPF): kernel dispatch can load. */
int fdpass_bpf_allowed(void);

/* The enum fdp_policy of a name, or -1. */
int fdpass_policy_parse(const char *name);

/*
 * Split "ADDR[,policy=NAME][,tag=NAME]" in place (arg keeps the address) and check the address
 * (fdpass_listen_addr_check()). Returns -1 when good, else the exit status after printing why.
 */
int fdpass_listen_parse(char *arg, struct fdpass_listen_opts *lo);

/*
 * Is addr one `fdpass serve --listen` takes (listen_addr.c)? 0, or -EINVAL with the reason in
 * why ("port out of range (0..65535)", "host names are not resolved: ..."). Stricter than
 * fdp_addr_parse(): an empty host (":8080") is refused for "*:8080" or "127.0.0.1:8080".
 */
int fdpass_listen_addr_check(const char *addr, char *why, size_t size);

/* Apply one --route-* option to rc. Returns -1 when good, else the exit status. */
int fdpass_route_option(int opt, const char *value, struct fdp_route_config *rc);

/*
 * Check the routing options as a whole: routing says whether a listener routes, given whether
 * any --route-* option was given. Returns -1 when good, else the exit status.
 */
int fdpass_route_check(const struct fdp_route_config *rc, int routing, int given, unsigned workers);

#endif
