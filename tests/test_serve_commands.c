/*
 * The control socket's commands (docs/SERVE.md, "The control socket"): each client sends one
 * line and is answered; one that sends nothing gets the status, and none of them holds the
 * master. Every wait is bounded; synchronisation is on the answers and the log.
 */
#include "test_serve_util.h"

#include <sys/stat.h>

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"

TEST(a_control_client_that_sends_nothing_gets_the_status)
{
	struct server s;
	char *st;
	int fd;

	server_start(&s, "--workers", "1", NULL);
	fd = fdp_unix_connect(s.control, SOCK_STREAM);
	CHECK_OK(fd);
	st = fdp_test_read_all(fd, NULL); /* no command, no end of file: the status, later */
	close(fd);
	CHECK(strncmp(st, "master pid=", 11) == 0);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(an_unknown_control_command_is_answered_with_an_error_naming_the_commands)
{
	struct server s;
	char *a;

	server_start(&s, "--workers", "1", NULL);
	a = server_command(&s, "frobnicate now");
	CHECK(strcmp(a, "error unknown command 'frobnicate' (status, metrics, reload, stop, upgrade)\n") == 0);
	free(a);
	a = server_command(&s, "status"); /* the server goes on answering */
	CHECK(strncmp(a, "master pid=", 11) == 0);
	free(a);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_control_command_line_longer_than_the_limit_is_refused)
{
	char line[301];
	struct server s;
	char *a;
	int fd;

	memset(line, 'x', sizeof(line) - 2);
	line[sizeof(line) - 2] = '\n';
	line[sizeof(line) - 1] = '\0';
	server_start(&s, "--workers", "1", NULL);
	/*
	 * In one write, so that the whole line is there when the master answers: input arriving
	 * after it has closed would reset the connection (as any socket closed unread does).
	 */
	fd = fdp_unix_connect(s.control, SOCK_STREAM);
	CHECK_OK(fd);
	CHECK_INT(write(fd, line, 300), ==, 300);
	a = fdp_test_read_all(fd, NULL);
	close(fd);
	CHECK(strncmp(a, "error command too long", 22) == 0);
	free(a);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(the_reload_command_is_answered_once_every_worker_is_replaced)
{
	struct server s;
	char *a;

	server_start(&s, "--workers", "2", NULL);
	a = server_command(&s, "reload");
	CHECK(strcmp(a, "ok reloaded: every worker replaced\n") == 0);
	free(a);
	/* Answered after the reload completed: only second-generation workers are left. */
	a = server_status(&s);
	CHECK(strstr(a, "generation=1 ") == NULL);
	CHECK(strstr(a, "\nworker index=0 ") && strstr(a, "\nworker index=1 "));
	CHECK(strstr(a, "state=running") != NULL);
	free(a);
	CHECK(http_get_worker(s.addr, NULL, NULL) >= 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(the_reload_command_says_error_when_a_worker_could_not_be_replaced)
{
	char script[256];
	const char *args[] = {"--workers", "1", "--exec", script, NULL};
	struct server s;
	FILE *f;
	char *a;

	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
	snprintf(script, sizeof(script), "%s/worker", fdp_test_tmpdir());
	CHECK((f = fopen(script, "we")) != NULL);
	fputs("#!/bin/sh\nexec " UPPER_WORKER "\n", f);
	CHECK(fclose(f) == 0);
	CHECK_OK(chmod(script, 0755));
	server_start_argv(&s, args, 0);
	CHECK_OK(chmod(script, 0644)); /* the successor cannot be executed */
	a = server_command(&s, "reload");
	CHECK(strncmp(a, "error reload: 1 of 1 worker(s) not replaced", 43) == 0);
	free(a);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(the_stop_command_drains_and_the_server_exits_0)
{
	struct server s;
	char *a;

	server_start(&s, "--workers", "2", NULL);
	a = server_command(&s, "stop");
	CHECK(strcmp(a, "ok draining\n") == 0);
	free(a);
	server_wait_log(&s, "draining", 10000);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
}

TEST(stop_wait_is_answered_once_the_server_has_stopped)
{
	struct server s;
	pid_t pids[2];
	char *a;

	server_start(&s, "--workers", "2", NULL);
	a = server_status(&s);
	CHECK_INT(status_pids(a, pids, 2), ==, 2);
	free(a);
	a = server_command(&s, "stop wait");
	CHECK(strcmp(a, "ok stopped\n") == 0);
	free(a);
	/* By the answer every worker has exited and been reaped. */
	for (int i = 0; i < 2; i++) {
		CHECK_INT(kill(pids[i], 0), ==, -1);
		CHECK_INT(errno, ==, ESRCH);
	}
	server_wait_log(&s, "stopped: accepted", 10000);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
}

TEST(silent_control_clients_past_the_limit_delay_neither_dispatch_nor_a_later_command)
{
	enum { SILENT = 40 };
	struct server s;
	int fds[SILENT];
	char *a;

	server_start(&s, "--workers", "1", NULL);
	for (int i = 0; i < SILENT; i++) {
		fds[i] = fdp_unix_connect(s.control, SOCK_STREAM);
		CHECK_OK(fds[i]);
	}
	/* Connections are dispatched while the control clients wait for their turn. */
	for (int i = 0; i < 5; i++)
		CHECK(http_get_worker(s.addr, NULL, NULL) >= 0);
	a = server_command(&s, "status");
	CHECK(strncmp(a, "master pid=", 11) == 0);
	free(a);
	for (int i = 0; i < SILENT; i++) {
		a = fdp_test_read_all(fds[i], NULL); /* each got the status in its turn */
		CHECK(strncmp(a, "master pid=", 11) == 0);
		free(a);
		close(fds[i]);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
