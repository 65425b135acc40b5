/*
 * The fdpass program's command line: help, how a bad command line is reported (one line, then
 * one pointing at --help, never the usage), what --listen refuses and why, the exit status of
 * `fdpass status` while a server starts, and `fdpass serve --pid-file`.
 */
#include "test_serve_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"

/* Run fdpass with args (NULL-ended); check the exit status and that stderr is exactly want. */
static void expect_stderr(const char *const *args, int status, const char *want)
{
	char *out, *err;
	int got = run_tool(args, &out, &err);

	if (got != status || strcmp(err, want) != 0 || *out)
		fdp_test_fail(__FILE__, __LINE__,
		              "fdpass %s %s: exit %d (want %d), stdout: %s, stderr: %s(want: %s)",
		              args[0] ? args[0] : "", args[0] && args[1] ? args[1] : "", got,
		              status, out, err, want);
	free(out);
	free(err);
}

/* The message fdpass serve gives for --listen addr (the line before the pointer to help). */
static void expect_listen_refused(const char *addr, const char *why)
{
	const char *args[] = {"serve", "--listen", addr, "--control", "none", NULL};
	char want[512];

	snprintf(want, sizeof(want),
	         "fdpass serve: invalid value '%s' for --listen: %s\n"
	         "Try 'fdpass serve --help' for more information.\n",
	         addr, why);
	expect_stderr(args, 2, want);
}

TEST(help_verb_prints_the_usage_and_exits_0)
{
	const char *args[] = {"help", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 0);
	CHECK(strncmp(out, "usage: fdpass COMMAND", 21) == 0);
	CHECK(strstr(out, "  serve ") && strstr(out, "  status ") && strstr(out, "  cat "));
	CHECK_INT(strlen(err), ==, 0);
	free(out);
	free(err);
}

TEST(help_with_a_command_prints_that_commands_help_and_exits_0)
{
	static const char *const verbs[] = {"serve", "status", "cat"};

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		const char *help[] = {"help", verbs[i], NULL}, *own[] = {verbs[i], "--help", NULL};
		char *out, *err, *want, *err2;

		CHECK_INT(run_tool(help, &out, &err), ==, 0);
		CHECK_INT(run_tool(own, &want, &err2), ==, 0);
		if (strcmp(out, want) != 0 || strncmp(out, "usage: fdpass ", 14) != 0 || *err)
			fdp_test_fail(__FILE__, __LINE__, "fdpass help %s: %s", verbs[i], out);
		free(out);
		free(err);
		free(want);
		free(err2);
	}
}

TEST(help_of_an_unknown_command_exits_2_naming_it)
{
	expect_stderr((const char *[]){"help", "frob", NULL}, 2,
	              "fdpass help: unknown command 'frob'\n"
	              "Try 'fdpass --help' for more information.\n");
}

TEST(an_unknown_option_before_any_command_is_an_unknown_option)
{
	expect_stderr((const char *[]){"--frob", NULL}, 2,
	              "fdpass: unknown option '--frob'\n"
	              "Try 'fdpass --help' for more information.\n");
}

TEST(an_unknown_command_exits_2_naming_it)
{
	expect_stderr((const char *[]){"frob", NULL}, 2,
	              "fdpass: unknown command 'frob'\n"
	              "Try 'fdpass --help' for more information.\n");
}

TEST(no_command_exits_2_with_one_line_and_a_pointer_to_help)
{
	expect_stderr((const char *[]){NULL}, 2,
	              "fdpass: missing command\n"
	              "Try 'fdpass --help' for more information.\n");
}

TEST(every_bad_command_line_of_every_command_is_one_line_and_a_pointer_to_its_help)
{
	static const char *const cases[][5] = {
	        {"cat", "--frob", NULL, "unknown option '--frob'"},
	        {"cat", "-x", NULL, "unknown option '-x'"},
	        {"serve", "--frob", NULL, "unknown option '--frob'"},
	        {"serve", "--frob=1", NULL, "unknown option '--frob'"},
	        {"serve", "-x", NULL, "unknown option '-x'"},
	        {"serve", "--workers", NULL, "option '--workers' needs a value"},
	        {"serve", "--help=1", NULL, "option '--help' takes no value"},
	        {"serve", "--workers", "0",
	         "invalid value '0' for --workers: expected a number from "
	         "1 to 1024"},
	        {"serve", "--route-timeout", "0",
	         "invalid value '0' for --route-timeout: expected "
	         "seconds from 0.001 to 3600"},
	        {"serve", "--policy", "route", "--policy route needs --route-key SPEC"},
	        {"serve", "extra", NULL, "unexpected argument 'extra'"},
	        {"serve", "--exec", "", "invalid value '' for --exec: expected a command"},
	        {"status", "--frob", NULL, "unknown option '--frob'"},
	        {"status", "--json=yes", NULL, "option '--json' takes no value"},
	        {"status", "extra", NULL, "unexpected argument 'extra'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Each fails before it would bind, or connect to, anything. */
		const char *args[] = {cases[i][0], cases[i][1], cases[i][2], NULL};
		char want[512];

		snprintf(want, sizeof(want),
		         "fdpass %s: %s\nTry 'fdpass %s --help' for more information.\n",
		         cases[i][0], cases[i][3], cases[i][0]);
		expect_stderr(args, 2, want);
	}
}

TEST(status_control_without_a_value_says_it_needs_one)
{
	expect_stderr((const char *[]){"status", "--control", NULL}, 2,
	              "fdpass status: option '--control' needs a value\n"
	              "Try 'fdpass status --help' for more information.\n");
}

TEST(listen_port_above_65535_is_out_of_range)
{
	expect_listen_refused("127.0.0.1:99999", "port out of range (0..65535)");
	expect_listen_refused("[::1]:65536", "port out of range (0..65535)");
}

TEST(listen_host_name_is_not_resolved)
{
	expect_listen_refused("nosuchhost.invalid:80",
	                      "host names are not resolved: give an address (127.0.0.1:80, "
	                      "[::1]:80)");
}

TEST(listen_without_a_host_is_refused_with_the_address_for_every_interface)
{
	expect_listen_refused(":8080", "no host: write *:8080 for every IPv4 address, or "
	                               "127.0.0.1:8080 for this machine only");
	/* With options too; the message names the address. */
	expect_stderr((const char *[]){"serve", "--listen", ":8080,tag=http", NULL}, 2,
	              "fdpass serve: invalid value ':8080' for --listen: no host: write *:8080 for "
	              "every IPv4 address, or 127.0.0.1:8080 for this machine only\n"
	              "Try 'fdpass serve --help' for more information.\n");
}

TEST(listen_ipv6_without_brackets_is_refused_with_the_bracketed_form)
{
	expect_listen_refused("::1:80", "an IPv6 address goes in brackets: [::1]:80");
}

TEST(listen_star_is_every_ipv4_address)
{
	struct sockaddr_storage sa;
	socklen_t len;

	/* Taken by the parser (the error is --workers', which comes after it), not bound here:
	 * a test listens on loopback only. */
	expect_stderr((const char *[]){"serve", "--listen", "*:0", "--workers", "0", NULL}, 2,
	              "fdpass serve: invalid value '0' for --workers: expected a number from 1 "
	              "to 1024\nTry 'fdpass serve --help' for more information.\n");
	CHECK_OK(fdp_addr_parse("*:8080", &sa, &len));
	CHECK_INT(((struct sockaddr_in *)&sa)->sin_addr.s_addr, ==, htonl(INADDR_ANY));
}

TEST(serve_help_explains_star_and_the_pid_file)
{
	const char *args[] = {"serve", "--help", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 0);
	CHECK(strstr(out, "*:PORT is every IPv4") != NULL);
	CHECK(strstr(out, "--pid-file PATH") != NULL);
	free(out);
	free(err);
}

/* A FIFO in the test's directory, opened read-write (never blocks, holds what is written). */
static int gate_open(char *path, size_t size)
{
	int fd;

	snprintf(path, size, "%s/gate", fdp_test_tmpdir());
	CHECK_OK(mkfifo(path, 0600));
	fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK_OK(fd);
	return fd;
}

TEST(status_exits_3_while_a_worker_is_starting_and_0_once_every_slot_is_ready)
{
	char gate[256], cmd[600];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	const char *status[] = {"status", "--control", NULL, NULL};
	struct server s;
	char *out, *err;
	int fd = gate_open(gate, sizeof(gate));

	/* The worker says READY only once the test opens the gate. */
	snprintf(cmd, sizeof(cmd), "read x <%s; exec %s", gate, UPPER_WORKER);
	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	server_wait_log(&s, "generation 1 started", 10000);
	status[2] = s.control;
	CHECK_INT(run_tool(status, &out, &err), ==, 3);
	CHECK(strstr(out, "starting") != NULL);
	free(out);
	free(err);
	CHECK_INT(write(fd, "go\n", 3), ==, 3);
	server_wait_log(&s, "ready: ", 10000);
	CHECK_INT(run_tool(status, &out, &err), ==, 0);
	CHECK(strstr(out, "ready") != NULL);
	free(out);
	free(err);
	CHECK_INT(server_stop(&s), ==, 0);
	close(fd);
	server_free(&s);
}

TEST(status_exits_3_while_the_server_drains_to_stop)
{
	const char *status[] = {"status", "--control", NULL, NULL};
	struct server s;
	char *out, *err, *a;
	int fd;

	server_start(&s, "--workers", "1", "--header-timeout", "60", NULL);
	/* A client that has sent nothing yet is served before the worker exits: the drain lasts. */
	fd = tcp_connect(s.addr, NULL);
	a = server_command(&s, "stop");
	CHECK(strcmp(a, "ok draining\n") == 0);
	free(a);
	server_wait_log(&s, "draining", 10000);
	status[2] = s.control;
	CHECK_INT(run_tool(status, &out, &err), ==, 3);
	CHECK(strstr(out, "stopping") != NULL);
	free(out);
	free(err);
	close(fd);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
}

TEST(status_help_documents_exit_status_3)
{
	const char *args[] = {"status", "--help", NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 0);
	CHECK(strstr(out, "3 shown, but the") != NULL);
	free(out);
	free(err);
}

/* The pid a pid file holds, or 0 when it is missing. */
static pid_t pid_in(const char *path)
{
	FILE *f = fopen(path, "re");
	int pid = 0;

	if (!f)
		return 0;
	CHECK_INT(fscanf(f, "%d", &pid), ==, 1);
	fclose(f);
	return (pid_t)pid;
}

static void write_pid(const char *path, pid_t pid)
{
	FILE *f = fopen(path, "we");

	CHECK(f != NULL);
	fprintf(f, "%d\n", (int)pid);
	CHECK_INT(fclose(f), ==, 0);
}

static int dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	CHECK(d != NULL);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

TEST(pid_file_holds_the_master_pid_once_it_listens_and_is_removed_at_exit)
{
	char dir[256], pidfile[300];
	const char *args[] = {"--workers", "1", "--control", "none", "--pid-file", pidfile, NULL};
	struct server s;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/run", fdp_test_tmpdir());
	CHECK_OK(mkdir(dir, 0700));
	snprintf(pidfile, sizeof(pidfile), "%s/fdpass.pid", dir);
	server_start_argv(&s, args, SERVE_NO_WAIT_READY);
	/* Written before the workers start, so at "listening on" already (the loop's first log). */
	CHECK_INT(pid_in(pidfile), ==, s.pid);
	CHECK_OK(stat(pidfile, &st));
	CHECK_INT(st.st_mode & 0777, ==, 0644);
	CHECK_INT(dir_entries(dir), ==, 1); /* the temporary file was renamed, not left */
	server_wait_log(&s, "ready: ", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK_INT(access(pidfile, F_OK), ==, -1);
	server_free(&s);
}

TEST(pid_file_naming_a_running_fdpass_refuses_to_start_with_status_1)
{
	char pidfile[300], want[512];
	const char *args[] = {"--workers", "1", "--pid-file", pidfile, NULL};
	const char *second[] = {"serve", "--listen",   "127.0.0.1:0", "--control",
	                        "none",  "--pid-file", pidfile,       NULL};
	struct server s;

	snprintf(pidfile, sizeof(pidfile), "%s/fdpass.pid", fdp_test_tmpdir());
	server_start_argv(&s, args, 0);
	snprintf(want, sizeof(want),
	         "fdpass serve: --pid-file: %s names pid %d, a running fdpass: stop that server "
	         "first, or give another --pid-file\n",
	         pidfile, (int)s.pid);
	expect_stderr(second, 1, want);
	CHECK_INT(pid_in(pidfile), ==, s.pid);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(stale_pid_file_is_replaced)
{
	char pidfile[300];
	const char *args[] = {"--workers", "1", "--control", "none", "--pid-file", pidfile, NULL};
	struct server s;
	pid_t gone = fork();

	CHECK(gone >= 0);
	if (gone == 0)
		_exit(0);
	CHECK_INT(fdp_test_wait(gone), ==, 0);
	snprintf(pidfile, sizeof(pidfile), "%s/fdpass.pid", fdp_test_tmpdir());
	write_pid(pidfile, gone); /* a server killed by SIGKILL leaves such a file */
	server_start_argv(&s, args, 0);
	CHECK_INT(pid_in(pidfile), ==, s.pid);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(pid_file_whose_pid_went_to_another_program_is_replaced)
{
	char pidfile[300];
	const char *args[] = {"--workers", "1", "--control", "none", "--pid-file", pidfile, NULL};
	struct server s;

	snprintf(pidfile, sizeof(pidfile), "%s/fdpass.pid", fdp_test_tmpdir());
	write_pid(pidfile, getpid()); /* alive, but this test program is not fdpass */
	server_start_argv(&s, args, 0);
	CHECK_INT(pid_in(pidfile), ==, s.pid);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(pid_file_rewritten_by_a_new_master_is_left_at_exit)
{
	char pidfile[300];
	const char *args[] = {"--workers", "1", "--control", "none", "--pid-file", pidfile, NULL};
	struct server s;

	snprintf(pidfile, sizeof(pidfile), "%s/fdpass.pid", fdp_test_tmpdir());
	server_start_argv(&s, args, 0);
	write_pid(pidfile, getpid()); /* as an upgrade's new master does with its own pid */
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK_INT(pid_in(pidfile), ==, getpid());
	server_free(&s);
}

TEST(pid_file_that_cannot_be_written_exits_1_naming_it)
{
	const char *args[] = {"serve",
	                      "--listen",
	                      "127.0.0.1:0",
	                      "--dispatch",
	                      "pass", /* no kernel dispatch line in what it prints */
	                      "--control",
	                      "none",
	                      "--pid-file",
	                      "/nonexistent-dir/fdpass.pid",
	                      NULL};

	expect_stderr(args, 1,
	              "fdpass serve: --pid-file: cannot write /nonexistent-dir/fdpass.pid: No such "
	              "file or directory\n");
}
