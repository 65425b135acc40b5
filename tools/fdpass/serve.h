/* Shared between `fdpass serve`, `fdpass status` and the built-in handlers. */
#ifndef FDPASS_SERVE_H
#define FDPASS_SERVE_H

#include "fdpass_runtime.h"

#include <stddef.h>
#include <stdint.h>

/* The protocol tags of the built-in handlers (FDP_TAG_RAW, 0, is an --exec worker's). */
#define FDPASS_TAG_ECHO 1
#define FDPASS_TAG_HTTP 2

/*
 * The control socket a server uses when not told (control_path.c): $XDG_RUNTIME_DIR/fdpass.sock,
 * else /tmp/fdpass-$UID/control.sock in a directory of this user's with mode 0700 (made when
 * create is set). Writes it into buf; returns 0, or a negative errno with the reason in why.
 */
int fdpass_default_control_path(char *buf, size_t size, int create, char *why, size_t why_size);

/* One client connection of a built-in handler. */
struct fdpass_conn {
	int fd;
	uint64_t id;          /* the master's connection id */
	unsigned long number; /* this worker's count of connections, from 1 */
	struct fdp_conn meta;
	char in[8192];
	size_t inlen;
	char *out;
	size_t outlen, outoff;
	int close_after_write;
	int answered;    /* answered at least once: with nothing pending, it is between requests */
	int ack_sent;    /* its ACK has left: it may be read (see handler_loop.c) */
	int watched;     /* registered with the loop's epoll */
	unsigned events; /* what it is registered for */
	struct fdpass_worker_loop *loop;
};

/*
 * A built-in handler: on_data is called when c->in holds new bytes; it consumes what it uses
 * and answers with fdpass_conn_write(). Returns 0 to keep the connection, -1 to close it.
 * close_idle_on_drain: connections between requests (answered, nothing pending) are closed
 * when the master drains; one still waiting for its first request is served first.
 */
struct fdpass_handler {
	const char *name;
	int (*on_data)(struct fdpass_conn *c);
	int close_idle_on_drain;
};

/* Queue bytes for the client (written at once when the socket takes them). */
int fdpass_conn_write(struct fdpass_conn *c, const void *data, size_t len);

/* Non-zero once the master asked this worker to drain. */
int fdpass_conn_draining(const struct fdpass_conn *c);

/* The worker's identity, for answers that say who served them. */
struct fdp_worker *fdpass_conn_worker(const struct fdpass_conn *c);

/* Run a handler in a worker until the master drains it or goes away. Returns an exit status. */
int fdpass_handler_run(struct fdp_worker *w, const struct fdpass_handler *h);

extern const struct fdpass_handler fdpass_handler_echo;
extern const struct fdpass_handler fdpass_handler_http;

#endif
