/*
 * The two workloads: the request each connection sends and the test its response must pass.
 *
 * echo: the request is a 4-byte big-endian length N followed by N payload bytes (N = -s), then
 *       a half-close; the server writes the same 4 + N bytes back and closes. Servers that
 *       read the length stop there; a plain stream echo stops at the half-close. See
 *       bench/designs/README.md.
 * http: a GET of --path (default /) with "Connection: close", padded to -s bytes with an X-Pad
 *       header when -s is larger than the bare request; with --heavy, a share of the
 *       connections GET another path (a large answer). The response must be a 2xx HTTP/1.x
 *       response whose body is exactly Content-Length bytes (or chunked, ending with its last
 *       chunk), followed by the server closing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "load.h"

#define LOAD_HTTP_CAP   (64 * 1024)
#define LOAD_HEAVY_CAP  (LOAD_HTTP_CAP + (2u << 20)) /* with --heavy: answers up to 2 MiB */
#define LOAD_ECHO_LIMIT (1u << 20) /* the design servers refuse larger requests */

static int request_echo(struct load_config *cfg)
{
	size_t n = cfg->size;

	if (n > LOAD_ECHO_LIMIT)
		return -EMSGSIZE;
	cfg->request_len = 4 + n;
	cfg->request = malloc(cfg->request_len);
	if (!cfg->request)
		return -ENOMEM;
	cfg->request[0] = (unsigned char)(n >> 24);
	cfg->request[1] = (unsigned char)(n >> 16);
	cfg->request[2] = (unsigned char)(n >> 8);
	cfg->request[3] = (unsigned char)n;
	for (size_t i = 0; i < n; i++)
		cfg->request[4 + i] = (unsigned char)('a' + i % 26);
	cfg->response_cap = cfg->request_len;
	return 0;
}

/* A GET of path with Connection: close, padded to cfg->size with an X-Pad header. */
static int request_http(const struct load_config *cfg, const char *path, unsigned char **out,
                        size_t *outlen)
{
	static const char get[] = "GET ";
	static const char rest[] = " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
	static const char pad[] = "X-Pad: ";
	size_t plen = strlen(path);
	size_t headlen = sizeof(get) - 1 + plen + sizeof(rest) - 1;
	size_t base = headlen + 2, len = base, at;
	unsigned char *req;

	/* Padding needs room for its own name and line end. */
	if (cfg->size > base + sizeof(pad) - 1 + 2)
		len = cfg->size;
	req = malloc(len);
	if (!req)
		return -ENOMEM;
	memcpy(req, get, sizeof(get) - 1);
	memcpy(req + sizeof(get) - 1, path, plen);
	memcpy(req + sizeof(get) - 1 + plen, rest, sizeof(rest) - 1);
	at = headlen;
	if (len > base) {
		size_t fill = len - base - (sizeof(pad) - 1) - 2;
		memcpy(req + at, pad, sizeof(pad) - 1);
		at += sizeof(pad) - 1;
		memset(req + at, 'x', fill);
		at += fill;
		memcpy(req + at, "\r\n", 2);
		at += 2;
	}
	memcpy(req + at, "\r\n", 2);
	*out = req;
	*outlen = at + 2;
	return 0;
}

/* --keys N: one request for each target path followed by 0 .. N-1. */
static int request_keyed(struct load_config *cfg, const char *path)
{
	size_t plen = strlen(path);
	char *target = malloc(plen + 11);

	cfg->keyed = calloc(cfg->keys, sizeof(*cfg->keyed));
	cfg->keyed_len = calloc(cfg->keys, sizeof(*cfg->keyed_len));
	if (!target || !cfg->keyed || !cfg->keyed_len) {
		free(target);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < cfg->keys; i++) {
		snprintf(target, plen + 11, "%s%u", path, i);
		if (request_http(cfg, target, &cfg->keyed[i], &cfg->keyed_len[i]) < 0) {
			free(target);
			return -ENOMEM;
		}
	}
	free(target);
	return 0;
}

void load_request_free(struct load_config *cfg)
{
	free(cfg->request);
	free(cfg->heavy_request);
	for (unsigned i = 0; cfg->keyed && i < cfg->keys; i++)
		free(cfg->keyed[i]);
	free(cfg->keyed);
	free(cfg->keyed_len);
}

int load_request_build(struct load_config *cfg)
{
	const char *path = cfg->path ? cfg->path : "/";
	int r;

	if (cfg->check == LOAD_CHECK_ECHO)
		return request_echo(cfg);
	r = request_http(cfg, path, &cfg->request, &cfg->request_len);
	if (r == 0 && cfg->keys)
		r = request_keyed(cfg, path);
	if (r < 0 || !cfg->heavy_path) {
		cfg->response_cap = LOAD_HTTP_CAP;
		return r;
	}
	cfg->response_cap = LOAD_HEAVY_CAP;
	return request_http(cfg, cfg->heavy_path, &cfg->heavy_request, &cfg->heavy_request_len);
}

/* The value of header name (case-insensitive) in head[0..len), or NULL. */
static const char *http_header(const char *head, size_t len, const char *name)
{
	size_t n = strlen(name);
	const char *p = head, *end = head + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':')
			return p + n + 1;
		p = eol + 1;
	}
	return NULL;
}

/* The N of the first "worker=N" in the body, or -1. */
static int http_tag(const unsigned char *body, size_t len)
{
	static const char key[] = "worker=";
	const unsigned char *p = memmem(body, len, key, sizeof(key) - 1);
	int n = 0, digits = 0;

	if (!p)
		return -1;
	p += sizeof(key) - 1;
	while (p < body + len && *p >= '0' && *p <= '9' && digits < 6) {
		n = n * 10 + (*p++ - '0');
		digits++;
	}
	return digits ? n : -1;
}

static int check_http(const unsigned char *buf, size_t len, int *tag)
{
	const unsigned char *end = memmem(buf, len, "\r\n\r\n", 4);
	const char *cl;
	size_t head, body;
	char *stop;
	unsigned long want;

	if (!end)
		return LOAD_ERR_SHORT;
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[9] != '2')
		return LOAD_ERR_WRONG;
	head = (size_t)(end - buf) + 4;
	cl = http_header((const char *)buf, head, "Content-Length");
	/* A chunked body (nginx's echo module answers so) is whole when its last chunk came. */
	if (!cl && (cl = http_header((const char *)buf, head, "Transfer-Encoding")) &&
	    strncasecmp(cl + strspn(cl, " \t"), "chunked", 7) == 0) {
		body = len - head;
		if (body < 5 || memcmp(buf + len - 5, "0\r\n\r\n", 5) != 0)
			return LOAD_ERR_SHORT;
		*tag = http_tag(buf + head, body);
		return -1;
	}
	if (!cl)
		return LOAD_ERR_WRONG;
	want = strtoul(cl, &stop, 10);
	body = len - head;
	if (stop == cl)
		return LOAD_ERR_WRONG;
	if (body < want)
		return LOAD_ERR_SHORT;
	if (body > want)
		return LOAD_ERR_WRONG;
	*tag = http_tag(buf + head, body);
	return -1;
}

/*
 * Judge a whole response (everything read before EOF). Returns -1 when it is right, else the
 * load_err kind. *tag gets the worker number an HTTP body names, or -1.
 */
int load_response_check(const struct load_config *cfg, const unsigned char *buf, size_t len,
                        int *tag)
{
	*tag = -1;
	if (cfg->check == LOAD_CHECK_HTTP)
		return check_http(buf, len, tag);
	if (len < cfg->request_len)
		return memcmp(buf, cfg->request, len) == 0 ? LOAD_ERR_SHORT : LOAD_ERR_WRONG;
	if (len > cfg->request_len || memcmp(buf, cfg->request, len) != 0)
		return LOAD_ERR_WRONG;
	return -1;
}

const char *load_err_name(enum load_err e)
{
	static const char *const names[LOAD_ERR_COUNT] = {
	        "refused", "reset", "timeout", "short", "wrong", "ports", "other",
	};
	return names[e];
}
