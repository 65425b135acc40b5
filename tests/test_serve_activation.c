/*
 * fdpass serve with listening sockets passed by socket activation (LISTEN_FDS): by systemd's
 * own systemd-socket-activate when it is installed, else by the test, which plays the manager.
 */
#include "test_systemd_util.h"

#include <sys/prctl.h>

#define SOCKET_ACTIVATE "/usr/bin/systemd-socket-activate"
#define UPPER_WORKER    FDPASS_BINARY_DIR "/examples/upper_worker"

/*
 * Start `fdpass serve --control DIR/ctl.sock ARGS...` (args NULL-ended) on the nfds sockets
 * fds passed as socket activation passes them, named names; wait for wait_for in its log.
 */
static void serve_on(struct server *s, const char *const *args, const int *fds, int nfds,
                     const char *names, const char *wait_for)
{
	const char *argv[32] = {FDPASS_TOOL, "serve", "--control"};
	char control[256];
	int n = 4;

	snprintf(control, sizeof(control), "%s/ctl.sock", fdp_test_tmpdir());
	argv[3] = control;
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	launch(s, argv, NULL, fds, nfds, names, 0, wait_for);
	snprintf(s->control, sizeof(s->control), "%s", control);
}

static void set_control(char *control, size_t size)
{
	snprintf(control, size, "%s/ctl.sock", fdp_test_tmpdir());
}

static void addr_of(char *buf, size_t size, int port)
{
	snprintf(buf, size, "127.0.0.1:%d", port);
}

/* A port nobody listens on now (bound, then closed: a race a test can live with). */
static int free_port(void)
{
	int port, fd = tcp_listener(&port);

	close(fd);
	return port;
}

TEST(systemd_socket_activate_starts_a_server_on_its_socket_and_no_worker_sees_listen_fds)
{
	char control[256], listen[64], addr[64], buf[1024], notify[256], env[300], *st;
	const char *argv[] = {SOCKET_ACTIVATE, "-l",     listen,       "-E", env,
	                      FDPASS_TOOL,     "serve",  "--workers",  "2",  "--control",
	                      control,         "--exec", UPPER_WORKER, NULL};
	struct server s;
	int sock, fd;
	pid_t pids[2];

	if (access(SOCKET_ACTIVATE, X_OK) < 0)
		fdp_test_skip(SOCKET_ACTIVATE " is not installed (tests/interop/install-peers.sh "
		                              "installs Debian's systemd package)");
	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
	sock = notify_bind(notify, sizeof(notify));
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", notify);
	set_control(control, sizeof(control));
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
	snprintf(listen, sizeof(listen), "%s", addr);
	launch(&s, argv, NULL, NULL, 0, NULL, 0, "Listening on ");
	/* It starts the server on the first connection, which waits in the socket's queue. */
	fd = tcp_connect(addr, NULL);
	server_wait_log(&s, "ready: ", 10000);
	snprintf(s.control, sizeof(s.control), "%s", control);
	CHECK(strstr(s.log, "inherited socket 3") != NULL);
	send_all(fd, "hello\n");
	CHECK_INT(read(fd, buf, sizeof(buf)), ==, 6);
	CHECK(strncmp(buf, "HELLO\n", 6) == 0);
	close(fd);
	st = server_status(&s);
	CHECK_INT(status_pids(st, pids, 2), ==, 2);
	free(st);
	check_environ_clean(s.pid); /* systemd-socket-activate executed fdpass: the same pid */
	for (int i = 0; i < 2; i++)
		check_environ_clean(pids[i]);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(sock);
}

TEST(a_listen_address_takes_the_inherited_socket_bound_to_it_instead_of_binding)
{
	char listen[64];
	const char *args[] = {"--workers", "1", "--listen", listen, NULL};
	struct server s;
	int port, lfd = tcp_listener(&port);

	/* A bind would fail: the test's copy of the socket keeps the port. */
	addr_of(listen, sizeof(listen), port);
	serve_on(&s, args, &lfd, 1, "web", "ready: ");
	CHECK(strstr(s.log, "inherited socket 3 (name 'web')") != NULL);
	CHECK_INT(http_get_worker(listen, NULL, NULL), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(lfd);
}

TEST(listen_fd_n_and_fd_name_take_the_inherited_sockets_they_name)
{
	const char *args[] = {"--workers", "1", "--listen", "fd:4", "--listen", "fd:first", NULL};
	char addr[2][64];
	struct server s;
	int ports[2], fds[2];

	for (int i = 0; i < 2; i++) {
		fds[i] = tcp_listener(&ports[i]);
		addr_of(addr[i], sizeof(addr[i]), ports[i]);
	}
	serve_on(&s, args, fds, 2, "first:second", "ready: ");
	CHECK(strstr(s.log, "--listen fd:4: inherited socket 4 (name 'second')") != NULL);
	CHECK(strstr(s.log, "--listen fd:first: inherited socket 3 (name 'first')") != NULL);
	for (int i = 0; i < 2; i++)
		CHECK_INT(http_get_worker(addr[i], NULL, NULL), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp_close_fds(fds, 2);
}

TEST(an_inherited_socket_no_listen_takes_is_an_error)
{
	const char *args[] = {"--workers", "1", "--listen", "fd:first", NULL};
	char want[128];
	struct server s;
	int ports[2], fds[2];

	for (int i = 0; i < 2; i++)
		fds[i] = tcp_listener(&ports[i]);
	serve_on(&s, args, fds, 2, "first:second", NULL);
	CHECK_INT(server_wait_exit(&s), ==, 1);
	snprintf(want, sizeof(want),
	         "inherited socket 4 (name 'second', 127.0.0.1:%d) matches no --listen", ports[1]);
	if (!strstr(s.log, want))
		fdp_test_fail(__FILE__, __LINE__, "no '%s' in: %s", want, s.log);
	server_free(&s);
	fdp_close_fds(fds, 2);
}

TEST(without_listen_every_inherited_socket_is_served)
{
	const char *args[] = {"--workers", "1", NULL};
	char addr[2][64];
	struct server s;
	int ports[2], fds[2];

	for (int i = 0; i < 2; i++) {
		fds[i] = tcp_listener(&ports[i]);
		addr_of(addr[i], sizeof(addr[i]), ports[i]);
	}
	serve_on(&s, args, fds, 2, NULL, "ready: ");
	CHECK(strstr(s.log, "127.0.0.1:8080") == NULL); /* not the default address */
	for (int i = 0; i < 2; i++)
		CHECK_INT(http_get_worker(addr[i], NULL, NULL), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	fdp_close_fds(fds, 2);
}

TEST(a_socket_that_is_not_listening_is_refused)
{
	const char *args[] = {"--workers", "1", "--listen", "fd:3", NULL};
	struct server s;
	int sv[2];

	CHECK_OK(fdp_socketpair(SOCK_STREAM, sv));
	serve_on(&s, args, sv, 1, NULL, NULL);
	CHECK_INT(server_wait_exit(&s), ==, 1);
	CHECK(strstr(s.log, "fd:3 (descriptor 3): not a listening stream or seqpacket socket") !=
	      NULL);
	server_free(&s);
	fdp_close_fds(sv, 2);
}

TEST(listen_fds_for_another_process_are_left_alone_and_removed_from_the_environment)
{
	const char *argv[] = {FDPASS_TOOL,   "serve",     "--workers", "1", "--listen",
	                      "127.0.0.1:0", "--control", NULL,        NULL};
	char control[256];
	struct server s;
	int port, lfd = tcp_listener(&port);

	set_control(control, sizeof(control));
	argv[7] = control;
	launch(&s, argv, NULL, &lfd, 1, "web", 1, "ready: "); /* LISTEN_PID=1: init's */
	snprintf(s.control, sizeof(s.control), "%s", control);
	CHECK(strstr(s.log, "inherited socket") == NULL);
	check_environ_clean(s.pid);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(lfd);
}

/* Connect without blocking; 0 when the handshake completed within ms, else -1. */
static int connect_within(int port, int ms, int *out)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	socklen_t len = sizeof(err);

	CHECK(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		fdp_test_fail(__FILE__, __LINE__, "connect: %s", strerror(errno));
	*out = fd;
	if (poll(&p, 1, ms) != 1)
		return -1;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	return err ? -1 : 0;
}

/*
 * Between two servers on the inherited socket lfd: a client's handshake must complete into
 * the queue (no filter left on it) and the next server, started with args, must answer it.
 * Closes lfd.
 */
static void queued_client_served_by_the_next_server(int port, int lfd, const char *const *args)
{
	char buf[1024];
	struct server s;
	const char *body;
	int fd, flags;

	CHECK_OK(connect_within(port, 5000, &fd));
	flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){20, 0}, sizeof(struct timeval));
	send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	serve_on(&s, args, &lfd, 1, NULL, "ready: ");
	body = http_read(fd, buf, sizeof(buf));
	CHECK(body && strncmp(body, "worker=0", 8) == 0);
	close(fd);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(lfd);
}

TEST(after_a_stop_an_inherited_socket_keeps_its_queue_for_the_next_server)
{
	const char *args[] = {"--workers", "1", NULL};
	struct server s;
	int port, lfd = tcp_listener(&port);

	serve_on(&s, args, &lfd, 1, NULL, "ready: ");
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	queued_client_served_by_the_next_server(port, lfd, args);
}

TEST(a_reuseport_socket_the_manager_keeps_is_steered_again_by_the_next_server)
{
	const char *args[] = {"--workers", "1", "--dispatch", "kernel", NULL};
	struct server s;
	int port, lfd;

	if (geteuid() != 0)
		fdp_test_skip("kernel dispatch loads a BPF program: needs root (CAP_BPF)");
	lfd = tcp_listener_reuseport(&port, 1);
	serve_on(&s, args, &lfd, 1, NULL, "ready: ");
	CHECK(strstr(s.log, "kernel dispatch (round-robin), 1 slot sockets") != NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	/* The group let go of the socket: the next server makes its own on it, and answers. */
	queued_client_served_by_the_next_server(port, lfd, args);
}

TEST(auto_dispatch_passes_on_an_inherited_socket_without_reuseport)
{
	const char *args[] = {"--workers", "1", "--dispatch", "auto", NULL};
	struct server s;
	int port, lfd = tcp_listener_reuseport(&port, 0);

	serve_on(&s, args, &lfd, 1, NULL, "ready: ");
	CHECK(strstr(s.log, "passing connections: steering: the listener on") != NULL);
	CHECK(strstr(s.log, "was bound without SO_REUSEPORT") != NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	close(lfd);
}

/*
 * systemd's socket stays systemd's across a hot upgrade: the new master gets the "shared"
 * mark with it, so its stop leaves the socket unfiltered with its queue for the next server.
 */
TEST(an_inherited_socket_handed_over_by_an_upgrade_keeps_its_queue_after_the_new_master_stops)
{
	char listen[64];
	const char *args[] = {"--workers", "1", "--listen", listen, NULL};
	struct server s;
	int port, lfd = tcp_listener(&port);
	const char *line;
	pid_t next;

	addr_of(listen, sizeof(listen), port);
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1)); /* the new master becomes our child */
	serve_on(&s, args, &lfd, 1, NULL, "ready: ");
	CHECK_OK(kill(s.pid, SIGUSR2));
	line = server_wait_log(&s, "upgrade: new master pid ", 20000);
	next = (pid_t)atoi(strstr(line, "new master pid ") + 15);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0); /* the old master */
	CHECK_OK(kill(next, SIGTERM));
	CHECK_INT(fdp_test_wait(next), ==, 0);
	while (server_read_log(&s, 10000) > 0) /* to the end: the new master has exited too */
		;
	close(s.err);
	CHECK(strstr(s.log, "took 0 connection(s)") == NULL); /* its stop left the queue alone */
	server_free(&s);
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 0));
	queued_client_served_by_the_next_server(port, lfd, args);
}
