/*
 * The Python worker printed in docs/PROTOCOL.md, run as is against the C channel: proof that
 * the document describes the bytes the library really sends and accepts. Skipped (ctest
 * reports it) when no python3 with socket.recv_fds (3.9+) is installed.
 */
#include "harness.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

struct worker {
	const char *script;
	int sock;
};

static void exec_worker(void *arg)
{
	struct worker *w = arg;

	/* dup2() clears close-on-exec: descriptor 3 is the only one python inherits. */
	if (dup2(w->sock, 3) < 0)
		_exit(126);
	execlp("python3", "python3", w->script, "3", (char *)NULL);
	_exit(127);
}

/* Receive one message, waiting up to 10 s for it. */
static int recv_wait(struct fdp_channel *ch, struct fdp_channel_msg *m)
{
	int r;

	while ((r = fdp_channel_recv(ch, m)) == -EAGAIN) {
		struct pollfd p = {fdp_channel_fd(ch), POLLIN, 0};

		CHECK(poll(&p, 1, 10000) == 1);
	}
	return r;
}

/*
 * Send messages first .. first + count - 1 in one flush (packed into one packet), message i
 * with i % 3 pipes' write ends, and check python's reply and line for each.
 */
static void exchange(struct fdp_channel *ch, unsigned first, unsigned count)
{
	static struct fdp_channel_msg m;
	char payload[8][32], want[96];
	int p[8][2][2];
	size_t len;

	CHECK(count <= 8);
	for (unsigned j = 0; j < count; j++) {
		unsigned i = first + j;
		size_t nfds = i % 3;
		int fds[2];

		snprintf(payload[j], sizeof(payload[j]), "hello %u", i);
		for (size_t k = 0; k < nfds; k++) {
			CHECK(pipe2(p[j][k], O_CLOEXEC) == 0);
			fds[k] = p[j][k][1]; /* the write end goes to python */
		}
		CHECK_OK(fdp_channel_send(ch, 10 + i, payload[j], strlen(payload[j]), fds, nfds,
		                          j + 1 < count ? FDP_CHANNEL_MORE : 0));
	}
	CHECK_OK(fdp_channel_flush_wait(ch, 10000));
	for (unsigned j = 0; j < count; j++) {
		unsigned i = first + j;

		CHECK_INT(recv_wait(ch, &m), ==, 1);
		CHECK_INT(m.type, ==, 11 + i);
		CHECK_INT(m.len, ==, strlen(payload[j]));
		CHECK(memcmp(m.payload, payload[j], m.len) == 0);
		CHECK_INT(m.nfds, ==, 0);
		snprintf(want, sizeof(want), "python worker got type %u: %s\n", 10 + i, payload[j]);
		for (size_t k = 0; k < i % 3; k++) {
			char *got = fdp_test_read_all(p[j][k][0], &len);

			CHECK(strcmp(got, want) == 0);
			free(got);
			close(p[j][k][0]);
		}
	}
}

TEST(python_worker_from_protocol_doc_talks_to_the_c_channel)
{
	struct fdp_channel *ch;
	struct worker w;
	int sv[2];
	pid_t pid;

	if (system("python3 -c 'import socket; socket.recv_fds' >/dev/null 2>&1") != 0)
		fdp_test_skip("no python3 with socket.recv_fds (3.9+)");
	w.script = fdp_test_doc_python(FDPASS_SOURCE_DIR "/docs/PROTOCOL.md", NULL, "worker.py");
	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	w.sock = sv[1];
	pid = fdp_test_fork(exec_worker, &w);
	close(sv[1]);
	CHECK_OK(fdp_channel_open(&ch, sv[0], NULL));
	/* One message per packet, then bursts that the channel packs into one packet each. */
	for (unsigned i = 0; i < 4; i++)
		exchange(ch, i, 1);
	exchange(ch, 4, 8);
	exchange(ch, 12, 3);
	fdp_channel_close(ch); /* python sees end of file and exits 0 */
	CHECK_INT(fdp_test_wait(pid), ==, 0);
}
