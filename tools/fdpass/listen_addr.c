/*
 * What `fdpass serve --listen` takes as an address, and why it refuses one, in words: the
 * library's fdp_addr_parse() only says -EINVAL. The program is stricter than the library in
 * one place: an empty host (":8080", every IPv4 address to the library) is refused, since it
 * reads like "this machine"; "*:8080" says every address, "127.0.0.1:8080" this machine only.
 * Host names are never resolved (a server's addresses should not depend on DNS at start).
 */
#include "serve_route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* A port: the whole of s, decimal. 0 with *port set, else -EINVAL and why. */
static int check_port(const char *s, unsigned long *port, char *why, size_t size)
{
	char *end;

	if (!*s) {
		snprintf(why, size, "missing port after ':' (0..65535; 0 picks a free one)");
		return -EINVAL;
	}
	if (strspn(s, "0123456789") != strlen(s)) {
		snprintf(why, size, "port '%s' is not a number (0..65535)", s);
		return -EINVAL;
	}
	errno = 0;
	*port = strtoul(s, &end, 10);
	if (errno || *port > 65535) {
		snprintf(why, size, "port out of range (0..65535)");
		return -EINVAL;
	}
	return 0;
}

static int check_ipv6(const char *addr, char *why, size_t size)
{
	const char *rb = strchr(addr, ']');
	char host[INET6_ADDRSTRLEN];
	struct in6_addr a;
	unsigned long port;
	size_t n;

	if (!rb || rb[1] != ':') {
		snprintf(why, size, "expected [HOST]:PORT, as in [::1]:8080");
		return -EINVAL;
	}
	if (check_port(rb + 2, &port, why, size) < 0)
		return -EINVAL;
	n = (size_t)(rb - addr - 1);
	if (n > 0 && n < sizeof(host)) {
		memcpy(host, addr + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, &a) == 1)
			return 0;
	}
	snprintf(why, size,
	         "'%.*s' is not an IPv6 address (host names are not resolved): give one, as in "
	         "[::1]:%lu, or [::]:%lu for every IPv6 address",
	         (int)n, addr + 1, port, port);
	return -EINVAL;
}

int fdpass_listen_addr_check(const char *addr, char *why, size_t size)
{
	const char *colon = strrchr(addr, ':');
	char host[INET_ADDRSTRLEN];
	struct in_addr a;
	unsigned long port;
	size_t n;

	if (strncmp(addr, "unix:", 5) == 0) {
		n = strlen(addr + 5);
		if (n == 0 || n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			snprintf(why, size, "a unix: path has 1 to %zu bytes",
			         sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			return -EINVAL;
		}
		return 0;
	}
	if (strncmp(addr, "fd:", 3) == 0) /* an inherited socket: not an address to parse here */
		return 0;
	if (addr[0] == '[')
		return check_ipv6(addr, why, size);
	if (!colon) {
		snprintf(why, size, "expected HOST:PORT, [HOST]:PORT or unix:PATH");
		return -EINVAL;
	}
	if (check_port(colon + 1, &port, why, size) < 0)
		return -EINVAL;
	n = (size_t)(colon - addr);
	if (n == 0) {
		snprintf(why, size,
		         "no host: write *:%lu for every IPv4 address, or 127.0.0.1:%lu for this "
		         "machine only",
		         port, port);
		return -EINVAL;
	}
	if (memchr(addr, ':', n)) {
		snprintf(why, size, "an IPv6 address goes in brackets: [%.*s]:%lu", (int)n, addr,
		         port);
		return -EINVAL;
	}
	if ((n == 1 && addr[0] == '*') || (n == 9 && strncmp(addr, "localhost", 9) == 0))
		return 0;
	if (n < sizeof(host)) {
		memcpy(host, addr, n);
		host[n] = '\0';
		if (inet_pton(AF_INET, host, &a) == 1)
			return 0;
	}
	snprintf(why, size,
	         "host names are not resolved: give an address (127.0.0.1:%lu, [::1]:%lu)", port,
	         port);
	return -EINVAL;
}
