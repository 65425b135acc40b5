/*
 * Listening sockets a service manager passed to fdpass serve: systemd's socket activation
 * protocol (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; descriptors 3..3+N-1), also what systemd
 * hands back from its descriptor store after a restart. Written against the protocol, without
 * libsystemd. docs/OPERATIONS.md tells how --listen is matched to these sockets.
 */
#ifndef FDPASS_ACTIVATION_H
#define FDPASS_ACTIVATION_H

#include <stddef.h>

#define FDPASS_INHERITED_MAX 64  /* serve's --listen limit too */
#define FDPASS_FDNAME_MAX    255 /* systemd's limit on a descriptor's name */

struct fdpass_inherited {
	int fd;                           /* this process's; -1 once taken */
	char name[FDPASS_FDNAME_MAX + 1]; /* its LISTEN_FDNAMES entry ("" when none) */
};

struct fdpass_activation {
	struct fdpass_inherited v[FDPASS_INHERITED_MAX];
	size_t n;
	int other_pid; /* LISTEN_PID named another process: its sockets were not used */
};

/*
 * Read LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES and unset them (always, so no worker sees
 * them), then mark each passed descriptor close-on-exec. Sockets meant for another process
 * (LISTEN_PID is not ours) are left alone. Returns 0, or -1 with the reason in why.
 */
int fdpass_activation_read(struct fdpass_activation *a, char *why, size_t size);

/*
 * The inherited socket that --listen spec (the address, without ",policy=" or ",tag=") names:
 * "fd:N" (descriptor N, inherited or otherwise open and listening), "fd:NAME" (the one socket
 * LISTEN_FDNAMES calls NAME), or an address an inherited listening stream socket is bound to
 * (port 0 matches any port of that host). Taken out of a: the caller owns it; *name (may be
 * NULL) is its name. Returns the descriptor, -ENOENT when spec is an address no inherited
 * socket has (bind it), or -EINVAL with the reason in why.
 */
int fdpass_activation_take(struct fdpass_activation *a, const char *spec, const char **name,
                           char *why, size_t size);

/* The next inherited socket not taken yet, checked to be listening: as _take(); -ENOENT: none. */
int fdpass_activation_take_next(struct fdpass_activation *a, const char **name, char *why,
                                size_t size);

/*
 * Sockets no --listen took: returns how many, with the first one described in why (an error
 * for fdpass serve, which refuses to leave a socket unserved that clients connect to).
 */
size_t fdpass_activation_left(const struct fdpass_activation *a, char *why, size_t size);

/* Close the inherited sockets not taken. */
void fdpass_activation_close(struct fdpass_activation *a);

/*
 * Copy environment variable name's value into buf ("" when unset), then remove it: from the
 * environment, and from the block /proc/PID/environ shows (of this process and of the workers
 * forked from it), so no worker sees it there either.
 */
void fdpass_env_take(const char *name, char *buf, size_t size);

/* Non-zero when spec is an "fd:" listen address. */
int fdpass_activation_is_fd_spec(const char *spec);

#endif
