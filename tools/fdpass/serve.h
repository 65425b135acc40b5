/* Shared between `fdpass serve`, `fdpass status` and the built-in handlers. */
#ifndef FDPASS_SERVE_H
#define FDPASS_SERVE_H

#include "fdpass_runtime.h"

#include <stddef.h>
#include <stdio.h>
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

/*
 * The client side of the control socket (control_client.c), for the verb named verb (its
 * messages start "fdpass VERB: "). fdpass_control_resolve() sets *control to the default path
 * (in path) when it is NULL; returns 0, or a negative errno with the reason printed.
 * fdpass_control_call() connects, checks that the server is root or this user, sends command
 * (one line, without its newline) and returns the whole answer (malloc'd, NUL-terminated),
 * waiting at most timeout_ms (-1: no limit) for each piece; NULL with the reason printed.
 */
int fdpass_control_resolve(const char *verb, const char **control, char *path, size_t size);
char *fdpass_control_call(const char *verb, const char *control, const char *command,
                          int timeout_ms);
/* The same, and *server gets the pid of the process that answered (SO_PEERCRED, as seen
 * from this pid namespace) once it is trusted. */
char *fdpass_control_call_pid(const char *verb, const char *control, const char *command,
                              int timeout_ms, pid_t *server);

/*
 * The limits of the built-in handlers (fdpass serve --header-timeout, --idle-timeout,
 * --max-output). A zero field takes its default.
 */
struct fdpass_limits {
	unsigned header_timeout_ms; /* a request head must be complete within it, else 408 */
	unsigned idle_timeout_ms;   /* between requests, or while the client takes no output */
	size_t max_output;          /* past this much unsent output, the client is not read */
	int take_listeners; /* kernel dispatch: accept on the slot sockets the master gives */
};

#define FDPASS_HEADER_TIMEOUT_MS 10000
#define FDPASS_IDLE_TIMEOUT_MS   60000
#define FDPASS_MAX_OUTPUT        (256 * 1024)

/* The timer a connection is on (handler_loop.c): one list per timeout. */
enum fdpass_timer {
	FDPASS_TIMER_HEAD,   /* reading a request head: --header-timeout */
	FDPASS_TIMER_IDLE,   /* between requests: --idle-timeout */
	FDPASS_TIMER_WRITE,  /* output waits: --idle-timeout since the client last took some */
	FDPASS_TIMER_LINGER, /* finished, shut down, reading what the client still sends */
	FDPASS_TIMERS,
	FDPASS_TIMER_NONE = FDPASS_TIMERS,
};

/* One client connection of a built-in handler. */
struct fdpass_conn {
	int fd;
	uint64_t id;          /* the master's connection id */
	unsigned long number; /* this worker's count of connections, from 1 */
	struct fdp_conn meta;
	size_t inlen;
	unsigned long long body_left; /* http: request body bytes still to drop */
	char *out;
	size_t outlen, outoff;
	int close_after_write;
	int linger;      /* with close_after_write: close gracefully (handler_loop.c) */
	int answered;    /* answered at least once: with nothing pending, it is between requests */
	int ack_sent;    /* its ACK has left: it may be read (see handler_loop.c) */
	int watched;     /* registered with the loop's epoll */
	unsigned events; /* what it is registered for */
	enum fdpass_timer timer; /* the list it is on; its clock restarts when rearm is set */
	int rearm;
	long long since; /* when its clock started (monotonic ms) */
	struct fdpass_conn *tprev, *tnext;
	struct fdpass_worker_loop *loop;
	size_t at; /* its place in the loop's list of open connections */
	/* Last, so that a new connection clears only the fields before it (conn_open()). */
	char in[8192]; /* also the request head limit: a longer head is answered 431 */
};

/*
 * A built-in handler: on_data is called when c->in holds new bytes; it consumes what it uses
 * and answers with fdpass_conn_write(). Returns 0 to keep the connection, -1 to close it. While
 * fdpass_conn_output_full() it should answer no more (the loop calls it again once the output
 * drains). on_timeout (NULL: the handler has no requests, and no timeouts) is called when a
 * request head (c->inlen bytes of it) did not complete in time: it answers and sets
 * close_after_write, or returns -1 to close at once.
 * close_idle_on_drain: connections between requests (answered, nothing pending) are handed
 * back to the master at a reload (the next generation serves them) and closed at a stop
 * when the master drains; one still waiting for its first request is served first.
 */
struct fdpass_handler {
	const char *name;
	int (*on_data)(struct fdpass_conn *c);
	int (*on_timeout)(struct fdpass_conn *c);
	int close_idle_on_drain;
};

/* Queue bytes for the client (written at once when the socket takes them). */
int fdpass_conn_write(struct fdpass_conn *c, const void *data, size_t len);

/* Non-zero while c's unsent output exceeds the limit: answer nothing more now. */
int fdpass_conn_output_full(const struct fdpass_conn *c);

/* Non-zero once the master asked this worker to drain. */
int fdpass_conn_draining(const struct fdpass_conn *c);

/* The worker's identity, for answers that say who served them. */
struct fdp_worker *fdpass_conn_worker(const struct fdpass_conn *c);

/*
 * Run a handler in a worker until the master drains it or goes away, with these limits (NULL:
 * the defaults). Returns an exit status.
 */
int fdpass_handler_run(struct fdp_worker *w, const struct fdpass_handler *h,
                       const struct fdpass_limits *limits);

/* Seconds with a fraction ("0.5") into milliseconds within [min_ms, max_ms]: 0, or -1. */
int fdpass_parse_ms(const char *s, double min_ms, double max_ms, unsigned *out);

/*
 * The argv that runs --exec COMMAND as the worker process itself (serve_exec.c): split on
 * blanks, or through /bin/sh where the command needs a shell. One malloc'd block, freed with
 * free(); NULL when out of memory.
 */
char **fdpass_exec_argv(const char *cmd);

/*
 * fdpass serve --config FILE (config.c): each option line is handed to apply(arg, argc, argv)
 * as argv {"serve", "--NAME", "VALUE"} (argc 2 without a value), the command line's parser;
 * apply returns -1 when good, else an exit status after printing why, which is printed again
 * as "fdpass serve: FILE:LINE: why". Returns -1 with *out holding the text the options point
 * into (fdpass_config_free() once they are no longer used), else the exit status.
 */
struct fdpass_config_file;
int fdpass_config_read(const char *path, int (*apply)(void *arg, int argc, char **argv),
                       void *arg, struct fdpass_config_file **out);
void fdpass_config_free(struct fdpass_config_file *f);

/* What is printed to stderr between begin and end, returned by end (malloc'd). Nests. */
struct fdpass_capture {
	FILE *saved, *mem;
	char *buf;
	size_t len;
};
void fdpass_capture_begin(struct fdpass_capture *c);
char *fdpass_capture_end(struct fdpass_capture *c);

/*
 * Whether an --exec program can be executed: the master's own search (execvp()'s, $PATH).
 * 0, or the errno its execve() would fail with.
 */
int fdpass_exec_find(const char *name);

extern const struct fdpass_handler fdpass_handler_echo;
extern const struct fdpass_handler fdpass_handler_http;

#endif
