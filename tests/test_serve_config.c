/*
 * fdpass serve --config FILE, --check, and SIGHUP reading the configuration again. Real
 * processes on loopback; every wait is on the server's log or its status.
 */
#include "test_serve_util.h"

#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/stat.h>

/* fdpass serve ARGS...: its exit status, stdout and stderr (malloc'd). */
static int run_serve(char **out, char **err, ...)
{
	const char *args[24] = {"serve"};
	va_list ap;
	int n = 1;

	va_start(ap, err);
	while (n < 23 && (args[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	args[n] = NULL;
	return run_tool(args, out, err);
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK_OK(bind(fd, (struct sockaddr *)&sa, len));
	CHECK_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
	close(fd);
	return ntohs(sa.sin_port);
}

/* Whether 127.0.0.1:port can be bound (nothing listens there). */
static int port_is_free(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	                         .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	CHECK(fd >= 0);
	ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/*
 * Start `fdpass serve --config conf --control DIR/ctl.sock`, with no --listen of the
 * command line's: the file's list is in force (it should listen on 127.0.0.1:0).
 */
static void server_start_conf(struct server *s, const char *conf)
{
	const char *argv[] = {FDPASS_TOOL, "serve", "--config", conf, "--control", NULL, NULL};
	const char *line;

	memset(s, 0, sizeof(*s));
	s->log = calloc(1, SERVE_LOG_MAX);
	snprintf(s->control, sizeof(s->control), "%s/ctl.sock", fdp_test_tmpdir());
	argv[5] = s->control;
	server_spawn(s, argv);
	line = server_wait_log(s, "listening on ", 10000);
	sscanf(strstr(line, "listening on ") + 13, "%63s", s->addr);
	server_wait_log(s, "ready: ", 10000);
}

/* The pids of the status's workers of slot index (state any); returns how many. */
static int slot_count(const char *status, int index)
{
	char key[64];
	int n = 0;

	snprintf(key, sizeof(key), "\nworker index=%d ", index);
	for (const char *l = strstr(status, key); l; l = strstr(l + 1, key))
		n++;
	return n;
}

/* Whether a log line after the first mark starts with prefix and contains word. */
static int log_line_after(const char *log, const char *mark, const char *prefix, const char *word)
{
	const char *p = strstr(log, mark);

	for (p = p ? strchr(p, '\n') : NULL; p && p[1]; p = strchr(p + 1, '\n')) {
		const char *line = p + 1, *eol = strchr(line, '\n'), *hit = strstr(line, prefix);

		if (!eol)
			eol = line + strlen(line);
		if (hit && hit < eol) {
			const char *w = strstr(hit, word);

			if (w && w < eol)
				return 1;
		}
	}
	return 0;
}

/* GET / on an open keep-alive connection; returns the worker index that answered. */
static int keepalive_get(int fd)
{
	char buf[1024];
	const char *body;

	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	if (!body || !strstr(body, "worker="))
		fdp_test_fail(__FILE__, __LINE__, "no answer on a keep-alive connection");
	return atoi(strstr(body, "worker=") + 7);
}

TEST(config_file_options_apply_and_the_command_line_overrides_them)
{
	const char *conf = write_conf("serve.conf", "# two workers unless told otherwise\n"
	                                            "workers 2\n"
	                                            "\n"
	                                            "--policy least-conn\n"
	                                            "log-level=debug\n"
	                                            "  listen   unix:/nonexistent/dir/x.sock  \n");
	struct server s;
	char *st;

	/* The command line's --listen (server_start's 127.0.0.1:0) replaces the file's list. */
	server_start(&s, "--config", conf, "--workers", "3", NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "workers"), ==, 3);
	CHECK(strstr(st, "policy=least-conn") != NULL);
	free(st);
	CHECK(strstr(s.log, "x.sock") == NULL);
	CHECK(strstr(s.log, " debug: ") != NULL); /* NAME=VALUE */
	http_get_worker(s.addr, NULL, NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(config_file_error_names_the_file_and_line_and_exits_2)
{
	const char *conf = write_conf("bad.conf", "workers 2\n# a comment\nworkers zero\n");
	char *out, *err, want[600];

	CHECK_INT(run_serve(&out, &err, "--config", conf, NULL), ==, 2);
	snprintf(want, sizeof(want), "%s:3: invalid value 'zero' for --workers", conf);
	CHECK(strstr(err, want) != NULL);
	free(out);
	free(err);
	conf = write_conf("unknown.conf", "workres 2\n");
	CHECK_INT(run_serve(&out, &err, "--config", conf, NULL), ==, 2);
	snprintf(want, sizeof(want), "%s:1: unknown option '--workres'", conf);
	CHECK(strstr(err, want) != NULL);
	free(out);
	free(err);
}

TEST(config_file_value_keeps_its_inner_blanks)
{
	const char *conf = write_conf("exec.conf", "exec   /bin/sh -c 'exit 0'  \n");
	char *out, *err;

	/* The whole rest of the line is one value: the shell command, quotes and all. */
	CHECK_INT(run_serve(&out, &err, "--config", conf, "--check", NULL), ==, 0);
	CHECK(strstr(out, "configuration OK") != NULL);
	free(out);
	free(err);
}

TEST(check_passes_a_good_configuration_and_starts_nothing)
{
	char text[512], ctl[300], *out, *err;
	int port = free_port();
	struct stat st;
	const char *conf;

	snprintf(ctl, sizeof(ctl), "%s/check.sock", fdp_test_tmpdir());
	snprintf(text, sizeof(text),
	         "listen 127.0.0.1:%d\nworkers 2\ncontrol %s\nexec sh -c 'exit 0'\n", port, ctl);
	conf = write_conf("good.conf", text);
	CHECK_INT(run_serve(&out, &err, "--config", conf, "--check", NULL), ==, 0);
	CHECK(strcmp(out, "configuration OK\n") == 0);
	CHECK(strcmp(err, "") == 0);
	/* Nothing was bound, and run_tool reaped the only process there was. */
	CHECK(port_is_free(port));
	CHECK(stat(ctl, &st) < 0 && errno == ENOENT);
	free(out);
	free(err);
}

TEST(check_catches_a_bad_route_map)
{
	const char *map = write_conf("bad.map", "alpha 0\nbeta 7\n");
	char *out, *err;

	CHECK_INT(run_serve(&out, &err, "--check", "--workers", "2", "--policy", "route",
	                    "--route-key", "line", "--route-map", map, NULL),
	          ==, 2);
	CHECK(strstr(err, "--route-map") != NULL);
	CHECK(strstr(err, "line 2") != NULL);
	CHECK(strstr(out, "configuration OK") == NULL);
	free(out);
	free(err);
}

TEST(check_catches_a_missing_worker_program)
{
	char *out, *err, want[600];
	const char *path;

	CHECK_INT(run_serve(&out, &err, "--check", "--exec", "fdpass-no-such-program --flag", NULL),
	          ==, 2);
	CHECK(strstr(err, "cannot execute fdpass-no-such-program: No such file or directory") !=
	      NULL);
	free(out);
	free(err);
	/* Found, but not executable: the same check as the master's before it forks. */
	path = write_conf("not-executable", "#!/bin/sh\nexit 0\n");
	CHECK_OK(chmod(path, 0644));
	CHECK_INT(run_serve(&out, &err, "--check", "--exec", path, NULL), ==, 2);
	snprintf(want, sizeof(want), "cannot execute %s: Permission denied", path);
	CHECK(strstr(err, want) != NULL);
	free(out);
	free(err);
	CHECK_OK(chmod(path, 0755));
	CHECK_INT(run_serve(&out, &err, "--check", "--exec", path, NULL), ==, 0);
	free(out);
	free(err);
}

TEST(check_catches_a_bad_option_in_the_file)
{
	const char *conf = write_conf("opt.conf", "workers 2\n\nbacklog 0\n");
	char *out, *err, want[600];

	CHECK_INT(run_serve(&out, &err, "--config", conf, "--check", NULL), ==, 2);
	snprintf(want, sizeof(want), "%s:3: invalid value '0' for --backlog", conf);
	CHECK(strstr(err, want) != NULL);
	CHECK(strstr(out, "configuration OK") == NULL);
	free(out);
	free(err);
}

TEST(sighup_with_three_workers_in_the_file_starts_a_third_that_serves)
{
	const char *conf = write_conf("grow.conf", "workers 2\n");
	struct server s;
	int seen[3] = {0};
	char *st;

	server_start(&s, "--config", conf, NULL);
	write_conf("grow.conf", "workers 3\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "workers: 2 -> 3", 10000);
	server_wait_log(&s, "reload complete", 10000);
	for (int i = 0; i < 9; i++) {
		int w = http_get_worker(s.addr, NULL, NULL);

		CHECK(w >= 0 && w < 3);
		seen[w]++;
	}
	CHECK_INT(seen[2], >, 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "workers"), ==, 3);
	CHECK_INT(slot_count(st, 2), ==, 1);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_from_three_workers_to_one_drains_the_extras_with_no_failed_request)
{
	const char *conf = write_conf("shrink.conf", "workers 3\n");
	struct server s;
	pid_t pids[3];
	int fds[3];
	char *st, msg[64];

	server_start(&s, "--config", conf, NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, pids, 3), ==, 3);
	free(st);
	/* Keep-alive clients, on every worker in turn (round-robin). */
	for (int i = 0; i < 3; i++) {
		fds[i] = tcp_connect(s.addr, NULL);
		keepalive_get(fds[i]);
	}
	write_conf("shrink.conf", "workers 1\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "workers: 3 -> 1", 10000);

	/* Their clients go on: every keep-alive connection is answered, by whoever has it. */
	for (int i = 0; i < 3; i++)
		keepalive_get(fds[i]);
	for (int i = 1; i < 3; i++) {
		snprintf(msg, sizeof(msg), "pid %d exited", (int)pids[i]);
		server_wait_log(&s, msg, 10000);
		s.seen = 0;
	}
	server_wait_log(&s, "reload complete: every worker replaced", 10000);
	/* Handed back to the new worker 0, they are served on. */
	for (int i = 0; i < 3; i++) {
		CHECK_INT(keepalive_get(fds[i]), ==, 0);
		close(fds[i]);
	}
	for (int i = 0; i < 4; i++)
		CHECK_INT(http_get_worker(s.addr, NULL, NULL), ==, 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "workers"), ==, 1);
	CHECK_INT(status_num(st, "master", "closed_no_worker"), ==, 0);
	CHECK_INT(status_num(st, "master", "closed_error"), ==, 0);
	free(st);
	/* The retired slots are not restarted: no worker started in them since. */
	CHECK(!log_line_after(s.log, "workers: 3 -> 1", "worker 1 pid ", "started"));
	CHECK(!log_line_after(s.log, "workers: 3 -> 1", "worker 2 pid ", "started"));
	CHECK(log_line_after(s.log, "workers: 3 -> 1", "worker 0 pid ", "started"));
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_with_a_changed_route_map_sends_the_key_to_its_new_slot)
{
	const char *map = write_conf("route.map", "/alpha 0\n");
	char buf[1024];
	const char *body;
	struct server s;
	int fd;

	server_start(&s, "--workers", "2", "--policy", "route", "--route-key", "http-path",
	             "--route-map", map, NULL);
	for (int i = 0; i < 2; i++) {
		fd = tcp_connect(s.addr, NULL);
		send_all(fd, "GET /alpha HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
		body = http_read(fd, buf, sizeof(buf));
		CHECK(body && atoi(strstr(body, "worker=") + 7) == 0);
		close(fd);
	}
	write_conf("route.map", "/alpha 1\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete", 10000);
	for (int i = 0; i < 2; i++) {
		fd = tcp_connect(s.addr, NULL);
		send_all(fd, "GET /alpha HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
		body = http_read(fd, buf, sizeof(buf));
		CHECK(body && atoi(strstr(body, "worker=") + 7) == 1);
		close(fd);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_with_a_broken_file_leaves_the_old_configuration_serving_and_logs_why)
{
	const char *conf = write_conf("broken.conf", "workers 2\n");
	struct server s;
	pid_t before[2], after[2];
	char *st, want[600];

	server_start(&s, "--config", conf, NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, before, 2), ==, 2);
	free(st);
	write_conf("broken.conf", "workers 3\npolicy fastest\n");
	kill(s.pid, SIGHUP);
	snprintf(want, sizeof(want), "reload refused: %s:2: invalid value 'fastest' for --policy",
	         conf);
	server_wait_log(&s, want, 10000);
	server_wait_log(&s, "the configuration in force stays, no worker replaced", 10000);
	/* The same two workers serve, under the old configuration. */
	for (int i = 0; i < 4; i++)
		http_get_worker(s.addr, NULL, NULL);
	st = server_status(&s);
	CHECK_INT(status_pids(st, after, 2), ==, 2);
	CHECK_INT(status_num(st, "master", "workers"), ==, 2);
	CHECK(strstr(st, "state=running") != NULL);
	free(st);
	CHECK_INT(after[0], ==, before[0]);
	CHECK_INT(after[1], ==, before[1]);
	/* Mended, the next SIGHUP applies it. */
	write_conf("broken.conf", "workers 3\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "workers"), ==, 3);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_with_a_changed_listen_set_logs_that_it_needs_an_upgrade)
{
	const char *conf = write_conf("listen.conf", "listen 127.0.0.1:0\nworkers 1\n");
	struct server s;
	char *st;

	server_start_conf(&s, conf);
	write_conf("listen.conf", "listen 127.0.0.1:0\nlisten 127.0.0.1:0,policy=hash-ip\n"
	                          "workers 2\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "needs an upgrade (SIGUSR2)", 10000);
	server_wait_log(&s, "reload complete", 10000);
	/* The rest applied; the old listener serves on. */
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "workers"), ==, 2);
	free(st);
	http_get_worker(s.addr, NULL, NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_applies_a_new_header_timeout_to_the_new_workers)
{
	const char *conf = write_conf("timeout.conf", "workers 1\nheader-timeout 60\n");
	struct server s;
	char buf[1024];
	long long t0;
	ssize_t n;
	int fd;

	server_start(&s, "--config", conf, NULL);
	write_conf("timeout.conf", "workers 1\nheader-timeout 0.2\npolicy least-conn\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete", 10000);
	/* Half a request head: 408 after the new 0.2 s, not the old 60 s. */
	fd = tcp_connect(s.addr, NULL);
	t0 = test_now_ms();
	send_all(fd, "GET / HTTP/1.1\r\n");
	n = read(fd, buf, sizeof(buf) - 1);
	CHECK(n > 0);
	buf[n] = '\0';
	CHECK(strstr(buf, " 408 ") != NULL);
	CHECK_INT(test_now_ms() - t0, <, 10000);
	close(fd);
	{
		char *st = server_status(&s);

		CHECK(strstr(st, "policy=least-conn") != NULL);
		free(st);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(control_reload_answers_why_a_broken_file_is_refused_and_ok_once_it_is_mended)
{
	const char *conf = write_conf("ctl.conf", "workers 1\n");
	struct server s;
	char *answer, want[600];

	server_start(&s, "--config", conf, NULL);
	write_conf("ctl.conf", "workers 1\nidle-timeout forever\n");
	answer = server_command(&s, "reload");
	snprintf(want, sizeof(want),
	         "error reload refused: %s:2: invalid value 'forever' for --idle-timeout", conf);
	CHECK(strncmp(answer, want, strlen(want)) == 0);
	free(answer);
	write_conf("ctl.conf", "workers 2\n");
	answer = server_command(&s, "reload");
	CHECK(strncmp(answer, "ok reloaded", 11) == 0);
	free(answer);
	answer = server_status(&s);
	CHECK_INT(status_num(answer, "master", "workers"), ==, 2);
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_growing_hash_ip_rebuilds_the_ring_so_some_clients_move_to_the_new_slot)
{
	const char *conf = write_conf("hash.conf", "workers 1\npolicy hash-ip\n");
	struct server s;
	int moved = 0, again;
	char src[32];

	server_start(&s, "--config", conf, NULL);
	write_conf("hash.conf", "workers 2\npolicy hash-ip\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete", 10000);
	s.seen = 0; /* the new slot may be ready before or after that */
	server_wait_log(&s, "ready: 2 workers", 10000);
	for (int i = 1; i <= 32; i++) {
		snprintf(src, sizeof(src), "127.0.0.%d", i);
		moved += http_get_worker(s.addr, src, NULL) == 1;
		/* The ring, not a turn: the same client reaches the same slot again. */
		again = http_get_worker(s.addr, src, NULL);
		CHECK_INT(again, ==, http_get_worker(s.addr, src, NULL));
	}
	CHECK_INT(moved, >, 0);
	CHECK_INT(moved, <, 32);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_with_a_route_map_naming_a_missing_slot_keeps_the_map_in_force)
{
	const char *map = write_conf("keep.map", "/alpha 1\n");
	char buf[1024];
	const char *body;
	struct server s;
	int fd;

	server_start(&s, "--workers", "2", "--policy", "route", "--route-key", "http-path",
	             "--route-map", map, NULL);
	write_conf("keep.map", "/alpha 0\n/beta 5\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload refused: --route-map: route map ", 10000);
	CHECK(strstr(s.log, "line 2") != NULL);
	fd = tcp_connect(s.addr, NULL);
	send_all(fd, "GET /alpha HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body && atoi(strstr(body, "worker=") + 7) == 1); /* the old map's slot */
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_keeps_an_option_the_command_line_gave_whatever_the_file_now_says)
{
	const char *conf = write_conf("keep.conf", "workers 3\npolicy least-conn\n");
	struct server s;
	char *st;

	server_start(&s, "--config", conf, "--workers", "2", NULL);
	write_conf("keep.conf", "workers 4\npolicy hash-ip\n");
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete", 10000);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "workers"), ==, 2); /* the command line's */
	CHECK(strstr(st, "policy=hash-ip") != NULL);           /* the file's new one */
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(sighup_keeps_the_process_limits_for_the_new_workers)
{
	const char *conf = write_conf("limits.conf", "workers 1\nmax-requests 1\n");
	struct server s;

	server_start(&s, "--config", conf, NULL);
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete", 10000);
	/* The reload's worker still recycles after one connection. */
	http_get_worker(s.addr, NULL, NULL);
	server_wait_log(&s, "generation 2 handed 1 connections (max 1): replacing it", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/*
 * The operator's way to a new listener: SIGHUP says it needs an upgrade, SIGUSR2 applies it.
 * The new master is the old one's child; as a child subreaper this test inherits it.
 */
TEST(a_listen_address_added_to_the_file_is_taken_up_by_the_next_upgrade)
{
	char text[256], addr2[64], *st;
	struct server s;
	const char *conf, *line;
	pid_t newpid;
	int port = free_port();

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	conf = write_conf("up.conf", "listen 127.0.0.1:0\nworkers 1\n");
	server_start_conf(&s, conf);
	snprintf(text, sizeof(text), "listen 127.0.0.1:0\nlisten 127.0.0.1:%d\nworkers 1\n", port);
	write_conf("up.conf", text);
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "needs an upgrade (SIGUSR2)", 10000);
	server_wait_log(&s, "reload complete", 10000);
	/* A second reload frees the first configuration: the names handed over are copies. */
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "needs an upgrade (SIGUSR2)", 10000);
	server_wait_log(&s, "reload complete", 10000);
	CHECK(port_is_free(port)); /* ignored by the reloads */
	kill(s.pid, SIGUSR2);
	line = server_wait_log(&s, "upgrade: new master pid ", 20000);
	newpid = (pid_t)atoi(strstr(line, "new master pid ") + 15);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	/* The new master serves both: the old socket it was handed, and the new address. */
	snprintf(addr2, sizeof(addr2), "127.0.0.1:%d", port);
	http_get_worker(addr2, NULL, NULL);
	http_get_worker(s.addr, NULL, NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "pid"), ==, newpid);
	free(st);
	CHECK_OK(kill(newpid, SIGTERM));
	CHECK_INT(fdp_test_wait(newpid), ==, 0);
	while (server_read_log(&s, 10000) > 0)
		;
	close(s.err);
	server_free(&s);
}
