/*
 * systemd's notification protocol for fdpass serve's master (see notify.h): a datagram of
 * "KEY=VALUE" lines per message to $NOTIFY_SOCKET, a path or an abstract name ("@..."), with
 * descriptors as SCM_RIGHTS for the descriptor store. The master's events (fdp_master_config
 * event) say when: READY, RELOADING, STOPPING, and a tick for the watchdog and the status.
 */
#include "notify.h"
#include "activation.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STATUS_TICK_MS 1000 /* without a watchdog: how often the status is brought up to date */

static struct {
	int on;                 /* NOTIFY_SOCKET was set */
	int fd;                 /* connected to it; -1 until connected (retried at each send) */
	char socket[128];       /* NOTIFY_SOCKET */
	char watchdog_usec[32]; /* WATCHDOG_USEC ("" when unset) */
	unsigned watchdog_ms;   /* WATCHDOG=1 this often; 0: no watchdog */
	int store_enabled;      /* $FDSTORE named a positive count */
	char pending[256];      /* the last state message the socket did not take ("": none) */
	char status[128];       /* the STATUS= last sent on a tick */
	int serving;            /* READY sent: ticks keep STATUS up to date */
	const int *store_fds;   /* FDSTORE messages not sent yet: store_next..store_n */
	char store_names[FDPASS_INHERITED_MAX][FDPASS_FDNAME_MAX + 1];
	size_t store_n, store_next;
	void (*log)(void *arg, enum fdp_log_level level, const char *msg);
	void *log_arg;
	int warned; /* a failed send was logged: once is enough */
} nt = {.fd = -1};

static void note(const char *what, int err)
{
	char msg[256];

	if (!nt.log || nt.warned)
		return;
	nt.warned = 1;
	snprintf(msg, sizeof(msg), "notify socket %s: %s: %s (logged once)", nt.socket, what,
	         fdp_strerror(err));
	nt.log(nt.log_arg, FDP_LOG_WARN, msg);
}

int fdpass_notify_open(void (*log)(void *arg, enum fdp_log_level level, const char *msg),
                       void *log_arg)
{
	char pid[32], store[32];
	long long usec;

	nt.log = log;
	nt.log_arg = log_arg;
	fdpass_env_take("NOTIFY_SOCKET", nt.socket, sizeof(nt.socket));
	fdpass_env_take("WATCHDOG_USEC", nt.watchdog_usec, sizeof(nt.watchdog_usec));
	fdpass_env_take("WATCHDOG_PID", pid, sizeof(pid));
	fdpass_env_take("FDSTORE", store, sizeof(store));
	nt.on = nt.socket[0] != '\0';
	if (!nt.on)
		return 0;
	usec = atoll(nt.watchdog_usec);
	/* A watchdog for another process (a parent's, leaked to us) is not ours to feed. */
	if (usec > 0 && (!pid[0] || atol(pid) == (long)getpid())) {
		long long ms = usec / 2000;

		nt.watchdog_ms = ms < 1 ? 1 : ms > 3600000 ? 3600000 : (unsigned)ms;
	}
	nt.store_enabled = atol(store) > 0;
	nt.fd = fdp_unix_connect(nt.socket, SOCK_DGRAM | SOCK_NONBLOCK);
	if (nt.fd < 0) {
		note("cannot connect", nt.fd);
		nt.fd = -1;
	}
	return 1;
}

unsigned fdpass_notify_tick_ms(void)
{
	if (!nt.on)
		return 0;
	return nt.watchdog_ms ? nt.watchdog_ms : STATUS_TICK_MS;
}

/* One datagram, now or never: a socket systemd made anew (a re-exec) is connected again. */
static int send_msg(const char *text, const int *fds, size_t nfds)
{
	struct fdp_msg m = {
	        .data = (void *)text, .len = strlen(text), .fds = (int *)fds, .nfds = nfds};
	ssize_t r = -ENOTCONN;

	if (!nt.on)
		return -ENOTCONN;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (nt.fd < 0 &&
		    (nt.fd = fdp_unix_connect(nt.socket, SOCK_DGRAM | SOCK_NONBLOCK)) < 0) {
			r = nt.fd;
			nt.fd = -1;
			break;
		}
		r = fdp_msg_send(nt.fd, &m, MSG_DONTWAIT);
		if (r >= 0)
			return 0;
		if (r != -ECONNREFUSED && r != -ENOTCONN && r != -EPIPE)
			break;
		close(nt.fd);
		nt.fd = -1;
	}
	if (r != -EAGAIN)
		note("cannot send", (int)r);
	return (int)r;
}

/* A state message: retried at the next tick if the socket cannot take it now. */
static void send_state(const char *text)
{
	if (send_msg(text, NULL, 0) < 0)
		snprintf(nt.pending, sizeof(nt.pending), "%s", text);
	else
		nt.pending[0] = '\0'; /* what it replaces is out of date anyway */
}

static void status_text(char *buf, size_t size, const struct fdp_master_info *info)
{
	int n;

	if (info->ready == info->workers)
		n = snprintf(buf, size, "serving, %u worker%s ready", info->ready,
		             info->ready == 1 ? "" : "s");
	else
		n = snprintf(buf, size, "serving, %u of %u workers ready", info->ready,
		             info->workers);
	if (info->reload_failed && n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, " (last reload: %u kept the old program)",
		         info->reload_failed);
}

static void send_fdstore(void)
{
	for (; nt.store_next < nt.store_n; nt.store_next++) {
		char text[FDPASS_FDNAME_MAX + 32];

		snprintf(text, sizeof(text), "FDSTORE=1\nFDNAME=%s", nt.store_names[nt.store_next]);
		if (send_msg(text, &nt.store_fds[nt.store_next], 1) == -EAGAIN)
			return; /* the rest at the next tick */
	}
}

static void tick(const struct fdp_master_info *info)
{
	char status[128], text[160];

	if (nt.pending[0] && send_msg(nt.pending, NULL, 0) == 0)
		nt.pending[0] = '\0';
	if (!info->stopping) /* at a stop the master closes the listeners: none is left to send */
		send_fdstore();
	if (nt.watchdog_ms)
		send_msg("WATCHDOG=1", NULL, 0);
	if (!nt.serving || info->reloading || info->stopping)
		return;
	status_text(status, sizeof(status), info);
	if (strcmp(status, nt.status) == 0)
		return;
	snprintf(text, sizeof(text), "STATUS=%s", status);
	if (send_msg(text, NULL, 0) == 0)
		snprintf(nt.status, sizeof(nt.status), "%s", status);
}

void fdpass_notify_event(void *arg, enum fdp_master_event ev, const struct fdp_master_info *info)
{
	char text[256], status[128];
	struct timespec ts;

	(void)arg;
	switch (ev) {
	case FDP_MASTER_READY:
		status_text(status, sizeof(status), info);
		snprintf(text, sizeof(text), "READY=1\nSTATUS=%s", status);
		snprintf(nt.status, sizeof(nt.status), "%s", status);
		nt.serving = 1;
		send_state(text);
		break;
	case FDP_MASTER_RELOADING:
		/* systemd matches the reload to its request by this clock (Type=notify-reload). */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(text, sizeof(text), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		         (unsigned long long)ts.tv_sec * 1000000ULL +
		                 (unsigned long long)ts.tv_nsec / 1000);
		send_state(text);
		break;
	case FDP_MASTER_STOPPING:
		send_state("STOPPING=1\nSTATUS=stopping: the workers finish their connections");
		break;
	case FDP_MASTER_TICK:
		tick(info);
		break;
	}
}

/* systemd's rule for a name: printable ASCII without ':', at most 255 bytes, not empty. */
static void fdname(char *dst, const char *src)
{
	size_t n = 0;

	for (; src && src[n] && n < FDPASS_FDNAME_MAX; n++)
		dst[n] = src[n] > ' ' && src[n] < 127 && src[n] != ':' ? src[n] : '_';
	if (!n)
		dst[n++] = '_';
	dst[n] = '\0';
}

int fdpass_notify_fdstore(const int *fds, const char *const *names, size_t n)
{
	if (!nt.on)
		return 0;
	if (n > FDPASS_INHERITED_MAX)
		n = FDPASS_INHERITED_MAX;
	for (size_t i = 0; i < n; i++)
		fdname(nt.store_names[i], names[i]);
	nt.store_fds = fds;
	nt.store_n = n;
	nt.store_next = 0;
	send_fdstore();
	return nt.store_enabled;
}

int fdpass_notify_mainpid(pid_t pid)
{
	char text[32];

	snprintf(text, sizeof(text), "MAINPID=%ld", (long)pid);
	return send_msg(text, NULL, 0);
}

const char *fdpass_notify_saved(const char *name)
{
	if (nt.on && strcmp(name, "NOTIFY_SOCKET") == 0)
		return nt.socket;
	if (nt.on && strcmp(name, "WATCHDOG_USEC") == 0 && nt.watchdog_usec[0])
		return nt.watchdog_usec;
	return NULL;
}

char *const *fdpass_notify_env(void)
{
	static char sock[sizeof("NOTIFY_SOCKET=") + sizeof(nt.socket)];
	static char wd[sizeof("WATCHDOG_USEC=") + sizeof(nt.watchdog_usec)];
	static char *env[3];
	size_t n = 0;

	if (!nt.on)
		return NULL;
	snprintf(sock, sizeof(sock), "NOTIFY_SOCKET=%s", nt.socket);
	env[n++] = sock;
	if (nt.watchdog_ms) {
		snprintf(wd, sizeof(wd), "WATCHDOG_USEC=%s", nt.watchdog_usec);
		env[n++] = wd;
	}
	env[n] = NULL;
	return env;
}

void fdpass_notify_close(void)
{
	if (nt.fd >= 0)
		close(nt.fd);
	nt.fd = -1;
	nt.on = 0;
}
