/*
 * The master's event callback (struct fdp_master_config event, tick_ms): when READY,
 * RELOADING, STOPPING and TICK come, and what they report. The callback writes a line to the
 * master's log pipe, which the test follows.
 */
#include "test_master_util.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

/* A worker that closes every connection it gets, and exits when drained or orphaned. */
static int plain_worker(struct fdp_worker *w, void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p = {.fd = fdp_worker_fd(w), .events = POLLIN};
		struct fdp_conn c;
		int fd;

		while ((fd = fdp_worker_accept(w, &c)) >= 0) {
			close(fd);
			fdp_worker_done(w, c.id);
		}
		if (fd != -EAGAIN) {
			fdp_worker_flush_wait(w, 1000);
			return 0;
		}
		if (fdp_worker_wants_write(w))
			p.events |= POLLOUT;
		poll(&p, 1, 1000);
	}
}

static void log_event(void *arg, enum fdp_master_event ev, const struct fdp_master_info *info)
{
	static const char *const names[] = {"READY", "RELOADING", "STOPPING", "TICK"};
	char line[160];
	int n = snprintf(line, sizeof(line), "event %s ready=%u/%u reloading=%d stopping=%d\n",
	                 names[ev], info->ready, info->workers, info->reloading, info->stopping);

	(void)arg;
	CHECK_INT(info->size, ==, sizeof(*info));
	if (n > 0 && write(master_log_fd, line, (size_t)n) < 0)
		_exit(98);
}

static struct fdp_master_config events_config(unsigned tick_ms)
{
	return (struct fdp_master_config){.size = sizeof(struct fdp_master_config),
	                                  .workers = 2,
	                                  .worker_main = plain_worker,
	                                  .event = log_event,
	                                  .tick_ms = tick_ms};
}

static size_t count(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

TEST(ready_comes_once_every_worker_is_ready_then_again_when_a_reload_is_complete)
{
	struct server s;
	const char *line;

	master_start(&s, events_config(0), SERVE_NO_WAIT_READY);
	line = server_wait_log(&s, "event READY", 10000);
	CHECK(strstr(line, "ready=2/2 reloading=0") != NULL);
	CHECK(strstr(s.log, "ready: 2 workers") != NULL);
	kill(s.pid, SIGHUP);
	line = server_wait_log(&s, "event RELOADING", 10000);
	CHECK(strstr(line, "reloading=1") != NULL);
	line = server_wait_log(&s, "event READY", 10000);
	CHECK(strstr(line, "ready=2/2 reloading=0") != NULL);
	/* The second READY follows the reload's end: the old workers have exited. */
	CHECK(strstr(s.log, "reload complete") != NULL &&
	      strstr(s.log, "reload complete") < strstr(line, "event READY"));
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK_INT(count(s.log, "event READY"), ==, 2);
	server_free(&s);
}

TEST(stopping_comes_once_even_when_a_second_signal_stops_at_once)
{
	struct server s;
	const char *line;

	master_start(&s, events_config(0), 0);
	kill(s.pid, SIGTERM);
	line = server_wait_log(&s, "event STOPPING", 10000);
	CHECK(strstr(line, "stopping=1") != NULL);
	kill(s.pid, SIGTERM);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	CHECK_INT(count(s.log, "event STOPPING"), ==, 1);
	server_free(&s);
}

TEST(stopping_comes_once_and_says_so_when_a_deferred_listener_makes_the_stop_wait)
{
	static const unsigned char defer[1] = {1};
	struct fdp_master_config cfg = events_config(0);
	struct server s;
	const char *line;
	int lfd, silent, secs = 30; /* the kernel holds the silent client past the wait */

	cfg.listener_defer = defer;
	master_start_keep(&s, cfg, 0, &lfd);
	CHECK_OK(setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)));
	close(lfd);
	silent = tcp_connect(s.addr, NULL);
	kill(s.pid, SIGTERM);
	line = server_wait_log(&s, "event STOPPING", 10000);
	CHECK(strstr(line, "stopping=1") != NULL);
	server_wait_log(&s, "waiting up to 1500 ms", 5000); /* it came at the wait's start */
	CHECK_INT(server_wait_exit(&s), ==, 0);
	CHECK_INT(count(s.log, "event STOPPING"), ==, 1);
	close(silent);
	server_free(&s);
}

TEST(ticks_come_every_tick_ms_and_not_without_it)
{
	struct server s;
	long long first;

	master_start(&s, events_config(50), 0);
	server_wait_log(&s, "event TICK", 5000);
	first = test_now_ms();
	for (int i = 0; i < 3; i++)
		server_wait_log(&s, "event TICK", 5000);
	CHECK_INT(test_now_ms() - first, >=, 130);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
	/* tick_ms 0: a whole start, reload and stop without one. */
	master_start(&s, events_config(0), 0);
	kill(s.pid, SIGHUP);
	server_wait_log(&s, "reload complete", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "event TICK") == NULL);
	server_free(&s);
}

TEST(a_config_of_the_size_before_events_still_opens_and_runs)
{
	struct fdp_master_config cfg = events_config(10);
	struct server s;

	cfg.size = offsetof(struct fdp_master_config, event);
	master_start(&s, cfg, 0);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "event ") == NULL);
	server_free(&s);
}
