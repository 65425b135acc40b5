/*
 * fdpass reload, fdpass stop and fdpass upgrade: the verbs that send a running server a
 * command over its control socket, their output and exit status. A fake control socket gives
 * the answers a real server gives only at a failure (an upgrade rolled back, a server without
 * commands); test_cli_upgrade.c upgrades a real one. Every wait is bounded; synchronisation is on
 * the verbs' own return, the log and waitpid.
 */
#include "test_serve_util.h"

#include <sys/stat.h>
#include <sys/un.h>

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"

/* Run fdpass VERB --control PATH [extra]; stdout and stderr are malloc'd. */
static int run_verb(const char *verb, const char *control, const char *extra, char **out,
                    char **err)
{
	const char *args[] = {verb, "--control", control, extra, NULL};

	return run_tool(args, out, err);
}

TEST(reload_exits_0_once_every_worker_is_replaced)
{
	struct server s;
	char *out, *err, *st;

	server_start(&s, "--workers", "2", NULL);
	CHECK_INT(run_verb("reload", s.control, NULL, &out, &err), ==, 0);
	CHECK(strcmp(out, "reloaded: every worker replaced\n") == 0);
	CHECK_INT(strlen(err), ==, 0);
	/* It returned after the reload completed: only the second generation is left. */
	st = server_status(&s);
	CHECK(strstr(st, "generation=1 ") == NULL);
	CHECK(strstr(st, "\nworker index=0 ") && strstr(st, "\nworker index=1 "));
	free(st);
	free(out);
	free(err);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(reload_exits_1_with_the_servers_error_when_a_worker_could_not_be_replaced)
{
	char script[256];
	const char *args[] = {"--workers", "1", "--exec", script, NULL};
	struct server s;
	char *out, *err;
	FILE *f;

	snprintf(script, sizeof(script), "%s/worker", fdp_test_tmpdir());
	CHECK((f = fopen(script, "we")) != NULL);
	fputs("#!/bin/sh\nexec " UPPER_WORKER "\n", f);
	CHECK(fclose(f) == 0);
	CHECK_OK(chmod(script, 0755));
	server_start_argv(&s, args, 0);
	CHECK_OK(chmod(script, 0644)); /* the successor cannot be executed */
	CHECK_INT(run_verb("reload", s.control, NULL, &out, &err), ==, 1);
	CHECK_INT(strlen(out), ==, 0);
	if (strncmp(err, "fdpass reload: reload: 1 of 1 worker(s) not replaced", 52) != 0 ||
	    strchr(err, '\n') != err + strlen(err) - 1)
		fdp_test_fail(__FILE__, __LINE__, "stderr: %s", err);
	free(out);
	free(err);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(stop_exits_0_once_the_master_drains_and_the_server_exits_0)
{
	struct server s;
	char *out, *err;

	server_start(&s, "--workers", "2", NULL);
	CHECK_INT(run_verb("stop", s.control, NULL, &out, &err), ==, 0);
	CHECK(strcmp(out, "draining\n") == 0);
	CHECK_INT(strlen(err), ==, 0);
	server_wait_log(&s, "draining", 10000);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	free(out);
	free(err);
	server_free(&s);
}

TEST(stop_wait_returns_once_the_master_process_has_exited_and_removed_its_files)
{
	char pidfile[300];
	const char *args[] = {"--workers", "2", "--pid-file", pidfile, NULL};
	struct server s;
	char *out, *err;
	int status;

	snprintf(pidfile, sizeof(pidfile), "%s/fdpass.pid", fdp_test_tmpdir());
	server_start_argv(&s, args, 0);
	CHECK_INT(run_verb("stop", s.control, "--wait", &out, &err), ==, 0);
	CHECK(strcmp(out, "stopped\n") == 0);
	CHECK_INT(strlen(err), ==, 0);
	/* Already exited: no wait needed to reap it, and its files are gone. */
	CHECK_INT(waitpid(s.pid, &status, WNOHANG), ==, s.pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(access(pidfile, F_OK), ==, -1);
	CHECK_INT(access(s.control, F_OK), ==, -1);
	close(s.err);
	free(out);
	free(err);
	server_free(&s);
}

TEST(reload_and_stop_without_a_server_exit_1_saying_none_answers)
{
	static const char *const verbs[] = {"reload", "stop"};
	char path[300];

	snprintf(path, sizeof(path), "%s/none.sock", fdp_test_tmpdir());
	for (size_t i = 0; i < 2; i++) {
		char *out, *err, want[512];

		CHECK_INT(run_verb(verbs[i], path, NULL, &out, &err), ==, 1);
		snprintf(want, sizeof(want),
		         "fdpass %s: cannot connect to %s: No such file or directory (is fdpass "
		         "serve running?)\n",
		         verbs[i], path);
		if (strcmp(err, want) != 0)
			fdp_test_fail(__FILE__, __LINE__, "stderr: %s", err);
		free(out);
		free(err);
	}
}

TEST(reload_exits_1_when_no_answer_comes_within_the_timeout)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *args[] = {"reload", "--control", sa.sun_path, "--timeout", "0.1", NULL};
	char *out, *err, want[512];
	/* A socket that listens and never accepts: the client connects, and waits. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK_OK(fd);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mute.sock", fdp_test_tmpdir());
	CHECK_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(fd, 4));
	CHECK_INT(run_tool(args, &out, &err), ==, 1);
	snprintf(want, sizeof(want), "fdpass reload: %s: no answer in time (see --timeout)\n",
	         sa.sun_path);
	if (strcmp(err, want) != 0)
		fdp_test_fail(__FILE__, __LINE__, "stderr: %s", err);
	free(out);
	free(err);
	close(fd);
}

/* A control socket in the test's directory that a helper child answers once (fake_serve()). */
struct fake {
	struct sockaddr_un sa;
	int fd;
	const char *expect, *answer; /* the command line it must receive; what it answers */
};

static void fake_serve(void *arg)
{
	struct fake *f = arg;
	char line[256];
	size_t len = 0;
	int c;

	fdp_test_wait_readable(f->fd, 10000);
	c = accept4(f->fd, NULL, NULL, SOCK_CLOEXEC);
	CHECK_OK(c);
	while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
		ssize_t n;

		fdp_test_wait_readable(c, 10000);
		n = read(c, line + len, sizeof(line) - 1 - len);
		CHECK(n > 0);
		len += (size_t)n;
	}
	line[len] = '\0';
	if (strcmp(line, f->expect) != 0)
		fdp_test_fail(__FILE__, __LINE__, "the client sent '%s'", line);
	send_all(c, f->answer);
	close(c);
}

/* Run fdpass VERB against a fake server that expects command and answers answer. */
static int run_against_fake(const char *verb, const char *command, const char *answer, char **out,
                            char **err)
{
	struct fake f = {.sa = {.sun_family = AF_UNIX}, .expect = command, .answer = answer};
	pid_t pid;
	int status;

	snprintf(f.sa.sun_path, sizeof(f.sa.sun_path), "%s/fake.sock", fdp_test_tmpdir());
	unlink(f.sa.sun_path);
	f.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_OK(f.fd);
	CHECK_OK(bind(f.fd, (struct sockaddr *)&f.sa, sizeof(f.sa)));
	CHECK_OK(listen(f.fd, 4));
	pid = fdp_test_fork(fake_serve, &f);
	status = run_verb(verb, f.sa.sun_path, NULL, out, err);
	CHECK_INT(fdp_test_wait(pid), ==, 0);
	close(f.fd);
	return status;
}

TEST(upgrade_sends_the_upgrade_command_and_exits_0_with_the_new_masters_pid)
{
	char *out, *err;

	CHECK_INT(run_against_fake("upgrade", "upgrade\n",
	                           "ok upgraded: new master pid 42; this one (pid 41) drains and "
	                           "exits\n",
	                           &out, &err),
	          ==, 0);
	CHECK(strcmp(out, "upgraded: new master pid 42; this one (pid 41) drains and exits\n") ==
	      0);
	CHECK_INT(strlen(err), ==, 0);
	free(out);
	free(err);
}

TEST(upgrade_exits_1_with_the_servers_error_when_it_rolled_back)
{
	char *out, *err;

	CHECK_INT(run_against_fake("upgrade", "upgrade\n",
	                           "error upgrade: the new master exited before it was ready; this "
	                           "master serves on (see the server's log)\n",
	                           &out, &err),
	          ==, 1);
	CHECK_INT(strlen(out), ==, 0);
	CHECK(strcmp(err, "fdpass upgrade: upgrade: the new master exited before it was ready; "
	                  "this master serves on (see the server's log)\n") == 0);
	free(out);
	free(err);
}

TEST(a_verb_answered_with_a_status_says_the_server_takes_no_commands)
{
	char *out, *err, want[512];

	CHECK_INT(
	        run_against_fake("reload", "reload\n", "master pid=1 state=running\n", &out, &err),
	        ==, 1);
	snprintf(want, sizeof(want),
	         "fdpass reload: %s/fake.sock: the server answered with its status: it takes no "
	         "commands (an older fdpass serve?)\n",
	         fdp_test_tmpdir());
	CHECK(strcmp(err, want) == 0);
	free(out);
	free(err);
}

TEST(reload_stop_and_upgrade_report_a_bad_command_line_in_one_line_and_a_pointer_to_help)
{
	static const char *const cases[][3] = {
	        {"reload", "--frob", "unknown option '--frob'"},
	        {"reload", "--wait", "unknown option '--wait'"},
	        {"reload", "--timeout", "option '--timeout' needs a value"},
	        {"reload", "now", "unexpected argument 'now'"},
	        {"stop", "--wait=1", "option '--wait' takes no value"},
	        {"stop", "--control", "option '--control' needs a value"},
	        {"stop", "--timeout=soon",
	         "invalid value 'soon' for --timeout: expected seconds from 0.001 to 86400"},
	        {"upgrade", "--wait", "unknown option '--wait'"},
	        {"upgrade", "now", "unexpected argument 'now'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = {cases[i][0], cases[i][1], NULL};
		char *out, *err, want[512];

		snprintf(want, sizeof(want),
		         "fdpass %s: %s\nTry 'fdpass %s --help' for more information.\n",
		         cases[i][0], cases[i][2], cases[i][0]);
		if (run_tool(args, &out, &err) != 2 || strcmp(err, want) != 0 || *out)
			fdp_test_fail(__FILE__, __LINE__, "%s %s: %s", cases[i][0], cases[i][1],
			              err);
		free(out);
		free(err);
	}
}

TEST(help_lists_reload_stop_and_upgrade_and_help_stop_shows_wait)
{
	const char *help[] = {"help", NULL}, *stop[] = {"help", "stop", NULL};
	char *out, *err;

	CHECK_INT(run_tool(help, &out, &err), ==, 0);
	CHECK(strstr(out, "\n  reload ") && strstr(out, "\n  stop ") &&
	      strstr(out, "\n  upgrade "));
	free(out);
	free(err);
	CHECK_INT(run_tool(stop, &out, &err), ==, 0);
	CHECK(strncmp(out, "usage: fdpass stop [--wait]", 27) == 0);
	free(out);
	free(err);
}
