/*
 * Every kind of descriptor passes from one process to another and works on the other side.
 * A child creates the descriptor (so the parent never had it), sends it, and both ends prove
 * that it is the same open file description.
 */
#include "harness.h"
#include "fdpass.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct child {
	pid_t pid;
	int sock; /* the parent's end of the socketpair */
};

static int pair[2];
static void (*child_make)(void *sock);

/* The child keeps only its own end, so closing the parent's end is an end of file for it. */
static void child_main(void *arg)
{
	close(pair[0]);
	child_make(&pair[1]);
	close(pair[1]);
}

/* Fork a child that runs make(sock) to create and send a descriptor, then its own checks. */
static struct child start_child(void (*make)(void *sock))
{
	int *sv = pair;
	struct child c;

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	child_make = make;
	c.pid = fdp_test_fork(child_main, NULL);
	close(sv[1]);
	c.sock = sv[0];
	return c;
}

/* Receive the child's descriptor and check it arrived close-on-exec. */
static int take_fd(struct child *c)
{
	int fd = fdp_recv_fd(c->sock);

	CHECK_OK(fd);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	return fd;
}

/* Close the parent's end and require that the child's checks passed. */
static void finish_child(struct child *c)
{
	close(c->sock);
	CHECK_INT(fdp_test_wait(c->pid), ==, 0);
}

/* Wait in the child until the parent says it is done with the descriptor. */
static void child_wait_parent(int sock)
{
	char b;

	CHECK_INT(read(sock, &b, 1), >=, 0);
}

static void send_regular_file(void *arg)
{
	int sock = *(int *)arg, fd;
	char path[256], buf[6];

	snprintf(path, sizeof(path), "%s/file", fdp_test_tmpdir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "hello world", 11), ==, 11);
	CHECK_INT(lseek(fd, 0, SEEK_SET), ==, 0);
	CHECK_INT(read(fd, buf, 6), ==, 6); /* the offset is now 6 */
	CHECK_OK(fdp_send_fd(sock, fd));
	child_wait_parent(sock);
	/* The parent read 5 bytes through its copy: the offset moved for us too. */
	CHECK_INT(lseek(fd, 0, SEEK_CUR), ==, 11);
	close(fd);
}

TEST(regular_file_shares_its_offset_with_the_sender)
{
	struct child c = start_child(send_regular_file);
	int fd = take_fd(&c);
	char buf[16] = {0};

	CHECK_INT(lseek(fd, 0, SEEK_CUR), ==, 6);
	CHECK_INT(read(fd, buf, sizeof(buf)), ==, 5);
	CHECK(memcmp(buf, "world", 5) == 0);
	close(fd);
	finish_child(&c);
}

static void send_pipe_write_end(void *arg)
{
	int sock = *(int *)arg, p[2];
	char buf[8] = {0};

	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK_OK(fdp_send_fd(sock, p[1]));
	close(p[1]);
	CHECK_INT(read(p[0], buf, sizeof(buf)), ==, 4);
	CHECK(memcmp(buf, "pong", 4) == 0);
	close(p[0]);
}

TEST(pipe_write_end_reaches_the_senders_read_end)
{
	struct child c = start_child(send_pipe_write_end);
	int fd = take_fd(&c);

	CHECK_INT(write(fd, "pong", 4), ==, 4);
	close(fd);
	finish_child(&c);
}

static void send_fifo(void *arg)
{
	int sock = *(int *)arg, fd;
	char path[256], buf[8] = {0};

	snprintf(path, sizeof(path), "%s/fifo", fdp_test_tmpdir());
	CHECK(mkfifo(path, 0600) == 0);
	fd = open(path, O_RDWR | O_CLOEXEC); /* O_RDWR: open without waiting for a writer */
	CHECK(fd >= 0);
	CHECK_OK(fdp_send_fd(sock, fd));
	CHECK_INT(read(fd, buf, sizeof(buf)), ==, 4);
	CHECK(memcmp(buf, "fifo", 4) == 0);
	close(fd);
}

TEST(fifo_carries_data_back_to_the_sender)
{
	struct child c = start_child(send_fifo);
	int fd = take_fd(&c);
	struct stat st;

	CHECK(fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode));
	CHECK_INT(write(fd, "fifo", 4), ==, 4);
	close(fd);
	finish_child(&c);
}

/* A TCP listener on an ephemeral loopback port. */
static int tcp_listener(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)sa, sizeof(*sa)) == 0);
	CHECK(listen(fd, 8) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)sa, &len) == 0);
	return fd;
}

static int tcp_connect(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK(connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0);
	return fd;
}

static void send_tcp_listener(void *arg)
{
	int sock = *(int *)arg, lfd, cfd;
	struct sockaddr_in sa;
	char b;

	lfd = tcp_listener(&sa);
	CHECK_OK(fdp_send_fd(sock, lfd));
	close(lfd);
	cfd = tcp_connect(&sa);
	CHECK_INT(write(cfd, "hi", 2), ==, 2);
	CHECK_INT(read(cfd, &b, 1), ==, 1); /* the parent's answer through the accepted socket */
	CHECK_INT(b, ==, '!');
	close(cfd);
}

TEST(listening_tcp_socket_accepts_in_the_receiver)
{
	struct child c = start_child(send_tcp_listener);
	int lfd = take_fd(&c), cfd;
	char buf[2];

	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(cfd >= 0);
	CHECK_INT(read(cfd, buf, 2), ==, 2);
	CHECK(memcmp(buf, "hi", 2) == 0);
	CHECK_INT(write(cfd, "!", 1), ==, 1);
	close(cfd);
	close(lfd);
	finish_child(&c);
}

static void send_connected_tcp_socket(void *arg)
{
	int sock = *(int *)arg, lfd, client, server;
	struct sockaddr_in sa;
	char b;

	lfd = tcp_listener(&sa);
	client = tcp_connect(&sa);
	server = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(server >= 0);
	close(lfd);
	CHECK_OK(fdp_send_fd(sock,
	                     server)); /* hand the accepted connection over, as a master does */
	close(server);
	CHECK_INT(write(client, "x", 1), ==, 1);
	CHECK_INT(read(client, &b, 1), ==, 1);
	CHECK_INT(b, ==, 'y');
	close(client);
}

TEST(accepted_tcp_connection_is_served_by_the_receiver)
{
	struct child c = start_child(send_connected_tcp_socket);
	int fd = take_fd(&c);
	char b;

	CHECK_INT(read(fd, &b, 1), ==, 1);
	CHECK_INT(b, ==, 'x');
	CHECK_INT(write(fd, "y", 1), ==, 1);
	close(fd);
	finish_child(&c);
}

static void send_unix_socket(void *arg)
{
	int sock = *(int *)arg, sv[2];
	char b;

	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	CHECK_OK(fdp_send_fd(sock, sv[1]));
	close(sv[1]);
	CHECK_INT(read(sv[0], &b, 1), ==, 1);
	CHECK_INT(b, ==, 'u');
	close(sv[0]);
}

TEST(unix_socket_talks_back_to_its_peer)
{
	struct child c = start_child(send_unix_socket);
	int fd = take_fd(&c);

	CHECK_INT(write(fd, "u", 1), ==, 1);
	close(fd);
	finish_child(&c);
}

static void send_eventfd(void *arg)
{
	int sock = *(int *)arg, fd;
	uint64_t v = 0;

	fd = eventfd(0, EFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(fdp_send_fd(sock, fd));
	CHECK_INT(read(fd, &v, sizeof(v)), ==, sizeof(v));
	CHECK_INT(v, ==, 5);
	close(fd);
}

TEST(eventfd_counter_is_shared_with_the_sender)
{
	struct child c = start_child(send_eventfd);
	int fd = take_fd(&c);
	uint64_t v = 5;

	CHECK_INT(write(fd, &v, sizeof(v)), ==, sizeof(v));
	close(fd);
	finish_child(&c);
}

static void send_memfd(void *arg)
{
	int sock = *(int *)arg, fd;

	fd = memfd_create("fdpass-test", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "memory", 6), ==, 6);
	CHECK_OK(fdp_send_fd(sock, fd));
	close(fd);
}

TEST(memfd_contents_are_readable_in_the_receiver)
{
	struct child c = start_child(send_memfd);
	int fd = take_fd(&c);
	char buf[8] = {0};

	CHECK_INT(pread(fd, buf, sizeof(buf), 0), ==, 6);
	CHECK(memcmp(buf, "memory", 6) == 0);
	close(fd);
	finish_child(&c);
}
