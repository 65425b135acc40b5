/*
 * The message layer against programs that know nothing of fdpass: Python's socket.send_fds and
 * recv_fds, Python's multiprocessing.reduction, Perl's IO::FDPass, and sd_notify-style
 * datagrams with credentials. The peers are tests/interop/peer.py and peer.pl, run with their
 * end of the socket as descriptor 3. Each exchange checks the exact bytes, that every
 * descriptor works (a byte is written through it), and that neither side leaks one (the peers
 * compare their own descriptor tables; the harness checks this one). A test whose peer is not
 * installed says so and is skipped.
 */
#include "harness.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PEER_PY FDPASS_SOURCE_DIR "/tests/interop/peer.py"
#define PEER_PL FDPASS_SOURCE_DIR "/tests/interop/peer.pl"

static const int types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};

struct peer {
	int sock;
	const char *argv[8];
};

static void exec_peer(void *arg)
{
	struct peer *p = arg;

	/*
	 * dup2() clears close-on-exec: descriptor 3 is the only one the peer inherits. A socket
	 * that is 3 already keeps its flag through dup2(), so clear it by hand.
	 */
	if (p->sock == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(p->sock, 3) < 0)
		_exit(126);
	execvp(p->argv[0], (char *const *)p->argv);
	_exit(127);
}

/* Start a peer (a NULL-terminated argument list) with sock as its descriptor 3. */
static pid_t peer_start(int sock, const char *const *argv)
{
	struct peer p = {.sock = sock};

	for (size_t i = 0; argv[i]; i++) {
		CHECK(i + 1 < sizeof(p.argv) / sizeof(p.argv[0]));
		p.argv[i] = argv[i];
	}
	return fdp_test_fork(exec_peer, &p);
}

static void need_python(void)
{
	if (system("python3 -c 'import socket; socket.send_fds' >/dev/null 2>&1") != 0)
		fdp_test_skip("no python3 with socket.send_fds (3.9+)");
}

static void need_perl_fdpass(void)
{
	if (system("perl -MIO::FDPass -e 1 >/dev/null 2>&1") != 0)
		fdp_test_skip("Perl's IO::FDPass is not installed (Debian libio-fdpass-perl; "
		              ".ci/run installs it)");
}

/* The bytes both sides expect; tests/interop/peer.py computes the same. */
static void pattern(unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)((i * 7 + 1) & 0xff);
}

/* Write byte i through fds[i] and close each: the descriptors must work. */
static void write_indices(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char byte = (unsigned char)i;

		CHECK_INT(write(fds[i], &byte, 1), ==, 1);
		close(fds[i]);
		fds[i] = -1;
	}
}

/* Read r to its end: byte i must have come through descriptor i of n. Closes r. */
static void check_indices(int r, size_t n)
{
	size_t len;
	unsigned char *got = (unsigned char *)fdp_test_read_all(r, &len);

	close(r);
	CHECK_INT(len, ==, n);
	for (size_t i = 0; i < n; i++)
		CHECK_INT(got[i], ==, i & 0xff);
	free(got);
}

/* Wait for a message: a datagram socket has no end of file to end a wait for a dead peer. */
static void wait_message(int sock)
{
	fdp_test_wait_readable(sock, 20000);
}

/* Python's socket.send_fds() sends nbytes and nfds descriptors; fdp_msg_recv() takes them. */
static void python_sends(int type, size_t nbytes, size_t nfds)
{
	char nb[16], nf[16];
	const char *argv[] = {"python3", PEER_PY, "send", nb, nf, NULL};
	unsigned char want[256], buf[512];
	int sv[2], fds[FDP_MAX_FDS];
	struct fdp_msg m = {.data = buf, .len = sizeof(buf), .fds = fds, .nfds = FDP_MAX_FDS};
	pid_t pid;

	snprintf(nb, sizeof(nb), "%zu", nbytes);
	snprintf(nf, sizeof(nf), "%zu", nfds);
	CHECK_OK(fdp_socketpair(type, sv));
	pid = peer_start(sv[1], argv);
	close(sv[1]);
	wait_message(sv[0]);
	CHECK_INT(fdp_msg_recv(sv[0], &m, 0), ==, 1);
	pattern(want, nbytes);
	CHECK_INT(m.len, ==, nbytes);
	CHECK(memcmp(buf, want, nbytes) == 0);
	CHECK_INT(m.nfds, ==, nfds);
	CHECK_INT(m.flags, ==, 0);
	for (size_t i = 0; i < m.nfds; i++)
		CHECK(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
	write_indices(fds, m.nfds);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(sv[0]);
}

/* fdp_msg_send() sends nbytes and nfds descriptors; Python's socket.recv_fds() takes them. */
static void python_receives(int type, size_t nbytes, size_t nfds)
{
	char nb[16], nf[16];
	const char *argv[] = {"python3", PEER_PY, "recv", nb, nf, NULL};
	unsigned char data[256];
	int sv[2], p[2], fds[FDP_MAX_FDS];
	struct fdp_msg m = {.data = data, .len = nbytes, .fds = fds, .nfds = nfds};
	pid_t pid;

	snprintf(nb, sizeof(nb), "%zu", nbytes);
	snprintf(nf, sizeof(nf), "%zu", nfds);
	pattern(data, nbytes);
	CHECK_OK(fdp_socketpair(type, sv));
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	for (size_t i = 0; i < nfds; i++)
		fds[i] = p[1]; /* the kernel makes each a descriptor of its own in the peer */
	pid = peer_start(sv[1], argv);
	close(sv[1]);
	CHECK_INT(fdp_msg_send(sv[0], &m, 0), ==, nbytes);
	close(p[1]);
	check_indices(p[0], nfds);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(sv[0]);
}

TEST(python_send_fds_with_one_byte_is_received_on_stream_seqpacket_and_dgram)
{
	need_python();
	for (size_t i = 0; i < 3; i++)
		python_sends(types[i], 1, 1);
}

TEST(python_send_fds_with_many_bytes_is_received_on_stream_seqpacket_and_dgram)
{
	need_python();
	for (size_t i = 0; i < 3; i++)
		python_sends(types[i], 200, 3);
}

TEST(python_send_fds_with_zero_bytes_is_received_on_seqpacket_and_dgram)
{
	need_python();
	python_sends(SOCK_SEQPACKET, 0, 1);
	python_sends(SOCK_DGRAM, 0, 2);
}

TEST(python_send_fds_with_253_descriptors_is_received_whole)
{
	need_python();
	for (size_t i = 0; i < 3; i++)
		python_sends(types[i], 1, FDP_MAX_FDS);
}

TEST(python_recv_fds_takes_one_byte_from_msg_send_on_stream_seqpacket_and_dgram)
{
	need_python();
	for (size_t i = 0; i < 3; i++)
		python_receives(types[i], 1, 1);
}

TEST(python_recv_fds_takes_many_bytes_from_msg_send_on_stream_seqpacket_and_dgram)
{
	need_python();
	for (size_t i = 0; i < 3; i++)
		python_receives(types[i], 200, 3);
}

TEST(python_recv_fds_takes_zero_bytes_from_msg_send_on_seqpacket_and_dgram)
{
	need_python();
	python_receives(SOCK_SEQPACKET, 0, 1);
	python_receives(SOCK_DGRAM, 0, 2);
}

TEST(python_recv_fds_takes_253_descriptors_from_msg_send)
{
	need_python();
	for (size_t i = 0; i < 3; i++)
		python_receives(types[i], 1, FDP_MAX_FDS);
}

/* The peer (argv) sends one descriptor its own way; fdp_recv_fd() takes it on a type socket. */
static void peer_sends_one(const char *const *argv, int type)
{
	int sv[2], fd;
	pid_t pid;

	CHECK_OK(fdp_socketpair(type, sv));
	pid = peer_start(sv[1], argv);
	close(sv[1]);
	fd = fdp_recv_fd(sv[0]);
	CHECK_OK(fd);
	write_indices(&fd, 1);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(sv[0]);
}

/* fdp_send_fd() sends one descriptor; the peer (argv) takes it its own way. */
static void peer_receives_one(const char *const *argv, int type)
{
	int sv[2], p[2];
	pid_t pid;

	CHECK_OK(fdp_socketpair(type, sv));
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	pid = peer_start(sv[1], argv);
	close(sv[1]);
	CHECK_OK(fdp_send_fd(sv[0], p[1]));
	close(p[1]);
	check_indices(p[0], 1);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(sv[0]);
}

TEST(python_send_fds_with_a_zero_byte_reaches_recv_fd)
{
	const char *argv[] = {"python3", PEER_PY, "send-classic", NULL};

	need_python();
	peer_sends_one(argv, SOCK_STREAM);
}

TEST(send_fd_reaches_python_recv_fds_as_one_zero_byte)
{
	const char *argv[] = {"python3", PEER_PY, "recv-classic", NULL};

	need_python();
	peer_receives_one(argv, SOCK_SEQPACKET);
}

/* multiprocessing.reduction.sendfds() passes nfds descriptors with its count byte. */
static void multiprocessing_sends(size_t nfds)
{
	char nf[16];
	const char *argv[] = {"python3", PEER_PY, "mp-send", nf, NULL};
	int sv[2], fds[8];
	unsigned char byte;
	struct fdp_msg m = {.data = &byte, .len = 1, .fds = fds, .nfds = 8};
	pid_t pid;

	snprintf(nf, sizeof(nf), "%zu", nfds);
	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	pid = peer_start(sv[1], argv);
	close(sv[1]);
	if (nfds == 1) {
		fds[0] = fdp_recv_fd(sv[0]);
		CHECK_OK(fds[0]);
	} else {
		CHECK_INT(fdp_msg_recv(sv[0], &m, 0), ==, 1);
		CHECK_INT(m.len, ==, 1);
		CHECK_INT(byte, ==, nfds % 256);
		CHECK_INT(m.nfds, ==, nfds);
	}
	write_indices(fds, nfds);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(sv[0]);
}

TEST(multiprocessing_sendfds_reaches_recv_fd_and_msg_recv)
{
	need_python();
	multiprocessing_sends(1);
	multiprocessing_sends(5);
}

TEST(multiprocessing_recvfds_takes_msg_send_with_the_count_byte)
{
	const char *argv[] = {"python3", PEER_PY, "mp-recv", NULL, NULL};

	need_python();
	for (size_t nfds = 1; nfds <= 5; nfds += 4) {
		char nf[16];
		unsigned char byte = (unsigned char)(nfds % 256); /* what recvfds() checks */
		int sv[2], p[2], fds[5];
		struct fdp_msg m = {.data = &byte, .len = 1, .fds = fds, .nfds = nfds};
		pid_t pid;

		snprintf(nf, sizeof(nf), "%zu", nfds);
		argv[3] = nf;
		CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
		CHECK(pipe2(p, O_CLOEXEC) == 0);
		for (size_t i = 0; i < nfds; i++)
			fds[i] = p[1];
		pid = peer_start(sv[1], argv);
		close(sv[1]);
		CHECK_INT(fdp_msg_send(sv[0], &m, 0), ==, 1);
		close(p[1]);
		check_indices(p[0], nfds);
		CHECK_INT(fdp_test_wait(pid), ==, 0);
		close(sv[0]);
	}
}

TEST(perl_io_fdpass_send_reaches_recv_fd)
{
	const char *argv[] = {"perl", PEER_PL, "send", NULL};

	need_perl_fdpass();
	peer_sends_one(argv, SOCK_STREAM);
}

TEST(send_fd_reaches_perl_io_fdpass_recv)
{
	const char *argv[] = {"perl", PEER_PL, "recv", NULL};

	need_perl_fdpass();
	peer_receives_one(argv, SOCK_STREAM);
}

TEST(python_zero_length_datagram_is_a_message_of_zero_bytes)
{
	const char *argv[] = {"python3", PEER_PY, "empty-datagram", NULL};
	int sv[2];
	char buf[8];
	struct fdp_msg m = {.data = buf, .len = sizeof(buf)};
	pid_t pid;

	need_python();
	CHECK_OK(fdp_socketpair(SOCK_DGRAM, sv));
	pid = peer_start(sv[1], argv);
	close(sv[1]);
	wait_message(sv[0]);
	CHECK_INT(fdp_msg_recv(sv[0], &m, 0), ==, 1);
	CHECK_INT(m.len, ==, 0);
	CHECK_INT(m.nfds, ==, 0);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(sv[0]);
}

/* A datagram socket bound at path, with SO_PASSCRED as systemd's notify socket has it. */
static int notify_socket(struct sockaddr_un *sa)
{
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), on = 1;

	CHECK(s >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/notify", fdp_test_tmpdir());
	CHECK(bind(s, (struct sockaddr *)sa, sizeof(*sa)) == 0);
	CHECK(setsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0);
	return s;
}

#define NOTIFY_TEXT "FDSTORE=1\nFDNAME=x\n"

TEST(sd_notify_datagram_with_credentials_and_a_descriptor_reaches_msg_recv)
{
	struct sockaddr_un sa;
	const char *argv[] = {"python3", PEER_PY, "notify-send", sa.sun_path, NULL};
	int s, fd = -1, pfd;
	char buf[64];
	struct fdp_msg m = {.data = buf, .len = sizeof(buf), .fds = &fd, .nfds = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	struct ucred cred;
	pid_t pid;

	need_python();
	s = notify_socket(&sa);
	pid = peer_start(s, argv); /* the peer sends from a socket of its own; 3 goes unused */
	/* A peek first, to see what the kernel delivers: credentials, then the descriptor. */
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	wait_message(s);
	CHECK_INT(recvmsg(s, &mh, MSG_PEEK | MSG_CMSG_CLOEXEC), ==, strlen(NOTIFY_TEXT));
	c = CMSG_FIRSTHDR(&mh);
	CHECK(c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS);
	memcpy(&cred, CMSG_DATA(c), sizeof(cred));
	CHECK_INT(cred.pid, ==, pid);
	c = CMSG_NXTHDR(&mh, c);
	CHECK(c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS);
	memcpy(&pfd, CMSG_DATA(c), sizeof(pfd));
	close(pfd); /* a peek installs a copy of the descriptor */
	CHECK_INT(fdp_msg_recv(s, &m, 0), ==, 1);
	CHECK_INT(m.len, ==, strlen(NOTIFY_TEXT));
	CHECK(memcmp(buf, NOTIFY_TEXT, m.len) == 0);
	CHECK_INT(m.nfds, ==, 1);
	CHECK_INT(m.flags, ==, 0);
	write_indices(&fd, 1);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(s);
	unlink(sa.sun_path);
}

TEST(msg_send_datagram_reaches_an_sd_notify_receiver_with_credentials_first)
{
	struct sockaddr_un sa;
	char mypid[16];
	const char *argv[] = {"python3", PEER_PY, "notify-recv", mypid, NULL};
	int s, out, p[2];
	struct fdp_msg m = {.data = NOTIFY_TEXT, .len = strlen(NOTIFY_TEXT), .nfds = 1};
	pid_t pid;

	need_python();
	snprintf(mypid, sizeof(mypid), "%d", (int)getpid());
	s = notify_socket(&sa);
	out = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(out >= 0);
	CHECK(connect(out, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	m.fds = &p[1];
	pid = peer_start(s, argv);
	close(s);
	/* No credentials from fdpass: the kernel attaches them, since the receiver has SO_PASSCRED. */
	CHECK_INT(fdp_msg_send(out, &m, 0), ==, strlen(NOTIFY_TEXT));
	close(p[1]);
	check_indices(p[0], 1);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(out);
	unlink(sa.sun_path);
}
