/*
 * The worker side of kernel dispatch (docs/STEERING.md), against a hand-driven master end of
 * the channel: fdp_worker_take_listeners() says ACCEPTS, a LISTEN gives the worker a listening
 * socket and the steering state (here a memfd of the state's size, which the worker maps as it
 * would the BPF map), and fdp_worker_accept() accepts there, counting in the state.
 */
#include "worker_testlib.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

struct own {
	struct fdp_channel *master;
	struct fdp_worker *w;
	int lfd;                     /* the test's copy of the listening socket */
	struct fdp__steer_state *st; /* the test's view of the state */
	int state_fd;                /* the test's copy of it */
	int port;
};

#define SLOT 1

/*
 * A worker in slot SLOT that took a LISTEN for a listener on 127.0.0.1, listener 2, tag 5; with
 * ep >= 0 watched there (fdp_worker_watch(), data.u64 from BASE) before it takes listeners;
 * without accepts, one that never said ACCEPTS (the LISTEN comes all the same).
 */
#define BASE 1000

static void open_own_as(struct own *o, int ep, int accepts)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	unsigned char buf[FDP_PROTO_LISTEN_SIZE];
	struct fdp_proto_listen l = {.listener = 2,
	                             .tag = 5,
	                             .slot = SLOT,
	                             .state_size = sizeof(struct fdp__steer_state)};
	int sv[2], fds[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&o->master, sv[0], NULL));
	send_hello(o->master, SLOT, 1, FDP_PROTO_VERSION);
	CHECK_OK(fdp_worker_open(&o->w, sv[1], 1000));
	master_recv(o->master);
	CHECK_INT(msg.type, ==, FDP_PROTO_READY);
	fdp_channel_msg_release(&msg);
	if (ep >= 0)
		CHECK_OK(fdp_worker_watch(o->w, ep, BASE));
	if (accepts) {
		CHECK_OK(fdp_worker_take_listeners(o->w));
		master_recv(o->master);
		CHECK_INT(msg.type, ==, FDP_PROTO_ACCEPTS);
		fdp_channel_msg_release(&msg);
	}

	o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(o->lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(bind(o->lfd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(o->lfd, 128));
	CHECK_OK(getsockname(o->lfd, (struct sockaddr *)&sa, &len));
	o->port = ntohs(sa.sin_port);
	fds[1] = memfd_create("state", MFD_CLOEXEC);
	CHECK(fds[1] >= 0);
	CHECK_OK(ftruncate(fds[1], sizeof(struct fdp__steer_state)));
	o->st = mmap(NULL, sizeof(*o->st), PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
	CHECK(o->st != MAP_FAILED);
	o->state_fd = fcntl(fds[1], F_DUPFD_CLOEXEC, 0);
	fds[0] = fcntl(o->lfd, F_DUPFD_CLOEXEC, 0);
	/* Given: the channel closes them once sent. */
	CHECK_OK(fdp_channel_send(o->master, FDP_PROTO_LISTEN, buf, fdp_proto_listen_encode(buf, &l),
	                          fds, 2, 0));
}

static void open_own_in(struct own *o, int ep)
{
	open_own_as(o, ep, 1);
}

static void open_own(struct own *o)
{
	open_own_in(o, -1);
}

/* A listening socket on 127.0.0.1 (port in *port), non-blocking. */
static int listener(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(fd, 128));
	CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Give o's worker slot 0's socket lfd to steal from (as the master does after its own). */
static void send_steal(struct own *o, int lfd, int state_fd)
{
	unsigned char buf[FDP_PROTO_LISTEN_SIZE];
	struct fdp_proto_listen l = {.listener = 2,
	                             .tag = 5,
	                             .slot = 0,
	                             .state_size = sizeof(struct fdp__steer_state),
	                             .flags = FDP_PROTO_LISTEN_STEAL};
	int fds[2] = {fcntl(lfd, F_DUPFD_CLOEXEC, 0), fcntl(state_fd, F_DUPFD_CLOEXEC, 0)};

	CHECK_OK(fdp_channel_send(o->master, FDP_PROTO_LISTEN, buf, fdp_proto_listen_encode(buf, &l),
	                          fds, 2, 0));
}

static int connect_port(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	return fd;
}

static void close_own(struct own *o)
{
	fdp_worker_close(o->w);
	fdp_channel_close(o->master);
	munmap(o->st, sizeof(*o->st));
	close(o->state_fd);
	close(o->lfd);
}

static int client(const struct own *o)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	return fd;
}

/* fdp_worker_accept() until it returns a connection, waiting on fdp_worker_fd() (bounded). */
static int accept_wait(struct fdp_worker *w, struct fdp_conn *c)
{
	for (int tries = 0; tries < 20; tries++) {
		struct pollfd p = {.fd = fdp_worker_fd(w), .events = POLLIN};
		int fd = fdp_worker_accept(w, c);

		if (fd != -EAGAIN)
			return fd;
		poll(&p, 1, 500);
	}
	return -EAGAIN;
}

/*
 * The worker reads what the master has sent it already (LISTENs): an accept says -EAGAIN and
 * its descriptor shows nothing left. No wait: it is all in the channel's socket by now.
 */
static void read_sent(struct own *o)
{
	struct fdp_conn c;

	do
		CHECK_INT(fdp_worker_accept(o->w, &c), ==, -EAGAIN);
	while (poll(&(struct pollfd){.fd = fdp_worker_fd(o->w), .events = POLLIN}, 1, 0) == 1);
}

/* A worker of open_own() that has accepted one client's connection: its fd, *cl the client's. */
static int open_with_one(struct own *o, struct fdp_conn *c, int *cl)
{
	int fd;

	open_own(o);
	*cl = client(o);
	fd = accept_wait(o->w, c);
	CHECK(fd >= 0);
	return fd;
}

/* The worker has taken all there is (as a loop does before it waits); the master drains it. */
static void drain(struct own *o)
{
	unsigned char flags[FDP_PROTO_DRAIN_SIZE];
	struct fdp_conn c;

	CHECK_INT(fdp_worker_accept(o->w, &c), ==, -EAGAIN);
	CHECK_OK(fdp_channel_send(o->master, FDP_PROTO_DRAIN, flags,
	                          fdp_proto_drain_encode(flags, 0), NULL, 0, 0));
}

TEST(a_worker_accepts_on_the_socket_a_listen_gives_it_and_counts_in_the_state)
{
	struct own o;
	struct fdp_conn c;
	int cl, fd;

	fd = open_with_one(&o, &c, &cl);
	CHECK(c.id & FDP_CONN_OWN);
	CHECK_INT(c.listener, ==, 2);
	CHECK_INT(c.tag, ==, 5);
	CHECK_INT(c.peer.ss_family, ==, AF_INET);
	CHECK_INT(o.st->open[SLOT], ==, 1);
	CHECK_INT(o.st->accepted[SLOT], ==, 1);
	o.st->count[SLOT] = 1; /* as the program adds at selection */
	CHECK_OK(fdp_worker_done(o.w, c.id));
	CHECK_INT(o.st->open[SLOT], ==, 0);
	CHECK_INT(o.st->count[SLOT], ==, 0);
	CHECK_INT(o.st->accepted[SLOT], ==, 1);
	/* No message for it: the master never heard of it. */
	CHECK_OK(fdp_worker_flush(o.w));
	CHECK_INT(fdp_channel_recv(o.master, &msg), ==, -EAGAIN);
	close(fd);
	close(cl);
	close_own(&o);
}

TEST(set_blocking_decides_whether_the_sockets_a_worker_accepts_itself_are_blocking)
{
	struct own o;
	struct fdp_conn c[3];
	int cl[3], fd[3];

	open_own(&o);
	for (int i = 0; i < 3; i++) {
		fdp_worker_set_blocking(o.w, i == 1);
		cl[i] = client(&o);
		fd[i] = accept_wait(o.w, &c[i]);
		CHECK(fd[i] >= 0);
		CHECK(c[i].id & FDP_CONN_OWN);
		CHECK(fcntl(fd[i], F_GETFD) & FD_CLOEXEC);
	}
	CHECK(nonblocking(fd[0])); /* the default */
	CHECK(!nonblocking(fd[1]));
	CHECK(nonblocking(fd[2])); /* non-blocking again */
	CHECK(nonblocking(o.lfd)); /* the listening socket stays as the master made it */
	for (int i = 0; i < 3; i++) {
		CHECK_OK(fdp_worker_done(o.w, c[i].id));
		close(fd[i]);
		close(cl[i]);
	}
	close_own(&o);
}

TEST(a_done_never_takes_a_count_below_zero)
{
	struct own o;
	struct fdp_conn c;
	int cl, fd;

	fd = open_with_one(&o, &c, &cl);
	o.st->count[SLOT] = 0; /* the master's resync already took it off */
	CHECK_OK(fdp_worker_done(o.w, c.id));
	CHECK_INT(o.st->count[SLOT], ==, 0);
	close(fd);
	close(cl);
	close_own(&o);
}

TEST(a_burst_of_own_accepts_gives_the_caller_an_eagain_after_4)
{
	struct own o;
	struct fdp_conn c;
	int cl[70], fds[70], n = 0, fd;

	open_own(&o);
	for (int i = 0; i < 70; i++)
		cl[i] = client(&o);
	fd = accept_wait(o.w, &c); /* the first, once the LISTEN is read */
	CHECK(fd >= 0);
	fds[n++] = fd;
	while ((fd = fdp_worker_accept(o.w, &c)) >= 0)
		fds[n++] = fd;
	CHECK_INT(fd, ==, -EAGAIN);
	CHECK_INT(n, ==, 4); /* the caller serves these first: 66 still wait, stealable */
	while (n < 70 && (fd = accept_wait(o.w, &c)) >= 0)
		fds[n++] = fd;
	CHECK_INT(n, ==, 70);
	CHECK_INT(o.st->accepted[SLOT], ==, 70);
	for (int i = 0; i < 70; i++) {
		close(fds[i]);
		close(cl[i]);
	}
	close_own(&o);
}

TEST(a_drain_closes_the_own_sockets_and_accept_says_eshutdown)
{
	struct own o;
	struct fdp_conn c;
	int cl, fd;

	fd = open_with_one(&o, &c, &cl);
	close(fd);
	close(cl);
	drain(&o);
	cl = client(&o); /* queued on the master's copy: the worker must not take it any more */
	CHECK_INT(accept_wait(o.w, &c), ==, -ESHUTDOWN);
	/* Nor is it woken by it: its descriptor left the epoll set with its socket. */
	CHECK_INT(poll(&(struct pollfd){.fd = fdp_worker_fd(o.w), .events = POLLIN}, 1, 0), ==, 0);
	fd = accept4(o.lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0); /* still there for the master */
	close(fd);
	close(cl);
	close_own(&o);
}

TEST(a_draining_workers_own_connections_leave_the_slots_counts)
{
	struct own o;
	struct fdp_conn c;
	int cl, fd;

	fd = open_with_one(&o, &c, &cl);
	o.st->count[SLOT] = 1;
	CHECK_INT(o.st->open[SLOT], ==, 1);
	drain(&o);
	CHECK_INT(accept_wait(o.w, &c), ==, -ESHUTDOWN);
	/* Still open here, but the slot's counts are its successor's now. */
	CHECK_INT(o.st->open[SLOT], ==, 0);
	CHECK_INT(o.st->count[SLOT], ==, 0);
	o.st->open[SLOT] = 1; /* the successor's */
	CHECK_OK(fdp_worker_done(o.w, c.id));
	CHECK_INT(o.st->open[SLOT], ==, 1); /* left alone */
	close(fd);
	close(cl);
	close_own(&o);
}

TEST(fdp_worker_fd_is_readable_while_a_connection_waits_on_an_own_socket)
{
	struct own o;
	struct fdp_conn c;
	struct pollfd p;
	int cl, fd;

	open_own(&o);
	read_sent(&o); /* the LISTENs */
	p = (struct pollfd){.fd = fdp_worker_fd(o.w), .events = POLLIN};
	CHECK_INT(poll(&p, 1, 0), ==, 0);
	cl = client(&o);
	CHECK_INT(poll(&p, 1, 5000), ==, 1);
	fd = fdp_worker_accept(o.w, &c);
	CHECK(fd >= 0);
	close(fd);
	close(cl);
	close_own(&o);
}

TEST(an_idle_worker_steals_a_connection_waiting_on_a_slot_whose_worker_does_not_come)
{
	struct own o;
	struct fdp_conn c;
	int port, other, cl, fd = -EAGAIN;

	open_own(&o);
	other = listener(&port);
	send_steal(&o, other, o.state_fd);
	o.st->count[0] = 1; /* the program picked slot 0 for it */
	cl = connect_port(port);
	/* Slot 0's worker never came for connections (its beat is 0): it is stalled. */
	for (int tries = 0; tries < 1000 && fd == -EAGAIN; tries++) {
		fd = fdp_worker_accept(o.w, &c);
		if (fd == -EAGAIN)
			poll(NULL, 0, 1);
	}
	CHECK(fd >= 0);
	CHECK(c.id & FDP_CONN_OWN);
	CHECK_INT(c.listener, ==, 2);
	/* Counted as this worker's: its slot up, the robbed slot's count down, stolen up. */
	CHECK_INT(o.st->open[SLOT], ==, 1);
	CHECK_INT(o.st->accepted[SLOT], ==, 1);
	CHECK_INT(o.st->count[SLOT], ==, 1);
	CHECK_INT(o.st->count[0], ==, 0);
	CHECK_INT(o.st->stolen[0], ==, 1);
	CHECK_INT(o.st->accepted[0], ==, 0);
	CHECK_OK(fdp_worker_done(o.w, c.id));
	CHECK_INT(o.st->open[SLOT], ==, 0);
	CHECK_INT(o.st->count[SLOT], ==, 0);
	close(fd);
	close(cl);
	close(other);
	close_own(&o);
}

/* CLOCK_MONOTONIC in microseconds, wrapping: the clock of the beat words. */
static uint32_t beat_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint32_t)((long long)t.tv_sec * 1000000 + t.tv_nsec / 1000);
}

TEST(a_slot_whose_worker_keeps_coming_for_connections_is_not_robbed)
{
	struct own o;
	struct fdp_conn c;
	int port, other, cl, fd = -1;

	open_own(&o);
	other = listener(&port);
	send_steal(&o, other, o.state_fd);
	o.st->count[0] = 1; /* it waits there */
	cl = connect_port(port);
	/* Fifty calls in a row that leave it (at most 500 calls in all). */
	for (int tries = 0, left = 0; tries < 500 && left < 50; tries++) {
		uint32_t came = beat_now();
		int r;

		o.st->beat[0] = came; /* slot 0's worker has just come */
		r = fdp_worker_accept(o.w, &c);
		if (r >= 0) {
			/* Taken only if the call itself outlasted the stall time (a slow machine,
			 * valgrind): the beat it read was that old by then. */
			CHECK(beat_now() - came >= FDP_PROTO_STEER_STALL_US);
			close(r);
			o.st->count[0] = 1;
			close(cl);
			cl = connect_port(port);
			left = 0;
			continue;
		}
		CHECK_INT(r, ==, -EAGAIN);
		left++;
	}
	fd = accept4(other, NULL, NULL, SOCK_CLOEXEC); /* still there, for its own worker */
	CHECK(fd >= 0);
	close(fd);
	close(cl);
	close(other);
	close_own(&o);
}

TEST(nothing_is_taken_from_a_stalled_slot_whose_counts_show_no_queue)
{
	struct own o;
	struct fdp_conn c;
	int port, other, cl, fd;

	open_own(&o);
	other = listener(&port);
	send_steal(&o, other, o.state_fd);
	cl = connect_port(port);
	/* Stalled (its beat is 0), but count - open says nothing waits there. */
	o.st->count[0] = 3;
	o.st->open[0] = 3;
	for (int tries = 0; tries < 20; tries++) {
		CHECK_INT(fdp_worker_accept(o.w, &c), ==, -EAGAIN);
		poll(NULL, 0, 1);
	}
	fd = accept4(other, NULL, NULL, SOCK_CLOEXEC); /* still there */
	CHECK(fd >= 0);
	CHECK_INT(o.st->stolen[0], ==, 0);
	close(fd);
	close(cl);
	close(other);
	close_own(&o);
}

TEST(a_worker_that_comes_for_connections_sets_its_slots_beat)
{
	struct own o;
	struct fdp_conn c;
	uint32_t before;

	open_own(&o);
	read_sent(&o); /* the LISTENs */
	o.st->beat[SLOT] = 0;
	before = beat_now();
	CHECK_INT(fdp_worker_accept(o.w, &c), ==, -EAGAIN);
	CHECK(o.st->beat[SLOT] - before < 5000000u); /* now, give or take a slow machine */
	CHECK_INT(o.st->beat[0], ==, 0);             /* not another slot's */
	close_own(&o);
}

TEST(a_stalled_slots_connections_take_turns_with_the_workers_own)
{
	struct own o;
	struct fdp_conn c;
	int port, other, cl[4], fds[4], n = 0, fd, stolen = 0, last_stolen = 0;

	open_own(&o);
	other = listener(&port);
	send_steal(&o, other, o.state_fd);
	read_sent(&o); /* the LISTENs */
	cl[0] = client(&o);
	cl[1] = client(&o);
	cl[2] = connect_port(port);
	cl[3] = connect_port(port);
	o.st->count[SLOT] = 2;
	o.st->count[0] = 2;
	while (n < 4 && (fd = accept_wait(o.w, &c)) >= 0) {
		/* A stolen one is on the other listening socket: its local port says so. */
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);

		CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
		if (ntohs(sa.sin_port) == port) {
			CHECK(!last_stolen || n == 3); /* never two in a row while ours wait */
			stolen++;
			last_stolen = 1;
		} else {
			last_stolen = 0;
		}
		fds[n++] = fd;
	}
	CHECK_INT(n, ==, 4);
	CHECK_INT(stolen, ==, 2);
	CHECK_INT(o.st->stolen[0], ==, 2);
	for (int i = 0; i < 4; i++) {
		close(fds[i]);
		close(cl[i]);
	}
	close(other);
	close_own(&o);
}

TEST(a_drain_reaches_a_worker_whose_own_socket_never_empties)
{
	unsigned char flags[FDP_PROTO_DRAIN_SIZE];
	struct own o;
	struct fdp_conn c;
	int cl[40], taken = 0, fd = 0;

	open_own(&o);
	read_sent(&o); /* the LISTENs */
	for (int i = 0; i < 40; i++)
		cl[i] = client(&o);
	fd = accept_wait(o.w, &c); /* a burst begins: the socket is seen ready */
	CHECK(fd >= 0);
	close(fd);
	taken = 1;
	CHECK_OK(fdp_channel_send(o.master, FDP_PROTO_DRAIN, flags, fdp_proto_drain_encode(flags, 0),
	                          NULL, 0, 0));
	/* More wait than any burst takes: the channel still gets its look after one. */
	while (taken < 40 && (fd = fdp_worker_accept(o.w, &c)) != -ESHUTDOWN) {
		if (fd >= 0) {
			close(fd);
			taken++;
		}
	}
	CHECK_INT(fd, ==, -ESHUTDOWN);
	CHECK(taken <= 4);
	for (int i = 0; i < 40; i++)
		close(cl[i]);
	close_own(&o);
}

/* ---- fdp_worker_watch(): the slot's socket in the caller's own epoll set ---- */

/* o's worker, watched in ep, reads its LISTEN, then accepts a client's connection woken by
 * the socket itself (own[0]: BASE + 1), counted in the slot's state. */
static void accept_one_watched(struct own *o, int ep)
{
	struct fdp_conn c;
	int cl, fd, saw = 0;

	read_sent_watched(o->w, ep); /* the LISTEN */
	cl = client(o);
	fd = accept_watched(o->w, ep, &c, BASE + 1, &saw);
	CHECK(fd >= 0);
	CHECK(saw);
	CHECK(c.id & FDP_CONN_OWN);
	CHECK_INT(o->st->accepted[SLOT], ==, 1);
	close(fd);
	close(cl);
}

/* A worker watched in a set of the test's before (or after) it takes listeners accepts on its
 * own socket through that set. */
static void watched_accepts(int before)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct own o;

	CHECK(ep >= 0);
	open_own_in(&o, before ? ep : -1);
	if (!before)
		CHECK_OK(fdp_worker_watch(o.w, ep, BASE));
	CHECK_INT(fdp_worker_fd(o.w), ==, -1);
	accept_one_watched(&o, ep);
	close_own(&o);
	close(ep);
}

TEST(a_watched_worker_accepts_on_its_own_socket_registered_in_the_callers_set)
{
	watched_accepts(0); /* watched after fdp_worker_take_listeners() */
}

TEST(a_worker_watched_before_it_takes_listeners_registers_the_socket_its_listen_gives)
{
	watched_accepts(1);
}

TEST(a_watched_workers_drain_takes_its_socket_out_of_the_callers_set)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev;
	struct own o;
	struct fdp_conn c;
	int cl, fd;

	CHECK(ep >= 0);
	open_own_in(&o, ep);
	cl = client(&o);
	fd = accept_watched(o.w, ep, &c, 0, NULL);
	CHECK(fd >= 0);
	close(fd);
	close(cl);
	drain(&o);
	CHECK_INT(accept_watched(o.w, ep, &c, 0, NULL), ==, -ESHUTDOWN);
	cl = client(&o); /* queued on the master's copy, which keeps the socket */
	CHECK_INT(epoll_wait(ep, &ev, 1, 0), ==, 0);
	close(cl);
	close_own(&o);
	close(ep);
}

TEST(closing_a_watched_worker_takes_its_socket_out_of_the_callers_set)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev;
	struct own o;
	int cl;

	CHECK(ep >= 0);
	open_own_in(&o, ep);
	read_sent_watched(o.w, ep); /* the LISTEN */
	fdp_worker_close(o.w);
	o.w = NULL;
	cl = client(&o); /* the test's copy keeps the socket, and would keep a registration */
	CHECK_INT(epoll_wait(ep, &ev, 1, 0), ==, 0);
	close(cl);
	close_own(&o);
	close(ep);
}

TEST(a_watched_worker_that_never_said_accepts_drops_a_listen)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev;
	struct own o;
	struct fdp_conn c;
	int cl;

	CHECK(ep >= 0);
	open_own_as(&o, ep, 0);
	read_sent_watched(o.w, ep); /* the LISTEN (dropped) */
	cl = client(&o); /* waits on the test's copy: nothing of the worker's is in the set */
	CHECK_INT(epoll_wait(ep, &ev, 1, 0), ==, 0);
	CHECK_INT(fdp_worker_accept(o.w, &c), ==, -EAGAIN);
	close(cl);
	close_own(&o);
	close(ep);
}

/* The worker's own copy of the socket fd (received over the channel, in this process too). */
static int worker_copy_of(int fd)
{
	struct stat want, st;
	int found = -1;

	CHECK_OK(fstat(fd, &want));
	for (int k = 0; k < 1024; k++)
		if (k != fd && fstat(k, &st) == 0 && st.st_ino == want.st_ino &&
		    st.st_dev == want.st_dev)
			found = k;
	CHECK(found >= 0);
	return found;
}

TEST(a_watch_refused_at_an_own_socket_takes_the_channel_back_out_and_leaves_the_worker_as_it_was)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
	struct own o;
	struct fdp_conn c;
	int cl, fd, copy;

	CHECK(ep >= 0);
	open_own(&o);
	read_sent(&o); /* the LISTENs */
	/* The caller's set has the worker's socket already: epoll refuses it a second time. */
	copy = worker_copy_of(o.lfd);
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, copy, &ev));
	CHECK_INT(fdp_worker_watch(o.w, ep, BASE), ==, -EEXIST);
	CHECK(fdp_worker_fd(o.w) >= 0); /* its own epoll descriptor still */
	/* The channel left the caller's set again: a message wakes only the worker's own. */
	cl = send_conn_keep(o.master, 9, 0, NULL);
	fdp_test_wait_readable(fdp_worker_fd(o.w), 5000);
	CHECK_INT(epoll_wait(ep, &ev, 1, 0), ==, 0);
	fd = accept_wait(o.w, &c);
	CHECK(fd >= 0);
	CHECK_INT(c.id, ==, 9);
	close(fd);
	close(cl);
	/* Without the caller's registration in the way, the watch goes through. */
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_DEL, copy, NULL));
	CHECK_OK(fdp_worker_watch(o.w, ep, BASE));
	accept_one_watched(&o, ep);
	close_own(&o);
	close(ep);
}
