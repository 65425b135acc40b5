/* The message layer: one sendmsg()/recvmsg() with data and descriptors, and every check. */
#include "harness.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* n descriptors, each a fresh open of /dev/null, so the receiver can tell them apart. */
static void open_many(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		CHECK(fds[i] >= 0);
	}
}

static ino_t inode_of(int fd)
{
	struct stat st;

	CHECK(fstat(fd, &st) == 0);
	return st.st_ino;
}

/* Send n descriptors with some data over a pair of the given type and receive them all. */
static void roundtrip(int type, size_t n)
{
	int sv[2], sent[FDP_MAX_FDS], got[FDP_MAX_FDS];
	char data[] = "payload", buf[32];
	struct fdp_msg out = {.data = data, .len = sizeof(data), .fds = sent, .nfds = n};
	struct fdp_msg in = {.data = buf, .len = sizeof(buf), .fds = got, .nfds = FDP_MAX_FDS};

	CHECK_OK(fdp_socketpair(type, sv));
	open_many(sent, n);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, sizeof(data));
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.len, ==, sizeof(data));
	CHECK(memcmp(buf, data, sizeof(data)) == 0);
	CHECK_INT(in.nfds, ==, n);
	CHECK_INT(in.flags, ==, 0);
	for (size_t i = 0; i < n; i++) {
		CHECK(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
		CHECK_INT(inode_of(got[i]), ==, inode_of(sent[i]));
	}
	fdp_close_fds(sent, n);
	fdp_close_fds(got, in.nfds);
	fdp_close_fds(sv, 2);
}

TEST(seqpacket_carries_1_2_and_253_descriptors)
{
	roundtrip(SOCK_SEQPACKET, 1);
	roundtrip(SOCK_SEQPACKET, 2);
	roundtrip(SOCK_SEQPACKET, FDP_MAX_FDS);
}

TEST(stream_carries_1_2_and_253_descriptors)
{
	roundtrip(SOCK_STREAM, 1);
	roundtrip(SOCK_STREAM, 2);
	roundtrip(SOCK_STREAM, FDP_MAX_FDS);
}

TEST(dgram_carries_1_2_and_253_descriptors)
{
	roundtrip(SOCK_DGRAM, 1);
	roundtrip(SOCK_DGRAM, 2);
	roundtrip(SOCK_DGRAM, FDP_MAX_FDS);
}

TEST(send_of_254_descriptors_is_einval_and_sends_nothing)
{
	int sv[2], fds[FDP_MAX_FDS + 1];
	struct fdp_msg out = {.fds = fds, .nfds = FDP_MAX_FDS + 1};
	struct fdp_msg in = {0};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET | SOCK_NONBLOCK, sv));
	for (size_t i = 0; i < FDP_MAX_FDS + 1; i++)
		fds[i] = 0; /* never looked at: the count is refused first */
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, -EINVAL);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, -EAGAIN);
	fdp_close_fds(sv, 2);
}

TEST(message_without_data_arrives_as_zero_bytes_with_its_descriptors)
{
	int sv[2], fd, got = -1;
	char buf[8];
	struct fdp_msg out = {.fds = &fd, .nfds = 1};
	struct fdp_msg in = {.data = buf, .len = sizeof(buf), .fds = &got, .nfds = 1};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(&fd, 1);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 0);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.len, ==, 0);
	CHECK_INT(in.nfds, ==, 1);
	close(got);
	close(fd);
	fdp_close_fds(sv, 2);
}

TEST(dgram_message_without_data_arrives_as_zero_bytes_with_its_descriptors)
{
	int sv[2], fd, got = -1;
	char buf[8];
	struct fdp_msg out = {.fds = &fd, .nfds = 1};
	struct fdp_msg in = {.data = buf, .len = sizeof(buf), .fds = &got, .nfds = 1};

	CHECK_OK(fdp_socketpair(SOCK_DGRAM, sv));
	open_many(&fd, 1);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 0);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.len, ==, 0);
	CHECK_INT(in.nfds, ==, 1);
	CHECK_INT(inode_of(got), ==, inode_of(fd));
	close(got);
	close(fd);
	fdp_close_fds(sv, 2);
}

TEST(stream_send_of_descriptors_without_data_is_einval_and_sends_nothing)
{
	int sv[2], fd;
	struct fdp_msg out = {.fds = &fd, .nfds = 1};
	struct fdp_msg in = {0};

	/* The kernel would send nothing and drop the descriptor without a word. */
	CHECK_OK(fdp_socketpair(SOCK_STREAM | SOCK_NONBLOCK, sv));
	open_many(&fd, 1);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, -EINVAL);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, -EAGAIN);
	close(fd);
	fdp_close_fds(sv, 2);
}

TEST(seqpacket_send_of_nothing_is_einval_since_the_peer_would_read_end_of_file)
{
	int sv[2];
	struct fdp_msg out = {0}, in = {0};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET | SOCK_NONBLOCK, sv));
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, -EINVAL);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, -EAGAIN);
	fdp_close_fds(sv, 2);
}

TEST(stream_send_of_nothing_is_einval)
{
	int sv[2];
	struct fdp_msg out = {0};

	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, -EINVAL);
	fdp_close_fds(sv, 2);
}

TEST(zero_length_datagram_is_a_message_not_end_of_file)
{
	int sv[2];
	char buf[4];
	struct fdp_msg out = {0}, in = {.data = buf, .len = sizeof(buf)};

	CHECK_OK(fdp_socketpair(SOCK_DGRAM | SOCK_NONBLOCK, sv));
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 0);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.len, ==, 0);
	CHECK_INT(in.nfds, ==, 0);
	/* A datagram socket has no end of file: after the peer closes, nothing is waiting. */
	close(sv[0]);
	in.len = sizeof(buf);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, -EAGAIN);
	close(sv[1]);
}

TEST(seqpacket_end_of_file_is_zero_with_no_descriptors)
{
	int sv[2];
	char buf[4];
	struct fdp_msg in = {.data = buf, .len = sizeof(buf)};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	close(sv[0]);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 0);
	CHECK_INT(in.len, ==, 0);
	close(sv[1]);
}

TEST(stream_end_of_file_with_credentials_attached_is_still_end_of_file)
{
	int sv[2], on = 1;
	char buf[4];
	struct fdp_msg in = {.data = buf, .len = sizeof(buf)};

	/* With SO_PASSCRED the kernel attaches SCM_CREDENTIALS to a stream's end of file too. */
	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	CHECK(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0);
	close(sv[0]);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 0);
	close(sv[1]);
}

TEST(stream_recv_with_no_room_for_data_waiting_is_einval_and_takes_nothing)
{
	int sv[2];
	char byte = 'x', buf[4];
	struct fdp_msg out = {.data = &byte, .len = 1}, in = {0};

	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 1);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, -EINVAL);
	in.data = buf;
	in.len = sizeof(buf);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.len, ==, 1);
	CHECK_INT(buf[0], ==, 'x');
	close(sv[0]);
	in.data = NULL;
	in.len = 0;
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 0); /* no room, but nothing waits: end of file */
	close(sv[1]);
}

TEST(recv_closes_extra_fds_when_capacity_is_short)
{
	int sv[2], sent[5], got[2];
	struct fdp_msg out = {.fds = sent, .nfds = 5};
	struct fdp_msg in = {.fds = got, .nfds = 2};
	int before;

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(sent, 5);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 0);
	before = fdp_test_fd_count();
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.nfds, ==, 2);
	CHECK(in.flags & FDP_MSG_FDS_DROPPED);
	CHECK_INT(fdp_test_fd_count(), ==, before + 2); /* three were closed for us */
	CHECK_INT(inode_of(got[1]), ==, inode_of(sent[1]));
	fdp_close_fds(got, 2);
	fdp_close_fds(sent, 5);
	fdp_close_fds(sv, 2);
}

TEST(recv_with_no_room_for_fds_closes_them_all)
{
	int sv[2], fd;
	struct fdp_msg out = {.fds = &fd, .nfds = 1};
	struct fdp_msg in = {0};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(&fd, 1);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 0);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.nfds, ==, 0);
	CHECK(in.flags & FDP_MSG_FDS_DROPPED);
	close(fd);
	fdp_close_fds(sv, 2);
}

TEST(recv_at_descriptor_limit_closes_everything_and_says_exfull)
{
	int sv[2], sent[10], got[10], top;
	char data[] = "lost fds", buf[16];
	struct fdp_msg out = {.data = data, .len = sizeof(data), .fds = sent, .nfds = 10};
	struct fdp_msg in = {.data = buf, .len = sizeof(buf), .fds = got, .nfds = 10};
	struct rlimit saved, low;
	int before, r;

	if (fdp_test_under_valgrind())
		fdp_test_skip("valgrind virtualises RLIMIT_NOFILE");
	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(sent, 10);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, sizeof(data));
	/* Room for exactly two more descriptors: the kernel installs two, then drops the rest. */
	top = dup(0);
	CHECK(top >= 0);
	close(top);
	for (int fd = top; fd < top + 2; fd++)
		CHECK(fcntl(fd, F_GETFD) < 0); /* free, so the two land there */
	CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
	low = saved;
	low.rlim_cur = (rlim_t)top + 2;
	before = fdp_test_fd_count();
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	r = fdp_msg_recv(sv[1], &in, 0);
	CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
	CHECK_INT(r, ==, -EXFULL);
	CHECK_INT(in.nfds, ==, 0);
	CHECK_INT(in.len, ==, sizeof(data)); /* the data is still reported */
	CHECK_INT(fdp_test_fd_count(), ==, before);
	fdp_close_fds(sent, 10);
	fdp_close_fds(sv, 2);
}

TEST(recv_reports_data_truncation)
{
	int sv[2];
	char data[] = "0123456789", buf[4];
	struct fdp_msg out = {.data = data, .len = 10};
	struct fdp_msg in = {.data = buf, .len = sizeof(buf)};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 10);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.len, ==, sizeof(buf));
	CHECK(in.flags & FDP_MSG_DATA_TRUNC);
	CHECK(memcmp(buf, "0123", 4) == 0);
	fdp_close_fds(sv, 2);
}

TEST(recv_skips_credentials_and_finds_the_descriptors)
{
	int sv[2], fd, got[2] = {-1, -1}, on = 1;
	struct fdp_msg out = {.fds = &fd, .nfds = 1};
	struct fdp_msg in = {.fds = got, .nfds = 2};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0);
	open_many(&fd, 1);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 0);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.nfds, ==, 1);
	CHECK_INT(inode_of(got[0]), ==, inode_of(fd));
	close(got[0]);
	/* A message with credentials only: nothing is mistaken for a descriptor. */
	out.data = "c";
	out.len = 1;
	out.nfds = 0;
	in.nfds = 2;
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 1);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.nfds, ==, 0);
	close(fd);
	fdp_close_fds(sv, 2);
}

TEST(recv_on_empty_nonblocking_socket_is_eagain)
{
	int sv[2];
	struct fdp_msg in = {0};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET | SOCK_NONBLOCK, sv));
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, -EAGAIN);
	fdp_close_fds(sv, 2);
}

TEST(recv_after_eagain_keeps_the_capacities_and_takes_the_next_message)
{
	int sv[2], fd = open("/dev/null", O_RDONLY | O_CLOEXEC), got[2];
	char data[16];
	struct fdp_msg out = {.data = "hello", .len = 5, .fds = &fd, .nfds = 1};
	struct fdp_msg in = {.data = data, .len = sizeof(data), .fds = got, .nfds = 2};

	CHECK_OK(fd);
	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET | SOCK_NONBLOCK, sv));
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, -EAGAIN);
	CHECK_INT(in.len, ==, sizeof(data));
	CHECK_INT(in.nfds, ==, 2);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 5);
	/* The same struct again: the message arrives whole, nothing dropped. */
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.len, ==, 5);
	CHECK(memcmp(data, "hello", 5) == 0);
	CHECK_INT(in.nfds, ==, 1);
	CHECK_INT(in.flags, ==, 0);
	CHECK_INT(inode_of(got[0]), ==, inode_of(fd));
	close(got[0]);
	close(fd);
	fdp_close_fds(sv, 2);
}

TEST(send_on_full_nonblocking_socket_is_eagain)
{
	int sv[2];
	char block[4096] = {0};
	struct fdp_msg out = {.data = block, .len = sizeof(block)};
	ssize_t r;
	int sent = 0;

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET | SOCK_NONBLOCK, sv));
	while ((r = fdp_msg_send(sv[0], &out, 0)) >= 0)
		CHECK_INT(++sent, <, 100000);
	CHECK_INT(r, ==, -EAGAIN);
	CHECK_INT(sent, >, 0);
	fdp_close_fds(sv, 2);
}

TEST(recv_after_peer_closed_is_end_of_file)
{
	int sv[2];
	struct fdp_msg in = {0};

	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	close(sv[0]);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 0);
	CHECK_INT(fdp_recv_fd(sv[1]), ==, -EPIPE);
	close(sv[1]);
}

TEST(send_after_peer_closed_is_epipe_without_sigpipe)
{
	int sv[2];

	/* SIGPIPE keeps its default action in the harness: without MSG_NOSIGNAL this test dies. */
	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	close(sv[1]);
	CHECK_INT(fdp_send_fd(sv[0], 0), ==, -EPIPE);
	close(sv[0]);
}

/* One sendmsg() as a program that knows nothing of fdpass writes it: data, then SCM_RIGHTS. */
static void plain_sendmsg(int sock, const void *data, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {(void *)data, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	memset(&ctl, 0, sizeof(ctl));
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	CHECK_INT(sendmsg(sock, &mh, 0), ==, len);
}

TEST(message_from_a_plain_sendmsg_arrives_with_exactly_its_bytes)
{
	int sv[2], fd, got = -1;
	char buf[16];
	struct fdp_msg in = {.data = buf, .len = sizeof(buf), .fds = &got, .nfds = 1};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(&fd, 1);
	plain_sendmsg(sv[0], "\xfdxy", 3, fd);
	CHECK_INT(fdp_msg_recv(sv[1], &in, 0), ==, 1);
	CHECK_INT(in.len, ==, 3);
	CHECK(memcmp(buf, "\xfdxy", 3) == 0);
	CHECK_INT(in.nfds, ==, 1);
	CHECK_INT(inode_of(got), ==, inode_of(fd));
	close(got);
	close(fd);
	fdp_close_fds(sv, 2);
}

TEST(msg_send_puts_exactly_the_callers_bytes_on_the_wire)
{
	int sv[2], fd;
	char buf[16];
	struct fdp_msg out = {.data = "abc", .len = 3, .fds = &fd, .nfds = 1};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(&fd, 1);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 3);
	close(fd);
	/* A bare recv(): the descriptor is closed by the kernel with the message's control data. */
	CHECK_INT(recv(sv[1], buf, sizeof(buf), 0), ==, 3);
	CHECK(memcmp(buf, "abc", 3) == 0);
	fdp_close_fds(sv, 2);
}

TEST(send_fd_puts_one_zero_byte_on_the_wire)
{
	int sv[2], fd;
	char buf[4] = {1, 1, 1, 1};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(&fd, 1);
	CHECK_OK(fdp_send_fd(sv[0], fd));
	close(fd);
	CHECK_INT(recv(sv[1], buf, sizeof(buf), 0), ==, 1);
	CHECK_INT(buf[0], ==, 0);
	fdp_close_fds(sv, 2);
}

/* fdp_recv_fd() on a message of len bytes of the value byte with one descriptor. */
static int recv_fd_after(int type, const char *data, size_t len)
{
	int sv[2], fd, got;

	CHECK_OK(fdp_socketpair(type, sv));
	open_many(&fd, 1);
	plain_sendmsg(sv[0], data, len, fd);
	got = fdp_recv_fd(sv[1]);
	if (got >= 0) {
		CHECK(fcntl(got, F_GETFD) & FD_CLOEXEC);
		CHECK_INT(inode_of(got), ==, inode_of(fd));
		close(got);
	}
	close(fd);
	fdp_close_fds(sv, 2);
	return got >= 0 ? 0 : got;
}

TEST(recv_fd_takes_a_descriptor_with_one_byte_of_any_value)
{
	CHECK_INT(recv_fd_after(SOCK_SEQPACKET, "\0", 1), ==, 0);
	CHECK_INT(recv_fd_after(SOCK_SEQPACKET, "\1", 1), ==, 0); /* multiprocessing's count */
	CHECK_INT(recv_fd_after(SOCK_SEQPACKET, "\xfd", 1), ==, 0);
	CHECK_INT(recv_fd_after(SOCK_STREAM, "\0", 1), ==, 0);
	CHECK_INT(recv_fd_after(SOCK_DGRAM, "z", 1), ==, 0);
}

TEST(recv_fd_takes_a_descriptor_with_no_data_on_seqpacket_and_dgram)
{
	CHECK_INT(recv_fd_after(SOCK_SEQPACKET, "", 0), ==, 0);
	CHECK_INT(recv_fd_after(SOCK_DGRAM, "", 0), ==, 0);
}

TEST(recv_fd_refuses_a_message_with_two_bytes_and_closes_its_fd)
{
	int sv[2], fd;
	char data[] = "xy";
	struct fdp_msg out = {.data = data, .len = 2, .fds = &fd, .nfds = 1};
	int before;

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(&fd, 1);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 2);
	before = fdp_test_fd_count();
	CHECK_INT(fdp_recv_fd(sv[1]), ==, -EBADMSG);
	CHECK_INT(fdp_test_fd_count(), ==, before);
	close(fd);
	fdp_close_fds(sv, 2);
}

TEST(recv_fd_refuses_a_message_with_two_fds_and_closes_both)
{
	int sv[2], fds[2];
	struct fdp_msg out = {.fds = fds, .nfds = 2};

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	open_many(fds, 2);
	CHECK_INT(fdp_msg_send(sv[0], &out, 0), ==, 0);
	CHECK_INT(fdp_recv_fd(sv[1]), ==, -EBADMSG);
	fdp_close_fds(fds, 2);
	fdp_close_fds(sv, 2);
}

TEST(strerror_names_the_truncation_error)
{
	CHECK(strstr(fdp_strerror(-EXFULL), "descriptor") != NULL);
	CHECK(strcmp(fdp_strerror(-ENOENT), strerror(ENOENT)) == 0);
}
