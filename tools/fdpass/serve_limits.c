/*
 * fdpass serve's process limits: the workers' user (--user), their recycling (--max-requests,
 * --max-lifetime, --recycle-jitter), the connections open at once (--max-connections), and
 * reaping every child (--reap-all). The master does the work (include/fdpass_runtime.h);
 * this file reads the options and resolves the user's name before anything starts.
 */
#include "commands.h"
#include "serve.h"
#include "serve_limits.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int bad(const char *opt, const char *value, const char *accepts)
{
	fprintf(stderr, "fdpass serve: invalid value '%s' for --%s: expected %s\n", value, opt,
	        accepts);
	return FDPASS_EXIT_USAGE;
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int fdpass_proc_limit_option(int opt, const char *value, struct fdpass_proc_limits *pl)
{
	switch (opt) {
	case FDPASS_OPT_USER:
		if (!*value || *value == ':' || value[strlen(value) - 1] == ':')
			return bad("user", value, "USER or USER:GROUP (names or numbers)");
		pl->user = value;
		break;
	case FDPASS_OPT_MAX_REQUESTS:
		if (parse_uint(value, 1, UINT_MAX, &pl->recycle_conns) < 0)
			return bad("max-requests", value, "a number from 1 to 4294967295");
		break;
	case FDPASS_OPT_MAX_LIFETIME:
		if (fdpass_parse_ms(value, 100, 4000000e3, &pl->recycle_ms) < 0)
			return bad("max-lifetime", value, "seconds from 0.1 to 4000000");
		break;
	case FDPASS_OPT_RECYCLE_JITTER:
		if (parse_uint(value, 0, 100, &pl->recycle_jitter_pct) < 0)
			return bad("recycle-jitter", value, "a percentage from 0 to 100");
		break;
	case FDPASS_OPT_MAX_CONNECTIONS:
		if (parse_uint(value, 1, UINT_MAX, &pl->max_connections) < 0)
			return bad("max-connections", value, "a number from 1 to 4294967295");
		break;
	default:
		pl->reap_all = 1;
		break;
	}
	return -1;
}

/* A whole decimal number that fits an id (uid_t and gid_t are 32 bits), or -1. */
static long long id_number(const char *s)
{
	unsigned id;

	return parse_uint(s, 0, UINT_MAX - 1, &id) == 0 ? (long long)id : -1;
}

static int resolve_user(struct fdpass_proc_limits *pl)
{
	char name[256];
	const char *group = strchr(pl->user, ':');
	size_t len = group ? (size_t)(group - pl->user) : strlen(pl->user);
	struct passwd *pw;
	long long id;

	if (len >= sizeof(name))
		return bad("user", pl->user, "a user name or number");
	memcpy(name, pl->user, len);
	name[len] = '\0';
	pw = getpwnam(name);
	if (!pw && (id = id_number(name)) >= 0)
		pw = getpwuid((uid_t)id);
	if (pw) {
		pl->uid = pw->pw_uid;
		pl->gid = pw->pw_gid;
	} else if ((id = id_number(name)) >= 0 && group) {
		pl->uid = (uid_t)id; /* a number no database names: its group must be given */
	} else {
		fprintf(stderr, "fdpass serve: --user %s: no such user%s\n", name,
		        id_number(name) >= 0 ? " (give a number with its group: UID:GID)" : "");
		return FDPASS_EXIT_USAGE;
	}
	if (group) {
		struct group *gr = getgrnam(++group);

		if (!gr && (id = id_number(group)) < 0) {
			fprintf(stderr, "fdpass serve: --user %s: no such group: %s\n", pl->user,
			        group);
			return FDPASS_EXIT_USAGE;
		}
		pl->gid = gr ? gr->gr_gid : (gid_t)id;
	}
	pl->set_ids = 1;
	return -1;
}

int fdpass_proc_limits_check(struct fdpass_proc_limits *pl)
{
	if (!pl->user)
		return -1;
	/* The master keeps root to bind, own the control socket and start workers as the user. */
	if (geteuid() != 0) {
		fprintf(stderr,
		        "fdpass serve: --user %s needs root: the master runs as root and its workers "
		        "as that user\n",
		        pl->user);
		return FDPASS_EXIT_USAGE;
	}
	return resolve_user(pl);
}

void fdpass_proc_limits_apply(const struct fdpass_proc_limits *pl, struct fdp_master_config *cfg)
{
	cfg->worker_set_ids = pl->set_ids;
	cfg->worker_uid = pl->uid;
	cfg->worker_gid = pl->gid;
	cfg->recycle_conns = pl->recycle_conns;
	cfg->recycle_ms = pl->recycle_ms;
	cfg->recycle_jitter_pct = pl->recycle_jitter_pct;
	cfg->max_connections = pl->max_connections;
	cfg->reap_all = pl->reap_all;
}
