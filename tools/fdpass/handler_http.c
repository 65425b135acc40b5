/*
 * The built-in HTTP handler: answers every request (HTTP/1.0 and 1.1, keep-alive unless the
 * client or a drain says otherwise) with a short text saying which worker served it:
 *   worker=<index> pid=<pid> generation=<g> conn=<this worker's connection number> id=<id>
 *   listener=<index of the --listen that accepted it> peer=<client address>
 * Request bodies are not read: it is a demonstration and benchmark target, not a web server.
 */
#include "serve.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
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
 * The blank line that ends the first header block in [p, p + n), CRLF or a bare LF (which a
 * server may accept, RFC 9112 section 2.2, as the routing extractors do), and its length.
 */
static char *head_end(char *p, size_t n, size_t *len)
{
	char *crlf = memmem(p, n, "\r\n\r\n", 4), *lf = memmem(p, n, "\n\n", 2);

	*len = lf && (!crlf || lf < crlf) ? 2 : 4;
	return *len == 2 ? lf : crlf;
}

static int http_data(struct fdpass_conn *c)
{
	static pid_t pid; /* this worker's, looked up once */
	struct fdp_worker *w = fdpass_conn_worker(c);
	char *end;
	size_t blank;

	while ((end = head_end(c->in, c->inlen, &blank))) {
		char peer[FDP_ADDR_STRLEN] = "-", body[256], out[512];
		size_t used = (size_t)(end + blank - c->in);
		int close_ = wants_close(c->in, end) || fdpass_conn_draining(c);
		int nb, n;

		if (!pid)
			pid = getpid();
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
		             "%d\r\nConnection: %s\r\n\r\n%s",
		             nb, close_ ? "close" : "keep-alive", body);
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		if (fdpass_conn_write(c, out, (size_t)n) < 0)
			return -1;
		if (close_) {
			c->close_after_write = 1;
			c->inlen = 0;
			return 0;
		}
	}
	return 0;
}

const struct fdpass_handler fdpass_handler_http = {
        .name = "http",
        .on_data = http_data,
        .close_idle_on_drain = 1,
};
