/*
 * The metrics: the master's counters and gauges in Prometheus's text exposition format
 * (version 0.0.4; every family is listed in docs/SERVE.md), rendered for the control socket's
 * `metrics` command and served over HTTP on the metrics listener (cfg.metrics_fd).
 *
 * The HTTP side serves GET /metrics (and HEAD), one request per connection: it answers, then
 * closes. It lives in the master's loop, so nothing here may wait: each client's socket is
 * non-blocking and in the epoll. A client is read until its request head is complete (at most
 * HEAD_MAX bytes, within READ_MS), the whole answer is then rendered into one buffer and
 * written as the socket takes it (within WRITE_MS); then the write side is shut and what the
 * client still sends is read and dropped for at most LINGER_MS, so that closing does not reset
 * a connection whose answer the client has not read yet. At most MAX_CLIENTS clients are
 * served at once: past it the listener leaves the epoll and the rest wait in its backlog. So a
 * client that sends nothing, or reads slowly, holds one of those places and one answer's
 * memory until its deadline, and never delays a hand-over.
 *
 * It reads the master's state and calls only files below it: the route policy's counters
 * (route_policy.c), the policies' names (policy.c) and the log.
 */
#include "master.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_CLIENTS  16          /* served at once; the rest wait in the listener's backlog */
#define HEAD_MAX     4096        /* a longer request head is answered 431 */
#define READ_MS      2000        /* the request head's deadline, from the accept */
#define WRITE_MS     10000       /* the answer's deadline, from the request */
#define LINGER_MS    1000        /* after the answer: what the client still sends is dropped */
#define TEXT_MAX     (64u << 20) /* a larger rendering is refused (out of memory) */
#define SNDBUF       (16 * 1024) /* each client's socket buffer (below) */
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum client_state { C_FREE, C_READING, C_WRITING, C_LINGER };

struct client {
	int fd; /* the client's socket, this file's; -1 when the entry is free */
	enum client_state state;
	struct fdp__watch w;
	long long deadline;
	size_t headlen;
	char *out; /* the whole answer, malloc'd, while writing */
	size_t outlen, outoff;
	char head[HEAD_MAX];
};

struct fdp__metrics {
	int fd; /* the listener, taken from the config: this file's */
	struct fdp__watch w;
	int registered;
	long long paused_until; /* accept() failed for want of something: out of epoll until */
	int handed;             /* an upgrade's new master took it: its file is left to it */
	struct fdp__ratelimit rl;
	unsigned nclients;
	struct client c[MAX_CLIENTS];
};

/* ---- rendering ---- */

struct text {
	char *buf;
	size_t len, cap;
	int short_of_memory; /* something could not be added: the text is incomplete */
};

static __attribute__((format(printf, 2, 3))) void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->short_of_memory = 1;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap * 2 + (size_t)n;
		char *b = cap <= TEXT_MAX ? realloc(t->buf, cap) : NULL;

		if (!b) {
			t->short_of_memory = 1;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

/* A label value as the format wants it: backslash, double quote and newline escaped. */
static void add_escaped(struct text *t, const char *s)
{
	char buf[2 * FDP_ADDR_STRLEN + 1];
	size_t n = 0;

	for (; *s && n + 2 < sizeof(buf); s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			buf[n++] = '\\';
			buf[n++] = *s == '\n' ? 'n' : *s;
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
	add(t, "%s", buf);
}

/* The HELP and TYPE lines that open a family (each family once, its samples after it). */
static void family(struct text *t, const char *name, const char *type, const char *help)
{
	add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct text *t, const char *name, const char *labels, uint64_t v)
{
	add(t, "%s%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
	    (unsigned long long)v);
}

/* One sample per listener: value(l) labelled listener="i". */
static void per_listener(struct text *t, const struct fdp_master *m, const char *name,
                         const char *type, const char *help,
                         uint64_t (*value)(const struct fdp__listener *l))
{
	family(t, name, type, help);
	for (size_t i = 0; i < m->nlisteners; i++)
		add(t, "%s{listener=\"%zu\"} %llu\n", name, i,
		    (unsigned long long)value(&m->listeners[i]));
}

static uint64_t l_accepted(const struct fdp__listener *l)
{
	return l->accepted;
}

static uint64_t l_handed(const struct fdp__listener *l)
{
	return l->handovers;
}

/* One sample per worker slot: value(slot) labelled slot="i". */
static void per_slot(struct text *t, const struct fdp_master *m, const char *name, const char *type,
                     const char *help, uint64_t (*value)(const struct fdp_master *m, unsigned i))
{
	family(t, name, type, help);
	for (unsigned i = 0; i < m->cfg.workers; i++)
		add(t, "%s{slot=\"%u\"} %llu\n", name, i, (unsigned long long)value(m, i));
}

static uint64_t s_handed(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].handed;
}
static uint64_t s_acked(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].acked;
}
static uint64_t s_served(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].served;
}
static uint64_t s_rehanded(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].rehanded;
}
static uint64_t s_returned(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].returned;
}
static uint64_t s_lost(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].lost;
}
static uint64_t s_ack_timeouts(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].ack_timeouts;
}
static uint64_t s_kaccepted(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].kaccepted;
}
static uint64_t s_restarts(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].restarts;
}
static uint64_t s_generation(const struct fdp_master *m, unsigned i)
{
	return m->slots[i].generation;
}
static uint64_t s_ready(const struct fdp_master *m, unsigned i)
{
	const struct fdp__proc *cur = m->slots[i].proc;

	return cur && cur->state == PROC_READY && !cur->drain_pending;
}

/*
 * What the slot's processes (a reload runs two) hold now, from one walk over them: open
 * (handed, not reported done), or in flight (handed, not acknowledged).
 */
static void per_slot_now(struct text *t, const struct fdp_master *m, const char *name,
                         const char *help, int in_flight)
{
	uint64_t *v = calloc(m->cfg.workers, sizeof(*v));

	if (!v) {
		t->short_of_memory = 1;
		return;
	}
	for (const struct fdp__proc *p = m->procs; p; p = p->next)
		if (p->slot < m->cfg.workers) /* a slot taken away at a reload may still drain */
			v[p->slot] += in_flight ? p->inflight.n : p->open + fdp__proc_own_open(m, p);
	family(t, name, "gauge", help);
	for (unsigned i = 0; i < m->cfg.workers; i++)
		add(t, "%s{slot=\"%u\"} %llu\n", name, i, (unsigned long long)v[i]);
	free(v);
}

/* Only with dispatchers (cfg.dispatchers > 1): what they did, beside the master's own. */
static void render_dispatchers(struct text *t, const struct fdp_master *m)
{
	struct fdp__disp_row d;
	unsigned n = fdp__disps_totals(m, &d);

	if (!m->dshared)
		return;
	family(t, "fdpass_dispatchers_running", "gauge",
	       "Dispatcher processes accepting and routing the route listeners' clients.");
	sample(t, "fdpass_dispatchers_running", "", n);
	family(t, "fdpass_dispatched_connections_total", "counter",
	       "Connections the dispatchers accepted, and their hand-overs (not in the "
	       "per-listener and per-slot counts, which are the master's own).");
	sample(t, "fdpass_dispatched_connections_total", "what=\"accepted\"", d.accepted);
	sample(t, "fdpass_dispatched_connections_total", "what=\"handed\"", d.handed);
}

static void render_master(struct text *t, const struct fdp_master *m)
{
	static const char *const states[] = {"running", "reloading", "stopping"};
	int state = fdp__stop_begun(m) ? 2 : m->reloading ? 1 : 0;
	unsigned ready = 0;

	for (unsigned i = 0; i < m->cfg.workers; i++)
		ready += (unsigned)s_ready(m, i);
	family(t, "fdpass_info", "gauge", "The server's version and default policy (always 1).");
	add(t, "fdpass_info{version=\"%d.%d.%d\",policy=\"%s\"} 1\n", FDPASS_VERSION_MAJOR,
	    FDPASS_VERSION_MINOR, FDPASS_VERSION_PATCH, fdp__policy_name(m->cfg.policy));
	family(t, "fdpass_uptime_seconds", "gauge", "Seconds since the master started its loop.");
	add(t, "fdpass_uptime_seconds %.3f\n", (double)(fdp__now_ms() - m->start_ms) / 1000.0);
	family(t, "fdpass_master_state", "gauge",
	       "The master's state: 1 for the current one (running, reloading or stopping).");
	for (int i = 0; i < 3; i++)
		add(t, "fdpass_master_state{state=\"%s\"} %d\n", states[i], i == state);
	family(t, "fdpass_workers_configured", "gauge", "Worker slots (--workers).");
	sample(t, "fdpass_workers_configured", "", m->cfg.workers);
	family(t, "fdpass_workers_ready", "gauge",
	       "Worker slots whose current process is ready and not draining.");
	sample(t, "fdpass_workers_ready", "", ready);
	family(t, "fdpass_connections_pending", "gauge",
	       "Connections accepted and waiting for a worker to take them.");
	sample(t, "fdpass_connections_pending", "", m->conns.pending.n);
	render_dispatchers(t, m);
}

static void render_listeners(struct text *t, const struct fdp_master *m)
{
	static const char *const reasons[CLOSE_NREASONS] = {"no_worker", "shutdown", "error",
	                                                    "route"};

	family(t, "fdpass_listener_info", "gauge",
	       "Each listener's address, policy and dispatch (always 1; closed at a stop: "
	       "address \"\").");
	for (size_t i = 0; i < m->nlisteners; i++) {
		char addr[FDP_ADDR_STRLEN] = "";

		if (m->listeners[i].fd >= 0 &&
		    fdp_addr_local(m->listeners[i].fd, addr, sizeof(addr)) < 0)
			addr[0] = '\0';
		add(t, "fdpass_listener_info{listener=\"%zu\",address=\"", i);
		add_escaped(t, addr);
		add(t, "\",policy=\"%s\",dispatch=\"%s\"} 1\n",
		    fdp__policy_name(m->listeners[i].policy), m->listeners[i].steer ? "kernel" : "pass");
	}
	per_listener(t, m, "fdpass_connections_accepted_total", "counter",
	             "Connections accepted on the listener.", l_accepted);
	per_listener(t, m, "fdpass_connections_handed_total", "counter",
	             "Hand-overs to a worker of the listener's connections (a connection handed "
	             "again after its worker died counts again).",
	             l_handed);
	family(t, "fdpass_connections_closed_unserved_total", "counter",
	       "Connections the master closed without a worker serving them, by reason: "
	       "no_worker (waited too long), shutdown (a stop), error (the master could not "
	       "keep it), route (the route policy: no key, or its failure "
	       "action).");
	for (size_t i = 0; i < m->nlisteners; i++)
		for (int r = 0; r < CLOSE_NREASONS; r++)
			add(t,
			    "fdpass_connections_closed_unserved_total{listener=\"%zu\",reason=\"%"
			    "s\"} "
			    "%llu\n",
			    i, reasons[r], (unsigned long long)m->listeners[i].closed[r]);
}

static void render_slots(struct text *t, const struct fdp_master *m)
{
	per_slot(t, m, "fdpass_worker_handed_total", "counter",
	         "Connections handed to the slot's workers.", s_handed);
	per_slot(t, m, "fdpass_worker_acknowledged_total", "counter",
	         "Connections the slot's workers acknowledged (took from their channel).", s_acked);
	per_slot(t, m, "fdpass_worker_served_total", "counter",
	         "Connections the slot's workers reported done.", s_served);
	per_slot(t, m, "fdpass_worker_accepted_total", "counter",
	         "Connections the slot's workers accepted themselves on its socket (kernel "
	         "dispatch).",
	         s_kaccepted);
	per_slot(t, m, "fdpass_worker_rehanded_total", "counter",
	         "Connections a dead worker of the slot had not acknowledged, handed again.",
	         s_rehanded);
	per_slot(t, m, "fdpass_worker_returned_total", "counter",
	         "Idle keep-alive connections a draining worker of the slot handed back.",
	         s_returned);
	per_slot(t, m, "fdpass_worker_lost_total", "counter",
	         "Connections acknowledged by a worker of the slot that died before reporting "
	         "them done.",
	         s_lost);
	per_slot(t, m, "fdpass_worker_ack_timeouts_total", "counter",
	         "Workers of the slot killed as hung: a connection unacknowledged past "
	         "--ack-timeout.",
	         s_ack_timeouts);
	per_slot(t, m, "fdpass_worker_restarts_total", "counter",
	         "Times the slot's worker died and was replaced.", s_restarts);
	per_slot_now(t, m, "fdpass_worker_open_connections",
	             "Connections handed to the slot's processes and not reported done.", 0);
	per_slot_now(t, m, "fdpass_worker_in_flight_connections",
	             "Connections handed to the slot's processes and not acknowledged yet.", 1);
	per_slot(t, m, "fdpass_worker_ready", "gauge",
	         "1 when the slot's current process is ready and not draining.", s_ready);
	per_slot(t, m, "fdpass_worker_generation", "gauge",
	         "The generation of the slot's newest process (1 at start, one more per "
	         "restart or reload).",
	         s_generation);
}

static void render_ack_latency(struct text *t, const struct fdp_master *m)
{
	const char *name = "fdpass_ack_latency_seconds";
	uint64_t sum = 0;

	family(t, name, "histogram",
	       "Time from a connection's hand-over to its worker's acknowledgement.");
	for (unsigned b = 0; b <= FDP__ACK_BUCKETS; b++) {
		sum += m->conns.ack_latency[b];
		if (b < FDP__ACK_BUCKETS)
			add(t, "%s_bucket{le=\"%g\"} %llu\n", name,
			    (double)fdp__ack_bound_ns(b) / 1e9, (unsigned long long)sum);
		else
			add(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)sum);
	}
	add(t, "%s_sum %.9f\n%s_count %llu\n", name, (double)m->conns.ack_latency_sum_ns / 1e9,
	    name, (unsigned long long)sum);
}

static void render_route(struct text *t, const struct fdp_master *m)
{
	struct fdp__route_stats st;

	if (!m->router)
		return;
	fdp__route_stats(m, &st);
	family(t, "fdpass_route_waiting_connections", "gauge",
	       "Routed connections waiting for their key.");
	sample(t, "fdpass_route_waiting_connections", "", st.waiting);
	family(t, "fdpass_route_held_connections", "gauge",
	       "Routed connections held for their slot's worker.");
	sample(t, "fdpass_route_held_connections", "", st.held);
	family(t, "fdpass_route_routed_total", "counter",
	       "Routing keys found, by where their slot came from: hash (the ring) or map.");
	sample(t, "fdpass_route_routed_total", "by=\"hash\"", st.hashed);
	sample(t, "fdpass_route_routed_total", "by=\"map\"", st.mapped);
	family(t, "fdpass_route_failures_total", "counter",
	       "Routed connections that met the failure action, by reason: timeout (no key in "
	       "time), too_big (no key within the byte limit), rejected, overflow (past the cap "
	       "on waiting connections), unavailable (the slot never took it in time).");
	sample(t, "fdpass_route_failures_total", "reason=\"timeout\"", st.timeout);
	sample(t, "fdpass_route_failures_total", "reason=\"too_big\"", st.too_big);
	sample(t, "fdpass_route_failures_total", "reason=\"rejected\"", st.rejected);
	sample(t, "fdpass_route_failures_total", "reason=\"overflow\"", st.overflow);
	sample(t, "fdpass_route_failures_total", "reason=\"unavailable\"", st.unavailable);
	family(t, "fdpass_route_fail_actions_total", "counter",
	       "What the failure action did: default (handed to the default worker) or close.");
	sample(t, "fdpass_route_fail_actions_total", "action=\"default\"", st.defaulted);
	sample(t, "fdpass_route_fail_actions_total", "action=\"close\"", st.closed);
	family(t, "fdpass_route_client_gone_total", "counter",
	       "Routed clients that closed or reset before sending anything.");
	sample(t, "fdpass_route_client_gone_total", "", st.eof);
}

int fdp__metrics_render(struct fdp_master *m, char **out, size_t *len)
{
	struct text t = {malloc(16384), 0, 16384, 0};

	*out = NULL;
	*len = 0;
	if (!t.buf)
		return -ENOMEM;
	t.buf[0] = '\0';
	fdp__kernel_refresh(m);
	render_master(&t, m);
	render_listeners(&t, m);
	render_slots(&t, m);
	render_ack_latency(&t, m);
	render_route(&t, m);
	if (t.short_of_memory) { /* never half a text that looks whole */
		free(t.buf);
		return -ENOMEM;
	}
	*out = t.buf;
	*len = t.len;
	return 0;
}

/* ---- serving it over HTTP ---- */

int fdp__metrics_open(struct fdp_master *m, int fd)
{
	struct fdp__metrics *x = calloc(1, sizeof(*x));

	if (!x) {
		close(fd);
		return -ENOMEM;
	}
	x->fd = fd;
	x->w.kind = W_METRICS;
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		x->c[i] = (struct client){.fd = -1, .w = {.kind = W_METRICS_CLIENT, .index = i}};
	m->metrics = x;
	return 0;
}

static void client_close(struct fdp_master *m, struct client *c)
{
	/* Out of the epoll first: a worker forked a moment ago may hold a copy for a while. */
	if (m->epfd >= 0)
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	c->fd = -1;
	c->out = NULL;
	c->state = C_FREE;
	m->metrics->nclients--;
}

void fdp__metrics_close(struct fdp_master *m)
{
	struct fdp__metrics *x = m->metrics;
	char addr[FDP_ADDR_STRLEN];

	if (!x)
		return;
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		if (x->c[i].fd >= 0)
			client_close(m, &x->c[i]);
	/* A Unix listener's file goes with it, as the listeners' do (only in the master). */
	if (!m->in_child && !x->handed && fdp_addr_local(x->fd, addr, sizeof(addr)) > 0 &&
	    strncmp(addr, "unix:/", 6) == 0)
		unlink(addr + 5);
	close(x->fd);
	free(x);
	m->metrics = NULL;
}

int fdp__metrics_fd(const struct fdp_master *m)
{
	return m->metrics ? m->metrics->fd : -1;
}

void fdp__metrics_handed(struct fdp_master *m)
{
	if (m->metrics)
		m->metrics->handed = 1;
}

void fdp__metrics_owned(struct fdp_master *m)
{
	if (m->metrics)
		m->metrics->handed = 0;
}

void fdp__metrics_log(struct fdp_master *m)
{
	char addr[FDP_ADDR_STRLEN];

	if (m->metrics && fdp_addr_local(m->metrics->fd, addr, sizeof(addr)) > 0)
		fdp__log(m, FDP_LOG_INFO, "metrics served on %s at /metrics", addr);
}

static int client_watch(struct fdp_master *m, struct client *c, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = &c->w};

	return epoll_ctl(m->epfd, op, c->fd, &ev);
}

/* The answer is all out: shut the write side, and drop what the client still sends. */
static void client_written(struct fdp_master *m, struct client *c)
{
	free(c->out);
	c->out = NULL;
	shutdown(c->fd, SHUT_WR);
	c->state = C_LINGER;
	c->deadline = fdp__now_ms() + LINGER_MS;
	if (client_watch(m, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP) < 0)
		client_close(m, c);
}

static void client_write(struct fdp_master *m, struct client *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* EPOLLOUT says when it takes more */
		if (n <= 0) {
			client_close(m, c);
			return;
		}
		c->outoff += (size_t)n;
	}
	client_written(m, c);
}

/* Queue the answer, head then body (body_len bytes, NULL for none), and start writing it. */
static void answer(struct fdp_master *m, struct client *c, int minor, const char *status,
                   const char *extra, const char *type, const char *body, size_t body_len,
                   int head_only)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.%d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
	                 "Connection: close\r\n\r\n",
	                 minor, status, type, body_len, extra);
	size_t len = (size_t)n + (head_only ? 0 : body_len);

	c->out = malloc(len);
	if (!c->out) {
		client_close(m, c);
		return;
	}
	memcpy(c->out, head, (size_t)n);
	if (!head_only && body_len)
		memcpy(c->out + n, body, body_len);
	c->outlen = len;
	c->outoff = 0;
	c->state = C_WRITING;
	c->deadline = fdp__now_ms() + WRITE_MS;
	if (client_watch(m, c, EPOLL_CTL_MOD, EPOLLOUT) < 0) {
		client_close(m, c);
		return;
	}
	client_write(m, c);
}

static void answer_error(struct fdp_master *m, struct client *c, int minor, const char *status,
                         const char *extra, const char *text, int head_only)
{
	answer(m, c, minor, status, extra, "text/plain; charset=utf-8", text, strlen(text),
	       head_only);
}

/* A whole request head is in c->head (NUL-ended): answer it. */
static void respond(struct fdp_master *m, struct client *c)
{
	char *line = c->head, *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	size_t eol = strcspn(line, "\r\n"), plen;
	int head_only, minor;
	char *text;
	size_t len;

	if (!sp1 || !sp2 || (size_t)(sp2 - line) >= eol || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    (sp2[8] != '0' && sp2[8] != '1') || (size_t)(sp2 + 9 - line) != eol) {
		answer_error(m, c, 1, "400 Bad Request", "", "bad request\n", 0);
		return;
	}
	minor = sp2[8] - '0';
	head_only = sp1 - line == 4 && strncmp(line, "HEAD", 4) == 0;
	if (!head_only && !(sp1 - line == 3 && strncmp(line, "GET", 3) == 0)) {
		answer_error(m, c, minor, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
		             "only GET and HEAD\n", 0);
		return;
	}
	plen = strcspn(sp1 + 1, " ?");
	if (plen != 8 || strncmp(sp1 + 1, "/metrics", 8) != 0) {
		answer_error(m, c, minor, "404 Not Found", "",
		             "not found: the metrics are at /metrics\n", head_only);
		return;
	}
	if (fdp__metrics_render(m, &text, &len) < 0) {
		answer_error(m, c, minor, "500 Internal Server Error", "", "out of memory\n",
		             head_only);
		return;
	}
	answer(m, c, minor, "200 OK", "", CONTENT_TYPE, text, len, head_only);
	free(text);
}

/* The request head ends with an empty line (CRLF CRLF, or a bare LF LF from a lax client). */
static int head_complete(const struct client *c)
{
	return strstr(c->head, "\r\n\r\n") || strstr(c->head, "\n\n");
}

static void client_read(struct fdp_master *m, struct client *c)
{
	for (;;) {
		ssize_t n =
		        recv(c->fd, c->head + c->headlen, HEAD_MAX - 1 - c->headlen, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) { /* gone, or half-closed, before a whole request: nothing to answer */
			client_close(m, c);
			return;
		}
		c->headlen += (size_t)n;
		c->head[c->headlen] = '\0';
		if (memchr(c->head + c->headlen - (size_t)n, '\0', (size_t)n)) {
			answer_error(m, c, 1, "400 Bad Request", "", "bad request\n", 0);
			return;
		}
		if (head_complete(c)) {
			respond(m, c);
			return;
		}
		if (c->headlen == HEAD_MAX - 1) {
			answer_error(m, c, 1, "431 Request Header Fields Too Large", "",
			             "request head too large\n", 0);
			return;
		}
	}
}

/* Read and drop what the client still sends after its answer, until it closes. */
static void client_linger(struct fdp_master *m, struct client *c)
{
	char drop[4096];

	for (int k = 0; k < 16; k++) { /* bounded per wakeup; level-triggered, it comes back */
		ssize_t n = recv(c->fd, drop, sizeof(drop), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			client_close(m, c);
			return;
		}
	}
}

static void metrics_accept(struct fdp_master *m)
{
	struct fdp__metrics *x = m->metrics;
	struct fdp_accepted acc[MAX_CLIENTS];
	long long now = fdp__now_ms();
	int n = fdp_accept_batch(x->fd, acc, MAX_CLIENTS - x->nclients);

	if (n < 0 && n != -EAGAIN) {
		x->paused_until = now + FDP__EMFILE_PAUSE_MS;
		fdp__log_limited(m, &x->rl, FDP_LOG_WARN,
		                 "metrics: accept: %s; pausing it for %d ms", fdp_strerror(n),
		                 FDP__EMFILE_PAUSE_MS);
	}
	for (int i = 0, k = 0; i < n; i++) {
		struct client *c;

		while (x->c[k].fd >= 0) /* n is at most the free entries */
			k++;
		c = &x->c[k];
		c->fd = acc[i].fd;
		c->state = C_READING;
		c->headlen = 0;
		c->head[0] = '\0';
		c->deadline = now + READ_MS;
		x->nclients++;
		/*
		 * A slow reader holds its answer's buffer here, and no more: without this the
		 * kernel's autotuning (large on loopback) would give its socket megabytes too.
		 */
		setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &(int){SNDBUF}, sizeof(int));
		if (client_watch(m, c, EPOLL_CTL_ADD, EPOLLIN | EPOLLRDHUP) < 0)
			client_close(m, c);
		else
			client_read(m, c); /* the request is often there already */
	}
}

void fdp__metrics_event(struct fdp_master *m, struct fdp__watch *w, uint32_t events)
{
	struct client *c;

	if (!m->metrics)
		return;
	if (w->kind == W_METRICS) {
		metrics_accept(m);
		return;
	}
	c = &m->metrics->c[w->index];
	if (c->state == C_READING)
		client_read(m, c);
	else if (c->state == C_WRITING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		client_write(m, c);
	else if (c->state == C_LINGER)
		client_linger(m, c);
}

/*
 * Close the clients past their deadline, lower *next to the next one, and watch the listener
 * only while a client can be taken (and not during an accept pause).
 */
void fdp__metrics_timers(struct fdp_master *m, long long now, long long *next)
{
	struct fdp__metrics *x = m->metrics;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int on;

	if (!x)
		return;
	for (unsigned i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &x->c[i];

		if (c->fd < 0)
			continue;
		if (now >= c->deadline) {
			if (c->state != C_LINGER)
				fdp__log(m, FDP_LOG_DEBUG,
				         "metrics: closed a client that was too slow "
				         "to %s",
				         c->state == C_READING ? "send its request"
				                               : "read the answer");
			client_close(m, c);
		} else if (c->deadline < *next) {
			*next = c->deadline;
		}
	}
	if (now < x->paused_until && x->paused_until < *next)
		*next = x->paused_until;
	on = x->nclients < MAX_CLIENTS && now >= x->paused_until;
	if (on == x->registered)
		return;
	ev.data.ptr = &x->w;
	if (epoll_ctl(m->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, x->fd, &ev) == 0)
		x->registered = on;
}
