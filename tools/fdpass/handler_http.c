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

/* Does [v, v + n) hold word, in any case? */
static int has_word(const char *v, size_t n, const char *word)
{
	size_t wn = strlen(word);

	for (size_t i = 0; i + wn <= n; i++)
		if (strncasecmp(v + i, word, wn) == 0)
			return 1;
	return 0;
}

/* Does the header line [line, line + n) name field (lower case, with its colon)? */
static int is_field(const char *line, size_t n, const char *field, size_t flen)
{
	return n > flen && strncasecmp(line, field, flen) == 0;
}

/*
 * What the header block [req, end) says, read in one pass over its lines: whether the client
 * asks to close (HTTP/1.0 without keep-alive, or Connection: close), and the length of the
 * body that follows it: its Content-Length, 0 without one, -1 when it cannot be skipped
 * (chunked, or a length that is not a number).
 */
struct head {
	int close;
	long long body;
};

static struct head head_read(const char *req, const char *end)
{
	const char *line = memchr(req, '\n', (size_t)(end - req));
	const char *eol = line && line > req && line[-1] == '\r' ? line - 1 : line;
	int http10 = eol && eol - req >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0;
	int keep = 0, close_ = 0;
	struct head h = {0, 0};

	while (line && line < end) {
		const char *f = line + 1, *next = memchr(f, '\n', (size_t)(end - f));
		size_t n = (size_t)((next ? next : end) - f);

		if (is_field(f, n, "connection:", 11)) {
			/* The value's first 63 bytes: a longer one is not a list of options. */
			size_t k = n - 11 < 63 ? n - 11 : 63;

			close_ |= has_word(f + 11, k, "close");
			keep |= has_word(f + 11, k, "keep-alive");
		} else if (h.body >= 0 && is_field(f, n, "transfer-encoding:", 18)) {
			h.body = -1;
		} else if (h.body >= 0 && is_field(f, n, "content-length:", 15)) {
			const char *v = f + 15;
			char *e;

			/* A digit first: strtoll() skips the CR and LF that end the line too. */
			while (*v == ' ' || *v == '\t')
				v++;
			h.body = *v >= '0' && *v <= '9' ? strtoll(v, &e, 10) : -1;
			if (h.body >= 0) {
				while (*e == ' ' || *e == '\t')
					e++;
				if (*e != '\r' && *e != '\n')
					h.body = -1;
			}
		}
		line = next;
	}
	h.close = close_ || (http10 && !keep);
	return h;
}

/*
 * The blank line that ends the first header block in [p, p + n), CRLF or a bare LF (which a
 * server may accept, RFC 9112 section 2.2, as the routing extractors do), and its length:
 * the first line feed followed by another (LF LF), or by CR LF after a CR (CR LF CR LF).
 */
static char *head_end(char *p, size_t n, size_t *len)
{
	char *end = p + n;

	*len = 4;
	for (char *lf = memchr(p, '\n', n); lf && lf + 1 < end;
	     lf = memchr(lf + 1, '\n', (size_t)(end - lf - 1))) {
		if (lf[1] == '\n') {
			*len = 2;
			return lf;
		}
		if (lf > p && lf[-1] == '\r' && lf + 2 < end && lf[1] == '\r' && lf[2] == '\n')
			return lf - 1;
	}
	return NULL;
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

/*
 * The buffers of an answer, each sized for its longest text: the worker line's labels (as
 * http_data() writes them), four unsigned numbers of up to 10 digits (worker, pid,
 * generation, listener), two of up to 20 (conn, id) and the longest peer fdp_addr_format()
 * writes; the head's fixed text, a Content-Length of up to 20 digits, the longer Connection.
 */
#define HTTP_LINE_MAX                                                                              \
	(sizeof("worker= pid= generation= conn= id= listener= peer=\n") - 1 + 4 * 10 + 2 * 20 +    \
	 FDP_ADDR_STRLEN - 1)
#define HTTP_HEAD_TEXT  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
#define HTTP_KEEP_TEXT  "\r\nConnection: keep-alive\r\n\r\n"
#define HTTP_CLOSE_TEXT "\r\nConnection: close\r\n\r\n"
#define HTTP_ANSWER_MAX                                                                            \
	(sizeof(HTTP_HEAD_TEXT) - 1 + 20 + sizeof(HTTP_KEEP_TEXT) - 1 + HTTP_LINE_MAX)

/* Append text at p; returns the end. */
static char *put_text(char *p, const char *text)
{
	size_t n = strlen(text);

	memcpy(p, text, n);
	return p + n;
}

/* Append a label and a decimal number at p; returns the end. */
static char *put(char *p, const char *label, unsigned long long v)
{
	char digits[20];
	int n = 0;

	p = put_text(p, label);
	do
		digits[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*p++ = digits[--n];
	return p;
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
		char peer[FDP_ADDR_STRLEN] = "-", body[HTTP_LINE_MAX], out[HTTP_ANSWER_MAX];
		char *o = out, *b = body;
		size_t used = (size_t)(end + blank - c->in), nb;
		struct head h = head_read(c->in, end);
		int close_ = h.close || fdpass_conn_draining(c) || h.body < 0;
		size_t pad = target_number(c->in, end, "/pad/", HTTP_PAD_MAX);
		size_t nap = target_number(c->in, end, "/sleep/", HTTP_SLEEP_MAX);

		if (!pid)
			pid = getpid();
		if (nap)
			sleep_us(nap);
		if (c->meta.peer_len)
			fdp_addr_format((struct sockaddr *)&c->meta.peer, c->meta.peer_len, peer,
			                sizeof(peer));
		/* Built by hand: snprintf() was the larger part of the handler's own time
		 * (docs/BENCHMARKS.md, "The handler's own cost taken down"). */
		b = put(b, "worker=", fdp_worker_index(w));
		b = put(b, " pid=", (unsigned)pid);
		b = put(b, " generation=", fdp_worker_generation(w));
		b = put(b, " conn=", c->number);
		b = put(b, " id=", c->id);
		b = put(b, " listener=", c->meta.listener);
		b = put_text(put_text(put_text(b, " peer="), peer), "\n");
		nb = (size_t)(b - body);
		o = put(o, HTTP_HEAD_TEXT, pad > nb ? pad : nb);
		o = put_text(o, close_ ? HTTP_CLOSE_TEXT : HTTP_KEEP_TEXT);
		/* Head and body in one write: one system call per answer. */
		memcpy(o, body, nb);
		o += nb;
		drop(c, used);
		c->body_left = h.body > 0 ? (unsigned long long)h.body : 0;
		if (fdpass_conn_write(c, out, (size_t)(o - out)) < 0 ||
		    (pad > nb && write_pad(c, pad - nb) < 0))
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
