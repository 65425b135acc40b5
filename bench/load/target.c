/*
 * Target addresses: HOST:PORT (an IPv4 literal or "localhost"), [V6]:PORT, unix:PATH.
 * Only loopback is accepted: this client can open tens of thousands of connections a second
 * and must never be pointed at another machine by accident.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "load.h"

static int target_port(const char *s, in_port_t *port)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > 65535)
		return -EINVAL;
	*port = htons((uint16_t)v);
	return 0;
}

static int target_unix(struct load_target *t, const char *path)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&t->addr;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(un->sun_path))
		return -EINVAL;
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, n + 1);
	t->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

static int target_inet6(struct load_target *t, const char *host, const char *port)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->addr;

	in6->sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1 || target_port(port, &in6->sin6_port))
		return -EINVAL;
	if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
		return -EADDRNOTAVAIL;
	t->len = sizeof(*in6);
	return 0;
}

static int target_inet(struct load_target *t, const char *host, const char *port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&t->addr;

	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	in->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1 || target_port(port, &in->sin_port))
		return -EINVAL;
	if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
		return -EADDRNOTAVAIL;
	t->len = sizeof(*in);
	return 0;
}

/* Returns 0, -EINVAL for a malformed address, -EADDRNOTAVAIL for one that is not loopback. */
int load_target_parse(struct load_target *t, const char *text)
{
	char host[64];
	const char *colon;
	size_t n;

	memset(t, 0, sizeof(*t));
	snprintf(t->text, sizeof(t->text), "%s", text);
	if (strncmp(text, "unix:", 5) == 0)
		return target_unix(t, text + 5);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
			return -EINVAL;
		n = (size_t)(close - text - 1);
		memcpy(host, text + 1, n);
		host[n] = '\0';
		return target_inet6(t, host, close + 2);
	}
	colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof(host))
		return -EINVAL;
	n = (size_t)(colon - text);
	memcpy(host, text, n);
	host[n] = '\0';
	return target_inet(t, host, colon + 1);
}
