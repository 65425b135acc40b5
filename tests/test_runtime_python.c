/*
 * The runtime worker in Python from docs/PROTOCOL.md (part 2) serves real clients under
 * fdpass serve --exec, many at once, so that the master packs bursts of CONN messages. Skipped
 * (as ctest reports it) when no python3 with socket.recv_fds (3.9+) is installed.
 */
#include "test_serve_util.h"

#define MARK "<!-- The runtime test extracts the python block that follows this line"

/* The python block after MARK in docs/PROTOCOL.md, written to a file; returns its path. */
static const char *extract_runtime_worker(void)
{
	static char path[4096];
	const char *start, *end;
	size_t len;
	char *doc;
	int fd = open(FDPASS_SOURCE_DIR "/docs/PROTOCOL.md", O_RDONLY | O_CLOEXEC);
	FILE *out;

	CHECK(fd >= 0);
	doc = fdp_test_read_all(fd, &len);
	close(fd);
	CHECK((start = strstr(doc, MARK)) != NULL);
	CHECK((start = strstr(start, "```python\n")) != NULL);
	start += strlen("```python\n");
	CHECK((end = strstr(start, "```")) != NULL);
	snprintf(path, sizeof(path), "%s/runtime_worker.py", fdp_test_tmpdir());
	CHECK((out = fopen(path, "we")) != NULL);
	CHECK(fwrite(start, 1, (size_t)(end - start), out) == (size_t)(end - start));
	CHECK(fclose(out) == 0);
	free(doc);
	return path;
}

TEST(python_runtime_worker_from_protocol_doc_serves_a_burst_of_clients)
{
	enum { CLIENTS = 40 };
	struct server s;
	char cmd[4200];
	int fds[CLIENTS];

	if (system("python3 -c 'import socket; socket.recv_fds' >/dev/null 2>&1") != 0)
		fdp_test_skip("no python3 with socket.recv_fds (3.9+)");
	snprintf(cmd, sizeof(cmd), "python3 %s", extract_runtime_worker());
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
