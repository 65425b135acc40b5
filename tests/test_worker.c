/* The worker side, against a hand-driven master end of the channel. */
#include "worker_testlib.h"
#include "worker_internal.h"

/* A protocol tag: the runtime only carries it, whatever its value. */
#define TAG_ANY 2

#include <fcntl.h>

struct pair {
	struct fdp_channel *master;
	struct fdp_worker *w;
};

/*
 * fdp_worker_accept() as an event loop calls it: on -EAGAIN wait for the channel to be
 * readable and try again (the channel may say -EAGAIN once after a batch, without a call).
 */
static int accept_wait(struct fdp_worker *w, struct fdp_conn *c)
{
	for (int tries = 0; tries < 3; tries++) {
		struct pollfd p = {.fd = fdp_worker_fd(w), .events = POLLIN};
		int fd = fdp_worker_accept(w, c);

		if (fd != -EAGAIN)
			return fd;
		if (poll(&p, 1, 1000) != 1)
			break;
	}
	return -EAGAIN;
}

static void open_pair(struct pair *p)
{
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&p->master, sv[0], NULL));
	send_hello(p->master, 3, 7, FDP_PROTO_VERSION);
	CHECK_OK(fdp_worker_open(&p->w, sv[1], 1000));
	master_recv(p->master);
	CHECK_INT(msg.type, ==, FDP_PROTO_READY);
	CHECK_INT(fdp__get32(msg.payload), ==, getpid());
	fdp_channel_msg_release(&msg);
}

static void close_pair(struct pair *p)
{
	fdp_worker_close(p->w);
	fdp_channel_close(p->master);
}

/* Hand the worker one end of a fresh socketpair as connection id; returns the other end. */
static int send_conn(struct pair *p, uint64_t id)
{
	return send_conn_keep(p->master, id, TAG_ANY, NULL);
}

TEST(open_reads_the_greeting_and_tells_the_master_it_is_ready)
{
	struct pair p;

	open_pair(&p);
	CHECK_INT(fdp_worker_index(p.w), ==, 3);
	CHECK_INT(fdp_worker_generation(p.w), ==, 7);
	CHECK(!fdp_worker_draining(p.w));
	close_pair(&p);
}

TEST(open_refuses_another_protocol_version)
{
	struct fdp_channel *master;
	struct fdp_worker *w;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&master, sv[0], NULL));
	send_hello(master, 0, 1, FDP_PROTO_VERSION + 1);
	CHECK_INT(fdp_worker_open(&w, sv[1], 1000), ==, -EPROTO);
	fdp_channel_close(master);
}

TEST(open_gives_up_when_no_master_greets_it)
{
	struct fdp_worker *w;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_INT(fdp_worker_open(&w, sv[1], 10), ==, -ETIMEDOUT);
	close(sv[0]);
}

TEST(open_env_takes_the_channel_from_the_environment)
{
	struct fdp_channel *master;
	struct fdp_worker *w;
	char num[16];
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&master, sv[0], NULL));
	send_hello(master, 1, 2, FDP_PROTO_VERSION);
	snprintf(num, sizeof(num), "%d", sv[1]);
	setenv(FDP_WORKER_ENV, num, 1);
	CHECK_OK(fdp_worker_open_env(&w, 1000));
	unsetenv(FDP_WORKER_ENV);
	CHECK_INT(fdp_worker_index(w), ==, 1);
	CHECK_INT(fdp_worker_open_env(&w, 0), ==, -ENOENT);
	fdp_worker_close(w);
	fdp_channel_close(master);
}

TEST(accept_returns_each_connection_with_its_metadata_and_acks_them_in_one_batch)
{
	struct pair p;
	int clients[3];

	open_pair(&p);
	for (int i = 0; i < 3; i++)
		clients[i] = send_conn(&p, 100 + (uint64_t)i);
	for (int i = 0; i < 3; i++) {
		struct fdp_conn c;
		int fd = accept_wait(p.w, &c);
		char x = 'x', y = 0;

		CHECK_OK(fd);
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		CHECK_INT(c.id, ==, 100 + i);
		CHECK_INT(c.listener, ==, 1);
		CHECK_INT(c.tag, ==, TAG_ANY);
		CHECK_INT(c.peer_len, ==, sizeof(struct sockaddr_in));
		CHECK_INT(ntohs(((struct sockaddr_in *)&c.peer)->sin_port), ==, 4242);
		/* It is the very connection the master handed over. */
		CHECK_INT(write(clients[i], &x, 1), ==, 1);
		CHECK_INT(read(fd, &y, 1), ==, 1);
		CHECK_INT(y, ==, 'x');
		close(fd);
		close(clients[i]);
	}
	CHECK_INT(fdp_worker_accept(p.w, &(struct fdp_conn){0}), ==, -EAGAIN);
	master_recv(p.master);
	CHECK_INT(msg.type, ==, FDP_PROTO_ACK);
	CHECK_INT(msg.len, ==, 3 * 8);
	for (int i = 0; i < 3; i++)
		CHECK_INT(fdp__get64((const unsigned char *)msg.payload + 8 * i), ==, 100 + i);
	fdp_channel_msg_release(&msg);
	CHECK_INT(fdp_channel_recv(p.master, &msg), ==, -EAGAIN);
	close_pair(&p);
}

TEST(done_reports_wait_for_the_flush_and_leave_together)
{
	struct pair p;

	open_pair(&p);
	CHECK_OK(fdp_worker_done(p.w, 5));
	CHECK_OK(fdp_worker_done(p.w, 6));
	CHECK(fdp_worker_wants_write(p.w));
	CHECK_INT(fdp_channel_recv(p.master, &msg), ==, -EAGAIN);
	CHECK_INT(fdp_worker_flush(p.w), ==, 0);
	CHECK(!fdp_worker_wants_write(p.w));
	master_recv(p.master);
	CHECK_INT(msg.type, ==, FDP_PROTO_DONE);
	CHECK_INT(msg.len, ==, 16);
	CHECK_INT(fdp__get64(msg.payload), ==, 5);
	fdp_channel_msg_release(&msg);
	close_pair(&p);
}

TEST(drain_comes_after_the_connections_sent_before_it)
{
	struct pair p;
	struct fdp_conn c;
	int client, fd;

	open_pair(&p);
	client = send_conn(&p, 9);
	CHECK_OK(fdp_channel_send(p.master, FDP_PROTO_DRAIN, NULL, 0, NULL, 0, 0));
	fd = accept_wait(p.w, &c);
	CHECK_OK(fd);
	CHECK_INT(c.id, ==, 9);
	CHECK_INT(accept_wait(p.w, &c), ==, -ESHUTDOWN);
	CHECK(fdp_worker_draining(p.w));
	close(fd);
	close(client);
	close_pair(&p);
}

TEST(unknown_message_types_are_skipped)
{
	struct pair p;
	struct fdp_conn c;

	open_pair(&p);
	CHECK_OK(fdp_channel_send(p.master, 0x1ff, "new", 3, NULL, 0, 0));
	CHECK_INT(accept_wait(p.w, &c), ==, -EAGAIN);
	close_pair(&p);
}

TEST(accept_says_epipe_once_the_master_is_gone)
{
	struct pair p;
	struct fdp_conn c;

	open_pair(&p);
	fdp_channel_close(p.master);
	CHECK_INT(accept_wait(p.w, &c), ==, -EPIPE);
	CHECK_INT(fdp_worker_flush(p.w), ==, -EPIPE);
	fdp_worker_close(p.w);
}

TEST(a_connection_whose_ack_cannot_leave_yet_is_held_until_it_has)
{
	struct pair p;
	struct fdp_conn c;
	int client, fd;

	open_pair(&p);
	fill_towards_master(fdp_worker_fd(p.w));
	client = send_conn(&p, 42);
	/* Taken, but held: a worker that read it now could lose bytes to a re-handed copy. (The
	 * channel may say -EAGAIN once after a batch before the CONN is read: try again.) */
	for (int tries = 0; tries < 3 && !fdp_worker_wants_write(p.w); tries++) {
		fdp_test_wait_readable(fdp_worker_fd(p.w), 10000);
		CHECK_INT(fdp_worker_accept(p.w, &c), ==, -EAGAIN);
	}
	CHECK(fdp_worker_wants_write(p.w));
	CHECK_INT(fdp_worker_flush(p.w), ==, -EAGAIN);
	master_read_all(p.master); /* room again: the ACK can leave */
	fd = fdp_worker_accept(p.w, &c);
	CHECK_OK(fd);
	CHECK_INT(c.id, ==, 42);
	CHECK(!fdp_worker_wants_write(p.w));
	master_recv(p.master);
	CHECK_INT(msg.type, ==, FDP_PROTO_ACK);
	CHECK_INT(fdp__get64(msg.payload), ==, 42);
	fdp_channel_msg_release(&msg);
	close(fd);
	close(client);
	close_pair(&p);
}

TEST(a_connection_is_returned_only_once_its_ack_has_been_written)
{
	struct pair p;
	struct fdp_conn c;
	int client, fd;

	open_pair(&p);
	client = send_conn(&p, 7);
	fd = accept_wait(p.w, &c);
	CHECK_OK(fd);
	/* Already on its way: the master can read it at once, with no flush from the worker. */
	CHECK(!fdp_worker_wants_write(p.w));
	master_recv(p.master);
	CHECK_INT(msg.type, ==, FDP_PROTO_ACK);
	CHECK_INT(fdp__get64(msg.payload), ==, 7);
	fdp_channel_msg_release(&msg);
	close(fd);
	close(client);
	close_pair(&p);
}

TEST(set_blocking_decides_whether_the_handed_sockets_accept_returns_are_blocking)
{
	struct pair p;
	struct fdp_conn c;
	int clients[3], fd;

	open_pair(&p);
	for (int i = 0; i < 3; i++)
		clients[i] = send_conn(&p, 10 + (uint64_t)i); /* each handed non-blocking */
	fd = accept_wait(p.w, &c);
	CHECK_INT(c.id, ==, 10);
	CHECK(nonblocking(fd)); /* the default: as the master handed it */
	close(fd);
	fdp_worker_set_blocking(p.w, 1);
	fd = accept_wait(p.w, &c);
	CHECK_INT(c.id, ==, 11);
	CHECK(!nonblocking(fd));
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fdp_worker_set_blocking(p.w, 0);
	fd = accept_wait(p.w, &c);
	CHECK_INT(c.id, ==, 12);
	CHECK(nonblocking(fd));
	close(fd);
	for (int i = 0; i < 3; i++)
		close(clients[i]);
	close_pair(&p);
}

TEST(a_connection_a_blocking_worker_returns_goes_back_non_blocking)
{
	struct pair p;
	struct fdp_conn c, meta;
	int client, fd;

	open_pair(&p);
	fdp_worker_set_blocking(p.w, 1);
	client = send_conn(&p, 7);
	fd = accept_wait(p.w, &c);
	CHECK(!nonblocking(fd));
	CHECK_OK(fdp_worker_return(p.w, fd, &c));
	CHECK_OK(fdp_worker_flush(p.w));
	master_recv(p.master); /* the ACK first */
	CHECK_INT(msg.type, ==, FDP_PROTO_ACK);
	fdp_channel_msg_release(&msg);
	master_recv(p.master);
	CHECK_INT(msg.type, ==, FDP_PROTO_RETURN);
	CHECK_INT(msg.nfds, ==, 1);
	CHECK_OK(fdp_proto_conn_decode(msg.payload, msg.len, &meta));
	CHECK_INT(meta.id, ==, 7);
	CHECK(nonblocking(msg.fds[0])); /* as the next worker expects it */
	fdp_channel_msg_release(&msg);
	close(client);
	close_pair(&p);
}

TEST(flush_wait_gives_up_at_its_timeout_and_keeps_the_reports)
{
	struct pair p;

	open_pair(&p);
	fill_towards_master(fdp_worker_fd(p.w));
	CHECK_OK(fdp_worker_done(p.w, 5));
	CHECK_INT(fdp_worker_flush_wait(p.w, 0), ==, -ETIMEDOUT);
	CHECK_INT(fdp_worker_flush_wait(p.w, 20), ==, -ETIMEDOUT);
	CHECK(fdp_worker_wants_write(p.w));
	master_read_all(p.master);
	CHECK_INT(fdp_worker_flush_wait(p.w, 1000), ==, 0);
	master_recv(p.master);
	CHECK_INT(msg.type, ==, FDP_PROTO_DONE);
	CHECK_INT(fdp__get64(msg.payload), ==, 5);
	fdp_channel_msg_release(&msg);
	close_pair(&p);
}

/* A master that is slow to read: the worker is already waiting, or about to. */
static void slow_master(void *arg)
{
	struct pair *p = arg;

	master_recv(p->master);
	CHECK_INT(msg.type, ==, FDP_PROTO_DONE);
	CHECK_INT(msg.len, ==, 3 * 8);
	for (unsigned i = 0; i < 3; i++)
		CHECK_INT(fdp__get64((const unsigned char *)msg.payload + 8 * i), ==, i + 1);
	fdp_channel_msg_release(&msg);
}

TEST(flush_wait_delivers_the_last_reports_once_a_slow_master_reads)
{
	struct pair p;
	pid_t master;

	open_pair(&p);
	fill_towards_master(fdp_worker_fd(p.w));
	for (uint64_t id = 1; id <= 3; id++)
		CHECK_OK(fdp_worker_done(p.w, id));
	CHECK_INT(fdp_worker_flush(p.w), ==, -EAGAIN);
	master = fdp_test_fork(slow_master, &p);
	CHECK_INT(fdp_worker_flush_wait(p.w, 10000), ==, 0);
	CHECK(!fdp_worker_wants_write(p.w));
	CHECK_INT(fdp_test_wait(master), ==, 0);
	close_pair(&p);
}

TEST(flush_wait_says_epipe_when_the_master_is_gone)
{
	struct pair p;

	open_pair(&p);
	fill_towards_master(fdp_worker_fd(p.w));
	CHECK_OK(fdp_worker_done(p.w, 1));
	fdp_channel_close(p.master);
	CHECK_INT(fdp_worker_flush_wait(p.w, 5000), <, 0);
	CHECK_INT(fdp_worker_flush_wait(p.w, 5000), !=, -ETIMEDOUT);
	fdp_worker_close(p.w);
}

TEST(a_connection_without_room_for_its_ack_is_taken_once_the_acks_before_it_have_left)
{
	struct pair p;
	struct fdp_conn c;
	int c1, c2, fd1, fd2;

	open_pair(&p);
	fdp__worker_limit_acks(p.w, 1); /* room for one ACK, as if memory ran out past it */
	c1 = send_conn(&p, 1);
	c2 = send_conn(&p, 2);
	fdp_test_wait_readable(fdp_worker_fd(p.w), 10000);
	/* The second stays in its message, not taken (nor closed), until the first's ACK left. */
	fd1 = accept_wait(p.w, &c);
	CHECK_OK(fd1);
	CHECK_INT(c.id, ==, 1);
	fd2 = accept_wait(p.w, &c);
	CHECK_OK(fd2);
	CHECK_INT(c.id, ==, 2);
	master_recv(p.master);
	CHECK_INT(msg.type, ==, FDP_PROTO_ACK);
	CHECK_INT(msg.len, ==, 8);
	CHECK_INT(fdp__get64(msg.payload), ==, 1);
	fdp_channel_msg_release(&msg);
	master_recv(p.master);
	CHECK_INT(msg.type, ==, FDP_PROTO_ACK);
	CHECK_INT(fdp__get64(msg.payload), ==, 2);
	fdp_channel_msg_release(&msg);
	close(fd1);
	close(fd2);
	close(c1);
	close(c2);
	close_pair(&p);
}

/* ---- fdp_worker_watch(): the worker's descriptors in the caller's own epoll set ---- */

#define BASE 100 /* the watched registrations' first data.u64 */

/* p's worker watched in a new epoll set beside the caller's own pipe pfd (data.u64 1); *chfd
 * (if not NULL) the worker's channel descriptor, read before the watch. Returns the set. */
static int watch_pair(struct pair *p, int pfd[2], int *chfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};

	CHECK(ep >= 0);
	CHECK_OK(pipe2(pfd, O_CLOEXEC | O_NONBLOCK));
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, pfd[0], &ev));
	open_pair(p);
	if (chfd)
		*chfd = fdp_worker_fd(p->w);
	CHECK_OK(fdp_worker_watch(p->w, ep, BASE));
	return ep;
}

static void unwatch_pair(struct pair *p, int ep, int pfd[2])
{
	close_pair(p);
	close(pfd[0]);
	close(pfd[1]);
	close(ep);
}

TEST(a_watched_worker_takes_the_masters_connections_through_the_callers_own_set)
{
	struct pair p;
	struct fdp_conn c;
	struct epoll_event ev;
	int pfd[2], ep = watch_pair(&p, pfd, NULL), client, fd;

	CHECK_INT(fdp_worker_fd(p.w), ==, -1); /* nothing of its own to wait on */
	CHECK_INT(fdp_worker_accept(p.w, &c), ==, -EAGAIN);
	client = send_conn(&p, 42);
	CHECK_INT(epoll_wait(ep, &ev, 1, 5000), ==, 1);
	CHECK_INT(ev.data.u64, ==, BASE); /* the channel, in the caller's set itself */
	CHECK_INT(fdp_worker_event(p.w, &ev), ==, 1);
	fd = accept_watched(p.w, ep, &c, 0, NULL);
	CHECK_OK(fd);
	CHECK_INT(c.id, ==, 42);
	close(fd);
	close(client);
	unwatch_pair(&p, ep, pfd);
}

TEST(fdp_worker_event_says_0_for_an_event_of_the_callers_own)
{
	struct pair p;
	struct epoll_event ev;
	int pfd[2], ep = watch_pair(&p, pfd, NULL);

	CHECK_INT(write(pfd[1], "x", 1), ==, 1);
	CHECK_INT(epoll_wait(ep, &ev, 1, 5000), ==, 1);
	CHECK_INT(ev.data.u64, ==, 1);
	CHECK_INT(fdp_worker_event(p.w, &ev), ==, 0);
	/* Just outside the span, either side: not the worker's either. */
	ev.data.u64 = BASE - 1;
	CHECK_INT(fdp_worker_event(p.w, &ev), ==, 0);
	ev.data.u64 = BASE + FDP_WORKER_WATCH_SPAN;
	CHECK_INT(fdp_worker_event(p.w, &ev), ==, 0);
	ev.data.u64 = BASE + FDP_WORKER_WATCH_SPAN - 1;
	CHECK_INT(fdp_worker_event(p.w, &ev), ==, 1);
	unwatch_pair(&p, ep, pfd);
}

TEST(watching_a_watched_worker_again_says_ebusy)
{
	struct pair p;
	int pfd[2], ep = watch_pair(&p, pfd, NULL), other = epoll_create1(EPOLL_CLOEXEC);

	CHECK(other >= 0);
	CHECK_INT(fdp_worker_watch(p.w, other, BASE), ==, -EBUSY);
	CHECK_INT(fdp_worker_watch(p.w, ep, BASE), ==, -EBUSY);
	close(other);
	unwatch_pair(&p, ep, pfd);
}

TEST(a_watch_that_epoll_refuses_leaves_the_worker_as_it_was)
{
	struct pair p;
	struct fdp_conn c;
	int client, fd, chfd;

	open_pair(&p);
	chfd = fdp_worker_fd(p.w);
	CHECK_INT(fdp_worker_watch(p.w, chfd, BASE), ==, -EINVAL); /* not an epoll set */
	CHECK_INT(fdp_worker_watch(p.w, -1, BASE), ==, -EBADF);
	CHECK_INT(fdp_worker_watch(p.w, chfd, UINT64_MAX - 1), ==, -EINVAL); /* no room */
	CHECK_INT(fdp_worker_fd(p.w), ==, chfd);
	client = send_conn(&p, 7);
	fd = accept_wait(p.w, &c);
	CHECK_OK(fd);
	CHECK_INT(c.id, ==, 7);
	close(fd);
	close(client);
	close_pair(&p);
}

TEST(a_watched_worker_watches_its_channel_for_writability_while_an_ack_cannot_leave)
{
	struct pair p;
	struct fdp_conn c;
	struct epoll_event ev;
	int pfd[2], chfd, ep = watch_pair(&p, pfd, &chfd), client, fd;

	fill_towards_master(chfd);
	client = send_conn(&p, 42);
	/* Taken, held for its ACK: the worker now wants writability, and says so in the set. (The
	 * channel may say -EAGAIN once after a batch before the CONN is read: try again.) */
	for (int tries = 0; tries < 3 && !fdp_worker_wants_write(p.w); tries++) {
		CHECK_INT(epoll_wait(ep, &ev, 1, 5000), ==, 1);
		CHECK_INT(fdp_worker_event(p.w, &ev), ==, 1);
		CHECK_INT(fdp_worker_accept(p.w, &c), ==, -EAGAIN);
	}
	CHECK(fdp_worker_wants_write(p.w));
	CHECK_INT(epoll_wait(ep, &ev, 1, 0), ==, 0); /* the channel is full: nothing to do */
	master_read_all(p.master);                   /* room again */
	CHECK_INT(epoll_wait(ep, &ev, 1, 5000), ==, 1);
	CHECK_INT(ev.data.u64, ==, BASE);
	CHECK(ev.events & EPOLLOUT);
	CHECK_INT(fdp_worker_event(p.w, &ev), ==, 1);
	fd = fdp_worker_accept(p.w, &c);
	CHECK_OK(fd);
	CHECK_INT(c.id, ==, 42);
	CHECK(!fdp_worker_wants_write(p.w));
	close(fd);
	close(client);
	unwatch_pair(&p, ep, pfd);
}

TEST(closing_a_watched_worker_takes_its_channel_out_of_the_callers_set)
{
	struct pair p;
	struct epoll_event ev;
	int pfd[2], chfd, ep = watch_pair(&p, pfd, &chfd), copy, client;

	/* A copy of the channel's socket keeps its file open, and with it any registration. */
	copy = fcntl(chfd, F_DUPFD_CLOEXEC, 0);
	CHECK(copy >= 0);
	fdp_worker_close(p.w);
	client = send_conn(&p, 1); /* the copy is readable now */
	fdp_test_wait_readable(copy, 5000);
	CHECK_INT(epoll_wait(ep, &ev, 1, 0), ==, 0);
	close(client);
	close(copy);
	fdp_channel_close(p.master);
	close(pfd[0]);
	close(pfd[1]);
	close(ep);
}
