/*
 * The master library with workers written here: what happens to connections when a worker
 * dies, loses its channel, or is drained. Real processes on loopback; every wait is bounded by
 * the log, the status, a client socket or /proc.
 */
#include "test_master_util.h"
#include "proto.h"
#include "worker_internal.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

/* What the test's workers do out of the ordinary; set before master_start(). */
enum quirk {
	Q_NONE,
	Q_ACK_THEN_DIE, /* gen 1: take one connection, wait for a second CONN, ACK the first, die */
	Q_HALF_CLOSE,   /* gen 1 of slot 0: shut the channel's write side, shut clients on EOF */
	Q_BAD_ACK,      /* gen 1: on its first connection, send an ACK of 3 bytes, then wait */
	Q_DONE_WITH_FD, /* gen 1: on its first connection, send a DONE carrying a descriptor */
	Q_HANG,         /* gen 1 of slot 0: ready, then never reads its channel again */
	Q_RETURN,       /* at a reload's drain, hand every open client back to the master */
};

static enum quirk quirk;

#define MAX_CLIENTS 64

struct client {
	int fd;
	uint64_t id;
	struct fdp_conn meta;
};

/* Wait (bounded) until the channel is readable. */
static void wait_channel(struct fdp_worker *w)
{
	struct pollfd p = {.fd = fdp_worker_fd(w), .events = POLLIN};

	if (poll(&p, 1, 10000) != 1)
		_exit(90);
}

/*
 * Q_ACK_THEN_DIE: the first connection's ACK must still be unread by the master when this
 * worker's exit resets the channel. The master is stopped first, so it cannot read the ACK
 * before the exit; the test lets it go on once this process is a zombie.
 */
static __attribute__((noreturn)) void ack_then_die(struct fdp_worker *w, int fd)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "gen1 pid=%d\n", (int)getpid());

	if (write(fd, line, (size_t)n) != n)
		_exit(91);
	wait_channel(w); /* the second connection's CONN, which stays unread */
	kill(getppid(), SIGSTOP);
	fdp_worker_flush(w); /* the first connection's ACK */
	_exit(3);
}

/* Q_HALF_CLOSE: no more input for the master (it reads end of file); on the master's end of
 * file, shut the client down as the built-in handlers do, which a re-handed copy would feel. */
static __attribute__((noreturn)) void half_close(struct fdp_worker *w, int fd)
{
	char c;

	shutdown(fdp_worker_fd(w), SHUT_WR);
	for (;;) {
		ssize_t r = read(fdp_worker_fd(w), &c, 1);

		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			break;
		wait_channel(w);
	}
	shutdown(fd, SHUT_RDWR);
	_exit(5);
}

/* What a worker process starts with: its channel's close-on-exec flag, ignored and blocked
 * signals (masks from /proc/self/status), and how many descriptors it has open. */
static int env_line(char *buf, size_t size)
{
	char st[4096] = "", *ign, *blk;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC), fds;

	if (fd >= 0) {
		if (read(fd, st, sizeof(st) - 1) < 0)
			st[0] = '\0';
		close(fd);
	}
	ign = strstr(st, "SigIgn:\t");
	blk = strstr(st, "SigBlk:\t");
	/* Asked of each number, not /proc: valgrind keeps descriptors of its own there. */
	fds = 0;
	for (int i = 0; i < 1024; i++)
		fds += fcntl(i, F_GETFD) >= 0;
	return snprintf(buf, size, "cloexec3=%d sigign=%.16s sigblk=%.16s fds=%d\n",
	                (fcntl(3, F_GETFD) & FD_CLOEXEC) != 0, ign ? ign + 8 : "?",
	                blk ? blk + 8 : "?", fds);
}

/* Q_BAD_ACK: a malformed message (the ACK of its connection is not flushed), then wait to be
 * killed, holding the connection. */
static __attribute__((noreturn)) void bad_ack(struct fdp_worker *w)
{
	struct fdp_channel *ch;

	if (fdp_channel_open(&ch, dup(fdp_worker_fd(w)), NULL) < 0 ||
	    fdp_channel_send(ch, 0x103, "abc", 3, NULL, 0, 0) < 0)
		_exit(93);
	poll(NULL, 0, 10000);
	_exit(94);
}

/* Q_DONE_WITH_FD: a well-formed DONE of an id, but with a descriptor, which no DONE carries. */
static __attribute__((noreturn)) void done_with_fd(struct fdp_worker *w, uint64_t id)
{
	struct fdp_channel *ch;
	unsigned char buf[8];
	int fd = dup(0);

	if (fd < 0 || fdp_channel_open(&ch, dup(fdp_worker_fd(w)), NULL) < 0 ||
	    fdp_channel_send(ch, 0x104, buf, fdp_proto_ids_encode(buf, &id, 1), &fd, 1, 0) < 0)
		_exit(93);
	poll(NULL, 0, 10000);
	_exit(94);
}

static void answer(struct fdp_worker *w, struct client *c)
{
	char buf[256];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n < 0 && errno == EAGAIN)
		return;
	if (n > 0 && strncmp(buf, "env", 3) == 0) {
		n = env_line(buf, sizeof(buf));
		if (send(c->fd, buf, (size_t)n, MSG_NOSIGNAL) == n)
			return;
	} else if (n > 0) {
		n = snprintf(buf, sizeof(buf), "worker=%u pid=%d gen=%u id=%llu\n",
		             fdp_worker_index(w), (int)getpid(), fdp_worker_generation(w),
		             (unsigned long long)c->id);
		if (send(c->fd, buf, (size_t)n, MSG_NOSIGNAL) == n)
			return;
	}
	fdp_worker_done(w, c->id);
	fdp_worker_flush(w);
	close(c->fd);
	c->fd = -1;
}

/*
 * A first-generation worker of a quirk that fails before its ACK reaches the master: it takes
 * connections without waiting for their ACK to leave, which the library's accept forbids, to
 * show what the master does with a worker in another language that breaks the rule, or dies.
 */
static int early(struct fdp_worker *w)
{
	return fdp_worker_generation(w) == 1 &&
	       (quirk == Q_ACK_THEN_DIE || quirk == Q_HALF_CLOSE || quirk == Q_BAD_ACK ||
	        quirk == Q_DONE_WITH_FD);
}

/* Take what the channel has; returns -1 once the worker must stop taking (drain, master gone). */
static int take(struct fdp_worker *w, struct client *cs, int *n)
{
	for (;;) {
		struct fdp_conn conn;
		int fd = early(w) ? fdp__worker_accept_early(w, &conn) : fdp_worker_accept(w, &conn);

		if (fd == -EAGAIN)
			return 0;
		if (fd < 0)
			return -1;
		if (quirk == Q_ACK_THEN_DIE && fdp_worker_generation(w) == 1)
			ack_then_die(w, fd);
		if (quirk == Q_BAD_ACK && fdp_worker_generation(w) == 1)
			bad_ack(w);
		if (quirk == Q_DONE_WITH_FD && fdp_worker_generation(w) == 1)
			done_with_fd(w, conn.id);
		if (quirk == Q_HALF_CLOSE && fdp_worker_generation(w) == 1 &&
		    fdp_worker_index(w) == 0)
			half_close(w, fd);
		if (*n == MAX_CLIENTS)
			_exit(92);
		cs[(*n)++] = (struct client){fd, conn.id, conn};
	}
}

/* Q_RETURN: every client here is between requests (each line is answered at once). */
static void hand_back(struct fdp_worker *w, struct client *cs, int n)
{
	for (int i = 0; i < n; i++) {
		if (cs[i].fd < 0 || fdp_worker_return(w, cs[i].fd, &cs[i].meta) < 0)
			continue;
		cs[i].fd = -1; /* the channel's now: not reported done, not shut down */
	}
	fdp_worker_flush(w);
}

/* A worker that answers each line a client sends with who it is, until the client closes. */
static int test_worker(struct fdp_worker *w, void *arg)
{
	struct client cs[MAX_CLIENTS];
	int n = 0, taking = 1;

	(void)arg;
	if (quirk == Q_HANG && fdp_worker_generation(w) == 1 && fdp_worker_index(w) == 0) {
		poll(NULL, 0, 30000); /* hung: killed long before this ends */
		_exit(95);
	}
	for (;;) {
		struct pollfd p[MAX_CLIENTS + 1];

		if (taking && take(w, cs, &n) < 0)
			taking = 0;
		if (quirk == Q_RETURN && fdp_worker_handback(w))
			hand_back(w, cs, n);
		for (int i = 0; i < n;) {
			if (cs[i].fd < 0)
				cs[i] = cs[--n];
			else
				i++;
		}
		if (!taking && n == 0) {
			while (fdp_worker_flush(w) == -EAGAIN)
				poll(&(struct pollfd){fdp_worker_fd(w), POLLOUT, 0}, 1, 1000);
			return 0;
		}
		p[0] = (struct pollfd){fdp_worker_fd(w), POLLIN, 0};
		if (!taking)
			p[0].fd = -1;
		else if (fdp_worker_wants_write(w))
			p[0].events |= POLLOUT;
		for (int i = 0; i < n; i++)
			p[i + 1] = (struct pollfd){cs[i].fd, POLLIN, 0};
		if (poll(p, (nfds_t)n + 1, -1) < 0 && errno != EINTR)
			return 1;
		if (p[0].revents & POLLOUT)
			fdp_worker_flush(w);
		for (int i = 0; i < n; i++)
			if (p[i + 1].revents)
				answer(w, &cs[i]);
	}
}

static struct fdp_master_config config(unsigned workers)
{
	return (struct fdp_master_config){
	        .size = sizeof(struct fdp_master_config), .workers = workers, .worker_main = test_worker};
}

/* Connect to the server and say a line; returns the socket. */
static int client_say(const struct server *s, const char *line)
{
	int fd = tcp_connect(s->addr, NULL);

	send_all(fd, line);
	return fd;
}

TEST(a_connection_acknowledged_by_a_worker_that_then_dies_is_not_handed_again)
{
	struct server s;
	char line[256], *st;
	pid_t victim;
	int a, b;
	long long deadline;

	quirk = Q_ACK_THEN_DIE;
	master_start(&s, config(1), 0);
	a = tcp_connect(s.addr, NULL);
	CHECK(read_line(a, line, sizeof(line)) > 0);
	CHECK(sscanf(line, "gen1 pid=%d", &victim) == 1);
	/* Said only now: the first worker never reads it, so only a second worker could answer. */
	send_all(a, "hello\n");
	b = client_say(&s, "hello\n");
	/* The worker stops the master, ACKs a, dies with b's CONN unread; then the master goes on.
	 */
	deadline = test_now_ms() + 10000;
	while (proc_state(victim) != 'Z' || proc_state(s.pid) != 'T') {
		CHECK(test_now_ms() < deadline);
		poll(NULL, 0, 1);
	}
	kill(s.pid, SIGCONT);
	CHECK(read_line(b, line, sizeof(line)) > 0);
	CHECK(strstr(line, "gen=2 ") != NULL);
	/* a was acknowledged: the master closed its copy; only the dead worker had it. */
	CHECK(read_line(a, line, sizeof(line)) <= 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "rehanded"), ==, 1);
	CHECK_INT(status_num(st, "master", "lost"), ==, 1); /* and counted as such */
	free(st);
	close(a);
	close(b);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "left 1 connection(s) unacknowledged") != NULL);
	server_free(&s);
}

TEST(a_worker_that_loses_its_channel_is_killed_before_its_connections_go_elsewhere)
{
	struct server s;
	char line[256], *st, msg[64];
	pid_t pids[2];
	int a;

	quirk = Q_HALF_CLOSE;
	master_start(&s, config(2), 0);
	st = server_status(&s);
	CHECK_INT(status_pids(st, pids, 2), ==, 2);
	free(st);
	/* Round-robin starts at slot 0, whose first process ends its channel on this one. */
	a = client_say(&s, "hello\n");
	CHECK(read_line(a, line, sizeof(line)) > 0);
	CHECK(strncmp(line, "worker=", 7) == 0);
	CHECK(atoi(strstr(line, "pid=") + 4) != pids[0]);
	close(a);
	snprintf(msg, sizeof(msg), "worker 0 pid %d killed by signal 9", (int)pids[0]);
	server_wait_log(&s, msg, 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "rehanded"), ==, 1);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_worker_at_its_connection_cap_is_skipped_until_one_of_its_connections_is_done)
{
	struct fdp_master_config cfg = config(1);
	struct server s;
	char line[256], *st;
	int a, b;

	quirk = Q_NONE;
	cfg.max_conns_per_worker = 1;
	master_start(&s, cfg, 0);
	a = client_say(&s, "one\n");
	CHECK(read_line(a, line, sizeof(line)) > 0);
	b = client_say(&s, "two\n");
	st = status_when(&s, "accepted", 2);
	CHECK_INT(status_num(st, "master", "pending"), ==, 1);
	CHECK_INT(status_num(st, "master", "handed"), ==, 1);
	free(st);
	close(a); /* done: the worker may take the next one */
	CHECK(read_line(b, line, sizeof(line)) > 0);
	CHECK(strstr(line, " id=2\n") != NULL);
	close(b);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sigterm_hands_connections_still_waiting_for_a_worker_before_the_workers_drain)
{
	struct fdp_master_config cfg = config(2);
	struct server s;
	char line[256], *st;
	int a, b, c;

	quirk = Q_NONE;
	cfg.max_conns_per_worker = 1;
	master_start(&s, cfg, 0);
	a = client_say(&s, "a\n");
	b = client_say(&s, "b\n");
	CHECK(read_line(a, line, sizeof(line)) > 0);
	CHECK(read_line(b, line, sizeof(line)) > 0);
	c = client_say(&s, "c\n"); /* both workers are full: c waits in the master */
	st = status_when(&s, "accepted", 3);
	CHECK_INT(status_num(st, "master", "pending"), ==, 1);
	free(st);
	kill(s.pid, SIGTERM);
	server_wait_log(&s, "draining", 10000);
	close(a); /* a worker has room again: c gets it before it is told to drain */
	CHECK(read_line(c, line, sizeof(line)) > 0);
	CHECK(strncmp(line, "worker=", 7) == 0);
	close(b);
	close(c);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	CHECK(strstr(s.log, "accepted 3, handed 3, re-handed 0, closed unserved 0") != NULL);
	if (strstr(s.log, "killed by signal"))
		fdp_test_fail(__FILE__, __LINE__, "a worker was killed:\n%s", s.log);
	server_free(&s);
}

#define NOBODY 65534

static void become_nobody_with_few_descriptors(void)
{
	struct rlimit rl = {64, 64};

	if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0 || setrlimit(RLIMIT_NOFILE, &rl) < 0)
		_exit(97);
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* a change of uid cleared it */
}

/*
 * As nobody: put 100 descriptors in flight in a socket nobody reads, which is more than the
 * master's RLIMIT_NOFILE of 64 (Linux then refuses this user's SCM_RIGHTS with ETOOMANYREFS),
 * say so on ctl, and release them when told.
 */
static void stuff_descriptors(void *arg)
{
	int *ctl = arg, sv[2];
	char c = 'x';

	close(ctl[0]);
	CHECK_OK(setgid(NOBODY));
	CHECK_OK(setuid(NOBODY));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	for (int i = 0; i < 100; i++) {
		struct fdp_msg m = {.data = &c, .len = 1, .fds = (int[]){0}, .nfds = 1};

		CHECK_OK(fdp_msg_send(sv[0], &m, 0));
	}
	CHECK_INT(write(ctl[1], &c, 1), ==, 1);
	CHECK_INT(read(ctl[1], &c, 1), ==, 1);
	close(sv[0]);
	close(sv[1]);
}

TEST(too_many_descriptors_in_flight_delays_a_hand_over_and_loses_no_worker)
{
	struct server s;
	char line[256], *st, c;
	int ctl[2], fd;
	pid_t stuffer;

	if (geteuid() != 0)
		fdp_test_skip("needs root to act as another uid");
	if (fdp_test_under_valgrind())
		fdp_test_skip("valgrind virtualises RLIMIT_NOFILE");
	quirk = Q_NONE;
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl));
	stuffer = fdp_test_fork(stuff_descriptors, ctl);
	close(ctl[1]);
	CHECK_INT(read(ctl[0], &c, 1), ==, 1);
	master_child_setup = become_nobody_with_few_descriptors;
	master_start(&s, config(1), 0);
	master_child_setup = NULL;
	fd = client_say(&s, "hello\n");
	server_wait_log(&s, "Too many references", 10000);
	server_wait_log(&s, "retrying", 10000);
	/* The stuffer lets its descriptors go: the hand-over goes through. */
	CHECK_INT(write(ctl[0], &c, 1), ==, 1);
	close(ctl[0]);
	CHECK_INT(fdp_test_wait(stuffer), ==, 0);
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(strstr(line, " gen=1 ") != NULL);
	close(fd);
	server_wait_log(&s, "channel writes again", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "rehanded"), ==, 0);
	CHECK_INT(status_num(st, "\nworker index=0 ", "restarts"), ==, 0);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

static void no_worker_log(void *arg, enum fdp_log_level level, const char *msg)
{
	(void)arg, (void)level, (void)msg;
}

TEST(open_makes_a_blocking_listener_non_blocking_and_refuses_one_not_listening)
{
	struct fdp_master_config cfg = config(1);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct fdp_master *m;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), before = fdp_test_fd_count();

	CHECK(lfd >= 0);
	CHECK_OK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(lfd, 4)); /* blocking, as systemd passes one */
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	cfg.log = no_worker_log;
	CHECK_OK(fdp_master_open(&m, &cfg));
	CHECK(fcntl(lfd, F_GETFL) & O_NONBLOCK);
	fdp_master_close(m);
	CHECK_INT(fdp_test_fd_count(), ==, before - 1);
	/* Bound but not listening: refused, and closed all the same. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0);
	CHECK_INT(fdp_master_open(&m, &cfg), ==, -EINVAL);
	CHECK_INT(fdp_test_fd_count(), ==, before - 1);
}

TEST(open_refuses_a_config_without_its_size_and_closes_the_listeners)
{
	struct fdp_master_config cfg = config(1);
	struct fdp_master *m;
	int before = fdp_test_fd_count(), lfd = fdp_listen("127.0.0.1:0", 4);

	CHECK_OK(lfd);
	cfg.size = 0;
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	CHECK_INT(fdp_master_open(&m, &cfg), ==, -EINVAL);
	CHECK_INT(fdp_test_fd_count(), ==, before);
}

TEST(open_refuses_a_route_config_without_its_size)
{
	struct fdp_master_config cfg = config(1);
	struct fdp_route_config rc = {.key = "line:1"};
	enum fdp_policy route = FDP_POLICY_ROUTE;
	struct fdp_master *m;
	int lfd = fdp_listen("127.0.0.1:0", 4);

	CHECK_OK(lfd);
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	cfg.listener_policy = &route;
	cfg.route = &rc;
	cfg.log = no_worker_log;
	CHECK_INT(fdp_master_open(&m, &cfg), ==, -EINVAL);
	rc.size = sizeof(rc);
	lfd = fdp_listen("127.0.0.1:0", 4);
	CHECK_OK(lfd);
	CHECK_OK(fdp_master_open(&m, &cfg));
	fdp_master_close(m);
}

static void few_descriptors(void)
{
	struct rlimit rl = {40, 40};

	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		_exit(97);
}

/* Clock ticks of CPU process pid has used so far (user + system). */
static long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	CHECK(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
	                  &st) == 2);
	return (long long)(ut + st);
}

TEST(at_the_descriptor_limit_the_master_pauses_accepting_without_spinning_and_recovers)
{
	enum { N = 60 };
	struct server s;
	int fds[N], ctl, pauses = 0;
	long long t0;
	char *st;

	if (fdp_test_under_valgrind())
		fdp_test_skip("valgrind virtualises RLIMIT_NOFILE");
	quirk = Q_NONE;
	master_child_setup = few_descriptors;
	master_start(&s, config(1), 0);
	master_child_setup = NULL;
	for (int i = 0; i < N; i++)
		fds[i] = tcp_connect(s.addr, NULL); /* the backlog holds what the master cannot */
	server_wait_log(&s, "accept on a listener: Too many open files; pausing it", 10000);
	/*
	 * Full, and steady: the worker has acknowledged all it may hold, so the master frees no
	 * descriptor a status client could slip into. At the limit for 300 ms (three pauses).
	 */
	for (long long since = 0, deadline = test_now_ms() + 10000;; poll(NULL, 0, 10)) {
		long long now = test_now_ms();

		CHECK(now < deadline);
		if (proc_fd_count(s.pid) < 40)
			since = 0;
		else if (!since)
			since = now;
		else if (now - since >= 300)
			break;
	}
	/* A status request now meets the same limit: the master must not spin on it either. */
	ctl = fdp_unix_connect(s.control, SOCK_STREAM);
	CHECK_OK(ctl);
	server_wait_log(&s, "accept on the control socket: Too many open files", 10000);
	t0 = cpu_ticks(s.pid);
	poll(NULL, 0, 1000);
	CHECK_INT(cpu_ticks(s.pid) - t0, <, 20); /* of 100 a second */
	for (const char *p = s.log; (p = strstr(p, "; pausing it for")); p++)
		pauses++;
	CHECK_INT(pauses, <=, 2); /* rate-limited: not one per 100 ms pause */
	for (int i = 0; i < N; i++)
		close(fds[i]);
	st = fdp_test_read_all(ctl, NULL); /* answered once descriptors are free again */
	close(ctl);
	CHECK(strncmp(st, "master ", 7) == 0);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

static void ignore_some_signals(void)
{
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
}

TEST(a_worker_starts_with_default_signals_and_a_close_on_exec_channel)
{
	struct server s;
	char line[256], *ign;
	unsigned long long sigign;
	int fd;

	quirk = Q_NONE;
	master_child_setup = ignore_some_signals;
	master_start(&s, config(1), 0);
	master_child_setup = NULL;
	fd = client_say(&s, "env\n");
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(strstr(line, "cloexec3=1 ") != NULL);
	CHECK((ign = strstr(line, " sigign=")) != NULL);
	sigign = strtoull(ign + 8, NULL, 16);
	/* The libc's own signals (32 and 33 in glibc) are left as the environment had them. */
	for (int sig = SIGSYS + 1; sig < SIGRTMIN; sig++)
		sigign &= ~(1ULL << (sig - 1));
	if (sigign != 0)
		fdp_test_fail(__FILE__, __LINE__, "%s", line);
	CHECK(strstr(line, " sigblk=0000000000000000 ") != NULL);
	/* 0, 1, 2, the channel and this client: nothing of the master's. */
	CHECK(strstr(line, " fds=5\n") != NULL);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/*
 * The first worker breaks the protocol with quirk q on its first connection (the master logs
 * why); it is killed, and the connection, never acknowledged, is served by its successor.
 */
static void broken_worker_is_replaced(enum quirk q, const char *why)
{
	struct server s;
	char line[256], *st;
	int fd;

	quirk = q;
	master_start(&s, config(1), 0);
	fd = client_say(&s, "hello\n");
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(strstr(line, " gen=2 ") != NULL);
	close(fd);
	server_wait_log(&s, why, 10000);
	server_wait_log(&s, "killed by signal 9", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "rehanded"), ==, 1);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_worker_sending_a_malformed_message_is_killed_and_its_connection_goes_elsewhere)
{
	broken_worker_is_replaced(Q_BAD_ACK, "broke the protocol: message type 0x103, 3 bytes");
}

TEST(a_worker_message_carrying_a_descriptor_breaks_its_channel_and_its_connection_goes_elsewhere)
{
	broken_worker_is_replaced(Q_DONE_WITH_FD, "protocol error");
}

TEST(a_worker_that_acknowledges_nothing_is_killed_and_its_connection_served_elsewhere)
{
	struct fdp_master_config cfg = config(2);
	struct server s;
	char line[256], *st;
	int fd;

	quirk = Q_HANG;
	cfg.ack_timeout_ms = 300;
	master_start(&s, cfg, 0);
	/* Round-robin starts at slot 0, whose first process is hung. */
	fd = client_say(&s, "hello\n");
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(strstr(line, " gen=2 ") != NULL || strncmp(line, "worker=1 ", 9) == 0);
	close(fd);
	server_wait_log(&s, "acknowledged no connection for 300 ms (1 waiting)", 10000);
	server_wait_log(&s, "killed by signal 9", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "ack_timeouts"), ==, 1);
	CHECK_INT(status_num(st, "master", "rehanded"), ==, 1);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sigterm_serves_the_clients_still_in_the_accept_queue_instead_of_resetting_them)
{
	enum { CLIENTS = 8 };
	struct server s;
	char line[256];
	int fds[CLIENTS];

	quirk = Q_NONE;
	master_start(&s, config(2), 0);
	/* Stopped, the master accepts nothing: the kernel completes each handshake and queues it. */
	CHECK(kill(s.pid, SIGSTOP) == 0);
	{ /* kill() returns before the stop takes effect: wait for it (the master is our child) */
		int st;

		CHECK(waitpid(s.pid, &st, WUNTRACED) == s.pid && WIFSTOPPED(st));
	}
	for (int i = 0; i < CLIENTS; i++)
		fds[i] = client_say(&s, "hello\n");
	/* It wakes to SIGTERM and a listener with connections waiting, in one epoll round. */
	CHECK(kill(s.pid, SIGTERM) == 0);
	CHECK(kill(s.pid, SIGCONT) == 0);
	for (int i = 0; i < CLIENTS; i++) {
		CHECK(read_line(fds[i], line, sizeof(line)) > 0); /* an answer, not a reset */
		CHECK(strncmp(line, "worker=", 7) == 0);
		close(fds[i]);
	}
	server_wait_log(&s, "took 8 connection(s) still queued on the listeners", 10000);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
}

/*
 * Stop a two-worker server whose slot 0 is hung (Q_HANG) just after a client was handed to
 * it: the client must still be served, by worker 1, and nothing closed unserved.
 */
static void stop_with_a_hung_worker(unsigned ack_ms, unsigned drain_ms, const char *why)
{
	struct fdp_master_config cfg = config(2);
	struct server s;
	char line[256];
	int fd;

	quirk = Q_HANG;
	cfg.ack_timeout_ms = ack_ms;
	cfg.drain_timeout_ms = drain_ms;
	master_start(&s, cfg, 0);
	fd = client_say(&s, "hello\n"); /* round-robin: to slot 0, which is hung */
	CHECK(kill(s.pid, SIGTERM) == 0);
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(strncmp(line, "worker=1 ", 9) == 0);
	close(fd);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	CHECK(strstr(s.log, why) != NULL);
	CHECK(strstr(s.log, "closed unserved 0") != NULL);
	server_free(&s);
}

TEST(a_stop_with_a_hung_worker_still_serves_the_clients_handed_to_it)
{
	stop_with_a_hung_worker(300, 5000, "acknowledged no connection for 300 ms");
}

TEST(at_a_drain_deadline_a_hung_workers_unread_connections_are_served_elsewhere)
{
	/* The drain's end comes before the acknowledgement deadline: it must not lose the client. */
	stop_with_a_hung_worker(30000, 300, "has not read 1 connection(s) by the drain timeout");
}

TEST(a_reload_hands_an_idle_keep_alive_connection_to_the_next_generation)
{
	struct server s;
	char line[256], *st;
	int fd;

	quirk = Q_RETURN;
	master_start(&s, config(1), 0);
	fd = client_say(&s, "one\n");
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(strstr(line, " gen=1 ") != NULL);
	CHECK(kill(s.pid, SIGHUP) == 0);
	server_wait_log(&s, "reload complete", 10000); /* generation 1 is gone */
	/* The same TCP connection, its next request: served by generation 2. */
	send_all(fd, "two\n");
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(strstr(line, " gen=2 ") != NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "returned"), ==, 1);
	CHECK_INT(status_num(st, "master", "closed_shutdown"), ==, 0);
	free(st);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_stop_asks_for_no_connection_back)
{
	struct server s;
	char line[256];
	int fd;

	quirk = Q_RETURN;
	master_start(&s, config(1), 0);
	fd = client_say(&s, "one\n");
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(kill(s.pid, SIGTERM) == 0);
	/* No successor: the worker keeps its client until the client is done. */
	send_all(fd, "two\n");
	CHECK(read_line(fd, line, sizeof(line)) > 0);
	CHECK(strstr(line, " gen=1 ") != NULL);
	close(fd);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
}

/* The routing key of the C-API test: the line's first word (up to a space or the newline). */
static int first_word(void *arg, const unsigned char *buf, size_t len, size_t *key_off,
                      size_t *key_len)
{
	(void)arg;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != ' ' && buf[i] != '\n')
			continue;
		if (i == 0)
			return FDP_ROUTE_KEY_REJECT;
		*key_off = 0;
		*key_len = i;
		return FDP_ROUTE_KEY_FOUND;
	}
	return FDP_ROUTE_KEY_MORE;
}

/* Say line on a fresh connection and return the worker index that answered. */
static unsigned answering_worker(const struct server *s, const char *line)
{
	char reply[256];
	unsigned index;
	int fd = client_say(s, line);

	CHECK(read_line(fd, reply, sizeof(reply)) > 0);
	CHECK(sscanf(reply, "worker=%u ", &index) == 1);
	close(fd);
	return index;
}

TEST(a_key_function_given_through_the_c_api_routes_each_key_to_one_slot)
{
	struct server s;
	struct fdp_master_config cfg = config(3);
	struct fdp_route_config rc = {.size = sizeof(rc), .key_fn = first_word};
	char map[256];
	unsigned gamma;
	FILE *f;

	/* Pinned by the map: alpha to slot 0, beta to slot 2; gamma by the hash ring. */
	snprintf(map, sizeof(map), "%s/route.map", fdp_test_tmpdir());
	CHECK((f = fopen(map, "we")) != NULL);
	fputs("alpha 0\nbeta 2\n", f);
	CHECK(fclose(f) == 0);
	rc.map_path = map;
	cfg.policy = FDP_POLICY_ROUTE;
	cfg.route = &rc;
	quirk = Q_NONE;
	master_start(&s, cfg, 0);
	gamma = answering_worker(&s, "gamma one\n");
	for (int i = 0; i < 5; i++) {
		CHECK_INT(answering_worker(&s, "alpha hello\n"), ==, 0);
		CHECK_INT(answering_worker(&s, "beta hello\n"), ==, 2);
		CHECK_INT(answering_worker(&s, "gamma again\n"), ==, gamma);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* The listener's TCP_DEFER_ACCEPT, in seconds (0: accepted as soon as connected). */
static int defer_secs(int lfd)
{
	int secs = -1;
	socklen_t len = sizeof(secs);

	CHECK_OK(getsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, &len));
	return secs;
}

static struct fdp_route_config first_line = {.size = sizeof(first_line), .key = "line:1"};

/* A master started with cfg whose listener (the test's copy in *lfd) is deferred. */
static void deferred_start(struct server *s, struct fdp_master_config cfg, int *lfd)
{
	quirk = Q_NONE;
	master_start_keep(s, cfg, 0, lfd);
	CHECK_INT(defer_secs(*lfd), ==, 1);
}

static void deferred_stop(struct server *s, int lfd)
{
	close(lfd);
	CHECK_INT(server_stop(s), ==, 0);
	server_free(s);
}

/*
 * A client that connects and says nothing, then one that asks and is answered; the status
 * number key= on the line starting with prefix then reads want (what a silent client taken in
 * order would have changed). Once it speaks, the silent client is served like any other.
 */
static void silent_client_waits_in_the_kernel(struct server *s, const char *prefix,
                                              const char *key, long long want)
{
	char line[256], *st;
	int silent = tcp_connect(s->addr, NULL), fd = client_say(s, "alpha\n");

	CHECK(read_line(fd, line, sizeof(line)) > 0);
	st = server_status(s);
	CHECK_INT(status_num(st, prefix, key), ==, want);
	free(st);
	send_all(silent, "beta\n");
	CHECK(read_line(silent, line, sizeof(line)) > 0);
	CHECK(strncmp(line, "worker=", 7) == 0);
	close(silent);
	close(fd);
}

TEST(a_tcp_route_listener_takes_a_client_only_once_its_first_bytes_are_in)
{
	struct server s;
	struct fdp_master_config cfg = config(2);
	int lfd;

	cfg.policy = FDP_POLICY_ROUTE;
	cfg.route = &first_line;
	deferred_start(&s, cfg, &lfd);
	CHECK(strstr(s.log, "a client is accepted once its first bytes are in "
	                    "(TCP_DEFER_ACCEPT, 1 s)") != NULL);
	/* Accepted in order, the silent client would be waiting for its key. */
	silent_client_waits_in_the_kernel(&s, "route key=", "waiting", 0);
	deferred_stop(&s, lfd);
}

TEST(a_client_that_sends_nothing_is_taken_after_the_deferral_and_meets_its_route_timeout)
{
	struct server s;
	struct fdp_master_config cfg = config(1);
	struct fdp_route_config rc = first_line;
	struct pollfd p;
	char c, *st;
	int lfd;

	rc.timeout_ms = 1000; /* the shortest that is deferred */
	cfg.policy = FDP_POLICY_ROUTE;
	cfg.route = &rc;
	deferred_start(&s, cfg, &lfd);
	p.fd = tcp_connect(s.addr, NULL);
	p.events = POLLIN;
	/* About 1 s in the kernel, then 1 s in the master, then closed unserved. */
	CHECK_INT(poll(&p, 1, 10000), ==, 1);
	CHECK_INT(read(p.fd, &c, 1), ==, 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "route key=", "timeout"), ==, 1);
	CHECK_INT(status_num(st, "route key=", "closed"), ==, 1);
	free(st);
	close(p.fd);
	deferred_stop(&s, lfd);
}

TEST(a_listener_whose_clients_speak_first_is_deferred_under_any_policy)
{
	struct server s;
	struct fdp_master_config cfg = config(1);
	static const unsigned char defer[1] = {1};
	int lfd;

	cfg.listener_defer = defer;
	deferred_start(&s, cfg, &lfd);
	/* Taken in order, the silent client would have been accepted (and handed) first. */
	silent_client_waits_in_the_kernel(&s, "master", "accepted", 1);
	deferred_stop(&s, lfd);
}

/*
 * A master whose listener the config defers, and a client connected to it that has sent
 * nothing yet, which the kernel holds until its first bytes: the test sets the deferral to
 * 30 s (as systemd's DeferAcceptSec= could), so that the kernel does not hand it over by
 * itself after 1 s, however slow the test runs. The test keeps no copy of the listener, so the
 * stop's close is the real one.
 */
static int deferred_with_silent_client(struct server *s, int workers)
{
	static const unsigned char defer[1] = {1};
	struct fdp_master_config cfg = config(workers);
	int lfd, secs = 30;

	cfg.listener_defer = defer;
	deferred_start(s, cfg, &lfd);
	CHECK_OK(setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)));
	close(lfd);
	return tcp_connect(s->addr, NULL);
}

TEST(a_stop_waits_for_a_client_of_a_deferred_listener_to_send_and_serves_it)
{
	struct server s;
	char line[256];
	int silent = deferred_with_silent_client(&s, 2);

	kill(s.pid, SIGTERM);
	server_wait_log(&s, "waiting up to 1500 ms for 1 handshake(s) on deferred listeners", 5000);
	send_all(silent, "late\n");
	CHECK(read_line(silent, line, sizeof(line)) > 0);
	CHECK(strncmp(line, "worker=", 7) == 0);
	close(silent); /* its worker, done, can drain */
	CHECK_INT(server_wait_exit(&s), ==, 0);
	CHECK(strstr(s.log, "sent nothing in") == NULL);
	server_free(&s);
}

TEST(a_stop_with_no_handshake_held_on_a_deferred_listener_does_not_wait)
{
	static const unsigned char defer[1] = {1};
	struct server s;
	struct fdp_master_config cfg = config(1);
	int lfd;

	cfg.listener_defer = defer;
	deferred_start(&s, cfg, &lfd);
	close(lfd);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "draining: stopped accepting") != NULL);
	CHECK(strstr(s.log, "waiting up to") == NULL);
	server_free(&s);
}

TEST(a_client_silent_past_the_stops_wait_is_reset_and_the_stop_goes_on)
{
	struct server s;
	char c;
	int silent = deferred_with_silent_client(&s, 1);

	kill(s.pid, SIGTERM);
	server_wait_log(&s, "waiting up to 1500 ms", 5000);
	server_wait_log(&s, "1 client(s) connected to a deferred listener sent nothing in 1500 ms",
	                5000);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	/* Its handshake went with the listener: what it sends now meets a reset. */
	send_all(silent, "too late\n");
	fdp_test_wait_readable(silent, 5000);
	CHECK_INT(read(silent, &c, 1), ==, -1);
	CHECK_INT(errno, ==, ECONNRESET);
	close(silent);
	server_free(&s);
}

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef TEST_AUDIT_ARCH
/* In the master's process: socket(AF_NETLINK, ...) fails (EAFNOSUPPORT), as under a seccomp
 * policy or systemd's RestrictAddressFamilies= without it, so sock_diag cannot be asked. */
static void no_netlink(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 0, 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		_exit(97);
}
#endif

TEST(a_stop_that_cannot_ask_the_kernel_waits_out_the_whole_wait_and_serves_on)
{
#ifdef TEST_AUDIT_ARCH
	struct server s;
	char line[256];
	long long asked;
	int silent;

	master_child_setup = no_netlink;
	silent = deferred_with_silent_client(&s, 1);
	master_child_setup = NULL;
	asked = test_now_ms();
	kill(s.pid, SIGTERM);
	server_wait_log(&s, "waiting 1500 ms for clients connected to deferred listeners", 5000);
	CHECK(strstr(s.log, "no sock_diag") != NULL);
	send_all(silent, "late\n");
	CHECK(read_line(silent, line, sizeof(line)) > 0);
	CHECK(strncmp(line, "worker=", 7) == 0);
	close(silent); /* its worker, done, can drain */
	CHECK_INT(server_wait_exit(&s), ==, 0);
	/* Not told when its client was in, it waited the whole time. */
	CHECK_INT(test_now_ms() - asked, >=, 1500);
	server_free(&s);
#else
	fdp_test_skip("no seccomp filter written for this architecture");
#endif
}

TEST(a_second_stop_during_the_wait_for_a_deferred_client_stops_at_once)
{
	struct server s;
	int silent = deferred_with_silent_client(&s, 1);

	kill(s.pid, SIGTERM);
	server_wait_log(&s, "waiting up to 1500 ms", 5000);
	kill(s.pid, SIGTERM);
	server_wait_log(&s, "stopping now: killing every worker", 5000);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	/* The wait was cut short: it never came to its end, where it gives up on the client. */
	CHECK(strstr(s.log, "sent nothing in") == NULL);
	close(silent);
	server_free(&s);
}

/* cfg.reload: every listener to round-robin. */
static int reload_to_round_robin(void *arg, struct fdp_master_config *next, char *why,
                                 size_t size)
{
	(void)arg, (void)why, (void)size;
	next->policy = FDP_POLICY_ROUND_ROBIN;
	next->listener_policy = NULL;
	return 0;
}

TEST(a_reload_that_takes_the_route_policy_away_takes_the_deferral_away)
{
	struct server s;
	struct fdp_master_config cfg = config(1);
	int lfd;

	cfg.policy = FDP_POLICY_ROUTE;
	cfg.route = &first_line;
	cfg.reload = reload_to_round_robin;
	deferred_start(&s, cfg, &lfd);
	CHECK(kill(s.pid, SIGHUP) == 0);
	server_wait_log(&s, "accepted as clients connect again (TCP_DEFER_ACCEPT off)", 10000);
	server_wait_log(&s, "reload complete", 10000);
	CHECK_INT(defer_secs(lfd), ==, 0);
	deferred_stop(&s, lfd);
}

TEST(a_reload_that_takes_the_route_policy_away_keeps_a_deferral_the_config_asks_for)
{
	struct server s;
	struct fdp_master_config cfg = config(1);
	static const unsigned char defer[1] = {1};
	int lfd;

	cfg.policy = FDP_POLICY_ROUTE;
	cfg.route = &first_line;
	cfg.listener_defer = defer;
	cfg.reload = reload_to_round_robin;
	deferred_start(&s, cfg, &lfd);
	CHECK(kill(s.pid, SIGHUP) == 0);
	server_wait_log(&s, "reload complete", 10000);
	CHECK_INT(defer_secs(lfd), ==, 1);
	CHECK(strstr(s.log, "TCP_DEFER_ACCEPT off") == NULL);
	deferred_stop(&s, lfd);
}

/* cfg.log for the in-process master below: the last warning. */
static char logged_warn[512];

static void keep_warnings(void *arg, enum fdp_log_level level, const char *msg)
{
	(void)arg;
	if (level == FDP_LOG_WARN)
		snprintf(logged_warn, sizeof(logged_warn), "%s", msg);
}

TEST(a_unix_listener_the_config_asks_to_defer_opens_and_says_it_cannot_be)
{
	struct fdp_master_config cfg = config(1);
	static const unsigned char defer[1] = {1};
	char path[300], addr[310];
	struct fdp_master *m;
	int lfd;

	snprintf(path, sizeof(path), "%s/defer.sock", fdp_test_tmpdir());
	snprintf(addr, sizeof(addr), "unix:%s", path);
	lfd = fdp_listen(addr, 4);
	CHECK_OK(lfd);
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	cfg.listener_defer = defer;
	cfg.log = keep_warnings;
	cfg.log_level = FDP_LOG_WARN;
	logged_warn[0] = '\0';
	CHECK_OK(fdp_master_open(&m, &cfg));
	CHECK(strstr(logged_warn, "TCP_DEFER_ACCEPT refused on 1 of 1 socket(s)") != NULL);
	fdp_master_close(m);
	unlink(path);
}

/* A master of this process, with one listener and no control socket; workers as cfg says. */
static struct fdp_master *open_here(struct fdp_master_config cfg)
{
	struct fdp_master *m;
	int lfd = fdp_listen("127.0.0.1:0", 4);

	CHECK_OK(lfd);
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	cfg.log = no_worker_log;
	CHECK_OK(fdp_master_open(&m, &cfg));
	return m;
}

static void master_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGCHLD);
}

TEST(a_route_timeout_shorter_than_the_deferral_leaves_the_listener_undeferred)
{
	struct fdp_master_config cfg = config(1);
	struct fdp_route_config rc = first_line;
	struct fdp_master *m;
	int lfd = fdp_listen("127.0.0.1:0", 4);

	/* A client that sends nothing would wait out the deferral first: longer than its timeout. */
	rc.timeout_ms = 500;
	cfg.policy = FDP_POLICY_ROUTE;
	cfg.route = &rc;
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	cfg.log = no_worker_log;
	CHECK_OK(fdp_master_open(&m, &cfg));
	CHECK_INT(defer_secs(lfd), ==, 0);
	fdp_master_close(m);
}

TEST(run_refuses_to_start_when_the_signals_it_reads_are_not_blocked)
{
	struct fdp_master *m = open_here(config(1));
	sigset_t sigs, old, one;

	master_signals(&sigs);
	CHECK_OK(sigprocmask(SIG_BLOCK, &sigs, &old));
	/* Every one of the four counts: here SIGHUP alone is missing. */
	sigemptyset(&one);
	sigaddset(&one, SIGHUP);
	CHECK_OK(sigprocmask(SIG_UNBLOCK, &one, NULL));
	CHECK_INT(fdp_master_run(m), ==, -EINVAL);
	CHECK_OK(sigprocmask(SIG_SETMASK, &old, NULL));
	fdp_master_close(m);
	/* Nothing was forked. */
	CHECK_INT(waitpid(-1, NULL, WNOHANG), ==, -1);
	CHECK_INT(errno, ==, ECHILD);
}

TEST(run_returns_enoexec_when_a_first_generation_worker_cannot_be_executed)
{
	char *argv[] = {"/nonexistent/fdpass-worker", NULL};
	struct fdp_master_config cfg = config(2);
	struct fdp_master *m;
	sigset_t sigs, old;

	cfg.worker_main = NULL;
	cfg.exec_argv = argv;
	m = open_here(cfg);
	master_signals(&sigs);
	CHECK_OK(sigprocmask(SIG_BLOCK, &sigs, &old));
	CHECK_INT(fdp_master_run(m), ==, -ENOEXEC);
	fdp_master_close(m);
	CHECK_OK(sigprocmask(SIG_SETMASK, &old, NULL));
	/* The child that could not exec is reaped already; none is left. */
	CHECK_INT(waitpid(-1, NULL, WNOHANG), ==, -1);
	CHECK_INT(errno, ==, ECHILD);
}

/* cfg.reload (fdpass_runtime.h): what the program's callback gives at a SIGHUP is applied. */
static unsigned reload_workers;

static int reload_to(void *arg, struct fdp_master_config *next, char *why, size_t size)
{
	(void)arg;
	if (!reload_workers) {
		snprintf(why, size, "not today");
		return -EINVAL;
	}
	next->workers = reload_workers;
	return 0;
}

static void reload_with(struct server *s, unsigned workers, unsigned to)
{
	struct fdp_master_config cfg = config(workers);

	quirk = Q_NONE;
	reload_workers = to; /* copied into the server's process by its fork */
	cfg.reload = reload_to;
	master_start(s, cfg, 0);
	CHECK(kill(s->pid, SIGHUP) == 0);
}

TEST(a_reload_callback_that_grows_the_workers_starts_the_new_slots)
{
	struct server s;
	char line[256], *st;
	int seen2 = 0;

	reload_with(&s, 1, 3);
	server_wait_log(&s, "workers: 1 -> 3", 10000);
	server_wait_log(&s, "reload complete: every worker replaced", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "workers"), ==, 3);
	free(st);
	for (int i = 0; i < 6; i++) {
		int fd = client_say(&s, "hello\n");

		CHECK(read_line(fd, line, sizeof(line)) > 0);
		seen2 |= strncmp(line, "worker=2 ", 9) == 0;
		close(fd);
	}
	CHECK(seen2);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_reload_callback_that_refuses_replaces_no_worker_and_logs_why)
{
	struct server s;
	pid_t before[1], after[1];
	char *st;

	reload_with(&s, 1, 0);
	server_wait_log(&s, "reload refused: not today; the configuration in force stays", 10000);
	st = server_status(&s);
	CHECK_INT(status_pids(st, before, 1), ==, 1);
	CHECK(strstr(st, "state=running") != NULL);
	free(st);
	/* A SIGHUP more: the same refusal, and still the same worker. */
	CHECK(kill(s.pid, SIGHUP) == 0);
	server_wait_log(&s, "reload refused: not today", 10000);
	st = server_status(&s);
	CHECK_INT(status_pids(st, after, 1), ==, 1);
	free(st);
	CHECK_INT(after[0], ==, before[0]);
	CHECK(strstr(s.log, "generation 2") == NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_reload_callback_asking_for_more_slots_than_the_limit_is_refused)
{
	struct server s;
	char *st;

	reload_with(&s, 2, 5000);
	server_wait_log(&s, "reload refused: 5000 workers: from 1 to 1024", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "workers"), ==, 2);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
