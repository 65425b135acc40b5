/*
 * Listeners from an address string ("HOST:PORT", "[HOST]:PORT", "unix:PATH") and batched
 * accept. Every socket made here is non-blocking and close-on-exec.
 */
#include "fdpass.h"
#include "compat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define UNIX_PREFIX "unix:"

/* Parse a decimal port 0..65535 that makes up the whole string. */
static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int parse_ipv6(const char *addr, struct sockaddr_storage *sa, socklen_t *len)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	const char *rb = strchr(addr, ']');
	char host[INET6_ADDRSTRLEN];
	size_t n;

	if (!rb || rb[1] != ':')
		return -EINVAL;
	n = (size_t)(rb - addr - 1);
	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, addr + 1, n);
	host[n] = '\0';
	memset(in6, 0, sizeof(*in6));
	in6->sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
		return -EINVAL;
	if (parse_port(rb + 2, &in6->sin6_port) < 0)
		return -EINVAL;
	in6->sin6_port = htons(in6->sin6_port);
	*len = sizeof(*in6);
	return 0;
}

static int parse_ipv4(const char *addr, struct sockaddr_storage *sa, socklen_t *len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	const char *colon = strrchr(addr, ':');
	char host[INET_ADDRSTRLEN + 16];
	size_t n;

	if (!colon)
		return -EINVAL;
	n = (size_t)(colon - addr);
	if (n >= sizeof(host))
		return -EINVAL;
	memcpy(host, addr, n);
	host[n] = '\0';
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	if (n == 0 || strcmp(host, "*") == 0)
		in->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return -EINVAL;
	if (parse_port(colon + 1, &in->sin_port) < 0)
		return -EINVAL;
	in->sin_port = htons(in->sin_port);
	*len = sizeof(*in);
	return 0;
}

int fdp_addr_parse(const char *addr, struct sockaddr_storage *sa, socklen_t *len)
{
	if (!addr)
		return -EINVAL;
	if (strncmp(addr, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)sa;
		const char *path = addr + strlen(UNIX_PREFIX);
		size_t n = strlen(path);

		if (n == 0 || n >= sizeof(un->sun_path))
			return -EINVAL;
		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, path, n);
		if (path[0] == '@') {
			if (!FDP_HAVE_ABSTRACT)
				return -EINVAL; /* a Linux name, where this system has none */
			un->sun_path[0] = '\0';
			*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		} else {
			*len = sizeof(*un);
		}
		return 0;
	}
	if (addr[0] == '[')
		return parse_ipv6(addr, sa, len);
	return parse_ipv4(addr, sa, len);
}

/* Append v in decimal at p; returns the end. */
static char *put_decimal(char *p, unsigned v)
{
	char digits[10];
	int n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*p++ = digits[--n];
	return p;
}

/*
 * "a.b.c.d:port" into out (INET_ADDRSTRLEN + 6 bytes at least), by hand: the built-in http
 * handler names the peer in every answer, and inet_ntop() with snprintf() cost more than the
 * rest of its formatting. Returns the length, the NUL not counted.
 */
static int format_ipv4(const struct sockaddr_in *in, char *out)
{
	const unsigned char *a = (const unsigned char *)&in->sin_addr;
	char *p = out;

	for (int i = 0; i < 4; i++) {
		p = put_decimal(p, a[i]);
		*p++ = i < 3 ? '.' : ':';
	}
	p = put_decimal(p, ntohs(in->sin_port));
	*p = '\0';
	return (int)(p - out);
}

int fdp_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (!size)
		return -EINVAL;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		n = format_ipv4((const struct sockaddr_in *)sa, host);
		memcpy(buf, host, (size_t)n < size ? (size_t)n + 1 : size - 1);
		buf[(size_t)n < size ? (size_t)n : size - 1] = '\0';
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		n = snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		size_t plen = len > off ? (size_t)len - off : 0;

		if (plen > 0 && un->sun_path[0] == '\0') /* abstract: length-delimited */
			n = snprintf(buf, size, "unix:@%.*s", (int)plen - 1, un->sun_path + 1);
		else
			n = snprintf(buf, size, "unix:%.*s", (int)strnlen(un->sun_path, plen),
			             un->sun_path);
	} else {
		n = snprintf(buf, size, "unknown");
	}
	if (n < 0)
		return -EINVAL;
	return (size_t)n >= size ? (int)size - 1 : n;
}

static int listen_inet(const struct sockaddr_storage *sa, socklen_t len, int backlog)
{
	int one = 1, err;
	int fd = fdp__socket(sa->ss_family, SOCK_STREAM | FDP__SOCK_NONBLOCK);

	if (fd < 0)
		return fd;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	/* "[::]" means IPv6 only: an IPv4 listener on the same port is a separate --listen. */
	if (sa->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)sa, len) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

int fdp_listen(const char *addr, int backlog)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int err = fdp_addr_parse(addr, &sa, &len);

	if (err < 0)
		return err;
	if (backlog <= 0)
		backlog = SOMAXCONN;
	if (sa.ss_family == AF_UNIX)
		return fdp_unix_listen(addr + strlen(UNIX_PREFIX), SOCK_STREAM | SOCK_NONBLOCK,
		                       0666, backlog);
	return listen_inet(&sa, len, backlog);
}

int fdp_addr_local(int sock, char *buf, size_t size)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);

	if (getsockname(sock, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	return fdp_addr_format((struct sockaddr *)&sa, len, buf, size);
}

int fdp_accept_batch(int listener, struct fdp_accepted *out, size_t max)
{
	size_t n = 0;

	while (n < max) {
		struct fdp_accepted *a = &out[n];
		int fd;

		a->peer_len = sizeof(a->peer);
		fd = fdp__accept(listener, (struct sockaddr *)&a->peer, &a->peer_len);
		if (fd < 0) {
			int err = errno;

			/* A client that gave up before we accepted is not our error. */
			if (err == EINTR || err == ECONNABORTED)
				continue;
			if (n > 0)
				break;
			return err == EWOULDBLOCK ? -EAGAIN : -err;
		}
		a->fd = fd;
		n++;
	}
	return (int)n;
}
