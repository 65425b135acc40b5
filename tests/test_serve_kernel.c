/*
 * fdpass serve --dispatch kernel (docs/STEERING.md): a BPF program picks each connection's
 * worker and the worker accepts it on its slot's own socket; the master is off the path, yet
 * keeps every slot's socket, so what waits on a dead, hung or stopping worker's socket is
 * served by another. Real processes on loopback. Loading the program needs root (CAP_BPF):
 * the tests skip otherwise.
 */
#include "test_serve_util.h"

#include <sys/resource.h>

#define UPPER_WORKER FDPASS_BINARY_DIR "/examples/upper_worker"
#define GET          "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

static void need_root(void)
{
	if (geteuid() != 0)
		fdp_test_skip("kernel dispatch loads a BPF program: needs root (CAP_BPF)");
}

/*
 * Start a kernel-dispatch server with args after its own; skip if the kernel says no. Waits
 * until `live` of its slots take new connections (status "kernel live=").
 */
static void kernel_start_live(struct server *s, const char *const *args, long long live_want)
{
	const char *argv[32] = {"--dispatch", "kernel"};
	int n = 2;

	need_root();
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	server_start_argv(s, argv, 0);
	CHECK(strstr(s->log, "kernel dispatch (") != NULL); /* logged before it listens */
	/* Ready, and each worker has said it accepts by itself: every slot live. */
	for (int tries = 0;; tries++) {
		char *st = server_status(s);
		long long live = status_num(st, "kernel", "live"),
		          workers = status_num(st, "master", "workers");

		free(st);
		if (live == (live_want < 0 ? workers : live_want))
			break;
		CHECK(tries < 500);
		poll(NULL, 0, 10);
	}
}

/* The same, once every slot is live. */
static void kernel_start(struct server *s, const char *const *args)
{
	kernel_start_live(s, args, -1);
}

/* The address of the server's nth listener, as it logged it (0: the first). */
static void listener_addr(const struct server *s, int nth, char *out, size_t size)
{
	const char *at = s->log;

	for (int i = 0; i <= nth; i++) {
		at = strstr(at, "listening on ");
		CHECK(at != NULL);
		at += 13;
	}
	snprintf(out, size, "%.*s", (int)strcspn(at, " \n"), at);
}

static void worker_pids(struct server *s, pid_t *pids, int n)
{
	char *st = server_status(s);

	CHECK_INT(status_pids(st, pids, n), ==, n);
	free(st);
}

/* The worker index of an answer to GET on fd (the client reads to the end), or fail. */
static int answer_worker(int fd, uint64_t *id)
{
	char buf[1024];
	const char *body = http_read(fd, buf, sizeof(buf));
	const char *w = body ? strstr(body, "worker=") : NULL;

	if (!w)
		fdp_test_fail(__FILE__, __LINE__, "no answer");
	if (id)
		*id = strtoull(strstr(body, " id=") + 4, NULL, 10);
	return atoi(w + 7);
}

TEST(kernel_dispatch_workers_accept_every_connection_themselves)
{
	const char *args[] = {"--workers", "2", NULL};
	struct server s;
	int got[2] = {0};
	char *st;

	kernel_start(&s, args);
	for (int i = 0; i < 20; i++) {
		int fd = tcp_connect(s.addr, NULL);
		uint64_t id;

		send_all(fd, GET);
		got[answer_worker(fd, &id)]++;
		CHECK(id & FDP_CONN_OWN); /* the worker's own id: the master never saw it */
		close(fd);
	}
	CHECK(got[0] > 0 && got[1] > 0);
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "accepted"), ==, 0);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "accepted by the workers themselves (kernel dispatch): 20") != NULL);
	server_free(&s);
}

TEST(a_deferred_listener_under_kernel_dispatch_leaves_silent_clients_in_the_kernel_on_every_slot)
{
	const char *args[] = {"--workers", "2", "--listen", "127.0.0.1:0,defer=on", NULL};
	char addr[64], want[160];
	struct server s;
	int silent[4];
	char *st;

	kernel_start_live(&s, args, 4); /* two listeners of two slots */
	listener_addr(&s, 1, addr, sizeof(addr)); /* the second listener is the deferred one */
	snprintf(want, sizeof(want),
	         "listener 1 %s: a client is accepted once its first bytes are in "
	         "(TCP_DEFER_ACCEPT, 1 s)",
	         addr);
	CHECK(strstr(s.log, want) != NULL);
	/* Round-robin: two silent clients on each slot, then a request on each. */
	for (int i = 0; i < 4; i++)
		silent[i] = tcp_connect(addr, NULL);
	for (int i = 0; i < 2; i++) {
		int fd = tcp_connect(addr, NULL);
		uint64_t id;

		send_all(fd, GET);
		answer_worker(fd, &id);
		close(fd);
	}
	/* Had either slot's socket not been deferred, its worker would have taken its two. */
	st = server_status(&s);
	CHECK_INT(status_num(st, "kernel", "accepted"), ==, 2);
	free(st);
	for (int i = 0; i < 4; i++)
		close(silent[i]);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(auto_dispatch_passes_a_unix_listener_and_says_why)
{
	char path[256];
	const char *args[] = {"--dispatch", "auto", "--listen", path, NULL};
	struct server s;

	snprintf(path, sizeof(path), "unix:%s/l.sock", fdp_test_tmpdir());
	server_start_argv(&s, args, 0);
	CHECK(strstr(s.log, "passing connections: not a TCP listener") != NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(kernel_dispatch_refuses_the_route_policy_and_the_server_does_not_start)
{
	const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--dispatch", "kernel",
	                      "--policy", "route", "--route-key", "line", NULL};
	char *out, *err;

	need_root();
	CHECK(run_tool(args, &out, &err) != 0);
	CHECK(strstr(err, "kernel dispatch: the route policy reads each connection first") != NULL);
	free(out);
	free(err);
}

TEST(connections_queued_on_a_killed_workers_socket_are_served_by_another_worker)
{
	const char *args[] = {"--workers", "2", "--policy", "round-robin", NULL};
	struct server s;
	pid_t pids[2];
	int fds[10];

	kernel_start(&s, args);
	worker_pids(&s, pids, 2);
	/* Stopped, worker 0 accepts nothing: its share waits in its slot's queue. */
	CHECK_OK(kill(pids[0], SIGSTOP));
	for (int i = 0; i < 10; i++) {
		fds[i] = tcp_connect(s.addr, NULL);
		send_all(fds[i], GET);
	}
	CHECK_OK(kill(pids[0], SIGKILL));
	for (int i = 0; i < 10; i++) {
		answer_worker(fds[i], NULL); /* every one answered: none lost with the worker */
		close(fds[i]);
	}
	server_wait_log(&s, "killed by signal 9", 1000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_worker_that_accepts_nothing_while_connections_wait_is_killed_as_hung)
{
	const char *args[] = {"--workers", "2", "--ack-timeout", "0.5", NULL};
	struct server s;
	pid_t pids[2];
	int fds[6];

	kernel_start(&s, args);
	worker_pids(&s, pids, 2);
	CHECK_OK(kill(pids[1], SIGSTOP));
	for (int i = 0; i < 6; i++) {
		fds[i] = tcp_connect(s.addr, NULL);
		send_all(fds[i], GET);
	}
	for (int i = 0; i < 6; i++) {
		CHECK_INT(answer_worker(fds[i], NULL), ==, 0); /* the stopped one served none */
		close(fds[i]);
	}
	/* The kernel keeps sending the stopped one its share, which waits (or is stolen by the
	 * other worker): no progress with work waiting, for the ACK timeout, is a hang. */
	for (int tries = 0; !strstr(s.log, "waiting on its socket"); tries++) {
		int fd = tcp_connect(s.addr, NULL);

		CHECK(tries < 2000);
		send_all(fd, GET);
		CHECK_INT(answer_worker(fd, NULL), ==, 0);
		close(fd);
		server_read_log(&s, 0);
	}
	CHECK(strstr(s.log, "worker 1 pid") != NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_stop_waits_for_the_silent_clients_of_every_deferred_slot_socket_and_serves_them)
{
	const char *args[] = {"--workers", "2", "--listen", "127.0.0.1:0,defer=on", NULL};
	char addr[64];
	struct server s;
	int silent[4];

	kernel_start_live(&s, args, 4); /* two listeners of two slots */
	listener_addr(&s, 1, addr, sizeof(addr)); /* the deferred one */
	for (int i = 0; i < 4; i++) /* round-robin: two on each slot's socket */
		silent[i] = tcp_connect(addr, NULL);
	CHECK_OK(kill(s.pid, SIGTERM));
	/* Four, unless the kernel's own 1-s deferral ran out for some before the stop's look. */
	server_wait_log(&s, "waiting up to 1500 ms for ", 5000);
	for (int i = 0; i < 4; i++) {
		send_all(silent[i], GET);
		answer_worker(silent[i], NULL);
		close(silent[i]);
	}
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
}

TEST(a_stop_serves_the_connections_waiting_on_every_slots_socket)
{
	const char *args[] = {"--workers", "2", NULL};
	struct server s;
	pid_t pids[2];
	int fds[6];

	kernel_start(&s, args);
	worker_pids(&s, pids, 2);
	CHECK_OK(kill(pids[0], SIGSTOP));
	CHECK_OK(kill(pids[1], SIGSTOP));
	for (int i = 0; i < 6; i++) {
		fds[i] = tcp_connect(s.addr, NULL);
		send_all(fds[i], GET);
	}
	CHECK_OK(kill(s.pid, SIGTERM));
	server_wait_log(&s, "took 6 connection(s) still queued", 5000);
	CHECK_OK(kill(pids[0], SIGCONT));
	CHECK_OK(kill(pids[1], SIGCONT));
	for (int i = 0; i < 6; i++) {
		answer_worker(fds[i], NULL);
		close(fds[i]);
	}
	CHECK_INT(server_wait_exit(&s), ==, 0);
	server_free(&s);
}

TEST(a_worker_that_does_not_take_its_sockets_is_handed_the_connections)
{
	const char *args[] = {"--workers", "2", "--exec", UPPER_WORKER, NULL};
	struct server s;
	char buf[64];
	char *st;

	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
	kernel_start_live(&s, args, 0); /* no slot live: neither worker said ACCEPTS */
	for (int i = 0; i < 4; i++) {
		int fd = tcp_connect(s.addr, NULL);
		ssize_t n;

		send_all(fd, "abc\n");
		n = read(fd, buf, sizeof(buf) - 1);
		CHECK(n >= 4);
		CHECK(memcmp(buf, "ABC\n", 4) == 0);
		close(fd);
	}
	st = server_status(&s);
	CHECK_INT(status_num(st, "master", "accepted"), ==, 4); /* rescued from the slot sockets */
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_reload_under_kernel_dispatch_fails_no_request)
{
	const char *args[] = {"--workers", "2", NULL};
	struct server s;

	kernel_start(&s, args);
	for (int i = 0; i < 60; i++) {
		int fd = tcp_connect(s.addr, NULL);

		if (i == 20)
			CHECK_OK(kill(s.pid, SIGHUP));
		send_all(fd, GET);
		answer_worker(fd, NULL);
		close(fd);
	}
	server_wait_log(&s, "reload complete", 10000);
	for (int i = 0; i < 20; i++) {
		int fd = tcp_connect(s.addr, NULL);

		send_all(fd, GET);
		answer_worker(fd, NULL);
		close(fd);
	}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(hash_ip_under_kernel_dispatch_sends_each_client_address_to_one_worker)
{
	const char *args[] = {"--workers", "3", "--policy", "hash-ip", NULL};
	struct server s;
	int first[8];

	kernel_start(&s, args);
	for (int round = 0; round < 3; round++)
		for (int h = 0; h < 8; h++) {
			char src[32];
			int w;

			snprintf(src, sizeof(src), "127.0.0.%d", h + 2);
			w = http_get_worker(s.addr, src, NULL);
			if (round == 0)
				first[h] = w;
			CHECK_INT(w, ==, first[h]);
		}
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* The open count of worker slot i in the status, its own connections included. */
static long long worker_open(struct server *s, int i)
{
	char *st = server_status(s), key[32];
	long long n;

	snprintf(key, sizeof(key), "worker index=%d ", i);
	n = status_num(st, key, "open");
	free(st);
	return n;
}

TEST(least_conn_under_kernel_dispatch_sends_new_connections_to_the_worker_with_fewest_open)
{
	const char *args[] = {"--workers", "2", "--policy", "least-conn", NULL};
	static const char keep[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
	struct server s;
	int fds[6], on[6], n0 = 0;

	kernel_start(&s, args);
	/* Keep-alive connections stay open after their answer: the counts see them. */
	for (int i = 0; i < 6; i++) {
		fds[i] = tcp_connect(s.addr, NULL);
		send_all(fds[i], keep);
		on[i] = answer_worker(fds[i], NULL);
		n0 += on[i] == 0;
	}
	CHECK_INT(n0, ==, 3); /* least-conn at selection: even */
	for (int i = 0; i < 6; i++)
		if (on[i] == 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	for (int tries = 0; worker_open(&s, 0) != 0; tries++) {
		CHECK(tries < 500);
		poll(NULL, 0, 10);
	}
	/* 0 open against 3: the next three go to worker 0. */
	for (int i = 0; i < 6; i++) {
		if (fds[i] >= 0)
			continue;
		fds[i] = tcp_connect(s.addr, NULL);
		send_all(fds[i], keep);
		CHECK_INT(answer_worker(fds[i], NULL), ==, 0);
	}
	for (int i = 0; i < 6; i++)
		close(fds[i]);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* Until `live` slots take new connections. */
static void wait_live(struct server *s, long long live)
{
	for (int tries = 0;; tries++) {
		char *st = server_status(s);
		long long n = status_num(st, "kernel", "live");

		free(st);
		if (n == live)
			return;
		CHECK(tries < 500);
		poll(NULL, 0, 10);
	}
}

TEST(a_reload_grows_and_shrinks_the_workers_of_a_steered_listener)
{
	const char *conf = write_conf("serve.conf", "workers 2\n");
	const char *args[] = {"--config", conf, NULL};
	struct server s;
	int seen[3] = {0};

	kernel_start(&s, args);
	write_conf("serve.conf", "workers 3\n");
	CHECK_OK(kill(s.pid, SIGHUP));
	server_wait_log(&s, "reload complete", 10000);
	CHECK(strstr(s.log, "kernel dispatch (round-robin) over 3 slots") != NULL);
	wait_live(&s, 3);
	for (int i = 0; i < 30; i++)
		seen[http_get_worker(s.addr, NULL, NULL)]++;
	CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0); /* the new slot's worker serves */
	write_conf("serve.conf", "workers 1\n");
	CHECK_OK(kill(s.pid, SIGHUP));
	server_wait_log(&s, "reload complete", 10000);
	wait_live(&s, 1);
	for (int i = 0; i < 10; i++)
		CHECK_INT(http_get_worker(s.addr, NULL, NULL), ==, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(the_slots_a_reload_adds_to_a_deferred_listener_are_deferred_too)
{
	const char *conf = write_conf("serve.conf", "workers 1\n");
	const char *args[] = {"--config", conf, "--listen", "127.0.0.1:0,defer=on", NULL};
	struct server s;
	long long before;
	char addr[64], *st;
	int silent[6];

	kernel_start_live(&s, args, 2); /* two listeners of one slot */
	listener_addr(&s, 1, addr, sizeof(addr));
	write_conf("serve.conf", "workers 3\n");
	CHECK_OK(kill(s.pid, SIGHUP));
	server_wait_log(&s, "reload complete", 10000);
	wait_live(&s, 6);
	st = server_status(&s);
	before = status_num(st, "kernel", "accepted");
	free(st);
	/* Round-robin over the three slots: two silent clients on each, then a request on each. */
	for (int i = 0; i < 6; i++)
		silent[i] = tcp_connect(addr, NULL);
	for (int i = 0; i < 3; i++)
		http_get_worker(addr, NULL, NULL);
	st = server_status(&s);
	CHECK_INT(status_num(st, "kernel", "accepted") - before, ==, 3);
	free(st);
	for (int i = 0; i < 6; i++)
		close(silent[i]);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/*
 * A descriptor limit for pid under which exactly n new descriptors fit: new descriptors take
 * the lowest free numbers, and a limit refuses only numbers at or above it (those open stay).
 */
static rlim_t room_for(pid_t pid, int n)
{
	static char open_fd[4096];
	char path[64];
	struct dirent *e;
	DIR *d;

	memset(open_fd, 0, sizeof(open_fd));
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	CHECK(d != NULL);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) < (int)sizeof(open_fd))
			open_fd[atoi(e->d_name)] = 1;
	closedir(d);
	for (rlim_t k = 0; k < sizeof(open_fd); k++)
		if (!open_fd[k] && --n == 0)
			return k + 1; /* the nth free number, and nothing above it */
	CHECK(0);
	return 0;
}

/*
 * A reload to conf_text that s, with room for only room new descriptors, refuses (its log
 * says refused): the limit is put back and the two workers still serve, steered as before.
 */
static void reload_refused_with_room(struct server *s, int room, const char *conf_text,
                                     const char *refused)
{
	struct rlimit old, low;
	int seen[2] = {0};

	CHECK_OK(prlimit(s->pid, RLIMIT_NOFILE, NULL, &old));
	low = (struct rlimit){.rlim_cur = room_for(s->pid, room), .rlim_max = old.rlim_max};
	CHECK_OK(prlimit(s->pid, RLIMIT_NOFILE, &low, NULL));
	write_conf("serve.conf", conf_text);
	CHECK_OK(kill(s->pid, SIGHUP));
	server_wait_log(s, refused, 10000);
	CHECK_OK(prlimit(s->pid, RLIMIT_NOFILE, &old, NULL));
	for (int i = 0; i < 20; i++)
		seen[http_get_worker(s->addr, NULL, NULL)]++;
	CHECK(seen[0] > 0 && seen[1] > 0);
}

TEST(a_reload_whose_steering_cannot_grow_is_refused_and_the_configuration_in_force_stays)
{
	const char *conf = write_conf("serve.conf", "workers 2\n");
	const char *args[] = {"--config", conf, NULL};
	struct server s;

	kernel_start(&s, args);
	/* Room for one more descriptor (the configuration file's), not for 38 slot sockets. */
	reload_refused_with_room(&s, 1, "workers 40\n",
	                         "reload refused: listener 0: kernel dispatch over 40 slots: ");
	CHECK(strstr(s.log, "the configuration in force stays, no worker replaced") != NULL);
	/* And a reload it can take goes through, on the sockets the refused one had made. */
	write_conf("serve.conf", "workers 3\n");
	CHECK_OK(kill(s.pid, SIGHUP));
	server_wait_log(&s, "reload complete", 10000);
	CHECK(strstr(s.log, "kernel dispatch (round-robin) over 3 slots") != NULL);
	wait_live(&s, 3);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/*
 * Two steered listeners, room for the first one's new slot (its socket and program) and not
 * for the second's: the reload is refused, and the first listener, already grown, goes back
 * to its two slots with no descriptor to spare.
 */
TEST(a_reload_refused_at_the_second_listener_puts_the_first_back_as_it_was)
{
	const char *conf = write_conf("serve.conf", "workers 2\n");
	const char *args[] = {"--config", conf, "--listen", "127.0.0.1:0", NULL};
	struct server s;

	kernel_start_live(&s, args, 4); /* two slots live in each listener */
	/* Two numbers: the configuration file's, then listener 0's new socket and program (its
	 * old program stays open, for the undo), and none for listener 1's socket. */
	reload_refused_with_room(&s, 2, "workers 3\n",
	                         "reload refused: listener 1: kernel dispatch over 3 slots: ");
	CHECK(strstr(s.log, "listener 0: kernel dispatch (round-robin) back over 2 slots") != NULL);
	CHECK(strstr(s.log, "kernel dispatch left over") == NULL);
	/* With room, the same reload grows both. */
	CHECK_OK(kill(s.pid, SIGHUP));
	server_wait_log(&s, "reload complete", 10000);
	CHECK(strstr(s.log, "listener 1: kernel dispatch (round-robin) over 3 slots") != NULL);
	wait_live(&s, 6);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(without_dispatch_a_tcp_listener_is_steered_by_the_kernel_when_the_program_loads)
{
	char control[256];
	const char *argv[] = {FDPASS_TOOL, "serve", "--listen", "127.0.0.1:0", "--workers", "2",
	                      "--control", control, NULL};
	struct server s;

	need_root();
	memset(&s, 0, sizeof(s));
	s.log = calloc(1, SERVE_LOG_MAX);
	snprintf(control, sizeof(control), "%s/ctl.sock", fdp_test_tmpdir());
	snprintf(s.control, sizeof(s.control), "%s", control);
	server_spawn(&s, argv); /* the default: --dispatch auto */
	server_wait_log(&s, "ready: ", 10000);
	CHECK(strstr(s.log, "kernel dispatch (round-robin), 2 slot sockets") != NULL);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(connections_waiting_on_a_stopped_workers_socket_are_stolen_by_a_working_one)
{
	/* No hang check in the way: only stealing can serve them before SIGCONT. */
	const char *args[] = {"--workers", "2", "--policy", "round-robin", "--ack-timeout", "600",
	                      NULL};
	struct server s;
	pid_t pids[2];
	int fds[64], n = 0, answered = 0;
	pid_t now[2];

	kernel_start(&s, args);
	worker_pids(&s, pids, 2);
	CHECK_OK(kill(pids[1], SIGSTOP));
	/* Keep new connections coming (half of them wake worker 0) until every one is answered:
	 * those round-robin gave the stopped worker wait on its socket until worker 0 takes them. */
	for (int tries = 0; answered < 40; tries++) {
		struct pollfd p[64];
		int ready;

		CHECK(tries < 5000);
		if (n < 40) {
			fds[n] = tcp_connect(s.addr, NULL);
			send_all(fds[n++], GET);
		}
		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){.fd = fds[i], .events = fds[i] >= 0 ? POLLIN : 0};
		ready = poll(p, (nfds_t)n, n < 40 ? 0 : 10);
		for (int i = 0; ready > 0 && i < n; i++) {
			if (fds[i] < 0 || !(p[i].revents & POLLIN))
				continue;
			CHECK_INT(answer_worker(fds[i], NULL), ==, 0); /* the stopped one served none */
			close(fds[i]);
			fds[i] = -1;
			answered++;
		}
		/* Once all are sent, a connection to worker 0 now and then wakes it to look. */
		if (n == 40 && answered < 40 && tries % 10 == 0) {
			int fd = tcp_connect(s.addr, NULL);

			send_all(fd, GET);
			if (poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 50) == 1)
				answer_worker(fd, NULL);
			close(fd);
		}
	}
	/* Round-robin gave the stopped worker half of them, yet it is the same process: not
	 * killed as hung, not replaced; worker 0 took its share from its socket. */
	worker_pids(&s, now, 2);
	CHECK_INT(now[1], ==, pids[1]);
	CHECK_OK(kill(pids[1], SIGCONT));
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}
