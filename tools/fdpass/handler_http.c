/*
 * The built-in HTTP handler: answers every request (HTTP/1.0 and 1.1, keep-alive unless the
 * client or a drain says otherwise) with a short text saying which worker served it:
 *   worker=<index> pid=<pid> generation=<g> conn=<this worker's connection number> id=<id>
 *   listener=<index of the --listen that accepted it> peer=<client address>
 * A request for /pad/N (N up to 1 MiB) gets that line padded with 'x' to N bytes: a large
 * answer on demand; one for /sleep/N (N up to 1000000) is answered after the worker has slept
 * N microseconds, its whole loop stopped: a request that keeps its worker busy. Both are for
 * benchmarks that mix cheap and expensive requests.
 * Request bodies are dropped unread (Content-Length; a chunked one ends the connection): it is
 * a demonstration and benchmark target, not a web server.
 * It refuses what it cannot serve with an error and Connection: close: 400 for a malformed
 * request line, 431 for a head larger than its buffer, 408 for one not complete within
 * --header-timeout.
 */
#include "serve.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Does the header block [req, end) ask to close (HTTP/1.0 without keep-alive, or close)? */
static int wants_close(const char *req, const char *end)
{
	const char *line = memchr(req, '\n', (size_t)(end - req));
	const char *eol = line && line > req && line[-1] == '\r' ? line - 1 : line;
	int http10 = eol && eol - req >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0;
	int keep = 0, close_ = 0;

	while (line && line < end) {
		const char *next = memchr(line + 1, '\n', (size_t)(end - line - 1));
		size_t n = (size_t)((next ? next : end) - line - 1);

		if (n > 11 && strncasecmp(line + 1, "connection:", 11) == 0) {
			char v[64];
			size_t k = n - 11 < sizeof(v) - 1 ? n - 11 : sizeof(v) - 1;

			memcpy(v, line + 12, k);
			v[k] = '\0';
			close_ |= strcasestr(v, "close") != NULL;
			keep |= strcasestr(v, "keep-alive") != NULL;
		}
		line = next;
	}
	return close_ || (http10 && !keep);
}

/*
 * The length of the body after the header block [req, end): its Content-Length, 0 without
 * one; -1 when it cannot be skipped (chunked, or a length that is not a number).
 */
static long long body_length(const char *req, const char *end)
{
	const char *line = memchr(req, '\n', (size_t)(end - req));
	long long len = 0;

	while (line && line < end) {
		const char *next = memchr(line + 1, '\n', (size_t)(end - line - 1));
		size_t n = (size_t)((next ? next : end) - line - 1);
		char *e;

		if (n > 18 && strncasecmp(line + 1, "transfer-encoding:", 18) == 0)
			return -1;
		if (n > 15 && strncasecmp(line + 1, "content-length:", 15) == 0) {
			const char *v = line + 16;

			/* A digit first: strtoll() would skip the CR and LF that end the line too. */
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v < '0' || *v > '9')
				return -1;
			len = strtoll(v, &e, 10);
			while (*e == ' ' || *e == '\t')
				e++;
			if (e == line + 16 || len < 0 || (*e != '\r' && *e != '\n'))
				return -1;
		}
		line = next;
	}
	return len;
}

/*
 * The blank line that ends the first header block in [p, p + n), CRLF or a bare LF (which a
 * server may accept, RFC 9112 section 2.2, as the routing extractors do), and its length.
 */
static char *head_end(char *p, size_t n, size_t *len)
{
	char *crlf = memmem(p, n, "\r\n\r\n", 4), *lf = memmem(p, n, "\n\n", 2);

	*len = lf && (!crlf || lf < crlf) ? 2 : 4;
	return *len == 2 ? lf : crlf;
}

/* RFC 9110 5.6.2: the characters of a token (a method). */
static int is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/*
 * Does [p, p + n) start with a request line, "METHOD SP TARGET SP HTTP/D.D" and CRLF or LF?
 * 1 yes, 0 not all there yet but could be, -1 never: a client that sends garbage is refused
 * as soon as it shows, not when its buffer is full or its time is up.
 */
static int request_line(const char *p, size_t n)
{
	static const char version[] = "HTTP/d.d";
	size_t i = 0, start;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == n)
		return 0;
	if (i == 0 || p[i] != ' ')
		return -1;
	for (start = ++i; i < n && (unsigned char)p[i] > ' ' && p[i] != 0x7f; i++)
		;
	if (i == n)
		return 0;
	if (i == start || p[i] != ' ')
		return -1;
	for (size_t k = 0; k < sizeof(version) - 1; k++) {
		if (++i == n)
			return 0;
		if (version[k] == 'd' ? !isdigit((unsigned char)p[i]) : p[i] != version[k])
			return -1;
	}
	if (++i < n && p[i] == '\r')
		i++;
	if (i == n)
		return 0;
	return p[i] == '\n' ? 1 : -1;
}

#define HTTP_PAD_MAX   (1u << 20)
#define HTTP_SLEEP_MAX 1000000u

/*
 * The N of a request line [req, end) whose target is PREFIX N (decimal, at most max), such as
 * /pad/N; else 0.
 */
static size_t target_number(const char *req, const char *end, const char *prefix, size_t max)
{
	const char *p = memchr(req, ' ', (size_t)(end - req));
	size_t n = 0, plen = strlen(prefix);
	int digits = 0;

	if (!p || (size_t)(end - ++p) <= plen || memcmp(p, prefix, plen) != 0)
		return 0;
	for (p += plen; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
		n = n * 10 + (size_t)(*p - '0');
		if (n > max)
			return 0;
	}
	return digits && p < end && *p == ' ' ? n : 0;
}

/* /sleep/N: stop the whole worker for N microseconds, as a request that computes would. */
static void sleep_us(size_t us)
{
	struct timespec ts = {.tv_sec = (time_t)(us / 1000000),
	                      .tv_nsec = (long)(us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Queue len bytes of padding after an answer's first line. */
static int write_pad(struct fdpass_conn *c, size_t len)
{
	static char pad[65536];

	if (!pad[0])
		memset(pad, 'x', sizeof(pad));
	while (len > 0) {
		size_t n = len < sizeof(pad) ? len : sizeof(pad);

		if (fdpass_conn_write(c, pad, n) < 0)
			return -1;
		len -= n;
	}
	return 0;
}

/*
 * Answer with an error and close: the client is still sending, or sending garbage, so the
 * loop closes gracefully (c->linger) lest the close reset the answer away.
 */
static int http_error(struct fdpass_conn *c, const char *status)
{
	char out[256];
	int n = snprintf(out, sizeof(out),
	                 "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n%s\n",
	                 status, strlen(status) + 1, status);

	c->inlen = 0;
	c->close_after_write = 1;
	c->linger = 1;
	return fdpass_conn_write(c, out, (size_t)n);
}

static int http_timeout(struct fdpass_conn *c)
{
	return http_error(c, "408 Request Timeout");
}

/*
 * The next request head in c->in, or NULL (*refused: it was answered with an error). Empty
 * lines before a request line are skipped (RFC 9112 2.2).
 */
static void drop(struct fdpass_conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->inlen - n);
	c->inlen -= n;
}

static char *next_head(struct fdpass_conn *c, size_t *blank, int *refused)
{
	size_t skip = c->body_left < c->inlen ? (size_t)c->body_left : c->inlen;
	char *end;

	c->body_left -= skip; /* what is left of the last request's body goes first */
	drop(c, skip);
	for (skip = 0; skip < c->inlen &&
	               (c->in[skip] == '\n' ||
	                (c->in[skip] == '\r' && skip + 1 < c->inlen && c->in[skip + 1] == '\n'));)
		skip += c->in[skip] == '\r' ? 2 : 1;
	drop(c, skip);
	*refused = 0;
	if (c->inlen == 0 || (c->inlen == 1 && c->in[0] == '\r'))
		return NULL;
	if (request_line(c->in, c->inlen) < 0) {
		*refused = http_error(c, "400 Bad Request") < 0 ? -1 : 1;
		return NULL;
	}
	end = head_end(c->in, c->inlen, blank);
	if (!end && c->inlen == sizeof(c->in))
		*refused = http_error(c, "431 Request Header Fields Too Large") < 0 ? -1 : 1;
	return end;
}

static int http_data(struct fdpass_conn *c)
{
	static pid_t pid; /* this worker's, looked up once */
	struct fdp_worker *w = fdpass_conn_worker(c);
	char *end;
	size_t blank;
	int refused = 0;

	/* While the client does not read, its requests wait in c->in (and in its socket). */
	while (!fdpass_conn_output_full(c) && (end = next_head(c, &blank, &refused))) {
		char peer[FDP_ADDR_STRLEN] = "-", body[256], out[512];
		size_t used = (size_t)(end + blank - c->in);
		long long skip = body_length(c->in, end);
		int close_ = wants_close(c->in, end) || fdpass_conn_draining(c) || skip < 0;
		size_t pad = target_number(c->in, end, "/pad/", HTTP_PAD_MAX);
		size_t nap = target_number(c->in, end, "/sleep/", HTTP_SLEEP_MAX);
		int nb, n;

		if (!pid)
			pid = getpid();
		if (nap)
			sleep_us(nap);
		if (c->meta.peer_len)
			fdp_addr_format((struct sockaddr *)&c->meta.peer, c->meta.peer_len, peer,
			                sizeof(peer));
		nb = snprintf(
		        body, sizeof(body),
		        "worker=%u pid=%d generation=%u conn=%lu id=%llu listener=%u peer=%s\n",
		        fdp_worker_index(w), (int)pid, fdp_worker_generation(w), c->number,
		        (unsigned long long)c->id, c->meta.listener, peer);
		/* Head and body in one write: one system call per answer. */
		n = snprintf(out, sizeof(out),
		             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
		             "%zu\r\nConnection: %s\r\n\r\n%s",
		             pad > (size_t)nb ? pad : (size_t)nb, close_ ? "close" : "keep-alive",
		             body);
		drop(c, used);
		c->body_left = skip > 0 ? (unsigned long long)skip : 0;
		if (fdpass_conn_write(c, out, (size_t)n) < 0 ||
		    (pad > (size_t)nb && write_pad(c, pad - (size_t)nb) < 0))
			return -1;
		if (close_) {
			c->close_after_write = 1;
			c->inlen = 0;
			return 0;
		}
	}
	return fdpass_conn_output_full(c) ? 0 : refused < 0 ? -1 : 0;
}

const struct fdpass_handler fdpass_handler_http = {
        .name = "http",
        .on_data = http_data,
        .on_timeout = http_timeout,
        .close_idle_on_drain = 1,
};
