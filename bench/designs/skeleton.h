/*
 * The shared skeleton of the classic server designs: options, listening, the echo handler,
 * readiness, per-worker counts and shutdown. Each design file holds only what makes it
 * different. The protocol and the server contract are in README.md.
 */
#ifndef DSG_SKELETON_H
#define DSG_SKELETON_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#define DSG_MAX_WORKERS 256
#define DSG_MAX_REQUEST (1u << 20) /* payload bytes; a larger length prefix is refused */

/* Options for dsg_init(). */
#define DSG_POOL        0x1 /* workers are a pool: --workers counts them, spread is meaningful */
#define DSG_NO_LISTENER 0x2 /* the design makes its own listening sockets (dsg_listen) */

/* A served-connections counter on its own cache line, in memory shared with children. */
struct dsg_counter {
	uint64_t served;
	char pad[56];
};

struct dsg_server {
	const char *name;
	int port;      /* after dsg_init: the bound port (--port 0 picks one) */
	int workers;   /* --workers; 1 for designs without a pool */
	int pool;      /* DSG_POOL was given */
	int listen_fd; /* -1 with DSG_NO_LISTENER */
	const char *stats_path;
	struct dsg_counter *counters; /* DSG_MAX_WORKERS of them, MAP_SHARED */
	pid_t pids[DSG_MAX_WORKERS];  /* pool children, for dsg_finish() */
	int npids;
};

/* Set by SIGTERM/SIGINT in the server's main process. */
extern volatile sig_atomic_t dsg_stopping;

/*
 * Parse the command line (exits 0 for --help, 2 for a bad option), install the stop handler,
 * map the counters and, unless DSG_NO_LISTENER, listen on 127.0.0.1:--port. Exits 1 on a
 * failure to set up: a design program has nothing useful to do then.
 */
void dsg_init(struct dsg_server *s, int argc, char **argv, const char *name, unsigned flags);

/*
 * A listening TCP socket on 127.0.0.1:port (0: any free port), blocking, close-on-exec,
 * with SO_REUSEPORT if reuseport. Returns the descriptor, or -errno. Stores the bound port.
 */
int dsg_listen(int port, int reuseport, int *bound);

/*
 * One SO_REUSEPORT listener per pool worker, all on --port (the first picks it when 0), into
 * fds[0..workers-1]: all listen before any child starts, so no connection reaches the port
 * while a member is missing. Returns 0, or -errno with none left open.
 */
int dsg_listen_each(struct dsg_server *s, int *fds);

/* Print "ready <port>" on stdout: the runner starts its load when it reads this line. */
void dsg_ready(const struct dsg_server *s);

/* accept4() with close-on-exec. Returns the descriptor or -errno (-EINTR when stopping). */
int dsg_accept(int listen_fd);

/* True for accept() errors after which the next accept() may well succeed. */
int dsg_accept_transient(int err);

/*
 * Serve one client of the echo protocol and close fd: read the 4-byte big-endian length N and
 * N bytes, write those 4 + N bytes back, close. Returns 0 or -errno (fd closed either way).
 */
int dsg_echo(int fd);

/* Count one served connection for worker (0 <= worker < DSG_MAX_WORKERS); safe from any
 * process or thread. */
void dsg_count(struct dsg_server *s, int worker);

/*
 * Fork a pool child that runs fn(s, index) and exits. The child dies with SIGTERM and when
 * the parent dies. Returns the child's pid in the parent (recorded for dsg_finish) or -errno.
 */
pid_t dsg_spawn(struct dsg_server *s, void (*fn)(struct dsg_server *, int), int index);

/*
 * dsg_spawn() with a SOCK_SEQPACKET socketpair to the child: while fn runs in the child, *chan
 * is the child's end; in the parent it is then the parent's end. Returns 0, or -errno with
 * neither end left open.
 */
int dsg_spawn_channel(struct dsg_server *s, void (*fn)(struct dsg_server *, int), int index,
                      int *chan);

/*
 * The main of a design whose children each accept on a socket of their own: one SO_REUSEPORT
 * listener per worker into listeners[] (dsg_listen_each()), a child per worker running
 * child(s, index) (with a channel to the parent in chans[index] when chans is not NULL:
 * dsg_spawn_channel()), the parent's copies of the listeners closed (they would only keep
 * dead children's queues open), ready, then the stop. Returns main()'s exit status.
 */
int dsg_main_each(struct dsg_server *s, int *listeners, int *chans,
                  void (*child)(struct dsg_server *, int));

/* Sleep until SIGTERM or SIGINT. */
void dsg_wait_stop(void);

/*
 * Shut down: SIGTERM every recorded child, reap every child (so its CPU time is counted in
 * the parent's), write the per-worker counts to --stats. Returns the exit status for main().
 */
int dsg_finish(struct dsg_server *s);

#endif
