/*
 * The runtime worker in Python from docs/PROTOCOL.md (part 2) serves real clients under
 * fdpass serve --exec, many at once, so that the master packs bursts of CONN messages. Skipped
 * (as ctest reports it) when no python3 with socket.recv_fds (3.9+) is installed.
 */
#include "test_serve_util.h"

#define MARK "<!-- The runtime test extracts the python block that follows this line"

TEST(python_runtime_worker_from_protocol_doc_serves_a_burst_of_clients)
{
	enum { CLIENTS = 40 };
	struct server s;
	char cmd[4200];
	int fds[CLIENTS];

	if (system("python3 -c 'import socket; socket.recv_fds' >/dev/null 2>&1") != 0)
		fdp_test_skip("no python3 with socket.recv_fds (3.9+)");
	snprintf(cmd, sizeof(cmd), "python3 %s",
	         fdp_test_doc_python(FDPASS_SOURCE_DIR "/docs/PROTOCOL.md", MARK, "runtime.py"));
	server_start(&s, "--workers", "2", "--exec", cmd, NULL);
	/* All connected before any is served: the master hands them over in bursts. */
	for (int i = 0; i < CLIENTS; i++)
		fds[i] = tcp_connect(s.addr, NULL);
	for (int i = 0; i < CLIENTS; i++) {
		char text[32];

		snprintf(text, sizeof(text), "client %d\n", i);
		send_all(fds[i], text);
	}
	for (int i = 0; i < CLIENTS; i++) {
		char want[32], buf[32] = {0};
		size_t got = 0, len;

		snprintf(want, sizeof(want), "CLIENT %d\n", i);
		len = strlen(want);
		while (got < len) {
			ssize_t n = read(fds[i], buf + got, len - got);

			CHECK(n > 0);
			got += (size_t)n;
		}
		CHECK(strcmp(buf, want) == 0);
		close(fds[i]);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "accepted 40, handed 40, re-handed 0, closed unserved 0") != NULL);
	server_free(&s);
}
