/*
 * fdpass serve --metrics: the master's metrics over HTTP in Prometheus's text format, checked
 * with a real parser (Debian's python3-prometheus-client, through tests/prometheus_check.py),
 * and the bounds that keep a metrics client from holding the master.
 */
#include "test_serve_util.h"

#define CHECKER   FDPASS_SOURCE_DIR "/tests/prometheus_check.py"
#define SERVE_DOC FDPASS_SOURCE_DIR "/docs/SERVE.md"

static void need_parser(void)
{
	if (system("/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1") != 0)
		fdp_test_skip("no prometheus_client for /usr/bin/python3: install Debian's "
		              "python3-prometheus-client (tests/interop/install-peers.sh does)");
}

/* Start a server with --metrics 127.0.0.1:0 and these arguments; its address into maddr. */
static void start_with_metrics(struct server *s, char *maddr, size_t size, const char *workers)
{
	const char *args[] = {"--workers", workers, "--metrics", "127.0.0.1:0", NULL};
	const char *line;

	server_start_argv(s, args, 0);
	/* Logged before the workers start, so before "ready": look from the start. */
	line = strstr(s->log, "metrics served on ");
	CHECK(line != NULL);
	CHECK_INT(sscanf(line + 18, "%63s", maddr), ==, 1);
	CHECK(size > strlen(maddr));
}

/* Send request on a fresh connection to addr and read everything until the server closes. */
static char *http_exchange(const char *addr, const char *request)
{
	int fd = tcp_connect(addr, NULL);
	char *answer;

	send_all(fd, request);
	answer = fdp_test_read_all(fd, NULL);
	close(fd);
	return answer;
}

/* GET /metrics: checks the status line and the content type, returns the whole answer. */
static char *metrics_get(const char *addr)
{
	char *answer = http_exchange(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");

	if (strncmp(answer, "HTTP/1.1 200 OK\r\n", 17) != 0)
		fdp_test_fail(__FILE__, __LINE__, "not a 200: %.200s", answer);
	CHECK(strstr(answer, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	CHECK(strstr(answer, "\r\n\r\n") != NULL);
	return answer;
}

static const char *body_of(const char *answer)
{
	return strstr(answer, "\r\n\r\n") + 4;
}

/* The sum of every sample of name (over its labels) in text. */
static long long sample_sum(const char *text, const char *name)
{
	size_t n = strlen(name);
	long long sum = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *v;

		if (strncmp(l, name, n) != 0 || (l[n] != '{' && l[n] != ' '))
			continue;
		v = strchr(l, ' ');
		while (v && v[1] == ' ')
			v++;
		sum += v ? atoll(v + 1) : 0;
	}
	return sum;
}

/* Run the checker on text with these arguments (NULL-ended); returns its exit status. */
static int check_text(const char *text, const char *const *args)
{
	const char *argv[32] = {"/usr/bin/python3", CHECKER, "--doc", SERVE_DOC};
	int in[2], n = 4;
	size_t len = strlen(text), off = 0;
	pid_t pid;

	for (; *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	CHECK_OK(pipe2(in, O_CLOEXEC));
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(in[0]);
	while (off < len) {
		ssize_t w = write(in[1], text + off, len - off);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(in[1]);
	return fdp_test_wait(pid);
}

TEST(metrics_count_the_connections_served)
{
	const char *before[] = {"fdpass_connections_accepted_total=0",
	                        "fdpass_worker_served_total=0", "fdpass_workers_configured=2",
	                        NULL};
	const char *after[] = {"fdpass_connections_accepted_total=5",
	                       "fdpass_connections_handed_total=5",
	                       "fdpass_worker_handed_total=5",
	                       "fdpass_worker_acknowledged_total=5",
	                       "fdpass_worker_served_total=5",
	                       "fdpass_ack_latency_seconds_count=5",
	                       "fdpass_connections_closed_unserved_total=0",
	                       "fdpass_workers_ready=2",
	                       NULL};
	char maddr[64], *answer;
	long long deadline;
	struct server s;

	need_parser();
	start_with_metrics(&s, maddr, sizeof(maddr), "2");
	answer = metrics_get(maddr);
	CHECK_INT(check_text(body_of(answer), before), ==, 0);
	free(answer);
	for (int i = 0; i < 5; i++)
		http_get_worker(s.addr, NULL, NULL);
	/* A worker reports a connection done after answering it: wait for the last report. */
	deadline = test_now_ms() + 10000;
	for (;;) {
		answer = metrics_get(maddr);
		if (sample_sum(body_of(answer), "fdpass_worker_served_total") == 5)
			break;
		free(answer);
		if (test_now_ms() > deadline)
			fdp_test_fail(__FILE__, __LINE__, "served never reached 5");
		server_read_log(&s, 20); /* follow the log meanwhile: no busy loop */
	}
	CHECK_INT(check_text(body_of(answer), after), ==, 0);
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(metrics_answers_404_for_another_path)
{
	char maddr[64], *answer;
	struct server s;

	start_with_metrics(&s, maddr, sizeof(maddr), "1");
	answer = http_exchange(maddr, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n");
	CHECK(strncmp(answer, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
	free(answer);
	answer = http_exchange(maddr, "GET /metricsx HTTP/1.0\r\n\r\n");
	CHECK(strncmp(answer, "HTTP/1.0 404 Not Found\r\n", 24) == 0);
	free(answer);
	answer = http_exchange(maddr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n"); /* a query is fine */
	CHECK(strncmp(answer, "HTTP/1.0 200 OK\r\n", 17) == 0);
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(metrics_answers_405_to_a_method_other_than_get_or_head)
{
	char maddr[64], *answer;
	struct server s;

	start_with_metrics(&s, maddr, sizeof(maddr), "1");
	answer = http_exchange(maddr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	CHECK(strncmp(answer, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
	CHECK(strstr(answer, "\r\nAllow: GET, HEAD\r\n") != NULL);
	free(answer);
	answer = http_exchange(maddr, "HEAD /metrics HTTP/1.1\r\n\r\n");
	CHECK(strncmp(answer, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(strcmp(strstr(answer, "\r\n\r\n"), "\r\n\r\n") == 0); /* no body */
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_metrics_client_that_sends_nothing_does_not_stop_the_server)
{
	const char *expect[] = {"fdpass_connections_accepted_total=5", NULL};
	char maddr[64], *answer;
	struct server s;
	int silent;

	need_parser();
	start_with_metrics(&s, maddr, sizeof(maddr), "2");
	silent = tcp_connect(maddr, NULL); /* connects, sends nothing */
	for (int i = 0; i < 5; i++)
		http_get_worker(s.addr, NULL, NULL);
	answer = metrics_get(maddr); /* another metrics client is answered meanwhile */
	CHECK_INT(check_text(body_of(answer), expect), ==, 0);
	free(answer);
	close(silent);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_metrics_client_that_sends_nothing_is_closed_after_its_read_deadline)
{
	char maddr[64], byte;
	struct server s;
	long long start;
	int silent;

	start_with_metrics(&s, maddr, sizeof(maddr), "1");
	silent = tcp_connect(maddr, NULL);
	start = test_now_ms();
	fdp_test_wait_readable(silent, 10000);
	CHECK_INT(read(silent, &byte, 1), ==, 0);   /* closed, with nothing said */
	CHECK_INT(test_now_ms() - start, >=, 1900); /* the deadline is 2 s */
	close(silent);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_metrics_client_that_does_not_read_its_answer_does_not_stop_the_server)
{
	const char *expect[] = {"fdpass_workers_configured=64", NULL};
	char maddr[64], *answer;
	const char *cl;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct server s;
	int slow, small = 1;

	need_parser();
	/* 64 workers: tens of kilobytes of text, more than the sockets hold for a slow reader. */
	start_with_metrics(&s, maddr, sizeof(maddr), "64");
	CHECK_OK(fdp_addr_parse(maddr, &sa, &salen));
	slow = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(slow >= 0);
	CHECK_OK(setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)));
	CHECK_OK(connect(slow, (struct sockaddr *)&sa, salen));
	send_all(slow, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
	for (int i = 0; i < 5; i++)
		http_get_worker(s.addr, NULL, NULL);
	answer = metrics_get(maddr);
	free(answer);
	/* The slow reader still gets the whole answer, written as its socket takes it. */
	answer = fdp_test_read_all(slow, NULL);
	close(slow);
	cl = strstr(answer, "Content-Length: ");
	CHECK(cl != NULL && strstr(answer, "\r\n\r\n") != NULL);
	CHECK_INT(strlen(body_of(answer)), ==, atoll(cl + 16));
	CHECK_INT(atoll(cl + 16), >, 32768);
	CHECK_INT(check_text(body_of(answer), expect), ==, 0);
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(metrics_serve_16_clients_at_once_and_the_next_waits_for_a_free_place)
{
	char maddr[64], *answer;
	int silent[16], next, closed = 0;
	struct pollfd p[17];
	struct server s;

	start_with_metrics(&s, maddr, sizeof(maddr), "1");
	for (int i = 0; i < 16; i++)
		silent[i] = tcp_connect(maddr, NULL);
	next = tcp_connect(maddr, NULL); /* in the backlog until a place frees */
	send_all(next, "GET /metrics HTTP/1.0\r\n\r\n");
	/* The 17th is answered only once the silent ones' deadline has closed them. */
	for (int i = 0; i < 16; i++)
		p[i] = (struct pollfd){.fd = silent[i], .events = POLLIN};
	p[16] = (struct pollfd){.fd = next, .events = POLLIN};
	CHECK_INT(poll(p, 17, 10000), >, 0);
	for (int i = 0; i < 16; i++)
		closed += (p[i].revents & (POLLIN | POLLHUP)) != 0;
	CHECK_INT(closed, >, 0);
	answer = fdp_test_read_all(next, NULL);
	CHECK(strncmp(answer, "HTTP/1.0 200 OK\r\n", 17) == 0);
	free(answer);
	close(next);
	for (int i = 0; i < 16; i++)
		close(silent[i]);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(serve_refuses_a_bad_metrics_address)
{
	const char *args[] = {"serve", "--listen",  "127.0.0.1:0", "--control",
	                      "none",  "--metrics", "nowhere",     NULL};
	char *out, *err;

	CHECK_INT(run_tool(args, &out, &err), ==, 2);
	CHECK(strstr(err, "invalid value 'nowhere' for --metrics") != NULL);
	free(out);
	free(err);
}

TEST(status_prometheus_prints_the_metrics_and_they_parse)
{
	const char *args[] = {"status", "--prometheus", "--control", NULL, NULL};
	const char *expect[] = {"fdpass_connections_accepted_total=3",
	                        "fdpass_worker_acknowledged_total=3", "fdpass_workers_configured=2",
	                        NULL};
	struct server s;
	char *out, *err;

	need_parser();
	server_start(&s, "--workers", "2", NULL); /* no --metrics: the control socket has them */
	for (int i = 0; i < 3; i++)
		http_get_worker(s.addr, NULL, NULL);
	args[3] = s.control;
	CHECK_INT(run_tool(args, &out, &err), ==, 0);
	CHECK(strncmp(out, "# HELP fdpass_", 14) == 0);
	CHECK(strstr(out, "# end of the metrics") == NULL); /* checked, and not printed */
	CHECK_INT(check_text(out, expect), ==, 0);
	free(out);
	free(err);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(the_control_socket_answers_the_metrics_command)
{
	struct server s;
	char *text;
	int fd;

	server_start(&s, "--workers", "1", NULL);
	fd = fdp_unix_connect(s.control, SOCK_STREAM);
	CHECK_OK(fd);
	send_all(fd, "metrics\n");
	text = fdp_test_read_all(fd, NULL);
	close(fd);
	CHECK(strncmp(text, "# HELP fdpass_info ", 19) == 0);
	CHECK(strstr(text, "\nfdpass_workers_configured 1\n") != NULL);
	/* A last line says the text is whole: a cut one cannot pass for it. */
	CHECK(strcmp(text + strlen(text) - 22, "\n# end of the metrics\n") == 0);
	free(text);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

static int never_runs(struct fdp_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	return 0;
}

TEST(master_open_takes_the_metrics_socket_and_refuses_one_not_listening)
{
	struct fdp_master_config cfg = {
	        .size = sizeof(cfg), .workers = 1, .worker_main = never_runs};
	int before = fdp_test_fd_count(), lfd, mfd;
	struct fdp_master *m;

	lfd = fdp_listen("127.0.0.1:0", 4);
	mfd = fdp_listen("127.0.0.1:0", 4);
	CHECK_OK(lfd);
	CHECK_OK(mfd);
	cfg.listeners = &lfd;
	cfg.nlisteners = 1;
	cfg.metrics_fd = &mfd;
	CHECK_OK(fdp_master_open(&m, &cfg));
	CHECK(fcntl(mfd, F_GETFL) & O_NONBLOCK);
	fdp_master_close(m); /* closes both */
	CHECK_INT(fdp_test_fd_count(), ==, before);
	/* A socket that does not listen: refused, and closed all the same, with the listener. */
	lfd = fdp_listen("127.0.0.1:0", 4);
	mfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_OK(lfd);
	CHECK(mfd >= 0);
	CHECK_INT(fdp_master_open(&m, &cfg), ==, -EINVAL);
	CHECK_INT(fdp_test_fd_count(), ==, before);
}

TEST(metrics_on_a_unix_socket_are_served_and_its_file_is_removed_at_stop)
{
	char path[512], addr[520], *answer;
	const char *args[] = {"--workers", "1", "--metrics", addr, NULL};
	struct server s;
	int fd;

	snprintf(path, sizeof(path), "%s/metrics.sock", fdp_test_tmpdir());
	snprintf(addr, sizeof(addr), "unix:%s", path);
	server_start_argv(&s, args, 0);
	CHECK(strstr(s.log, "metrics served on unix:") != NULL);
	fd = fdp_unix_connect(path, SOCK_STREAM);
	CHECK_OK(fd);
	send_all(fd, "GET /metrics HTTP/1.0\r\n\r\n");
	answer = fdp_test_read_all(fd, NULL);
	close(fd);
	CHECK(strncmp(answer, "HTTP/1.0 200 OK\r\n", 17) == 0);
	CHECK(strstr(answer, "\nfdpass_workers_configured 1\n") != NULL);
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(access(path, F_OK) < 0);
	server_free(&s);
}

/* Like start_with_metrics, with more arguments (NULL-ended). */
static void start_with_metrics_args(struct server *s, char *maddr, const char *const *more)
{
	const char *args[32] = {"--metrics", "127.0.0.1:0"};
	const char *line;
	int n = 2;

	while (*more && n < 31)
		args[n++] = *more++;
	args[n] = NULL;
	server_start_argv(s, args, 0);
	line = strstr(s->log, "metrics served on ");
	CHECK(line != NULL);
	CHECK_INT(sscanf(line + 18, "%63s", maddr), ==, 1);
}

TEST(metrics_count_a_worker_restart_in_its_slot)
{
	const char *more[] = {"--workers", "2", NULL};
	const char *expect[] = {"fdpass_worker_restarts_total=1", "fdpass_worker_generation=3",
	                        "fdpass_workers_ready=2", NULL};
	char maddr[64], *answer;
	struct server s;
	pid_t pid;

	need_parser();
	start_with_metrics_args(&s, maddr, more);
	CHECK_INT(http_get_worker(s.addr, NULL, &pid), ==, 0); /* round-robin: slot 0 first */
	CHECK_OK(kill(pid, SIGKILL));
	server_wait_log(&s, "generation 2 ready", 10000); /* slot 0's replacement */
	answer = metrics_get(maddr);
	/* Slot 0 restarted once (generation 2), slot 1 not (generation 1): 3 in all. */
	CHECK(strstr(body_of(answer), "\nfdpass_worker_restarts_total{slot=\"0\"} 1\n") != NULL);
	CHECK(strstr(body_of(answer), "\nfdpass_worker_generation{slot=\"0\"} 2\n") != NULL);
	CHECK_INT(check_text(body_of(answer), expect), ==, 0);
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(metrics_count_a_routed_client_that_sends_no_key_in_time)
{
	const char *more[] = {"--workers",       "1",   "--policy", "route", "--route-key", "line",
	                      "--route-timeout", "0.2", NULL};
	const char *expect[] = {"fdpass_route_failures_total=1",
	                        "fdpass_route_fail_actions_total=1",
	                        "fdpass_route_routed_total=0",
	                        "fdpass_connections_accepted_total=1",
	                        "fdpass_connections_closed_unserved_total=1",
	                        "fdpass_route_waiting_connections=0",
	                        NULL};
	char maddr[64], *answer, byte;
	struct server s;
	int silent;

	need_parser();
	start_with_metrics_args(&s, maddr, more);
	silent = tcp_connect(s.addr, NULL); /* no line: no key */
	fdp_test_wait_readable(silent, 10000);
	CHECK_INT(read(silent, &byte, 1), ==, 0); /* closed by the failure action */
	close(silent);
	answer = metrics_get(maddr);
	CHECK(strstr(body_of(answer), "\nfdpass_route_failures_total{reason=\"timeout\"} 1\n"));
	CHECK(strstr(
	        body_of(answer),
	        "\nfdpass_connections_closed_unserved_total{listener=\"0\",reason=\"route\"} 1\n"));
	CHECK(strstr(body_of(answer), "\nfdpass_route_fail_actions_total{action=\"close\"} 1\n"));
	CHECK_INT(check_text(body_of(answer), expect), ==, 0);
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(metrics_answer_400_to_a_malformed_request_and_431_to_a_head_too_large)
{
	char maddr[64], *answer, *big;
	struct server s;

	start_with_metrics(&s, maddr, sizeof(maddr), "1");
	answer = http_exchange(maddr, "GET /metrics\r\n\r\n"); /* no version */
	CHECK(strncmp(answer, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	free(answer);
	answer = http_exchange(maddr, "GET /metrics HTTP/2.0\r\n\r\n");
	CHECK(strncmp(answer, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	free(answer);
	big = malloc(8192);
	CHECK(big != NULL);
	memset(big, 'x', 8191);
	big[8191] = '\0';
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26); /* a header line with no end */
	answer = http_exchange(maddr, big);
	CHECK(strncmp(answer, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) == 0);
	free(answer);
	free(big);
	answer = metrics_get(maddr); /* and the next client is served as ever */
	free(answer);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(the_metrics_socket_follows_a_hot_upgrade_to_the_new_master)
{
	char path[512], addr[520], *answer;
	const char *args[] = {"--workers", "1", "--metrics", addr, NULL};
	const char *line;
	struct server s;
	pid_t newpid;
	int fd;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1)); /* the new master is this test's to reap */
	snprintf(path, sizeof(path), "%s/metrics.sock", fdp_test_tmpdir());
	snprintf(addr, sizeof(addr), "unix:%s", path);
	server_start_argv(&s, args, 0);
	kill(s.pid, SIGUSR2);
	/* Were it not handed over, the new master could not bind it and would roll back. */
	line = server_wait_log(&s, "upgrade: new master pid ", 20000);
	newpid = (pid_t)atoi(strstr(line, "new master pid ") + 15);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	CHECK_OK(access(path, F_OK)); /* the old master left its file to the new one */
	fd = fdp_unix_connect(path, SOCK_STREAM);
	CHECK_OK(fd);
	send_all(fd, "GET /metrics HTTP/1.0\r\n\r\n");
	answer = fdp_test_read_all(fd, NULL);
	close(fd);
	CHECK(strncmp(answer, "HTTP/1.0 200 OK\r\n", 17) == 0);
	free(answer);
	CHECK_OK(kill(newpid, SIGTERM));
	CHECK_INT(fdp_test_wait(newpid), ==, 0);
	while (server_read_log(&s, 10000) > 0)
		;
	close(s.err);
	CHECK(access(path, F_OK) < 0); /* removed by the new master when it stopped */
	server_free(&s);
}
