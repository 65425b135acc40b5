/* fdpass serve and fdpass status: control socket, status output, options, exit codes. */
#include "test_serve_util.h"

#include <sys/stat.h>

TEST(status_and_json_report_the_counts)
{
	struct server s;
	char *out, *err;
	const char *table[] = {"status", "--control", NULL, NULL};
	const char *json[] = {"status", "--json", "--control", NULL, NULL};
	struct stat st;

	server_start(&s, "--workers", "2", NULL);
	CHECK_OK(stat(s.control, &st));
	CHECK_INT(st.st_mode & 0777, ==, 0600);
	for (int i = 0; i < 5; i++)
		http_get_worker(s.addr, NULL, NULL);
	table[2] = s.control;
	CHECK_INT(run_tool(table, &out, &err), ==, 0);
	CHECK(strstr(out, "accepted 5, handed over 5, re-handed 0, pending 0") != NULL);
	CHECK(strstr(out, "closed unserved: no worker 0, shutdown 0, error 0") != NULL);
	CHECK(strstr(out, "ready") != NULL);
	free(out);
	free(err);
	json[3] = s.control;
	CHECK_INT(run_tool(json, &out, &err), ==, 0);
	CHECK(strncmp(out, "{\"master\":{\"pid\":", 17) == 0);
	CHECK(strstr(out, "\"accepted\":5,\"handed\":5,\"rehanded\":0") != NULL);
	CHECK(strstr(out, "\"workers\":[{\"index\":0,") != NULL);
	CHECK(strstr(out, "},{\"index\":1,") != NULL);
	CHECK(strstr(out, "\"state\":\"ready\",\"open\":0,") != NULL);
	/* Served adds up: every request is reported done by the worker that served it. */
	const char *a = strstr(out, "\"served\":"), *b = a ? strstr(a + 1, "\"served\":") : NULL;
	CHECK(a && b);
	CHECK_INT(atoi(a + 9) + atoi(b + 9), ==, 5);
	free(out);
	free(err);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(status_json_stays_valid_with_a_quote_or_backslash_in_the_route_key)
{
	struct server s;
	char *out, *err;
	const char *json[] = {"status", "--json", "--control", NULL, NULL};

	server_start(&s, "--workers", "1", "--policy", "route", "--route-key", "line:1:\"", NULL);
	json[3] = s.control;
	CHECK_INT(run_tool(json, &out, &err), ==, 0);
	CHECK(strstr(out, "\"route\":{\"key\":\"line:1:_\",") != NULL);
	free(out);
	free(err);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(status_finds_a_server_on_the_default_control_path)
{
	const char *serve[] = {"--workers", "1", NULL};
	const char *status[] = {"status", NULL};
	struct server s;
	char *out, *err;

	/* The default is $XDG_RUNTIME_DIR/fdpass.sock: point it at this test's directory. */
	setenv("XDG_RUNTIME_DIR", fdp_test_tmpdir(), 1);
	server_start_argv(&s, serve, SERVE_DEFAULT_CONTROL);
	CHECK(strstr(s.log, "control socket ") && strstr(s.log, "/fdpass.sock"));
	CHECK_INT(run_tool(status, &out, &err), ==, 0);
	CHECK(strstr(out, "master pid ") != NULL);
	free(out);
	free(err);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(access(s.control, F_OK) < 0);
	server_free(&s);
	unsetenv("XDG_RUNTIME_DIR");
}

static void expect_failure(const char *const *args, int status, const char *want);

TEST(without_xdg_runtime_dir_the_control_socket_is_in_a_private_directory_status_finds)
{
	const char *serve[] = {"--workers", "1", NULL};
	const char *status[] = {"status", NULL};
	char dir[600];
	struct stat st;
	struct server s;
	char *out, *err;

	unsetenv("XDG_RUNTIME_DIR");
	setenv("TMPDIR", fdp_test_tmpdir(), 1);
	snprintf(dir, sizeof(dir), "%s/fdpass-%u", fdp_test_tmpdir(), (unsigned)getuid());
	server_start_argv(&s, serve, SERVE_DEFAULT_CONTROL);
	CHECK(strstr(s.log, "/control.sock") != NULL);
	CHECK(lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	CHECK_INT(run_tool(status, &out, &err), ==, 0);
	CHECK(strstr(out, "master pid ") != NULL);
	free(out);
	free(err);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	rmdir(dir);
	unsetenv("TMPDIR");
}

TEST(serve_refuses_a_default_control_directory_others_can_enter)
{
	const char *args[] = {"serve", "--workers", "1", NULL};
	char dir[600];

	unsetenv("XDG_RUNTIME_DIR");
	setenv("TMPDIR", fdp_test_tmpdir(), 1);
	snprintf(dir, sizeof(dir), "%s/fdpass-%u", fdp_test_tmpdir(), (unsigned)getuid());
	CHECK(mkdir(dir, 0755) == 0);
	CHECK(chmod(dir, 0755) == 0); /* the umask may have taken bits away */
	expect_failure(args, 1, "refusing to use it");
	rmdir(dir);
	unsetenv("TMPDIR");
}

static char impostor_name[64];

/* Listen as nobody and answer one client with an invented status line. */
static void impostor(void *arg)
{
	int *ready = arg, lfd, c;
	const char *fake = "master pid=1 state=running policy=round-robin workers=9 accepted=999\n";

	CHECK_OK(setgid(65534));
	CHECK_OK(setuid(65534));
	lfd = fdp_unix_listen(impostor_name, SOCK_STREAM, 0600, 4);
	CHECK_OK(lfd);
	CHECK_INT(write(ready[1], "r", 1), ==, 1);
	c = accept(lfd, NULL, NULL);
	CHECK(c >= 0);
	/* The refusal may come first and close the connection: a failed send is fine. */
	(void)!send(c, fake, strlen(fake), MSG_NOSIGNAL);
	close(c);
	close(lfd);
}

TEST(status_refuses_a_server_that_is_neither_root_nor_the_user)
{
	const char *args[] = {"status", "--control", impostor_name, NULL};
	int ready[2];
	char byte;
	pid_t pid;

	if (getuid() != 0)
		fdp_test_skip("needs root to answer as another user (nobody)");
	snprintf(impostor_name, sizeof(impostor_name), "@fdpass-test-impostor-%d", (int)getpid());
	CHECK_OK(pipe2(ready, O_CLOEXEC));
	pid = fdp_test_fork(impostor, ready);
	close(ready[1]);
	CHECK_INT(read(ready[0], &byte, 1), ==, 1);
	close(ready[0]);
	expect_failure(args, 1, "neither root nor you: refusing to trust it");
	CHECK_INT(fdp_test_wait(pid), ==, 0);
}

/* As another user: connect to the control socket and return what it answers. */
static void connect_as_nobody(void *arg)
{
	const char *name = arg;
	char *answer;
	int fd;

	CHECK_OK(setgid(65534));
	CHECK_OK(setuid(65534));
	fd = fdp_unix_connect(name, SOCK_STREAM);
	CHECK_OK(fd);
	answer = fdp_test_read_all(fd, NULL);
	if (strncmp(answer, "error refused", 13) != 0)
		fdp_test_fail(__FILE__, __LINE__, "not refused: %s", answer);
	free(answer);
	close(fd);
}

TEST(control_refuses_a_client_whose_uid_is_neither_the_servers_nor_root)
{
	char name[64];
	const char *args[] = {"--workers", "1", "--control", name, NULL};
	struct server s;
	char *st;

	if (geteuid() != 0)
		fdp_test_skip("needs root to act as another uid");
	/* An abstract name has no file mode, so only the uid check stands in the way. */
	snprintf(name, sizeof(name), "@fdpass-test-%d", (int)getpid());
	server_start_argv(&s, args, 0);
	snprintf(s.control, sizeof(s.control), "%s", name);
	CHECK_INT(fdp_test_wait(fdp_test_fork(connect_as_nobody, name)), ==, 0);
	server_wait_log(&s, "control: refused a client with uid 65534", 10000);
	st = server_status(&s); /* root still gets the status */
	CHECK(strncmp(st, "master ", 7) == 0);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* Run fdpass with args; check the exit status and that stderr mentions want. */
static void expect_failure(const char *const *args, int status, const char *want)
{
	char *out, *err;
	int got = run_tool(args, &out, &err);

	if (got != status || !strstr(err, want))
		fdp_test_fail(__FILE__, __LINE__, "%s %s: exit %d (want %d), stderr: %s", args[0],
		              args[1] ? args[1] : "", got, status, err);
	free(out);
	free(err);
}

TEST(bad_options_exit_2_naming_the_option_and_what_it_accepts)
{
	static const char *const cases[][4] = {
	        {"--workers", "0", "--workers", "1 to 1024"},
	        {"--workers", "many", "--workers", "1 to 1024"},
	        {"--policy", "random", "--policy", "round-robin, least-conn, hash-ip or route"},
	        {"--handler", "ftp", "--handler", "http or echo"},
	        {"--backlog", "-1", "--backlog", "1 to 65535"},
	        {"--drain-timeout", "soon", "--drain-timeout", "seconds"},
	        {"--start-timeout", "0", "--start-timeout", "1 to 86400"},
	        {"--ack-timeout", "0", "--ack-timeout", "0.01 to 3600"},
	        {"--ack-timeout", "soon", "--ack-timeout", "0.01 to 3600"},
	        {"--log-level", "loud", "--log-level", "error, warn, info or debug"},
	        {"--listen", "nowhere", "--listen", "HOST:PORT, [HOST]:PORT or unix:PATH"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = {"serve", cases[i][0], cases[i][1], NULL};
		char *out, *err;
		int got = run_tool(args, &out, &err);

		if (got != 2 || !strstr(err, cases[i][2]) || !strstr(err, cases[i][3]) ||
		    !strstr(err, cases[i][1]))
			fdp_test_fail(__FILE__, __LINE__, "%s %s: exit %d, stderr: %s", cases[i][0],
			              cases[i][1], got, err);
		free(out);
		free(err);
	}
	expect_failure((const char *[]){"serve", "--bogus", NULL}, 2, "--bogus");
	expect_failure((const char *[]){"serve", "--workers", NULL}, 2, "--workers");
	expect_failure((const char *[]){"status", "--bogus", NULL}, 2, "--bogus");
}

TEST(help_explains_every_option)
{
	static const char *const opts[] = {
	        "--listen",        "--workers",       "--handler", "--policy",    "--backlog",
	        "--drain-timeout", "--start-timeout", "--control", "--log-level", "--exec",
	        "--ack-timeout"};
	const char *args[] = {"serve", "--help", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 0);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		CHECK(strstr(out, opts[i]) != NULL);
	free(out);
	free(err);
}

TEST(an_address_in_use_exits_1_with_the_address_and_the_reason)
{
	char addr[FDP_ADDR_STRLEN];
	int fd = fdp_listen("127.0.0.1:0", 4);
	const char *args[] = {"serve", "--listen", addr, "--control", "none", NULL};

	CHECK_OK(fd);
	CHECK_OK(fdp_addr_local(fd, addr, sizeof(addr)));
	expect_failure(args, 1, addr);
	expect_failure(args, 1, "Address already in use");
	close(fd);
}

TEST(an_unusable_control_path_exits_1_with_the_path_and_the_reason)
{
	const char *serve[] = {
	        "serve", "--listen", "127.0.0.1:0", "--control", "/nonexistent-dir/ctl.sock", NULL};
	const char *status[] = {"status", "--control", "/nonexistent-dir/ctl.sock", NULL};

	expect_failure(serve, 1, "/nonexistent-dir/ctl.sock: No such file or directory");
	expect_failure(status, 1, "cannot connect to /nonexistent-dir/ctl.sock");
}

TEST(a_second_server_on_the_same_control_path_exits_1)
{
	struct server s;
	const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--control", NULL, NULL};

	server_start(&s, "--workers", "1", NULL);
	args[4] = s.control;
	expect_failure(args, 1, "another server is running there");
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(master_descriptor_count_is_unchanged_after_10000_connections)
{
	struct server s;
	char *st;
	int before, after;

	server_start(&s, "--workers", "2", NULL);
	http_get_worker(s.addr, NULL, NULL);
	free(server_status(&s)); /* the acknowledgement of that one is in */
	before = proc_fd_count(s.pid);
	for (int i = 0; i < 10000; i++)
		http_get_worker(s.addr, NULL, NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "accepted"), ==, 10001);
	CHECK_INT(status_num(st, "master", "handed"), ==, 10001);
	free(st);
	after = proc_fd_count(s.pid);
	CHECK_INT(after, ==, before);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
