/*
 * The baseline of the serve benchmark: a bare pre-forked HTTP server in which every worker
 * process has its own SO_REUSEPORT listener and accepts for itself (the kernel spreads the
 * connections). Each worker is one epoll loop serving many connections at once and answers
 * exactly what fdpass serve's http handler answers (same headers, same body shape), so the
 * two differ only in who accepts.
 *
 *   bench_serve_reuseport -w WORKERS -p PORT      (SIGTERM stops it)
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FD 65536

struct conn {
	char buf[4096];
	size_t len;
};

static struct conn *conns[MAX_FD];
static unsigned long served;

static int listen_reuseport(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
		perror("listen");
		exit(1);
	}
	return fd;
}

static void drop(int ep, int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
}

/* Answer every complete request; returns -1 when the connection is to be closed. */
static int answer(int fd, struct conn *c, int index)
{
	char *end;

	while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
		size_t used = (size_t)(end + 4 - c->buf);
		int close_ = memmem(c->buf, used, "lose\r\n", 6) != NULL ||
		             memmem(c->buf, used, "HTTP/1.0", 8) != NULL;
		char out[512], body[256];
		unsigned long number = ++served;
		int nb = snprintf(
		        body, sizeof(body),
		        "worker=%d pid=%d generation=1 conn=%lu id=%lu listener=0 peer=-\n", index,
		        (int)getpid(), number, number);
		int n = snprintf(out, sizeof(out),
		                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
		                 "%d\r\nConnection: %s\r\n\r\n%s",
		                 nb, close_ ? "close" : "keep-alive", body);

		if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n || close_)
			return -1;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
	return 0;
}

static void serve(int lfd, int index)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL,
				                    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (c >= MAX_FD) {
						close(c);
						continue;
					}
					conns[c] = calloc(1, sizeof(struct conn));
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			struct conn *c = conns[fd];
			ssize_t r = read(fd, c->buf + c->len, sizeof(c->buf) - c->len);

			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0) {
				drop(ep, fd);
				continue;
			}
			c->len += (size_t)r;
			if (answer(fd, c, index) < 0 || c->len == sizeof(c->buf))
				drop(ep, fd);
		}
	}
}

int main(int argc, char **argv)
{
	int workers = 2, port = 8081, opt;
	pid_t pids[1024];
	sigset_t set;
	int sig;

	while ((opt = getopt(argc, argv, "w:p:")) != -1) {
		if (opt == 'w')
			workers = atoi(optarg);
		else if (opt == 'p')
			port = atoi(optarg);
		else
			return 2;
	}
	if (workers < 1 || workers > 1024)
		return 2;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < workers; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			sigprocmask(SIG_UNBLOCK, &set, NULL);
			serve(listen_reuseport(port), i);
		}
	}
	fprintf(stderr, "ready: %d workers on 127.0.0.1:%d\n", workers, port);
	sigwait(&set, &sig);
	for (int i = 0; i < workers; i++)
		kill(pids[i], SIGTERM);
	while (wait(NULL) > 0)
		;
	return 0;
}
