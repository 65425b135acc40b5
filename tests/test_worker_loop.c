/*
 * The built-in handlers' event loop (tools/fdpass/handler_loop.c) in a forked worker, against a
 * hand-driven master end of its channel. The test keeps the worker's socket too, to fill the
 * channel towards the master (a master that is slow to read) whenever it wants.
 */
#include "worker_testlib.h"
#include "serve.h"

#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>

struct loop {
	struct fdp_channel *master;
	int wsock; /* the worker's end of the channel: the same socket the worker writes on */
	pid_t pid;
};

static void loop_start(struct loop *t, const struct fdpass_handler *h)
{
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_OK(fdp_channel_open(&t->master, sv[0], NULL));
	send_hello(t->master, 0, 1, FDP_PROTO_VERSION);
	fflush(NULL);
	t->pid = fork();
	CHECK(t->pid >= 0);
	if (t->pid == 0) {
		struct fdp_worker *w;
		int status;

		close(sv[0]); /* the master end is the test's: its close must read as EOF here */
		if (fdp_worker_open(&w, sv[1], 5000) < 0)
			_exit(100);
		status = fdpass_handler_run(w, h);
		fdp_worker_close(w);
		_exit(status);
	}
	t->wsock = sv[1];
	master_recv(t->master);
	CHECK_INT(msg.type, ==, FDP_PROTO_READY);
	fdp_channel_msg_release(&msg);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The master goes away; returns the worker's exit status. */
static int loop_stop(struct loop *t)
{
	int status;

	fdp_channel_close(t->master);
	status = fdp_test_wait(t->pid);
	close(t->wsock);
	return status;
}

/* Wait for the ACK of connection id (ACKs come batched). */
static void expect_ack(struct loop *t, uint64_t id)
{
	for (;;) {
		int found = 0;

		master_recv(t->master);
		if (msg.type == FDP_PROTO_ACK)
			for (size_t i = 0; i < msg.len / 8; i++)
				found |= fdp__get64((const unsigned char *)msg.payload + 8 * i) ==
				         id;
		fdp_channel_msg_release(&msg);
		if (found)
			return;
	}
}

/* Send text on a client of the echo handler and read it back. */
static void echo_round_trip(int client, const char *text)
{
	char buf[64] = {0};
	size_t len = strlen(text), got = 0;

	CHECK_INT(send(client, text, len, MSG_NOSIGNAL), ==, len);
	while (got < len) {
		ssize_t n;

		fdp_test_wait_readable(client, 5000);
		n = read(client, buf + got, len - got);
		CHECK(n > 0);
		got += (size_t)n;
	}
	CHECK(memcmp(buf, text, len) == 0);
}

/* Bytes waiting to be read on a socket. */
static int unread(int sock)
{
	int n = -1;

	CHECK_OK(ioctl(sock, FIONREAD, &n));
	return n;
}

/*
 * Wait until process pid holds a descriptor for the same socket as sock: the worker has
 * received that connection from its channel. A process's descriptor table announces nothing,
 * so this looks every millisecond, for at most 10 s.
 */
static void wait_until_held(pid_t pid, int sock)
{
	long long deadline = now_ms() + 10000;
	char want[64], path[64];
	struct stat st;

	CHECK_OK(fstat(sock, &st));
	snprintf(want, sizeof(want), "socket:[%llu]", (unsigned long long)st.st_ino);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	for (;;) {
		DIR *d = opendir(path);
		struct dirent *e;
		int found = 0;

		CHECK(d != NULL);
		while (!found && (e = readdir(d))) {
			char link[64];
			ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);

			if (n > 0) {
				link[n] = '\0';
				found = strcmp(link, want) == 0;
			}
		}
		closedir(d);
		if (found)
			return;
		if (now_ms() > deadline)
			fdp_test_fail(__FILE__, __LINE__, "worker never received %s", want);
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

TEST(a_connection_is_not_read_until_its_ack_has_left)
{
	struct loop t;
	int c1, c2, s2;
	char x;

	loop_start(&t, &fdpass_handler_echo);
	c1 = send_conn_keep(t.master, 1, NULL);
	expect_ack(&t, 1);
	echo_round_trip(c1, "a");
	/* The master stops reading: the next connection's ACK cannot leave the worker. */
	fill_towards_master(t.wsock);
	c2 = send_conn_keep(t.master, 2, &s2);
	CHECK_INT(send(c2, "x", 1, MSG_NOSIGNAL), ==, 1);
	wait_until_held(t.pid, s2);
	/*
	 * Two round trips on the other connection: the worker has been round its loop since it
	 * took connection 2, so had it watched it for input, it would have read it by now.
	 */
	echo_round_trip(c1, "y");
	echo_round_trip(c1, "z");
	CHECK_INT(unread(s2), ==, 1);
	CHECK_INT(unread(c2), ==, 0);
	/* The master reads again: the ACK arrives, and only then is the connection served. */
	expect_ack(&t, 2);
	fdp_test_wait_readable(c2, 5000);
	CHECK_INT(read(c2, &x, 1), ==, 1);
	CHECK_INT(x, ==, 'x');
	CHECK_INT(loop_stop(&t), ==, 1);
	close(c1);
	close(c2);
	close(s2);
}
