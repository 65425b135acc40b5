/*
 * One thread's loop: a fixed number of connection slots on one epoll instance. Each slot
 * connects, sends the request, reads until the server closes, judges the response and starts
 * over (the closed loop), or, with a rate (the open loop), waits until the next connection is
 * due: connections then start at fixed intervals whatever the server does, each timed from
 * when it was due, so that a slow answer delays the latency of those behind it instead of
 * the load (no coordinated omission). Sockets are non-blocking and registered once,
 * edge-triggered for both directions, so a connection costs one epoll_ctl() however its
 * events fall.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

#define LOOP_EVENTS     256
#define LOOP_SCAN_NS    10000000ull /* how often in-flight connections are checked for timeout */
#define LOOP_READ_CHUNK 16384

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_SENDING, CONN_RECEIVING };

struct conn {
	int fd;
	enum conn_state state;
	uint64_t start_ns;
	int heavy;    /* this request is for --heavy's path */
	unsigned key; /* --keys: which of the keyed requests it sends */
	size_t sent;
	size_t got;
	unsigned char *buf; /* response_cap + 1 bytes: one more than fits means a wrong response */
};

struct loop {
	const struct load_config *cfg;
	struct load_job *job;
	int ep;
	struct conn *conns;
	unsigned *idle; /* stack of idle slot indices */
	unsigned nidle;
	uint64_t started;
	uint64_t now;
	uint64_t timeout_ns;
	uint64_t end_ns;  /* duration mode: stop and abandon in-flight requests */
	uint64_t hard_ns; /* never run past this, whatever the mode */
	uint64_t interval_ns, next_ns; /* open loop: between two connections; the next one's */
	bool stopping;
};

static enum load_err err_kind(int err)
{
	switch (err) {
	case ECONNREFUSED:
	case EAGAIN: /* a non-blocking connect to a Unix socket whose listen queue is full */
		return LOAD_ERR_REFUSED;
	case ECONNRESET:
	case EPIPE:
		return LOAD_ERR_RESET;
	case ETIMEDOUT:
		return LOAD_ERR_TIMEOUT;
	case EADDRNOTAVAIL:
		return LOAD_ERR_PORTS;
	default:
		return LOAD_ERR_OTHER;
	}
}

/* End a connection. kind < 0: success; LOAD_ERR_COUNT: abandoned at the deadline, not counted. */
static void conn_end(struct loop *l, struct conn *c, int kind, int tag)
{
	struct load_stats *st = &l->job->stats;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = CONN_IDLE;
	l->idle[l->nidle++] = (unsigned)(c - l->conns);
	if (kind == LOAD_ERR_COUNT)
		return;
	if (kind >= 0) {
		st->errors[kind]++;
		return;
	}
	st->completed++;
	load_hist_add(&st->lat, l->now - c->start_ns);
	if (l->cfg->heavy_path) {
		st->heavy += (uint64_t)c->heavy;
		load_hist_add(c->heavy ? &st->lat_heavy : &st->lat_light, l->now - c->start_ns);
	}
	if (tag >= 0 && tag < LOAD_MAX_TAGS) {
		st->tags[tag]++;
		st->tagged++;
	}
}

static void conn_start(struct loop *l, struct conn *c, uint64_t due)
{
	const struct load_config *cfg = l->cfg;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};

	/* Heavy when this connection takes the share past the next whole one: heavy_permille of
	 * every thousand, evenly spaced. */
	c->heavy = cfg->heavy_path && (l->started + 1) * cfg->heavy_permille / 1000 >
	                                      l->started * cfg->heavy_permille / 1000;
	c->key = cfg->keys ? (unsigned)(l->started % cfg->keys) : 0;
	l->started++;
	c->start_ns = due;
	c->sent = c->got = 0;
	c->fd = socket(cfg->target.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_end(l, c, err_kind(errno), -1);
		return;
	}
	if (connect(c->fd, (const struct sockaddr *)&cfg->target.addr, cfg->target.len) < 0 &&
	    errno != EINPROGRESS) {
		conn_end(l, c, err_kind(errno), -1);
		return;
	}
	c->state = CONN_CONNECTING;
	ev.data.u32 = (uint32_t)(c - l->conns);
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		conn_end(l, c, err_kind(errno), -1);
}

/* Returns 0 when the whole request is out, -EAGAIN to wait for room, or another -errno. */
static int conn_send(struct loop *l, struct conn *c)
{
	const struct load_config *cfg = l->cfg;
	const unsigned char *req = cfg->request;
	size_t len = cfg->request_len;

	if (c->heavy) {
		req = cfg->heavy_request;
		len = cfg->heavy_request_len;
	} else if (cfg->keys) {
		req = cfg->keyed[c->key];
		len = cfg->keyed_len[c->key];
	}

	while (c->sent < len) {
		ssize_t n = send(c->fd, req + c->sent, len - c->sent, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		c->sent += (size_t)n;
	}
	return 0;
}

/* Returns 1 at EOF, 0 when the socket is drained, -EMSGSIZE when too much came, or -errno. */
static int conn_recv(struct loop *l, struct conn *c)
{
	size_t cap = l->cfg->response_cap + 1;

	for (;;) {
		size_t room = cap - c->got;
		ssize_t n;

		if (room == 0)
			return -EMSGSIZE;
		n = read(c->fd, c->buf + c->got, room < LOOP_READ_CHUNK ? room : LOOP_READ_CHUNK);
		if (n == 0)
			return 1;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		c->got += (size_t)n;
	}
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err ? err : ECONNRESET;
}

static void conn_receive(struct loop *l, struct conn *c)
{
	int r = conn_recv(l, c), tag;

	if (r == 0)
		return;
	if (r == -EMSGSIZE) {
		conn_end(l, c, LOAD_ERR_WRONG, -1);
		return;
	}
	if (r < 0) {
		conn_end(l, c, err_kind(-r), -1);
		return;
	}
	r = load_response_check(l->cfg, c->buf, c->got, &tag);
	conn_end(l, c, r, tag);
}

static void conn_event(struct loop *l, struct conn *c, uint32_t events)
{
	int r;

	if (c->state == CONN_CONNECTING) {
		if ((events & EPOLLERR) || !(events & EPOLLOUT)) {
			conn_end(l, c, err_kind(sock_error(c->fd)), -1);
			return;
		}
		c->state = CONN_SENDING;
	}
	if (c->state == CONN_SENDING) {
		r = conn_send(l, c);
		if (r == -EAGAIN)
			return;
		if (r < 0) {
			conn_end(l, c, err_kind(-r), -1);
			return;
		}
		/* An echo request ends with a half-close: servers that read the length prefix stop
		 * there anyway, and a stream echo (fdpass serve --handler echo) learns the request
		 * is over, echoes it, and closes. */
		if (l->cfg->check == LOAD_CHECK_ECHO)
			shutdown(c->fd, SHUT_WR);
		c->state = CONN_RECEIVING;
	}
	/* Edge-triggered: a response that arrives later raises its own event, and an event that
	 * only says the send buffer has room again needs no read. */
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		conn_receive(l, c);
}

static void loop_end_all(struct loop *l, int kind)
{
	for (unsigned i = 0; i < l->job->concurrency; i++)
		if (l->conns[i].state != CONN_IDLE)
			conn_end(l, &l->conns[i], kind, -1);
}

static void loop_scan_timeouts(struct loop *l)
{
	for (unsigned i = 0; i < l->job->concurrency; i++) {
		struct conn *c = &l->conns[i];
		if (c->state != CONN_IDLE && l->now - c->start_ns >= l->timeout_ns)
			conn_end(l, c, LOAD_ERR_TIMEOUT, -1);
	}
}

static void loop_refill(struct loop *l)
{
	/* Each idle slot gets one try per pass, so failing connects cannot spin here forever. */
	unsigned tries = l->nidle;

	while (tries-- > 0 && l->nidle > 0 && !l->stopping) {
		if (l->job->count && l->started >= l->job->count)
			return;
		if (l->interval_ns) {
			/* Open loop: every connection that is due, each timed from its due time. */
			if (l->next_ns > l->now)
				return;
			if (l->now - l->next_ns > 1000000)
				l->job->stats.late++; /* over 1 ms: no slot was free when it was due */
			conn_start(l, &l->conns[l->idle[--l->nidle]], l->next_ns);
			l->next_ns += l->interval_ns;
			continue;
		}
		conn_start(l, &l->conns[l->idle[--l->nidle]], l->now);
	}
}

/* The open loop's wait: until the next connection is due if a slot is free for it. */
static int loop_wait(struct loop *l, struct epoll_event *ev, int max, uint64_t next_scan)
{
	uint64_t until = next_scan;
	struct timespec ts;

	if (l->end_ns && l->end_ns < until)
		until = l->end_ns;
	if (l->nidle > 0 && l->next_ns < until)
		until = l->next_ns;
	if (until <= l->now)
		until = l->now;
	ts.tv_sec = (time_t)((until - l->now) / 1000000000u);
	ts.tv_nsec = (long)((until - l->now) % 1000000000u);
	return epoll_pwait2(l->ep, ev, max, &ts, NULL);
}

/* Until when epoll_wait may sleep, in milliseconds. */
static int loop_wait_ms(const struct loop *l, uint64_t next_scan)
{
	uint64_t until = next_scan;

	if (l->end_ns && l->end_ns < until)
		until = l->end_ns;
	if (until <= l->now)
		return 0;
	return (int)((until - l->now + 999999) / 1000000);
}

static void loop_run(struct loop *l)
{
	struct epoll_event ev[LOOP_EVENTS];
	uint64_t next_scan = l->now + LOOP_SCAN_NS;

	loop_refill(l);
	/* The closed loop ends when no connection is left (a count reached); the open one at
	 * its deadline, or once its count has started and finished. */
	while (l->nidle < l->job->concurrency ||
	       (l->interval_ns && !(l->job->count && l->started >= l->job->count))) {
		int n = l->interval_ns ? loop_wait(l, ev, LOOP_EVENTS, next_scan)
		                       : epoll_wait(l->ep, ev, LOOP_EVENTS, loop_wait_ms(l, next_scan));

		l->now = load_now_ns();
		for (int i = 0; i < n; i++)
			conn_event(l, &l->conns[ev[i].data.u32], ev[i].events);
		if (l->end_ns && l->now >= l->end_ns) {
			l->stopping = true;
			loop_end_all(l, LOAD_ERR_COUNT);
			break;
		}
		if (l->now >= l->hard_ns) {
			l->stopping = true;
			loop_end_all(l, LOAD_ERR_TIMEOUT);
			break;
		}
		if (l->now >= next_scan) {
			loop_scan_timeouts(l);
			next_scan = l->now + LOOP_SCAN_NS;
		}
		loop_refill(l);
	}
	l->job->end_ns = l->now;
}

static int loop_init(struct loop *l, struct load_job *job)
{
	const struct load_config *cfg = job->cfg;

	memset(l, 0, sizeof(*l));
	l->cfg = cfg;
	l->job = job;
	l->now = job->start_ns;
	l->timeout_ns = (uint64_t)(cfg->timeout_s * 1e9);
	l->end_ns = cfg->duration_s > 0 ? job->start_ns + (uint64_t)(cfg->duration_s * 1e9) : 0;
	l->hard_ns = job->start_ns + (uint64_t)(cfg->max_time_s * 1e9);
	if (job->rate > 0) {
		l->interval_ns = (uint64_t)(1e9 / job->rate);
		if (l->interval_ns == 0)
			l->interval_ns = 1;
		l->next_ns = job->start_ns;
	}
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	l->conns = calloc(job->concurrency, sizeof(*l->conns));
	l->idle = calloc(job->concurrency, sizeof(*l->idle));
	if (l->ep < 0 || !l->conns || !l->idle)
		return -ENOMEM;
	for (unsigned i = job->concurrency; i-- > 0;) {
		l->conns[i].fd = -1;
		l->conns[i].buf = malloc(cfg->response_cap + 1);
		if (!l->conns[i].buf)
			return -ENOMEM;
		l->idle[l->nidle++] = i;
	}
	return 0;
}

static void loop_free(struct loop *l)
{
	if (l->conns)
		for (unsigned i = 0; i < l->job->concurrency; i++)
			free(l->conns[i].buf);
	free(l->conns);
	free(l->idle);
	if (l->ep >= 0)
		close(l->ep);
}

/* Thread entry: run job (a struct load_job) to its end; failures to set up go in job->error. */
void *load_job_run(void *arg)
{
	struct load_job *job = arg;
	struct loop l;

	job->error = loop_init(&l, job);
	if (job->error == 0)
		loop_run(&l);
	else
		job->end_ns = load_now_ns();
	loop_free(&l);
	return NULL;
}
