/*
 * A hot upgrade: a new master replaces this one without refusing a connection
 * (docs/OPERATIONS.md, Upgrade; the messages in docs/PROTOCOL.md).
 *
 * The old master (fdp__upgrade_start(), on SIGUSR2) forks and executes cfg.upgrade_argv in a
 * session of its own, with its end of a SOCK_SEQPACKET socketpair in FDPASS_UPGRADE_FD, and
 * sends it one HANDOVER message with every listener and the control socket (SCM_RIGHTS), each
 * with its kind, index and name. The new master binds nothing it was handed, starts its
 * workers and, once they are all ready, answers READY with what it took. Only then does the
 * old one stop (loop.c: it stops accepting, closes its copies of what was taken without
 * removing a file or filtering a handshake, and drains its workers with HANDBACK), forwards
 * each idle keep-alive connection they hand back (CONN), says END and exits. The listening
 * sockets are open in one master or both at every moment, so the kernel refuses nothing and
 * resets nothing queued.
 *
 * A new master that exits, closes the socket, or is not ready by the deadline is killed (its
 * process group: it is its own session's leader) and reaped, and this one serves on.
 *
 * Both masters' sides are in this one file, so that each message's writer and its reader sit
 * side by side. Called by loop.c and control.c; calls route_policy.c, conns.c and log.c.
 */
#include "master.h"
#include "steer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define UP_ENV        "FDPASS_UPGRADE_FD"
#define UP_CHILD_FD   3     /* where the new master finds its end of the socketpair */
#define UP_NAME_MAX   511   /* a handed socket's name, bytes */
#define UP_MSG_MAX    65536 /* the HANDOVER message, bytes */
#define UP_SEND_WAIT  1000  /* ms a forwarded connection may wait for room on the socket */
#define UP_TIMEOUT_MS 60000
#define UP_EXIT_WAIT  1000 /* ms a new master that closed its socket has to exit */

/* What an old master handed over, as the new one received it (public: fdp_upgrade_*). */
struct fdp_upgrade_item {
	int kind;
	unsigned index; /* the old master's listener index */
	int fd;         /* -1 once taken */
	int taken;
	int taken_fd; /* the descriptor it was, now the taker's */
	int shared;   /* the old master had it from another keeper (systemd): so does this one */
	char name[UP_NAME_MAX + 1];
};

struct fdp_upgrade {
	int sock; /* to the old master: the new master's once given to fdp_master_open() */
	size_t n;
	struct fdp_upgrade_item item[FDP__UP_MAX_SOCKETS];
};

/* ------------------------------------------------------------------ the new master's side */

static int recv_wait(int sock, int timeout_ms)
{
	struct pollfd p = {.fd = sock, .events = POLLIN};
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r == 0 ? -ETIMEDOUT : 0;
}

static int parse_handover(struct fdp_upgrade *u, const unsigned char *b, size_t len, int *fds,
                          size_t nfds)
{
	size_t off = 4, count;

	if (len < 4 || b[0] != FDP__UP_HANDOVER || b[1] != 1)
		return -EPROTO;
	count = fdp__get16(b + 2);
	if (count != nfds)
		return -EPROTO;
	for (size_t i = 0; i < count; i++) {
		struct fdp_upgrade_item *it = &u->item[i];
		size_t nlen;

		if (len - off < 6)
			return -EPROTO;
		nlen = fdp__get16(b + off + 4);
		if (nlen > UP_NAME_MAX || len - off - 6 < nlen)
			return -EPROTO;
		it->kind = b[off];
		it->shared = b[off + 1] & FDP__UP_FLAG_SHARED;
		it->index = fdp__get16(b + off + 2);
		memcpy(it->name, b + off + 6, nlen);
		it->name[nlen] = '\0';
		it->fd = fds[i];
		fds[i] = -1;
		u->n = i + 1; /* a later entry's failure leaves this one to fdp_upgrade_free() */
		off += 6 + nlen;
	}
	return 0;
}

int fdp_upgrade_receive(struct fdp_upgrade **out, int timeout_ms)
{
	const char *env = getenv(UP_ENV);
	struct fdp_upgrade *u;
	unsigned char *buf;
	int fds[FDP__UP_MAX_SOCKETS], sock, err;
	struct fdp_msg msg;
	char *end;
	long v;

	*out = NULL;
	if (!env)
		return 0;
	errno = 0;
	v = strtol(env, &end, 10);
	err = !*env || *end || errno || v < 0 || v > 65535 ? -EINVAL : 0;
	unsetenv(UP_ENV); /* the workers must not take it for theirs */
	if (err < 0)
		return err;
	sock = (int)v;
	if (fcntl(sock, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	u = calloc(1, sizeof(*u));
	buf = malloc(UP_MSG_MAX);
	if (!u || !buf) {
		free(u);
		free(buf);
		close(sock);
		return -ENOMEM;
	}
	u->sock = sock;
	msg = (struct fdp_msg){
	        .data = buf, .len = UP_MSG_MAX, .fds = fds, .nfds = FDP__UP_MAX_SOCKETS};
	err = recv_wait(sock, timeout_ms);
	if (err == 0)
		err = fdp_msg_recv(sock, &msg, MSG_DONTWAIT);
	if (err == 0)
		err = -EPIPE;
	if (err > 0) {
		err = msg.flags ? -EPROTO : parse_handover(u, buf, msg.len, fds, msg.nfds);
		fdp_close_fds(fds, err < 0 ? msg.nfds : 0);
	}
	free(buf);
	if (err < 0) {
		fdp_upgrade_free(u);
		return err;
	}
	*out = u;
	return 1;
}

/* name as the old master named it, or as it is bound (a listener handed without a name). */
static int item_is(struct fdp_upgrade_item *it, int kind, const char *name)
{
	char addr[FDP_ADDR_STRLEN];

	if (it->kind != kind || it->fd < 0)
		return 0;
	if (strcmp(it->name, name) == 0)
		return 1;
	return kind != FDP__UP_KIND_CONTROL && fdp_addr_local(it->fd, addr, sizeof(addr)) > 0 &&
	       strcmp(addr, name) == 0;
}

/* Take item it (its descriptor the taker's from now on). */
static int take_item(struct fdp_upgrade_item *it)
{
	int fd = it->fd;

	it->fd = -1;
	it->taken = 1;
	it->taken_fd = fd;
	return fd;
}

static int steer_policy_by_name(const char *name)
{
	for (int p = FDP__STEER_ROUND_ROBIN; p <= FDP__STEER_HASH; p++)
		if (strcmp(name, fdp__steer_policy_name((enum fdp__steer_policy)p)) == 0)
			return p;
	return -1;
}

static int take(struct fdp_upgrade *u, int kind, const char *name)
{
	for (size_t i = 0; u && i < u->n; i++) {
		struct fdp_upgrade_item *it = &u->item[i];

		if (item_is(it, kind, name))
			return take_item(it);
	}
	return -ENOENT;
}

int fdp_upgrade_take_listener(struct fdp_upgrade *u, const char *name)
{
	return take(u, FDP__UP_KIND_LISTENER, name);
}

int fdp_upgrade_take_metrics(struct fdp_upgrade *u, const char *name)
{
	return take(u, FDP__UP_KIND_METRICS, name);
}

int fdp_upgrade_shared(const struct fdp_upgrade *u, int fd)
{
	for (size_t i = 0; u && fd >= 0 && i < u->n; i++)
		if (u->item[i].taken && u->item[i].taken_fd == fd)
			return u->item[i].shared;
	return 0;
}

void fdp_upgrade_free(struct fdp_upgrade *u)
{
	if (!u)
		return;
	/* Not taken: the old master's still, which closes it (and its file) when it stops. */
	for (size_t i = 0; i < u->n; i++)
		if (u->item[i].fd >= 0)
			close(u->item[i].fd);
	if (u->sock >= 0)
		close(u->sock);
	free(u);
}

/* control.c: the control socket the old master answered on, when this one's has its path. */
int fdp__upgrade_take_control(struct fdp_master *m)
{
	int fd = m->cfg.control_path
	                 ? take(m->up.from, FDP__UP_KIND_CONTROL, m->cfg.control_path)
	                 : -ENOENT;

	if (fd >= 0)
		m->up.ctl_handed = 1; /* the old master's file until this one says READY */
	return fd;
}

int fdp__upgrade_took(const struct fdp_master *m, int fd)
{
	const struct fdp_upgrade *u = m->up.from;

	for (size_t i = 0; u && fd >= 0 && i < u->n; i++)
		if (u->item[i].taken && u->item[i].taken_fd == fd)
			return 1;
	return 0;
}

int fdp__upgrade_take_steer(struct fdp_master *m, int fd, struct fdp__kparts **out)
{
	struct fdp_upgrade *u = m->up.from;
	struct fdp__kparts *k;
	unsigned old_index = 0, slots = 1, found = 0, want;
	int have = 0;

	*out = NULL;
	for (size_t i = 0; u && i < u->n; i++)
		if (u->item[i].kind == FDP__UP_KIND_LISTENER && u->item[i].taken &&
		    u->item[i].taken_fd == fd) {
			old_index = u->item[i].index;
			have = 1;
		}
	for (size_t i = 0; have && i < u->n; i++) {
		unsigned slot;

		if (u->item[i].kind == FDP__UP_KIND_STEER && u->item[i].index == old_index &&
		    sscanf(u->item[i].name, "slot:%u", &slot) == 1 && slot < FDP__STEER_MAX_SLOTS &&
		    slot + 1 > slots)
			slots = slot + 1;
	}
	if (!have)
		return 0;
	k = calloc(1, sizeof(*k));
	if (!k || !(k->fds = malloc(slots * sizeof(int)))) {
		free(k);
		return -ENOMEM;
	}
	k->slots = slots;
	k->prog = k->sockarray = k->state = k->policy = -1;
	for (unsigned s = 0; s < slots; s++)
		k->fds[s] = -1;
	/* Whole or not at all: what is not taken stays the old master's (fdp_upgrade_free()). */
	want = slots - 1 + 3;
	for (size_t i = 0; i < u->n; i++) {
		struct fdp_upgrade_item *it = &u->item[i];
		unsigned slot;
		char policy[32];

		if (it->kind != FDP__UP_KIND_STEER || it->index != old_index || it->fd < 0)
			continue;
		if (sscanf(it->name, "slot:%u", &slot) == 1 && slot >= 1 && slot < slots &&
		    k->fds[slot] < 0)
			k->fds[slot] = it->fd, found++;
		else if (sscanf(it->name, "prog:%31s", policy) == 1 && k->prog < 0 &&
		         (k->policy = steer_policy_by_name(policy)) >= 0)
			k->prog = it->fd, found++;
		else if (strcmp(it->name, "sockarray") == 0 && k->sockarray < 0)
			k->sockarray = it->fd, found++;
		else if (strcmp(it->name, "state") == 0 && k->state < 0)
			k->state = it->fd, found++;
	}
	if (found != want) {
		free(k->fds);
		free(k);
		return 0;
	}
	for (size_t i = 0; i < u->n; i++)
		if (u->item[i].kind == FDP__UP_KIND_STEER && u->item[i].index == old_index &&
		    u->item[i].fd >= 0)
			take_item(&u->item[i]);
	k->fds[0] = fd;
	*out = k;
	return 0;
}

void fdp__upgrade_untake_steer(struct fdp_master *m, struct fdp__kparts *k)
{
	struct fdp_upgrade *u = m->up.from;
	int mine[FDP__STEER_MAX_SLOTS + 3];
	size_t n = 0;

	for (unsigned s = 1; s < k->slots; s++)
		mine[n++] = k->fds[s];
	mine[n++] = k->prog;
	mine[n++] = k->sockarray;
	mine[n++] = k->state;
	for (size_t i = 0; u && i < u->n; i++)
		for (size_t j = 0; j < n; j++)
			if (u->item[i].taken && u->item[i].kind == FDP__UP_KIND_STEER &&
			    u->item[i].taken_fd == mine[j]) {
				u->item[i].fd = mine[j];
				u->item[i].taken = 0;
			}
	free(k->fds);
	free(k);
}

/*
 * This master has said READY: the old one stops, and what this one took from it is its own
 * from now on (its files removed and its listeners filtered at its own stop).
 */
static void own_what_was_taken(struct fdp_master *m)
{
	for (size_t i = 0; i < m->nlisteners; i++)
		m->listeners[i].handed = 0;
	m->up.ctl_handed = 0;
	fdp__kernel_defer(m); /* and the listeners' deferral */
	fdp__kernel_flag(m); /* the steered groups' slots are this master's to decide now */
	fdp__metrics_owned(m);
	fdp__disps_owned(m); /* a new master's dispatchers start now */
}

static void watch(struct fdp_master *m, int fd, struct fdp__watch *w, unsigned index, int on)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};

	*w = (struct fdp__watch){.kind = W_UPGRADE, .index = index};
	if (fd >= 0 && m->epfd >= 0)
		epoll_ctl(m->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev);
}

/* The new master's first loop round: what it was not handed it has bound; the rest goes. */
static void from_start(struct fdp_master *m)
{
	struct fdp_upgrade *u = m->up.from;

	for (size_t i = 0; i < u->n; i++)
		if (u->item[i].fd >= 0) {
			close(u->item[i].fd);
			u->item[i].fd = -1;
		}
	m->up.from_sock = u->sock;
	u->sock = -1;
	watch(m, m->up.from_sock, &m->up.wfrom, 2, 1);
}

static void from_close(struct fdp_master *m)
{
	if (m->up.from_sock < 0)
		return;
	watch(m, m->up.from_sock, &m->up.wfrom, 2, 0);
	close(m->up.from_sock);
	m->up.from_sock = -1;
}

/* Every worker is ready: tell the old master, with what this one took. */
static void say_ready(struct fdp_master *m)
{
	struct fdp_upgrade *u = m->up.from;
	unsigned char b[8 + FDP__UP_MAX_SOCKETS];
	struct fdp_msg msg = {.data = b, .len = 8 + u->n};
	ssize_t r;

	b[0] = FDP__UP_READY;
	b[1] = 0;
	fdp__put16(b + 2, (uint16_t)u->n);
	fdp__put32(b + 4, (uint32_t)getpid());
	for (size_t i = 0; i < u->n; i++)
		b[8 + i] = (unsigned char)u->item[i].taken;
	m->up.said_ready = 1;
	r = fdp_msg_send(m->up.from_sock, &msg, MSG_DONTWAIT);
	if (r < 0) {
		fdp__log(m, FDP_LOG_WARN,
		         "upgrade: cannot tell the old master this one is ready: %s",
		         fdp_strerror((int)r));
		from_close(m);
		return;
	}
	own_what_was_taken(m);
	fdp__log(m, FDP_LOG_INFO, "upgrade: ready, took %zu socket(s) from the old master", u->n);
}

/* The master listener that came from the old master's listener index, or -1. */
static int listener_from(struct fdp_master *m, unsigned old_index)
{
	for (size_t i = 0; i < m->up.from->n; i++) {
		struct fdp_upgrade_item *it = &m->up.from->item[i];

		if (it->kind == FDP__UP_KIND_LISTENER && it->index == old_index && it->taken)
			return it->taken_fd;
	}
	return -1;
}

/* A keep-alive connection of the old generation: served here like a new one. */
static void from_conn(struct fdp_master *m, const unsigned char *b, size_t len, int fd)
{
	struct fdp_accepted a = {.fd = fd};
	struct fdp__conn lent;
	int at = len >= 14 ? listener_from(m, fdp__get16(b + 2)) : -1;
	size_t plen = len >= 14 ? fdp__get16(b + 12) : 0;

	for (size_t i = 0; at >= 0 && i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];

		if (l->fd != at || plen > sizeof(a.peer) || len - 14 < plen)
			continue;
		a.peer_len = (socklen_t)plen;
		memcpy(&a.peer, b + 14, plen);
		if (fdp__conns_accept(m, l, &a, fdp__now_ms(), &lent))
			fdp__route_accept(m, &lent);
		m->conns.forwarded++;
		return;
	}
	close(fd); /* its listener is not this master's any more */
}

static void from_input(struct fdp_master *m)
{
	unsigned char b[256];
	int fds[1];

	for (int i = 0; i < FDP__INPUT_BATCH && m->up.from_sock >= 0; i++) {
		struct fdp_msg msg = {.data = b, .len = sizeof(b), .fds = fds, .nfds = 1};
		int r = fdp_msg_recv(m->up.from_sock, &msg, MSG_DONTWAIT);

		if (r == -EAGAIN)
			return;
		if (r > 0 && msg.len >= 1 && b[0] == FDP__UP_CONN && msg.nfds == 1) {
			from_conn(m, b, msg.len, fds[0]);
			continue;
		}
		if (r > 0 && msg.nfds)
			close(fds[0]);
		if (r > 0 && msg.len >= 1 && b[0] != FDP__UP_END)
			continue; /* a kind this master does not know */
		fdp__log(
		        m, FDP_LOG_INFO,
		        "upgrade complete: the old master is gone; %llu connection(s) came from it",
		        (unsigned long long)m->conns.forwarded);
		from_close(m);
	}
}

/* ------------------------------------------------------------------ the old master's side */

/*
 * The environment of the new master: this one's, less LISTEN_* and a stale upgrade socket,
 * plus the config's upgrade_env (what the program removed from its own environment for its
 * workers' sake, systemd's NOTIFY_SOCKET say, and the new master needs).
 */
static char **upgrade_env(const struct fdp_master *m)
{
	static char fd_env[] = UP_ENV "=3";
	size_t n = 0, k = 0, extra = 0;
	char **envp;

	while (environ && environ[n])
		n++;
	while (m->cfg.upgrade_env && m->cfg.upgrade_env[extra])
		extra++;
	envp = malloc((n + extra + 2) * sizeof(*envp));
	if (!envp)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LISTEN_", 7) != 0 &&
		    strncmp(environ[i], UP_ENV "=", sizeof(UP_ENV)) != 0)
			envp[k++] = environ[i];
	for (size_t i = 0; i < extra; i++)
		envp[k++] = m->cfg.upgrade_env[i];
	envp[k++] = fd_env;
	envp[k] = NULL;
	return envp;
}

/*
 * One HANDOVER message: every listener, then the control socket, then the metrics listener
 * (metrics.c) under its bound address, by which the new program takes it
 * (fdp_upgrade_take_metrics()).
 */
static int send_handover(struct fdp_master *m, int sock)
{
	unsigned char *b = malloc(UP_MSG_MAX);
	int fds[FDP__UP_MAX_SOCKETS];
	size_t off = 4, n = 0;
	ssize_t r;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i <= m->nlisteners + 1; i++) {
		int ctl = i == m->nlisteners, met = i == m->nlisteners + 1;
		int fd = met ? fdp__metrics_fd(m) : ctl ? m->ctlfd : m->listeners[i].fd;
		char addr[FDP_ADDR_STRLEN];
		const char *name = met                     ? NULL
		                   : ctl                   ? m->control_path
		                   : m->cfg.listener_names ? m->cfg.listener_names[i]
		                                           : NULL;
		size_t nlen;

		if (fd < 0)
			continue;
		if (!name)
			name = fdp_addr_local(fd, addr, sizeof(addr)) > 0 ? addr : "";
		nlen = strlen(name);
		if (n == FDP__UP_MAX_SOCKETS || nlen > UP_NAME_MAX || UP_MSG_MAX - off < 6 + nlen) {
			free(b);
			return -E2BIG;
		}
		b[off] = met ? FDP__UP_KIND_METRICS : ctl ? FDP__UP_KIND_CONTROL : FDP__UP_KIND_LISTENER;
		b[off + 1] = !ctl && !met && m->listeners[i].shared ? FDP__UP_FLAG_SHARED : 0;
		fdp__put16(b + off + 2, (uint16_t)(met || ctl ? 0 : i));
		fdp__put16(b + off + 4, (uint16_t)nlen);
		memcpy(b + off + 6, name, nlen);
		off += 6 + nlen;
		fds[n++] = fd;
	}
	/* A steered listener's group follows: its other slots' sockets, program and maps. */
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__steer *g = m->listeners[i].steer;
		unsigned parts = g ? fdp__steer_slots(g) + 2 : 0;

		for (unsigned k = 1; k <= parts; k++) {
			char name[48];
			unsigned slots = fdp__steer_slots(g);
			int fd = k < slots        ? fdp__steer_fd(g, k)
			         : k == slots     ? fdp__steer_prog_fd(g)
			         : k == slots + 1 ? fdp__steer_sockarray_fd(g)
			                          : fdp__steer_state_fd(g);
			size_t nlen;

			if (k < slots)
				snprintf(name, sizeof(name), "slot:%u", k);
			else if (k == slots)
				snprintf(name, sizeof(name), "prog:%s",
				         fdp__steer_policy_name(fdp__steer_policy(g)));
			else
				snprintf(name, sizeof(name), k == slots + 1 ? "sockarray" : "state");
			nlen = strlen(name);
			if (n == FDP__UP_MAX_SOCKETS || UP_MSG_MAX - off < 6 + nlen) {
				free(b);
				return -E2BIG;
			}
			b[off] = FDP__UP_KIND_STEER;
			b[off + 1] = 0;
			fdp__put16(b + off + 2, (uint16_t)i);
			fdp__put16(b + off + 4, (uint16_t)nlen);
			memcpy(b + off + 6, name, nlen);
			off += 6 + nlen;
			fds[n++] = fd;
		}
	}
	b[0] = FDP__UP_HANDOVER;
	b[1] = 1; /* its version */
	fdp__put16(b + 2, (uint16_t)n);
	r = fdp_msg_send(sock, &(struct fdp_msg){.data = b, .len = off, .fds = fds, .nfds = n},
	                 MSG_DONTWAIT);
	free(b);
	return r < 0 ? (int)r : 0;
}

static void done(struct fdp_master *m, int result)
{
	void (*cb)(struct fdp_master *, void *, int) = m->up.done;

	m->up.done = NULL;
	if (cb)
		cb(m, m->up.done_arg, result);
}

static void old_close_socket(struct fdp_master *m)
{
	if (m->up.sock >= 0) {
		watch(m, m->up.sock, &m->up.wsock, 0, 0);
		close(m->up.sock);
		m->up.sock = -1;
	}
}

static void old_close_sock(struct fdp_master *m)
{
	old_close_socket(m);
	if (m->up.pidfd >= 0) {
		watch(m, m->up.pidfd, &m->up.wpid, 1, 0);
		close(m->up.pidfd);
		m->up.pidfd = -1;
	}
}

/*
 * Roll back: the new master (and what it started in its session) is killed and reaped, and
 * this one goes on as if nothing happened. status >= 0: it had exited, with that status.
 */
static void roll_back(struct fdp_master *m, int err, int status, const char *why)
{
	pid_t pid = m->up.pid;
	char how[64] = "";

	/* Killed before it is reaped, so its pid (its group's id) cannot be anyone else's. */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	if (status < 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	else
		snprintf(how, sizeof(how),
		         WIFEXITED(status) ? ": it exited with status %d"
		                           : ": it was killed by signal %d",
		         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	old_close_sock(m);
	m->up.pid = 0;
	m->up.closed = 0;
	/* Its steering program had replaced ours on the shared reuseport groups. */
	fdp__kernel_reattach(m);
	fdp__log(m, FDP_LOG_WARN, "upgrade failed: new master pid %d %s%s%s", (int)pid, why, how,
	         fdp__stop_begun(m) || err == -ECANCELED ? "" : "; this master serves on");
	done(m, err);
}

int fdp__upgrade_start(struct fdp_master *m, void (*cb)(struct fdp_master *, void *, int),
                       void *arg)
{
	char *const *argv = m->cfg.upgrade_argv;
	char **envp;
	int sv[2], err;
	pid_t pid;

	if (!m->cfg.upgrade || !argv || !argv[0] || argv[0][0] != '/')
		return -ENOTSUP;
	if (m->up.pid || m->up.from_sock >= 0)
		return -EBUSY; /* one at a time; and a new master first finishes taking over */
	if (fdp__stop_begun(m))
		return -ESHUTDOWN;
	envp = upgrade_env(m);
	if (!envp)
		return -ENOMEM;
	err = fdp_socketpair(SOCK_SEQPACKET, sv);
	if (err < 0) {
		free(envp);
		return err;
	}
	err = send_handover(m, sv[0]); /* queued in the socket before the new master runs */
	if (err < 0) {
		fdp_close_fds(sv, 2);
		free(envp);
		return err;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		/* Async-signal-safe calls only: the caller may have threads. Not this master's
		 * worker: no PDEATHSIG, a session (and process group) of its own. */
		setsid();
		if (sv[1] == UP_CHILD_FD)
			fcntl(UP_CHILD_FD, F_SETFD, 0);
		else if (dup2(sv[1], UP_CHILD_FD) < 0)
			_exit(127);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	err = pid < 0 ? -errno : 0;
	close(sv[1]);
	free(envp);
	if (err < 0) {
		close(sv[0]);
		return err;
	}
	m->up.pid = pid;
	m->up.sock = sv[0];
	m->up.pidfd = fdp__pidfd_open(pid); /* without one, SIGCHLD (fdp__upgrade_sigchld()) */
	m->up.deadline = fdp__now_ms() +
	                 (m->cfg.upgrade_timeout_ms ? m->cfg.upgrade_timeout_ms : UP_TIMEOUT_MS);
	m->up.done = cb;
	m->up.done_arg = arg;
	watch(m, m->up.sock, &m->up.wsock, 0, 1);
	if (m->up.pidfd >= 0)
		watch(m, m->up.pidfd, &m->up.wpid, 1, 1);
	fdp__log(m, FDP_LOG_INFO,
	         "upgrade: started new master %s, pid %d (up to %u ms to be ready)", argv[0],
	         (int)pid, m->cfg.upgrade_timeout_ms ? m->cfg.upgrade_timeout_ms : UP_TIMEOUT_MS);
	return 0;
}

/* The new master said READY: mark what it took. Returns 1 (stop now), or 0 (rolled back). */
static int old_ready(struct fdp_master *m, const unsigned char *b, size_t len)
{
	size_t n, k = 0;
	pid_t pid;

	if (len < 8 || b[0] != FDP__UP_READY || len - 8 < (n = fdp__get16(b + 2))) {
		roll_back(m, -EPROTO, -1, "sent a malformed message");
		return 0;
	}
	pid = (pid_t)fdp__get32(b + 4);
	/* In HANDOVER's order: the listeners that were open, then the control socket. */
	for (size_t i = 0; i <= m->nlisteners && k < n; i++) {
		int ctl = i == m->nlisteners;

		if ((ctl ? m->ctlfd : m->listeners[i].fd) < 0)
			continue;
		if (ctl)
			m->up.ctl_handed = b[8 + k] != 0;
		else
			m->listeners[i].handed = b[8 + k] != 0;
		k++;
	}
	if (fdp__metrics_fd(m) >= 0) { /* the metrics listener */
		if (k < n && b[8 + k])
			fdp__metrics_handed(m);
		k++;
	}
	/* Then each steered listener's group, in HANDOVER's order: its state last. Taken, the
	 * group is shared with the new master, whose workers accept on its sockets. */
	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__steer *g = m->listeners[i].steer;

		if (!g)
			continue;
		k += fdp__steer_slots(g) + 2;
		if (k <= n)
			m->listeners[i].kadopted = b[8 + k - 1] != 0;
	}
	m->up.committed = 1;
	fdp__kernel_flag(m); /* a group it took is the new master's to decide from now on */
	/* It is not this master's to watch any more: reaped by whoever inherits it. */
	if (m->up.pidfd >= 0) {
		watch(m, m->up.pidfd, &m->up.wpid, 1, 0);
		close(m->up.pidfd);
		m->up.pidfd = -1;
	}
	fdp__log(m, FDP_LOG_INFO,
	         "upgrade: new master pid %d is ready; this one (pid %d) stops accepting and "
	         "hands it its keep-alive connections",
	         (int)pid, (int)getpid());
	if (m->cfg.upgrade_ready)
		m->cfg.upgrade_ready(m->cfg.upgrade_arg, pid);
	done(m, 0);
	return 1;
}

static int old_input(struct fdp_master *m)
{
	unsigned char b[8 + FDP__UP_MAX_SOCKETS];
	int fds[1];
	struct fdp_msg msg = {.data = b, .len = sizeof(b), .fds = fds, .nfds = 1};
	int r;

	if (m->up.committed) { /* nothing more is expected: an end of file is its exit */
		char c;

		if (recv(m->up.sock, &c, 1, MSG_DONTWAIT) == 0)
			old_close_sock(m);
		return 0;
	}
	r = fdp_msg_recv(m->up.sock, &msg, MSG_DONTWAIT);
	if (r == -EAGAIN)
		return 0;
	if (r > 0 && msg.nfds)
		close(fds[0]);
	if (r <= 0) {
		/* Exiting, most likely: its status is worth the wait, and its exit comes soon. */
		old_close_socket(m);
		m->up.closed = 1;
		if (m->up.deadline > fdp__now_ms() + UP_EXIT_WAIT)
			m->up.deadline = fdp__now_ms() + UP_EXIT_WAIT;
		return 0;
	}
	return old_ready(m, b, msg.len);
}

/* Exited (pidfd, or SIGCHLD without one) before it was ready. */
static void old_exited(struct fdp_master *m)
{
	int status;
	pid_t r;

	do
		r = waitpid(m->up.pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == m->up.pid)
		roll_back(m, -ECHILD, status, "exited before it was ready");
}

/* SIGCHLD: also with a pidfd, so that orphans.c (reap_all), which the loop calls next, never
 * takes the new master's status (and its pid) from under this file. */
void fdp__upgrade_sigchld(struct fdp_master *m)
{
	if (m->up.pid && !m->up.committed)
		old_exited(m);
}

/* Returns 1 when the new master has taken over: the loop stops this one. */
int fdp__upgrade_event(struct fdp_master *m, struct fdp__watch *w)
{
	if (w->index == 2)
		from_input(m);
	else if (w->index == 0 && m->up.sock >= 0)
		return old_input(m);
	else if (w->index == 1 && m->up.pid && !m->up.committed)
		old_exited(m);
	return 0;
}

void fdp__upgrade_timers(struct fdp_master *m, long long now, long long *next)
{
	if (m->up.from_sock >= 0 && !m->up.said_ready && m->ready_logged)
		say_ready(m);
	if (!m->up.pid || m->up.committed)
		return;
	if (now >= m->up.deadline) {
		if (m->up.closed)
			roll_back(m, -EPIPE, -1, "closed its upgrade socket before it was ready");
		else
			roll_back(m, -ETIMEDOUT, -1, "was not ready in time: killed it");
		return;
	}
	if (m->up.deadline < *next)
		*next = m->up.deadline;
}

/* Send what the draining workers handed back; a connection the socket cannot take soon is
 * closed (as a drain without an upgrade would have). */
void fdp__upgrade_forward(struct fdp_master *m)
{
	struct fdp__conn *c;

	while ((c = fdp__conns_forward_next(m))) {
		unsigned char b[14 + sizeof(struct sockaddr_storage)];
		struct fdp_msg msg = {.data = b, .len = 14 + c->peer_len, .fds = &c->fd, .nfds = 1};
		ssize_t r = -EPIPE;

		b[0] = FDP__UP_CONN;
		b[1] = 0;
		fdp__put16(b + 2, (uint16_t)c->listener);
		fdp__put64(b + 4, c->id);
		fdp__put16(b + 12, (uint16_t)c->peer_len);
		memcpy(b + 14, &c->peer, c->peer_len);
		for (long long end = fdp__now_ms() + UP_SEND_WAIT; m->up.sock >= 0;) {
			r = fdp_msg_send(m->up.sock, &msg, MSG_DONTWAIT);
			if (r != -EAGAIN || fdp__now_ms() >= end)
				break;
			poll(&(struct pollfd){.fd = m->up.sock, .events = POLLOUT}, 1, 100);
		}
		if (r < 0)
			fdp__log_limited(m, &m->rl_expire, FDP_LOG_WARN,
			                 "upgrade: a connection could not be handed to the new master "
			                 "(%s): closed",
			                 fdp_strerror((int)r));
		/* One that does not read for that long gets nothing more: the rest are closed at
		 * once, not each after its own wait. */
		if (r == -EAGAIN)
			old_close_socket(m);
		fdp__conns_forward_done(m, r >= 0);
	}
}

/* The old master's last step: the rest of the connections, then END. */
void fdp__upgrade_finish(struct fdp_master *m)
{
	if (!m->up.committed || m->up.ended)
		return;
	fdp__upgrade_forward(m);
	m->up.ended = 1;
	if (m->up.sock >= 0)
		send(m->up.sock, (unsigned char[]){FDP__UP_END}, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	fdp__log(m, FDP_LOG_INFO,
	         "upgrade: handed %llu connection(s) to the new master (idle keep-alive ones, "
	         "and any waiting for a routing key); this one exits",
	         (unsigned long long)m->conns.forwarded);
	old_close_sock(m);
}

/* The new master's: from here on, fdp__upgrade_timers() says READY once the workers are. */
void fdp__upgrade_run(struct fdp_master *m)
{
	if (m->up.from)
		from_start(m);
}

/* This master stops before the new one is ready: so does the new one. */
void fdp__upgrade_cancel(struct fdp_master *m)
{
	if (m->up.pid && !m->up.committed && !m->in_child)
		roll_back(m, -ECANCELED, -1, "was killed: this master stops");
}

void fdp__upgrade_close(struct fdp_master *m)
{
	fdp__upgrade_cancel(m);
	old_close_sock(m);
	from_close(m);
	fdp_upgrade_free(m->up.from);
	m->up.from = NULL;
}
