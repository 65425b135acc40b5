/*
 * The control socket: a Unix stream socket (mode 0600) on which the master answers each
 * connection with its status and closes it. Nothing is read from the client, so a slow or
 * silent client cannot hold the master. A peer whose uid is neither the server's nor root is
 * refused (SO_PEERCRED), whatever the socket's file mode lets through. Format: one line per
 * object, "master key=value ..." then "worker key=value ..." per worker process; see
 * docs/SERVE.md.
 */
#include "master.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fdp__control_open(struct fdp_master *m)
{
	int fd;

	m->ctlfd = -1;
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
	if (m->ctlfd < 0)
		return;
	close(m->ctlfd);
	m->ctlfd = -1;
	/* Only the master removes the file: a worker forked from it must not, nor a master that
	 * handed the socket to an upgrade's new master. */
	if (m->control_path && m->control_path[0] != '@' && !m->in_child && !m->up.ctl_handed)
		unlink(m->control_path);
	free(m->control_path);
	m->control_path = NULL;
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
	const char *state = m->stopping                      ? "stopping"
	                    : m->up.pid && !m->up.committed ? "upgrading"
	                    : m->reloading                  ? "reloading"
	                                                    : "running";

	add(t,
	    "master pid=%d state=%s policy=%s workers=%u uptime_ms=%lld accepted=%llu "
	    "handed=%llu rehanded=%llu pending=%zu closed_no_worker=%llu closed_shutdown=%llu "
	    "closed_error=%llu ack_timeouts=%llu returned=%llu lost=%llu fds=%d\n",
	    (int)getpid(), state, fdp__policy_name(m->cfg.policy), m->cfg.workers,
	    fdp__now_ms() - m->start_ms, (unsigned long long)m->conns.accepted,
	    (unsigned long long)m->conns.handed, (unsigned long long)m->conns.rehanded,
	    m->conns.pending.n, (unsigned long long)m->conns.closed[CLOSE_NO_WORKER],
	    (unsigned long long)m->conns.closed[CLOSE_SHUTDOWN],
	    (unsigned long long)m->conns.closed[CLOSE_ERROR],
	    (unsigned long long)m->conns.ack_timeouts, (unsigned long long)m->conns.returned,
	    (unsigned long long)m->conns.lost, count_fds());
	if (m->router) {
		char line[512];

		fdp__route_status(m, line, sizeof(line));
		add(t, "%s", line);
	}
	for (unsigned i = 0; i < m->cfg.workers; i++) {
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
			    (unsigned long long)p->open, (unsigned long long)p->served,
			    s->restarts);
		}
		if (!s->proc) /* waiting to be restarted: after any older one still draining */
			add(t,
			    "worker index=%u pid=0 generation=%u state=backoff open=0 served=0 "
			    "restarts=%u\n",
			    i, s->generation, s->restarts);
	}
}

static void answer(struct fdp_master *m, int fd)
{
	struct fdp_cred cred = {0, 0, 0};
	struct text t = {malloc(4096), 0, 4096, 0};
	size_t off = 0;

	if (!t.buf)
		return;
	if (fdp_peer_cred(fd, &cred) < 0) {
		fdp__log(m, FDP_LOG_WARN,
		         "control: refused a client whose credentials are unreadable");
		add(&t, "error refused: the server cannot read this client's credentials\n");
	} else if (cred.uid != geteuid() && cred.uid != 0) {
		fdp__log(m, FDP_LOG_WARN, "control: refused a client with uid %u (pid %d)",
		         (unsigned)cred.uid, (int)cred.pid);
		add(&t, "error refused: uid %u is neither the server's nor root\n",
		    (unsigned)cred.uid);
	} else {
		status_text(m, &t);
	}
	if (t.short_of_memory) { /* never half a status that looks whole */
		t.len = 0;
		add(&t, "error out of memory\n");
	}
	/*
	 * Never wait for a client: the whole status goes into the socket's buffer at once, made
	 * as large as it needs (a reload of 1024 workers says ~200 KB). What the kernel will not
	 * take is cut, and logged: a client reading a cut status sees no final newline.
	 */
	if (t.len > 64 * 1024) {
		int size = t.len < (8u << 20) ? (int)t.len * 2 : 16 << 20;

		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	}
	while (off < t.len) {
		ssize_t n = send(fd, t.buf + off, t.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off < t.len)
		fdp__log_limited(m, &m->rl_control, FDP_LOG_WARN,
		                 "control: status cut short at %zu of %zu bytes", off, t.len);
	free(t.buf);
}

void fdp__control_accept(struct fdp_master *m)
{
	struct fdp_accepted acc[16];
	int n = fdp_accept_batch(m->ctlfd, acc, 16);

	if (n < 0 && n != -EAGAIN)
		fdp__accept_failed(m, 1, n, &m->ctl_paused_until);
	for (int i = 0; i < n; i++) {
		answer(m, acc[i].fd);
		close(acc[i].fd);
	}
}
