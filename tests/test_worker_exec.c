/* Workers other than the built-in http handler: the echo handler, and an executed program. */
#include "test_serve_util.h"

#define EXAMPLE FDPASS_BINARY_DIR "/examples/upper_worker"

/* Send text on a fresh connection and read the same number of bytes back. */
static void check_round_trip(const char *addr, const char *text, const char *want)
{
	char buf[256] = {0};
	size_t got = 0, len = strlen(want);
	int fd = tcp_connect(addr, NULL);

	send_all(fd, text);
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		CHECK(n > 0);
		got += (size_t)n;
	}
	CHECK(strcmp(buf, want) == 0);
	close(fd);
}

TEST(echo_handler_sends_every_byte_back)
{
	struct server s;

	server_start(&s, "--workers", "2", "--handler", "echo", NULL);
	for (int i = 0; i < 4; i++)
		check_round_trip(s.addr, "hello, echo\n", "hello, echo\n");
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(an_executed_worker_program_serves_through_the_worker_api)
{
	struct server s;
	int held;

	if (access(EXAMPLE, X_OK) < 0)
		fdp_test_skip(EXAMPLE " is not built");
	server_start(&s, "--workers", "2", "--exec", EXAMPLE, NULL);
	for (int i = 0; i < 4; i++)
		check_round_trip(s.addr, "make me loud\n", "MAKE ME LOUD\n");
	/* A connection open across SIGTERM is still served, then the worker exits cleanly. */
	held = tcp_connect(s.addr, NULL);
	send_all(held, "a\n");
	{
		char c[2];

		CHECK_INT(read(held, c, 2), ==, 2);
	}
	kill(s.pid, SIGTERM);
	server_wait_log(&s, "draining", 10000);
	send_all(held, "still here\n");
	{
		char buf[16] = {0};

		CHECK_INT(read(held, buf, 11), ==, 11);
		CHECK(strcmp(buf, "STILL HERE\n") == 0);
	}
	close(held);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	CHECK(strstr(s.log, "killed by signal") == NULL);
	server_free(&s);
}

TEST(an_exec_command_with_leading_blanks_runs_the_program)
{
	struct server s;

	if (access(EXAMPLE, X_OK) < 0)
		fdp_test_skip(EXAMPLE " is not built");
	/* The blanks are skipped before the command is copied (an over-read once, under ASan). */
	server_start(&s, "--workers", "1", "--exec", "   \t" EXAMPLE, NULL);
	check_round_trip(s.addr, "quiet\n", "QUIET\n");
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
