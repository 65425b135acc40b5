/*
 * fdpass serve's process limits (serve_limits.c): --user, --max-requests, --max-lifetime,
 * --recycle-jitter, --max-connections, --reap-all. Each sets a field of the master's config.
 */
#ifndef FDPASS_SERVE_LIMITS_H
#define FDPASS_SERVE_LIMITS_H

#include "fdpass_runtime.h"

#include <getopt.h>

/* getopt_long values (after serve_route.h's and serve.c's own). */
enum {
	FDPASS_OPT_USER = 768,
	FDPASS_OPT_MAX_REQUESTS,
	FDPASS_OPT_MAX_LIFETIME,
	FDPASS_OPT_RECYCLE_JITTER,
	FDPASS_OPT_MAX_CONNECTIONS,
	FDPASS_OPT_REAP_ALL,
};

/* The entries of getopt_long's table, for serve.c's. */
#define FDPASS_PROC_LIMITS_OPTIONS                                                                 \
	{"user", required_argument, NULL, FDPASS_OPT_USER},                                        \
	        {"max-requests", required_argument, NULL, FDPASS_OPT_MAX_REQUESTS},                \
	        {"max-lifetime", required_argument, NULL, FDPASS_OPT_MAX_LIFETIME},                \
	        {"recycle-jitter", required_argument, NULL, FDPASS_OPT_RECYCLE_JITTER},            \
	        {"max-connections", required_argument, NULL, FDPASS_OPT_MAX_CONNECTIONS},          \
	        {"reap-all", no_argument, NULL, FDPASS_OPT_REAP_ALL}

struct fdpass_proc_limits {
	const char *user; /* --user as given; resolved by fdpass_proc_limits_check() */
	int set_ids;
	uid_t uid;
	gid_t gid;
	unsigned recycle_conns, recycle_ms, recycle_jitter_pct, max_connections;
	int reap_all;
};

/* Apply one of the options above. Returns -1 when good, else the exit status after saying why. */
int fdpass_proc_limit_option(int opt, const char *value, struct fdpass_proc_limits *pl);

/*
 * After every option: resolve --user (names through the password and group databases, or
 * numbers) and refuse it without root. Returns -1 when good, else the exit status.
 */
int fdpass_proc_limits_check(struct fdpass_proc_limits *pl);

/* Copy them into the master's config. */
void fdpass_proc_limits_apply(const struct fdpass_proc_limits *pl, struct fdp_master_config *cfg);

#endif
