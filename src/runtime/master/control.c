/*
 * The control socket: a Unix stream socket (mode 0600) on which each client sends one command
 * line and the master answers it and closes the connection. A peer whose uid is neither the
 * server's nor root is refused at once (SO_PEERCRED), whatever the socket's file mode lets
 * through. The commands (docs/SERVE.md, "The control socket"):
 *
 *   status       the status: "master key=value ..." then "worker key=value ..." per worker
 *                process. A client that sends nothing, only closes its writing side or stays
 *                silent for FDP__CONTROL_READ_MS, gets the status too (the protocol before
 *                commands, which `socat - UNIX-CONNECT:PATH` still speaks).
 *   metrics      the metrics in Prometheus's text format (metrics.c; docs/SERVE.md,
 *                "Metrics"), as `fdpass serve --metrics` serves them over HTTP, then the line
 *                "# end of the metrics" (a comment, to parsers) that says they are whole.
 *   reload       read the configuration again and replace every worker, as SIGHUP does
 *                (reconfig.c); answered when the reload is complete: "ok ..." or "error ...",
 *                at once "error reload refused: WHY" when the configuration was refused.
 *   stop         drain and stop, as SIGTERM does (a second one stops at once); answered at
 *                once, "ok draining ...". "stop wait" is answered when the master has stopped.
 *   upgrade      start a new master, as SIGUSR2 does (upgrade.c); answered when it is ready,
 *                "ok upgraded: new master pid N ...", or rolled back, "error upgrade: ...".
 *
 * Every other answer starts with "ok" or "error". A client never holds the master: its command
 * is read without blocking, within FDP__CONTROL_LINE bytes and FDP__CONTROL_READ_MS, at most
 * FDP__CONTROL_CLIENTS at once (past it the socket is not accepted from until one leaves),
 * and every answer is written at once into the socket's buffer. What the command asks of the
 * loop (a stop) is flagged for it (m->want_stop): loop.c is above this file.
 */
#include "master.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* The last line of the answer to `metrics`. */
#define FDP_CONTROL_METRICS_END "# end of the metrics\n"

int fdp__control_open(struct fdp_master *m)
{
	int fd;

	m->ctlfd = -1;
	for (unsigned k = 0; k < FDP__CONTROL_CLIENTS; k++)
		m->ctl_clients[k].fd = -1;
	if (!m->cfg.control_path)
		return 0;
	/* An upgrade's old master answered on it until now: the same socket, never bound again. */
	fd = fdp__upgrade_take_control(m);
	if (fd >= 0 && fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		close(fd);
		return -errno;
	}
	if (fd < 0)
		fd = fdp_unix_listen(m->cfg.control_path, SOCK_STREAM | SOCK_NONBLOCK, 0600, 64);
	if (fd < 0)
		return fd;
	m->control_path = strdup(m->cfg.control_path);
	m->ctlfd = fd;
	m->wctl.kind = W_CONTROL; /* the loop watches it (update_listeners()) */
	return 0;
}

void fdp__control_close(struct fdp_master *m)
{
	for (unsigned k = 0; k < FDP__CONTROL_CLIENTS; k++)
		if (m->ctl_clients[k].fd >= 0) {
			close(m->ctl_clients[k].fd); /* its epoll registration goes with it */
			m->ctl_clients[k].fd = -1;
		}
	m->ctl_nclients = 0;
	if (m->ctlfd >= 0) {
		close(m->ctlfd);
		m->ctlfd = -1;
		/* Only the master removes the file: a worker forked from it must not, nor a master
		 * that handed the socket to an upgrade's new master (fdp__control_handed()). */
		if (m->control_path && m->control_path[0] != '@' && !m->in_child &&
		    !m->up.ctl_handed)
			unlink(m->control_path);
	}
	free(m->control_path);
	m->control_path = NULL;
}

/*
 * An upgrade's new master took the control socket (the loop has unwatched it): this master
 * accepts on it no more and leaves its file; the clients it has are answered as before.
 */
void fdp__control_handed(struct fdp_master *m)
{
	if (m->ctlfd < 0)
		return;
	close(m->ctlfd);
	m->ctlfd = -1;
}

struct text {
	char *buf;
	size_t len, cap;
	int short_of_memory; /* a line could not be added: the status is incomplete */
};

static __attribute__((format(printf, 2, 3))) void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		char *b = realloc(t->buf, t->cap * 2 + (size_t)n);

		if (!b) {
			t->short_of_memory = 1;
			return;
		}
		t->buf = b;
		t->cap = t->cap * 2 + (size_t)n;
	}
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* not the directory's own descriptor */
}

static void status_text(struct fdp_master *m, struct text *t)
{
	const char *state = fdp__stop_begun(m)              ? "stopping"
	                    : m->up.pid && !m->up.committed ? "upgrading"
	                    : m->reloading                  ? "reloading"
	                                                    : "running";
	unsigned nslots = m->cfg.workers;
	struct fdp__disp_row d;
	unsigned ndisps = fdp__disps_totals(m, &d);

	add(t,
	    "master pid=%d state=%s policy=%s workers=%u uptime_ms=%lld accepted=%llu "
	    "handed=%llu rehanded=%llu pending=%zu closed_no_worker=%llu closed_shutdown=%llu "
	    "closed_error=%llu ack_timeouts=%llu returned=%llu lost=%llu fds=%d\n",
	    (int)getpid(), state, fdp__policy_name(m->cfg.policy), m->cfg.workers,
	    fdp__now_ms() - m->start_ms, (unsigned long long)(m->conns.accepted + d.accepted),
	    (unsigned long long)(m->conns.handed + d.handed),
	    (unsigned long long)(m->conns.rehanded + d.rehanded), m->conns.pending.n,
	    (unsigned long long)(m->conns.closed[CLOSE_NO_WORKER] + d.closed[CLOSE_NO_WORKER]),
	    (unsigned long long)(m->conns.closed[CLOSE_SHUTDOWN] + d.closed[CLOSE_SHUTDOWN]),
	    (unsigned long long)(m->conns.closed[CLOSE_ERROR] + d.closed[CLOSE_ERROR]),
	    (unsigned long long)m->conns.ack_timeouts, (unsigned long long)m->conns.returned,
	    (unsigned long long)m->conns.lost, count_fds());
	/* Counted in the totals above: what the dispatchers took of them (disps.c). */
	if (m->dshared)
		add(t, "dispatchers wanted=%u running=%u accepted=%llu handed=%llu rehanded=%llu\n",
		    m->disps_wanted, ndisps, (unsigned long long)d.accepted,
		    (unsigned long long)d.handed, (unsigned long long)d.rehanded);
	for (const struct fdp__disp *x = m->disps; x; x = x->next)
		add(t, "dispatcher tag=%u pid=%d generation=%u state=%s accepted=%llu\n", x->tag,
		    (int)x->pid, x->generation, x->retiring ? "finishing" : "running",
		    (unsigned long long)__atomic_load_n(&m->dshared->row[x->tag].accepted,
		                                        __ATOMIC_RELAXED));
	if (m->router) {
		char line[512];

		fdp__route_status(m, line, sizeof(line));
		add(t, "%s", line);
	}
	if (m->kernel) {
		char line[128];

		fdp__kernel_status(m, line, sizeof(line));
		add(t, "%s", line);
	}
	/* Past the count too: a shrink's retired slots while their workers drain (reconfig.c). */
	for (struct fdp__proc *q = m->procs; q; q = q->next)
		if (q->slot >= nslots)
			nslots = q->slot + 1;
	for (unsigned i = 0; i < nslots; i++) {
		struct fdp__slot *s = &m->slots[i];

		/* The slot's processes, oldest first (a reload runs two at once). */
		for (unsigned last = 0;;) {
			struct fdp__proc *p = NULL;

			for (struct fdp__proc *q = m->procs; q; q = q->next)
				if (q->slot == i && q->generation > last &&
				    (!p || q->generation < p->generation))
					p = q;
			if (!p)
				break;
			last = p->generation;
			add(t,
			    "worker index=%u pid=%d generation=%u state=%s open=%llu served=%llu "
			    "restarts=%u\n",
			    i, (int)p->pid, p->generation,
			    p->drain_pending ? "draining" : fdp__proc_state_name(p->state),
			    (unsigned long long)(p->open + fdp__proc_own_open(m, p)),
			    (unsigned long long)p->served,
			    s->restarts);
		}
		/* Waiting to be restarted (a retired slot is not): after any older one draining. */
		if (!s->proc && i < m->cfg.workers)
			add(t,
			    "worker index=%u pid=0 generation=%u state=backoff open=0 served=0 "
			    "restarts=%u\n",
			    i, s->generation, s->restarts);
	}
}

/* Whether the client on fd may use the control socket: root or the server's own uid. */
static int refused(struct fdp_master *m, int fd, struct text *t)
{
	struct fdp_cred cred = {0, 0, 0};

	if (fdp_peer_cred(fd, &cred) < 0) {
		fdp__log(m, FDP_LOG_WARN,
		         "control: refused a client whose credentials are unreadable");
		add(t, "error refused: the server cannot read this client's credentials\n");
		return 1;
	}
	if (cred.uid != geteuid() && cred.uid != 0) {
		fdp__log(m, FDP_LOG_WARN, "control: refused a client with uid %u (pid %d)",
		         (unsigned)cred.uid, (int)cred.pid);
		add(t, "error refused: uid %u is neither the server's nor root\n",
		    (unsigned)cred.uid);
		return 1;
	}
	return 0;
}

/*
 * Write t to fd and close it. Never wait for a client: the whole answer goes into the socket's
 * buffer at once, made as large as it needs (a reload of 1024 workers says ~200 KB). What the
 * kernel will not take is cut, and logged: a client reading a cut answer sees no final newline.
 */
static void send_close(struct fdp_master *m, int fd, struct text *t)
{
	size_t off = 0;

	if (t->short_of_memory) { /* never half an answer that looks whole */
		t->len = 0;
		t->short_of_memory = 0;
		add(t, "error out of memory\n");
	}
	if (t->len > 64 * 1024) {
		int size = t->len < (8u << 20) ? (int)t->len * 2 : 16 << 20;

		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	}
	while (off < t->len) {
		ssize_t n = send(fd, t->buf + off, t->len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off < t->len)
		fdp__log_limited(m, &m->rl_control, FDP_LOG_WARN,
		                 "control: answer cut short at %zu of %zu bytes", off, t->len);
	/*
	 * A socket closed with unread input resets the connection, and the client may then lose
	 * the answer: take what it sent beyond its command (a bounded amount) first.
	 */
	for (int i = 0; i < 16; i++) {
		char sink[4096];

		if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
			break;
	}
	close(fd);
}

static void client_free(struct fdp_master *m, struct fdp__ctl_client *c)
{
	if (c->fd < 0)
		return;
	if (c->watched)
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->watched = 0;
	c->waiting = CTL_READING;
	m->ctl_nclients--;
}

/* Answer client c with fmt and let it go. */
static __attribute__((format(printf, 3, 4))) void reply(struct fdp_master *m,
                                                        struct fdp__ctl_client *c,
                                                        const char *fmt, ...)
{
	struct text t = {malloc(4096), 0, 4096, 0};
	va_list ap;
	int fd = c->fd;

	client_free(m, c);
	c->fd = -1;
	if (!t.buf) {
		close(fd);
		return;
	}
	va_start(ap, fmt);
	if (vsnprintf(t.buf, t.cap, fmt, ap) >= 0)
		t.len = strnlen(t.buf, t.cap - 1);
	va_end(ap);
	send_close(m, fd, &t);
	free(t.buf);
}

static void answer_status(struct fdp_master *m, struct fdp__ctl_client *c)
{
	struct text t = {malloc(4096), 0, 4096, 0};
	int fd = c->fd;

	client_free(m, c);
	c->fd = -1;
	if (!t.buf) {
		close(fd);
		return;
	}
	status_text(m, &t);
	send_close(m, fd, &t);
	free(t.buf);
}

static void cmd_status(struct fdp_master *m, struct fdp__ctl_client *c, const char *arg)
{
	(void)arg;
	answer_status(m, c);
}

/*
 * The text ends with a comment line (which parsers skip) that says it is whole: an answer the
 * socket's buffer could not take is cut, maybe at a line's end, and must not pass for whole.
 */
static void cmd_metrics(struct fdp_master *m, struct fdp__ctl_client *c, const char *arg)
{
	struct text t = {NULL, 0, 0, 0};
	int fd = c->fd;

	(void)arg;
	if (fdp__metrics_render(m, &t.buf, &t.len) < 0) {
		reply(m, c, "error out of memory\n");
		return;
	}
	t.cap = t.len + 1;
	add(&t, FDP_CONTROL_METRICS_END);
	client_free(m, c);
	c->fd = -1;
	send_close(m, fd, &t);
	free(t.buf);
}

static void cmd_reload(struct fdp_master *m, struct fdp__ctl_client *c, const char *arg)
{
	(void)arg;
	if (fdp__stop_begun(m)) {
		reply(m, c, "error stopping: the server is stopping, there is nothing to reload\n");
		return;
	}
	fdp__log(m, FDP_LOG_INFO, "control: reload requested");
	/* A reload already running is followed by the one asked for here (fdp__reload()). */
	c->reload_target = m->reloads_done + (m->reloading ? 2 : 1);
	c->refused_base = m->reloads_refused;
	c->waiting = CTL_WAIT_RELOAD;
	fdp__reconfigure(m); /* the configuration is read again first (cfg.reload) */
}

static void cmd_stop(struct fdp_master *m, struct fdp__ctl_client *c, const char *arg)
{
	int wait = strcmp(arg, "wait") == 0;

	if (*arg && !wait) {
		reply(m, c, "error usage: stop [wait]\n");
		return;
	}
	fdp__log(m, FDP_LOG_INFO, "control: stop requested");
	m->want_stop = 1;
	if (wait)
		c->waiting = CTL_WAIT_STOP;
	else
		reply(m, c, "ok %s\n",
		      fdp__stop_begun(m) ? "stopping now: killing every worker" : "draining");
}

/* upgrade.c: the new master is ready (0), or the upgrade was rolled back (-errno). */
static void upgrade_done(struct fdp_master *m, void *arg, int result)
{
	struct fdp__ctl_client *c = arg;

	if (c->fd < 0 || c->waiting != CTL_WAIT_UPGRADE)
		return;
	if (result == 0)
		reply(m, c, "ok upgraded: new master pid %d; this one (pid %d) drains and exits\n",
		      (int)m->up.pid, (int)getpid());
	else
		reply(m, c, "error upgrade: %s%s (see the server's log)\n",
		      result == -ETIMEDOUT   ? "the new master was not ready in time"
		      : result == -ECHILD    ? "the new master exited before it was ready"
		      : result == -ECANCELED ? "this master is stopping"
		                             : fdp_strerror(result),
		      result == -ECANCELED ? "" : "; this master serves on");
}

static void cmd_upgrade(struct fdp_master *m, struct fdp__ctl_client *c, const char *arg)
{
	int err;

	(void)arg;
	fdp__log(m, FDP_LOG_INFO, "control: upgrade requested");
	c->waiting = CTL_WAIT_UPGRADE; /* answered by upgrade_done(), also when it fails now */
	err = fdp__upgrade_start(m, upgrade_done, c);
	if (err == -EBUSY)
		reply(m, c, "error upgrade: an upgrade is running already\n");
	else if (err == -ENOTSUP)
		reply(m, c, "error upgrade: upgrades are off in this server\n");
	else if (err == -ESHUTDOWN)
		reply(m, c, "error stopping: the server is stopping\n");
	else if (err < 0)
		reply(m, c, "error upgrade: cannot start a new master: %s\n", fdp_strerror(err));
}

static const struct {
	const char *name;
	void (*run)(struct fdp_master *m, struct fdp__ctl_client *c, const char *arg);
} commands[] = {
        {"status", cmd_status},
        {"metrics", cmd_metrics},
        {"reload", cmd_reload},
        {"stop", cmd_stop},
        {"upgrade", cmd_upgrade},
};

/* The line c has read ("" for none): run its command. */
static void run_command(struct fdp_master *m, struct fdp__ctl_client *c)
{
	char *line = c->line, *arg;
	size_t n;

	line[c->len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	line += strspn(line, " \t");
	n = strcspn(line, " \t");
	arg = line + n + strspn(line + n, " \t");
	if (n == 0) {
		answer_status(m, c);
		return;
	}
	/* The watch stays off from here: a command waiting for its answer reads nothing more. */
	if (c->watched)
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->watched = 0;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strlen(commands[i].name) == n && strncmp(commands[i].name, line, n) == 0) {
			commands[i].run(m, c, arg);
			return;
		}
	line[n] = '\0';
	reply(m, c, "error unknown command '%.32s' (status, metrics, reload, stop, upgrade)\n", line);
}

void fdp__control_accept(struct fdp_master *m)
{
	struct fdp_accepted acc[FDP__CONTROL_CLIENTS];
	int room = FDP__CONTROL_CLIENTS - (int)m->ctl_nclients;
	int n = room > 0 ? fdp_accept_batch(m->ctlfd, acc, room) : 0;
	long long now = fdp__now_ms();

	if (n < 0 && n != -EAGAIN)
		fdp__accept_failed(m, 1, n, &m->ctl_paused_until);
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
		struct fdp__ctl_client *c = NULL;
		struct text t = {malloc(256), 0, 256, 0};

		if (!t.buf || refused(m, acc[i].fd, &t)) {
			if (t.buf)
				send_close(m, acc[i].fd, &t);
			else
				close(acc[i].fd);
			free(t.buf);
			continue;
		}
		free(t.buf);
		for (unsigned k = 0; k < FDP__CONTROL_CLIENTS && !c; k++)
			if (m->ctl_clients[k].fd < 0)
				c = &m->ctl_clients[k];
		*c = (struct fdp__ctl_client){.fd = acc[i].fd,
		                              .deadline = now + FDP__CONTROL_READ_MS,
		                              .w = {.kind = W_CTLCLIENT, .index = (unsigned)(c - m->ctl_clients)}};
		m->ctl_nclients++;
		ev.data.ptr = &c->w;
		if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0)
			c->watched = 1;
		else
			run_command(m, c); /* cannot wait for its command: the status, as before */
	}
}

/* Client w's socket is readable: read its command line (or its end of file). */
void fdp__control_input(struct fdp_master *m, struct fdp__watch *w)
{
	struct fdp__ctl_client *c = &m->ctl_clients[w->index];
	ssize_t n;

	if (c->fd < 0 || c->waiting != CTL_READING)
		return;
	n = recv(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		c->len += (size_t)n;
		if (!memchr(c->line, '\n', c->len) && c->len < sizeof(c->line) - 1)
			return;
		if (!memchr(c->line, '\n', c->len)) {
			reply(m, c, "error command too long (at most %zu bytes)\n",
			      sizeof(c->line) - 2);
			return;
		}
	}
	run_command(m, c); /* a line, or end of file (or an error: then the answer is lost) */
}

/* Answer what has come due: a silent client, a finished reload, a stop. */
void fdp__control_timers(struct fdp_master *m, long long now, long long *next)
{
	for (unsigned k = 0; k < FDP__CONTROL_CLIENTS && m->ctl_nclients; k++) {
		struct fdp__ctl_client *c = &m->ctl_clients[k];

		if (c->fd < 0)
			continue;
		if (c->waiting == CTL_READING) {
			if (now >= c->deadline)
				run_command(m, c);
			else if (c->deadline < *next)
				*next = c->deadline;
		} else if (c->waiting == CTL_WAIT_RELOAD) {
			if (fdp__stop_begun(m))
				reply(m, c, "error stopping: the server began to stop before the "
				            "reload was complete\n");
			else if (m->reloads_refused != c->refused_base)
				reply(m, c,
				      "error reload refused: %s; the configuration in force stays, no "
				      "worker replaced\n",
				      m->refused_why);
			else if (m->reloads_done >= c->reload_target && m->last_reload_failed)
				reply(m, c,
				      "error reload: %u of %u worker(s) not replaced; they keep the "
				      "old program (see the server's log)\n",
				      m->last_reload_failed, m->cfg.workers);
			else if (m->reloads_done >= c->reload_target)
				reply(m, c, "ok reloaded: every worker replaced\n");
		}
	}
}

/* The master has stopped: a "stop wait" is answered, every other client let go. */
void fdp__control_stopped(struct fdp_master *m)
{
	for (unsigned k = 0; k < FDP__CONTROL_CLIENTS && m->ctl_nclients; k++) {
		struct fdp__ctl_client *c = &m->ctl_clients[k];

		if (c->fd < 0)
			continue;
		if (c->waiting == CTL_WAIT_STOP)
			reply(m, c, "ok stopped\n");
		else
			reply(m, c, "error stopping: the server has stopped\n");
	}
}
