/*
 * Socket activation (systemd's sd_listen_fds(3) protocol, read from the environment by hand):
 * the sockets a service manager passed, and matching fdpass serve's --listen addresses to
 * them. See activation.h.
 */
#include "activation.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_FDS_START 3 /* SD_LISTEN_FDS_START */

static int parse_num(const char *s, long max, long *out)
{
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end || errno || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The colon-separated LISTEN_FDNAMES into each socket's name (missing ones stay ""). */
static void read_names(struct fdpass_activation *a, const char *names)
{
	for (size_t i = 0; names && i < a->n; i++) {
		const char *colon = strchr(names, ':');
		size_t len = colon ? (size_t)(colon - names) : strlen(names);

		if (len > FDPASS_FDNAME_MAX)
			len = FDPASS_FDNAME_MAX;
		memcpy(a->v[i].name, names, len);
		a->v[i].name[len] = '\0';
		names = colon ? colon + 1 : NULL;
	}
}

/*
 * The environment block the kernel set up at exec ([env_start, env_end) of /proc/self/stat):
 * what /proc/PID/environ shows, of this process and of every worker forked from it, whatever
 * unsetenv() did to the environ array.
 */
static int env_block(unsigned long *start, unsigned long *end)
{
	char buf[2048], *p;
	FILE *f = fopen("/proc/self/stat", "re");
	size_t len;
	int field = 3;

	if (!f)
		return -1;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	p = strrchr(buf, ')'); /* the command name, in parentheses, may hold anything */
	if (!p)
		return -1;
	for (p = strtok(p + 1, " "); p; p = strtok(NULL, " "), field++) {
		if (field == 50)
			*start = strtoul(p, NULL, 10);
		if (field == 51) {
			*end = strtoul(p, NULL, 10);
			return 0;
		}
	}
	return -1;
}

void fdpass_env_take(const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name);
	unsigned long start, end;
	extern char **environ;

	if (buf && size)
		snprintf(buf, size, "%s", getenv(name) ? getenv(name) : "");
	for (char **e = environ; e && *e; e++) {
		unsigned long at = (unsigned long)*e;
		size_t len = strlen(*e);

		if (strncmp(*e, name, nlen) != 0 || (*e)[nlen] != '=')
			continue;
		/* Only the kernel's block, which no one else points into once the entry is gone;
		 * a string setenv() made stays as it is (libc may keep it for reuse). */
		if (env_block(&start, &end) == 0 && at >= start && at + len < end) {
			char *s = *e;

			unsetenv(name);
			memset(s, 0, len);
			return;
		}
	}
	unsetenv(name);
}

int fdpass_activation_read(struct fdpass_activation *a, char *why, size_t size)
{
	char names[FDPASS_INHERITED_MAX * (FDPASS_FDNAME_MAX + 1)], pid_s[32], fds_s[32];
	long pid, n;
	int err = 0, set = getenv("LISTEN_FDS") != NULL;

	memset(a, 0, sizeof(*a));
	/* Now, before anything forks: no worker, nor what a worker runs, may see them. */
	fdpass_env_take("LISTEN_PID", pid_s, sizeof(pid_s));
	fdpass_env_take("LISTEN_FDS", fds_s, sizeof(fds_s));
	fdpass_env_take("LISTEN_FDNAMES", names, sizeof(names));
	if (set && parse_num(pid_s, 1L << 30, &pid) < 0) {
		snprintf(why, size, "LISTEN_PID=%s is not a process id", pid_s);
		err = -1;
	} else if (set && pid != (long)getpid()) {
		a->other_pid = 1; /* inherited by mistake from a parent: not ours to touch */
	} else if (set && parse_num(fds_s, FDPASS_INHERITED_MAX, &n) < 0) {
		snprintf(why, size, "LISTEN_FDS=%s: expected a number from 0 to %d", fds_s,
		         FDPASS_INHERITED_MAX);
		err = -1;
	} else if (set) {
		a->n = (size_t)n;
	}
	for (size_t i = 0; i < a->n; i++) {
		int fd = LISTEN_FDS_START + (int)i, flags = fcntl(fd, F_GETFD);

		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
			snprintf(why, size, "LISTEN_FDS=%zu, but descriptor %d: %s", a->n, fd,
			         strerror(errno));
			a->n = i; /* the ones before it are ours to close */
			return -1;
		}
		a->v[i].fd = fd;
	}
	read_names(a, names[0] ? names : NULL);
	return err;
}

/* fd is a listening socket of type (0: stream or seqpacket); 0, or -EINVAL with why. */
static int check_listening(int fd, int type, const char *what, char *why, size_t size)
{
	int on = 0, t = 0;
	socklen_t len = sizeof(on);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0) {
		snprintf(why, size, "%s (descriptor %d): not a socket: %s", what, fd,
		         strerror(errno));
		return -EINVAL;
	}
	len = sizeof(t);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &len);
	if (!on || (type ? t != type : t != SOCK_STREAM && t != SOCK_SEQPACKET)) {
		snprintf(why, size, "%s (descriptor %d): not a listening %s socket", what, fd,
		         type == SOCK_STREAM ? "stream" : "stream or seqpacket");
		return -EINVAL;
	}
	return 0;
}

/*
 * Make a socket taken ready to serve: a filter left by a master that stopped on it (loop.c's
 * stop_handshakes(), which drops every new handshake) would otherwise stay for this one. Only
 * an fdpass master attaches a filter to a listener; detaching none fails harmlessly.
 */
static int take(struct fdpass_inherited *in, const char **name)
{
	int fd = in->fd;

	setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, NULL, 0);
	in->fd = -1;
	if (name)
		*name = in->name;
	return fd;
}

/* Same family, address and port (port 0 in want matches any). */
static int same_address(const struct sockaddr_storage *want, int fd)
{
	struct sockaddr_storage have;
	socklen_t len = sizeof(have);

	if (getsockname(fd, (struct sockaddr *)&have, &len) < 0 ||
	    have.ss_family != want->ss_family)
		return 0;
	if (want->ss_family == AF_INET) {
		const struct sockaddr_in *w = (const void *)want, *h = (const void *)&have;

		return w->sin_addr.s_addr == h->sin_addr.s_addr &&
		       (!w->sin_port || w->sin_port == h->sin_port);
	}
	if (want->ss_family == AF_INET6) {
		const struct sockaddr_in6 *w = (const void *)want, *h = (const void *)&have;

		return !memcmp(&w->sin6_addr, &h->sin6_addr, sizeof(w->sin6_addr)) &&
		       (!w->sin6_port || w->sin6_port == h->sin6_port);
	}
	if (want->ss_family == AF_UNIX) { /* by text: a path or an abstract name */
		char a[FDP_ADDR_STRLEN], b[FDP_ADDR_STRLEN];

		return fdp_addr_format((const struct sockaddr *)want, sizeof(*want), a, sizeof(a)) >
		               0 &&
		       fdp_addr_local(fd, b, sizeof(b)) > 0 && strcmp(a, b) == 0;
	}
	return 0;
}

int fdpass_activation_is_fd_spec(const char *spec)
{
	return strncmp(spec, "fd:", 3) == 0;
}

/* "fd:N" or "fd:NAME". */
static int take_fd_spec(struct fdpass_activation *a, const char *spec, const char **name, char *why,
                        size_t size)
{
	const char *arg = spec + 3;
	long n;
	size_t hits = 0, hit = 0;

	if (parse_num(arg, 1 << 30, &n) == 0) {
		for (size_t i = 0; i < a->n; i++)
			if (a->v[i].fd == (int)n)
				return check_listening((int)n, 0, spec, why, size) < 0
				               ? -EINVAL
				               : take(&a->v[i], name);
		if (n < LISTEN_FDS_START) {
			snprintf(why, size, "%s: descriptors 0, 1 and 2 are stdio, not listeners",
			         spec);
			return -EINVAL;
		}
		for (size_t i = 0; i < a->n; i++)
			if (LISTEN_FDS_START + (int)i == (int)n) { /* taken by another --listen */
				snprintf(why, size, "%s: descriptor taken twice", spec);
				return -EINVAL;
			}
		/* Not passed by socket activation: open since our start, from a supervisor. */
		if (check_listening((int)n, 0, spec, why, size) < 0)
			return -EINVAL;
		if (fcntl((int)n, F_SETFD, FD_CLOEXEC) < 0) {
			snprintf(why, size, "%s: %s", spec, strerror(errno));
			return -EINVAL;
		}
		if (name)
			*name = "";
		return (int)n;
	}
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].fd >= 0 && strcmp(a->v[i].name, arg) == 0)
			hit = i, hits++;
	if (hits != 1) {
		snprintf(why, size,
		         hits ? "%s: %zu inherited sockets have that name (LISTEN_FDNAMES): name "
		                "one by fd:N"
		              : "%s: no inherited socket of that name is left (LISTEN_FDNAMES)",
		         spec, hits);
		return -EINVAL;
	}
	if (check_listening(a->v[hit].fd, 0, spec, why, size) < 0)
		return -EINVAL;
	return take(&a->v[hit], name);
}

int fdpass_activation_take(struct fdpass_activation *a, const char *spec, const char **name,
                           char *why, size_t size)
{
	struct sockaddr_storage want;
	socklen_t len;

	if (fdpass_activation_is_fd_spec(spec))
		return take_fd_spec(a, spec, name, why, size);
	if (fdp_addr_parse(spec, &want, &len) < 0)
		return -ENOENT; /* binding it reports the bad address */
	for (size_t i = 0; i < a->n; i++) {
		char ignored[8];

		if (a->v[i].fd < 0 || check_listening(a->v[i].fd, SOCK_STREAM, "", ignored, 0) < 0)
			continue;
		if (same_address(&want, a->v[i].fd))
			return take(&a->v[i], name);
	}
	return -ENOENT;
}

int fdpass_activation_take_next(struct fdpass_activation *a, const char **name, char *why,
                                size_t size)
{
	for (size_t i = 0; i < a->n; i++) {
		char what[64];

		if (a->v[i].fd < 0)
			continue;
		snprintf(what, sizeof(what), "inherited socket %s", a->v[i].name);
		if (check_listening(a->v[i].fd, 0, what, why, size) < 0)
			return -EINVAL;
		return take(&a->v[i], name);
	}
	return -ENOENT;
}

size_t fdpass_activation_left(const struct fdpass_activation *a, char *why, size_t size)
{
	size_t left = 0;

	for (size_t i = 0; i < a->n; i++) {
		char addr[FDP_ADDR_STRLEN] = "";

		if (a->v[i].fd < 0)
			continue;
		if (!left++ && fdp_addr_local(a->v[i].fd, addr, sizeof(addr)) <= 0)
			snprintf(addr, sizeof(addr), "not a bound socket");
		if (left == 1)
			snprintf(why, size,
			         "inherited socket %d (name '%s', %s) matches no --listen: add "
			         "--listen for it (its address, or fd:%d)",
			         a->v[i].fd, a->v[i].name, addr, a->v[i].fd);
	}
	return left;
}

void fdpass_activation_close(struct fdpass_activation *a)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].fd >= 0) {
			close(a->v[i].fd);
			a->v[i].fd = -1;
		}
}
