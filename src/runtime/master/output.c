/*
 * The workers' stdout and stderr (cfg.capture_output): each worker writes them into a pipe of
 * its own, which the master reads in its loop and logs line by line with the worker's slot and
 * pid, so that the program's log sink (one file, reopened in one place) has everything, and a
 * worker's line is never interleaved with another's in the middle. Called by supervise.c
 * (open, forked, close) and loop.c (input, close); calls only log.c.
 *
 * Bounded: a line is at most FDP_OUTPUT_LINE_MAX bytes (a longer one is logged in pieces), and
 * a pipe is read once per wakeup into that buffer, so a worker that floods its output costs the
 * master one read and the lines in it per round; the pipe then fills and the worker's writes
 * block, which slows it down, not the master's dispatch.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* When a worker is reaped, this many reads of each pipe at most (the pipe's 64 KiB, and more):
 * a process of its that escaped to another group may still be writing. */
#define DRAIN_READS 32

static void stream_close(struct fdp_master *m, struct fdp__output *o)
{
	o->len = 0;
	if (o->fd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, o->fd, NULL);
		close(o->fd);
		o->fd = -1;
	}
	if (o->child_fd >= 0) {
		close(o->child_fd);
		o->child_fd = -1;
	}
}

static void output_free(struct fdp_master *m, struct fdp__proc *p)
{
	for (unsigned i = 0; p->out && i < 2; i++)
		stream_close(m, &p->out[i]);
	free(p->out);
	p->out = NULL;
}

int fdp__output_open(struct fdp_master *m, struct fdp__proc *p)
{
	if (!m->cfg.capture_output)
		return 0;
	p->out = malloc(2 * sizeof(*p->out));
	if (!p->out)
		return -ENOMEM;
	for (unsigned i = 0; i < 2; i++)
		p->out[i] = (struct fdp__output){.fd = -1, .child_fd = -1};
	for (unsigned i = 0; i < 2; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->wout[i]};
		int fds[2], err;

		/* Both ends close-on-exec: the child's is dup2()'d onto 1 or 2, which clears it.
		 * Only the master's end is non-blocking: the flag is the file description's, and a
		 * worker writing to its stdout expects it to block when full, not to fail. */
		if (pipe2(fds, O_CLOEXEC) < 0) {
			err = -errno;
			output_free(m, p);
			return err;
		}
		p->out[i].fd = fds[0];
		p->out[i].child_fd = fds[1];
		p->wout[i] = (struct fdp__watch){.kind = W_OUTPUT, .index = i, .proc = p};
		if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0 ||
		    epoll_ctl(m->epfd, EPOLL_CTL_ADD, fds[0], &ev) < 0) {
			err = -errno;
			output_free(m, p);
			return err;
		}
	}
	return 0;
}

void fdp__output_forked(struct fdp__proc *p)
{
	for (unsigned i = 0; p->out && i < 2; i++) {
		if (p->out[i].child_fd >= 0)
			close(p->out[i].child_fd);
		p->out[i].child_fd = -1;
	}
}

static void log_piece(struct fdp_master *m, const struct fdp__proc *p, unsigned stream,
                      const char *data, size_t len)
{
	if (len && data[len - 1] == '\r')
		len--;
	if (!len)
		return;
	fdp__log_output(m, stream ? FDP_LOG_WARN : FDP_LOG_INFO,
	                &(struct fdp_output_line){.worker = p->slot,
	                                          .pid = p->pid,
	                                          .fd = (int)stream + 1,
	                                          .data = data,
	                                          .len = len});
}

/* Log every complete line in o->buf (and, at the end, what is left); keep the rest. */
static void log_lines(struct fdp_master *m, const struct fdp__proc *p, unsigned stream, int end)
{
	struct fdp__output *o = &p->out[stream];
	size_t start = 0;

	for (;;) {
		char *nl = memchr(o->buf + start, '\n', o->len - start);

		if (!nl)
			break;
		log_piece(m, p, stream, o->buf + start, (size_t)(nl - (o->buf + start)));
		start = (size_t)(nl - o->buf) + 1;
	}
	if ((end && start < o->len) || (start == 0 && o->len == sizeof(o->buf))) {
		/* the last line, or one too long for the buffer: logged as it is */
		log_piece(m, p, stream, o->buf + start, o->len - start);
		start = o->len;
	}
	memmove(o->buf, o->buf + start, o->len - start);
	o->len -= start;
}

/* One read of the pipe; returns 1 if it may have more, 0 at its end (and closes it). */
static int read_once(struct fdp_master *m, struct fdp__proc *p, unsigned stream)
{
	struct fdp__output *o = &p->out[stream];
	ssize_t n;

	do
		n = read(o->fd, o->buf + o->len, sizeof(o->buf) - o->len);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		o->len += (size_t)n;
		log_lines(m, p, stream, 0);
		return 1;
	}
	if (n < 0 && errno == EAGAIN)
		return 0;
	/* End of file (every writer is gone) or an error: what is left is a last line. */
	log_lines(m, p, stream, 1);
	stream_close(m, o);
	return 0;
}

void fdp__output_input(struct fdp_master *m, struct fdp__proc *p, unsigned stream)
{
	if (p->out && p->out[stream].fd >= 0)
		read_once(m, p, stream);
}

void fdp__output_close(struct fdp_master *m, struct fdp__proc *p)
{
	for (unsigned i = 0; p->out && i < 2; i++) {
		struct fdp__output *o = &p->out[i];

		/* Only once the master's copy of the worker's end is closed: else it never ends. */
		for (int k = 0;
		     k < DRAIN_READS && o->fd >= 0 && o->child_fd < 0 && read_once(m, p, i); k++)
			;
		log_lines(m, p, i, 1);
	}
	output_free(m, p);
}
