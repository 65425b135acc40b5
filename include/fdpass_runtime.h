/*
 * fdpass runtime: the pre-forked master/worker server built on the descriptor-passing
 * mechanism of fdpass.h (libfdpass_runtime, which links libfdpass).
 *
 * Grouped by layer, bottom up: the worker side (what a worker process calls), routing (what
 * the master may read before it picks a worker), and the master. The conventions of fdpass.h
 * hold here too: >= 0 on success and a negative errno on failure, no printing, no exits, no
 * signal dispositions touched, every descriptor close-on-exec, and every comment says who owns
 * each descriptor afterwards. The master and worker are Linux-only (epoll, signalfd, pidfd).
 */
#ifndef FDPASS_RUNTIME_H
#define FDPASS_RUNTIME_H

/* The mechanism beneath the runtime may not use it (docs/ARCHITECTURE.md, the layers). */
#ifdef FDP_LAYER_MECH
#error "the descriptor-passing mechanism may not include the runtime's header"
#endif

#include "fdpass.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * Worker side: what a worker process calls to take connections from its master and report
 * them finished. Everything is non-blocking and works from any event loop: call
 * fdp_worker_accept() until it returns -EAGAIN (also once right after fdp_worker_open(): the
 * channel reads ahead, so connections may already be buffered), then wait for fdp_worker_fd()
 * to be readable (and writable while fdp_worker_wants_write() says so), and repeat. The wire
 * protocol is in docs/PROTOCOL.md (part 2), so a worker can also be written in another language.
 * ------------------------------------------------------------------------------------------- */

/* The environment variable through which an executed worker learns its channel descriptor. */
#define FDP_WORKER_ENV "FDPASS_CHANNEL_FD"

/*
 * A protocol tag travels with every connection and tells the worker which protocol to speak on
 * it, before it has read a byte. Its meaning is the program's: the runtime only carries it. 0 is
 * "no particular protocol".
 */
#define FDP_TAG_RAW 0

struct fdp_worker;

/* Metadata of a connection handed over by the master (or accepted by the worker itself). */
struct fdp_conn {
	uint64_t id;       /* unique within one master's lifetime (FDP_CONN_OWN: the worker's) */
	unsigned listener; /* index of the listener that accepted it, in --listen order */
	unsigned tag;      /* FDP_TAG_*: the protocol to speak */
	socklen_t peer_len;
	struct sockaddr_storage peer; /* the client's address (peer_len 0 if unknown) */
};

/*
 * Open the worker side on a channel socket connected to the master. Takes ownership of sock
 * (also on failure). Waits up to timeout_ms for the master's greeting (its index and
 * generation), then tells the master this worker is ready. Returns 0 and sets *out, or
 * -ETIMEDOUT, -EPROTO (not a master, or another protocol version), -EPIPE (master gone).
 */
int fdp_worker_open(struct fdp_worker **out, int sock, int timeout_ms);

/*
 * fdp_worker_open() on the descriptor named by the FDPASS_CHANNEL_FD environment variable.
 * Also -ENOENT when the variable is missing, -EINVAL when it is not a descriptor number.
 */
int fdp_worker_open_env(struct fdp_worker **out, int timeout_ms);

/*
 * Kernel dispatch (fdp_master_config dispatch, fdpass serve --dispatch kernel; docs/STEERING.md):
 * tell the master this worker accepts connections itself, on a listening socket of its own
 * for each listener the master steers in the kernel, which the master then sends it. Call it
 * once, right after fdp_worker_open(), before waiting on fdp_worker_fd(): from then on that is
 * an epoll descriptor, readable when the channel or one of those sockets has something, or
 * when the channel is writable while fdp_worker_wants_write() says so (so wait for readability
 * of it, with or without writability). fdp_worker_accept() then returns the connections the
 * worker accepted itself too, after those the master handed it, at most 4 in a row before one
 * -EAGAIN (serve those, then call again: the descriptor stays readable), and, while another
 * worker is stopped in a long request, some of those waiting on its socket; their id has bit
 * 63 set (FDP_CONN_OWN), and fdp_worker_done() and fdp_worker_return() take them like any
 * other. At
 * the master's drain the worker closes those sockets and accepts no more there. A master that
 * steers no listener (or an older one) ignores the call: then only the descriptor changes.
 * Returns 0 (also when called again), -EPIPE when the master is gone, -EMFILE or -ENOMEM.
 */
int fdp_worker_take_listeners(struct fdp_worker *w);

/* The id bit of a connection the worker accepted itself (fdp_worker_take_listeners()). */
#define FDP_CONN_OWN (UINT64_C(1) << 63)

/*
 * Close the channel. Connections already returned stay open and owned by the caller; those
 * read from the channel but not yet returned (their ACK had not left, or fdp_worker_accept()
 * was not called again) are closed. What is still queued for the master (acknowledgements,
 * reports) is discarded: a worker that exits calls fdp_worker_flush_wait() first.
 */
void fdp_worker_close(struct fdp_worker *w);

/*
 * The descriptor to wait on (readable: call fdp_worker_accept(); writable: fdp_worker_flush()).
 * After fdp_worker_take_listeners() an epoll descriptor, never writable: wait for it to be
 * readable (level-triggered), with or without writability.
 */
int fdp_worker_fd(const struct fdp_worker *w);

/*
 * Watch the worker in epfd, the caller's own epoll set, instead of waiting on fdp_worker_fd():
 * its channel, and under kernel dispatch its own listening sockets as they come and go
 * (fdp_worker_take_listeners(), before or after this call), each registered level-triggered
 * with its data.u64 in [base, base + FDP_WORKER_WATCH_SPAN). A caller that keeps pointers in
 * data.ptr may pass base 1: Linux maps nothing in the first 64 KiB unless vm.mmap_min_addr is
 * lowered. Pass each event to fdp_worker_event() first; when one was the worker's, call
 * fdp_worker_accept() until -EAGAIN as after a wake-up of fdp_worker_fd(). The worker watches
 * its channel for writability itself while fdp_worker_wants_write() says so. These
 * registrations are the worker's: leave them as they are; fdp_worker_close() removes them (so
 * close the worker before the set). Nothing is nested: each socket is in the set the caller
 * waits on, so a wake-up costs no second look. fdp_worker_fd() then returns -1. Returns 0,
 * -EBUSY when already watched, or epoll_ctl()'s error (-EBADF, -EINVAL, -ENOMEM, -ENOSPC) with
 * nothing changed; -EINVAL when base leaves no room for the span.
 */
#define FDP_WORKER_WATCH_SPAN (UINT64_C(1) << 16)
int fdp_worker_watch(struct fdp_worker *w, int epfd, uint64_t base);

/* Was ev (from the epfd of fdp_worker_watch()) one of the worker's? 1: noted, call
 * fdp_worker_accept(); 0: the caller's own. */
struct epoll_event;
int fdp_worker_event(struct fdp_worker *w, const struct epoll_event *ev);

/*
 * Non-zero while output waits for the channel to become writable, or connections wait for
 * their acknowledgement to leave: wait for writability too, then call fdp_worker_accept().
 */
int fdp_worker_wants_write(const struct fdp_worker *w);

/* This worker's slot index (0..workers-1) and generation (1 for the first process in a slot). */
unsigned fdp_worker_index(const struct fdp_worker *w);
unsigned fdp_worker_generation(const struct fdp_worker *w);

/*
 * Take the next connection: returns its socket (owned by the caller from now on; non-blocking
 * unless fdp_worker_set_blocking() said otherwise; close-on-exec) and fills *conn. A
 * connection is returned only once its acknowledgement has left for the master (one ACK for
 * every connection read in one call), so it may be read at once: until the master has the ACK
 * it may hand the connection to another worker, whole.
 * Returns -EAGAIN when none can be returned now (none waiting, or their ACK waits for the
 * channel to become writable: see fdp_worker_wants_write(); reports are flushed too),
 * -ESHUTDOWN once the master asked this worker to drain and none is left (finish the
 * connections it has, then exit; no more will come), -EPIPE when the master is gone (exit),
 * -EPROTO or -EXFULL when the channel broke (fdp_channel_recv(); exit), or -ENOMEM (try again
 * later). A connection accepted on the worker's own socket (fdp_worker_take_listeners()) may
 * also end in accept()'s own errors (-EPERM from a firewall, say: try again); out of
 * descriptors or memory there, it returns -EAGAIN and waits for a connection to be done.
 */
int fdp_worker_accept(struct fdp_worker *w, struct fdp_conn *conn);

/*
 * Have fdp_worker_accept() return blocking sockets from now on (on non-zero; 0: non-blocking
 * again, the default), for a worker that serves one connection at a time with blocking reads
 * and writes, as a classic pre-forked server does. Where a request has not arrived yet when its
 * connection is taken, a blocking read waits for it in one system call, where a non-blocking
 * one costs a failed read, a poll and a second read. Sockets the worker accepts itself
 * (fdp_worker_take_listeners()) come blocking from accept(); a handed one costs two fcntl()
 * calls. fdp_worker_return() hands a connection back non-blocking, as the master handed it.
 * The worker's own calls stay non-blocking. A blocking read waits as long as its client makes
 * it: bound it (SO_RCVTIMEO, SO_SNDTIMEO) so that a silent client cannot hold the worker.
 */
void fdp_worker_set_blocking(struct fdp_worker *w, int on);

/*
 * Report connection id finished (the caller closes its socket). Reports are batched: they
 * leave at the next fdp_worker_flush() or fdp_worker_accept() returning -EAGAIN. Returns 0, or
 * -ENOMEM when the report could not be queued (the master's count of this worker's open
 * connections then stays one too high until the worker exits). An own connection's
 * (FDP_CONN_OWN) is counted down in the shared state at once, no report: -EINVAL for an own
 * id this worker never returned.
 */
int fdp_worker_done(struct fdp_worker *w, uint64_t id);

/*
 * Send batched acknowledgements and reports and write what the channel can. Call it before
 * waiting. Returns 0 when everything is written, -EAGAIN when output waits for writability,
 * -EPIPE when the master is gone, -ENOMEM, or the error that broke the channel (-EPROTO,
 * -EXFULL).
 */
int fdp_worker_flush(struct fdp_worker *w);

/*
 * fdp_worker_flush(), waiting up to timeout_ms (-1: no limit) for the channel to take
 * everything: what a worker calls before it exits, so its last acknowledgements and reports
 * reach a master that is slow to read. Returns 0, -ETIMEDOUT (the rest stays queued), or the
 * error of fdp_worker_flush() (-EPIPE: the master is gone).
 */
int fdp_worker_flush_wait(struct fdp_worker *w, int timeout_ms);

/* Non-zero once the master asked this worker to drain. */
int fdp_worker_draining(const struct fdp_worker *w);

/*
 * Non-zero when the master, in asking this worker to drain, asked for its idle connections
 * back: a successor serves next (a reload), so a keep-alive connection between requests can
 * move to it instead of being closed. 0 during a stop, or before the drain.
 */
int fdp_worker_handback(const struct fdp_worker *w);

/*
 * Hand connection fd (with the metadata fdp_worker_accept() gave it) back to the master, which
 * gives it to another worker: for a connection with nothing read of its next request, so the
 * next worker reads that request from its first byte. Queued like a report (it leaves at the
 * next flush). Returns 0, with fd now the channel's (closed once sent; do not report it done
 * and do not shut it down), or a negative errno with fd still the caller's: -ENOBUFS (the
 * channel's queue is full: flush, or close the connection), -EPIPE (the master is gone).
 */
int fdp_worker_return(struct fdp_worker *w, int fd, const struct fdp_conn *conn);

/* ---------------------------------------------------------------------------------------------
 * Routing: the master can look at what a client sends before choosing its worker (--policy
 * route). It peeks (MSG_PEEK) at the start of the stream, so the worker still reads it from its
 * first byte, until an extractor finds a routing key; the key then picks the worker slot by
 * consistent hashing, or by an explicit map. Waiting is bounded in time, bytes and number of
 * connections. docs/ROUTING.md describes the extractors, the map file and the limits.
 * ------------------------------------------------------------------------------------------- */

/* What a key extractor returns. */
#define FDP_ROUTE_KEY_MORE   0  /* no key yet: call again when more bytes have arrived */
#define FDP_ROUTE_KEY_FOUND  1  /* the key is buf[*key_off, *key_off + *key_len), not empty */
#define FDP_ROUTE_KEY_REJECT -1 /* these bytes will never yield a key */

/*
 * A key extractor of your own: look at buf[0, len), the first len bytes the client has sent so
 * far (len grows between calls; the bytes seen before do not change), and return one of
 * FDP_ROUTE_KEY_*. Called on the master's thread: it must not block.
 */
typedef int (*fdp_route_key_fn)(void *arg, const unsigned char *buf, size_t len, size_t *key_off,
                                size_t *key_len);

/* What happens to a client whose key cannot be found (time-out, too many bytes, rejected). */
enum fdp_route_fail {
	FDP_ROUTE_FAIL_CLOSE,   /* close the connection */
	FDP_ROUTE_FAIL_DEFAULT, /* hand it to the worker slot default_worker */
};

#define FDP_ROUTE_TIMEOUT_MS  5000 /* defaults of the limits below, when given as 0 */
#define FDP_ROUTE_MAX_BYTES   8192
#define FDP_ROUTE_MAX_PENDING 1024

/*
 * The configuration structs below, like fdpass.h's channel config, start with size: set it to
 * sizeof the struct, so that a newer library takes an older program's struct (the fields it
 * lacks are zero, their defaults) and refuses a newer one whose new fields it cannot honour.
 */
struct fdp_route_config {
	size_t size;     /* sizeof(struct fdp_route_config) */
	const char *key; /* extractor spec ("line:2", "http-host", ...), or NULL for key_fn */
	fdp_route_key_fn key_fn; /* used when key is NULL */
	void *key_arg;
	const char *map_path; /* --route-map file read at open, or NULL for hashing only */
	/* Time a client has to send its key. From 1000 up, a TCP listener that routes gets
	 * TCP_DEFER_ACCEPT (1 s): the kernel hands a client over once its first bytes are in, and
	 * one that sends nothing after that second, from when its timeout counts. */
	unsigned timeout_ms;
	size_t max_bytes;     /* bytes the key must lie within */
	unsigned max_pending; /* clients waiting for their key at once; past it accept pauses */
	enum fdp_route_fail on_fail;
	unsigned default_worker; /* the slot for FDP_ROUTE_FAIL_DEFAULT */
};

/*
 * Check a routing configuration for a server of `workers` slots: its size is one this library
 * knows, the spec parses, the map file reads and names only existing slots, the limits are sane. Returns 0, or -EINVAL (or the
 * -errno of reading the map) with a one-line reason in err (errlen bytes, always terminated).
 */
int fdp_route_config_check(const struct fdp_route_config *rc, unsigned workers, char *err,
                           size_t errlen);

/* ---------------------------------------------------------------------------------------------
 * Master: the pre-forked server. It owns the listeners, forks the workers (one channel each),
 * accepts every connection, picks a worker by policy and hands the connection over, keeping its
 * own copy until the worker acknowledges it. It supervises the workers, reacts to signals, and
 * answers on a control socket. It logs through a callback and never prints.
 * ------------------------------------------------------------------------------------------- */

enum fdp_policy {
	FDP_POLICY_ROUND_ROBIN, /* each worker in turn */
	FDP_POLICY_LEAST_CONN,  /* the fewest open connections (handed-over ones count at once) */
	FDP_POLICY_HASH_IP,     /* the client's address picks the slot (consistent hashing) */
	FDP_POLICY_ROUTE,       /* the client's routing key picks the slot (see Routing above) */
};

/*
 * How a listener's connections reach the workers (docs/STEERING.md).
 *   PASS    the master accepts each one and hands it over its worker's channel (every
 *           policy, every kind of listener).
 *   KERNEL  a TCP listener of policy round-robin, least-conn or hash-ip: the master makes
 *           one listening socket per worker slot in one SO_REUSEPORT group (the given
 *           listener, which must have been bound with SO_REUSEPORT, is the first), and a BPF
 *           program picks each new connection's slot by the policy; each worker that called
 *           fdp_worker_take_listeners() accepts on its slot's socket, so the master is off
 *           the connection's path. A slot whose worker does not take it (or is dead, hung or
 *           draining) is taken out, and the master accepts what waits there and hands it
 *           over. Needs root or CAP_BPF and Linux 5.12 (5.5 without round-robin); refuses
 *           route and unix: listeners, max_connections and recycle_conns (they need the
 *           master to see every connection): fdp_master_open() fails, and logs why.
 *   AUTO    KERNEL where it can be had, PASS otherwise; one log line per listener says which
 *           and why.
 */
enum fdp_dispatch { FDP_DISPATCH_PASS, FDP_DISPATCH_KERNEL, FDP_DISPATCH_AUTO };

enum fdp_log_level { FDP_LOG_ERROR, FDP_LOG_WARN, FDP_LOG_INFO, FDP_LOG_DEBUG };

/* A worker's output line is logged in pieces of at most this many bytes (capture_output). */
#define FDP_OUTPUT_LINE_MAX 4096

/* One line of a worker's stdout or stderr (capture_output, log_output below). */
struct fdp_output_line {
	unsigned worker; /* its slot */
	pid_t pid;
	int fd;           /* 1: its stdout, 2: its stderr */
	const char *data; /* the bytes as written: any bytes but a newline, not NUL-terminated */
	size_t len;       /* 1 to FDP_OUTPUT_LINE_MAX */
};

struct fdp_master;

/*
 * What the master tells the program through the config's event callback, on the master's
 * thread (never in a worker): what a service manager wants to hear (fdpass serve turns them
 * into systemd's notification protocol, tools/fdpass/notify.c).
 */
enum fdp_master_event {
	/* Every slot's current worker is ready: once at startup, and again when each reload is
	 * complete (then info->reload_failed counts the slots that kept their old worker; with
	 * SIGHUPs queued during a reload, once the last one is complete). */
	FDP_MASTER_READY,
	/* A reload begins (SIGHUP), or one more is queued behind the one running. */
	FDP_MASTER_RELOADING,
	/* A stop begins (SIGTERM, SIGINT, a stop command): listeners close, workers drain (with a
	 * deferred listener, up to 1.5 s later: the master first serves on for the clients the
	 * kernel holds, docs/RELIABILITY.md). Once */
	FDP_MASTER_STOPPING,
	/* Every tick_ms while the event loop runs (a service manager's watchdog, a status). */
	FDP_MASTER_TICK,
};

/*
 * The master's state as an event reports it. size is sizeof the struct the library filled: a
 * program built against a newer header reads a field only when it lies within size.
 */
struct fdp_master_info {
	size_t size;
	unsigned workers;       /* worker slots */
	unsigned ready;         /* slots whose current worker is ready */
	unsigned reload_failed; /* READY after a reload: slots whose successor did not start */
	int reloading;          /* a reload is under way */
	int stopping;           /* the server is stopping */
	uint64_t accepted;      /* connections accepted since the start */
};

struct fdp_master_config {
	size_t size; /* sizeof(struct fdp_master_config) (see struct fdp_route_config) */
	/* Listening sockets (see fdp_listen()); the master takes them and makes them
	 * non-blocking (one inherited blocking, from systemd say, is fine). */
	const int *listeners;
	size_t nlisteners;
	unsigned workers; /* worker slots, >= 1 */
	enum fdp_policy policy;
	unsigned tag;              /* protocol tag sent with every connection (FDP_TAG_*) */
	unsigned drain_timeout_ms; /* how long draining workers may take before SIGKILL */
	const char *control_path;  /* control socket (fdp_unix_listen naming), NULL for none */
	/*
	 * What a worker process runs, in the forked child: worker_main(w, arg) and its return
	 * value is the exit status; or, when worker_main is NULL, exec_argv is executed with the
	 * channel in FDPASS_CHANNEL_FD (see fdp_worker_open_env()). The child is in its own
	 * process group, every signal unblocked and at its default, and it keeps only descriptors
	 * 0, 1, 2 (1 and 2 its output pipes with capture_output, below) and the channel (3;
	 * close-on-exec for worker_main): every other one is closed, so worker_main reopens
	 * what it needs. It is forked from the thread that runs
	 * fdp_master_run(): only that thread exists in the child, so worker_main must not rely on
	 * locks other threads of a multithreaded caller might have held (call
	 * fdp_master_run() before starting threads, or use exec_argv).
	 *
	 * exec_argv[0] is searched on PATH as execvp() does, but before the fork, and executed
	 * with execve() (a file without "#!" that execve() refuses is not run by a shell): from
	 * fork to execve the child makes only async-signal-safe calls, so exec_argv is safe
	 * with threads. An executed worker gets SIGKILL when the thread that forked it ends
	 * (PR_SET_PDEATHSIG), so it never outlives a master killed by SIGKILL; worker_main's
	 * workers see their channel end instead and may finish their connections.
	 *
	 * Every kill of a worker (SIGKILL: a drain or start deadline, a lost channel, a stop) also
	 * kills its process group, after the worker itself, and so does its reaping: what a
	 * worker started cannot go on serving its connections, handed again, or hold its channel.
	 * A process the worker moved to another group or session is its own.
	 */
	int (*worker_main)(struct fdp_worker *w, void *arg);
	void *worker_arg;
	char *const *exec_argv;
	/*
	 * Open connections (handed over, not yet reported done) one worker may hold; past it the
	 * worker is skipped. 0: the soft RLIMIT_NOFILE at fdp_master_run() (which a worker
	 * inherits) less 64 for the worker's own descriptors (half of it when that is 128 or
	 * less; at most 2^20), so a worker is never handed a connection it has no descriptor for
	 * (it would lose its channel and every client).
	 */
	unsigned max_conns_per_worker;
	/* Log sink (called on the master's thread); NULL discards. */
	void (*log)(void *arg, enum fdp_log_level level, const char *msg);
	void *log_arg;
	enum fdp_log_level log_level;
	/*
	 * Per listener, each an array of nlisteners entries or NULL: its policy and its protocol
	 * tag, in place of policy and tag above (which then apply to no listener).
	 */
	const enum fdp_policy *listener_policy;
	const unsigned *listener_tag;
	/* What FDP_POLICY_ROUTE listeners route by; required when one does (read at open). */
	const struct fdp_route_config *route;
	/*
	 * How long a new worker may take to say READY before it is killed (a reload's successor
	 * that misses it leaves the old worker serving; a first worker is started again).
	 * 0: 60000.
	 */
	unsigned start_timeout_ms;
	/*
	 * How long a ready worker may leave a connection unacknowledged (its ACK leaves as soon as
	 * it takes the connection from its channel, whatever the connection then does, so a
	 * long-lived connection is never mistaken for a hang). A worker past it is hung: it gets
	 * nothing more, is killed, and every connection it had not acknowledged goes to another
	 * worker; then it is replaced. A worker must therefore read its channel at least this
	 * often. 0: 2000.
	 */
	unsigned ack_timeout_ms;
	/*
	 * Limits (fdpass serve --user, --max-requests, --max-lifetime, --max-connections; every
	 * one off when zero).
	 *
	 * worker_set_ids: every worker runs as worker_uid and worker_gid while the master keeps
	 * its own credentials (it stays root, binds the listeners, owns the control socket and the
	 * log). In the forked child, before worker_main or the program runs: the supplementary
	 * groups are dropped (setgroups() to none), then setgid(), setuid(), and
	 * PR_SET_NO_NEW_PRIVS (a setuid program it runs gains nothing). A step that fails ends
	 * the child and is logged at FDP_LOG_ERROR ("cannot run as uid U gid G: setuid: REASON");
	 * in the first generation fdp_master_run() then returns -EPERM. The worker's channel is
	 * inherited; what else it opens must be open to that user. Needs a master allowed to set
	 * those ids (CAP_SETUID, CAP_SETGID: root).
	 */
	int worker_set_ids;
	uid_t worker_uid;
	gid_t worker_gid;
	/*
	 * Recycling: a worker that has been handed recycle_conns connections (the master sees
	 * connections, not the requests on them: a keep-alive connection counts once), or has been
	 * up recycle_ms, is replaced as a reload replaces it, slot by slot: its successor starts
	 * first and takes the slot once it says READY, then the old one drains (it keeps taking
	 * connections meanwhile, so it may be handed a few more than recycle_conns). A successor
	 * that fails to start leaves it serving; the next try comes 10 s later. recycle_jitter_pct
	 * (0..100) raises each worker's two limits by a random 0..pct percent of theirs, so that
	 * workers started together are not replaced together.
	 */
	unsigned recycle_conns;
	unsigned recycle_ms;
	unsigned recycle_jitter_pct;
	/*
	 * The most connections open at once over every worker: held by the master (waiting, in
	 * flight, being routed) or handed and not reported done. At it the master stops accepting
	 * (the listeners leave its epoll; the kernel's backlog holds new clients) until the count
	 * drops below it. 0: no limit.
	 */
	unsigned max_connections;
	/*
	 * Reap every child, not only the workers: processes orphaned below the master (a worker's
	 * daemonised grandchild) are re-parented to it and would stay zombies. Nonzero: the master
	 * also makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so that those orphans
	 * come to it. As PID 1 (a container's init) it reaps them whatever this says. A caller
	 * with children of its own must not set it: they are reaped too.
	 */
	int reap_all;
	/*
	 * Hot upgrade (docs/OPERATIONS.md, Upgrade). upgrade non-zero: SIGUSR2 starts a new master,
	 * upgrade_argv (argv[0] an absolute path, executed with execve(), not searched), with
	 * FDPASS_UPGRADE_FD naming its end of a socketpair and no LISTEN_* variables, in a session
	 * of its own and not killed with this one. It gets every listener, the control socket and
	 * the metrics listener over that socketpair (fdp_upgrade_receive()), binds nothing it was
	 * handed, and says when its workers are ready; this master then stops accepting, drains
	 * its workers, hands the idle keep-alive connections they give back to the new master,
	 * and fdp_master_run() returns 0. A new master that exits, or is not ready within upgrade_timeout_ms (0: 60000),
	 * is killed (its process group) and this one serves on as before; a later SIGUSR2 may try
	 * again. 0: upgrades off (SIGUSR2 is then not read).
	 */
	int upgrade;
	char *const *upgrade_argv;
	unsigned upgrade_timeout_ms;
	/*
	 * Per listener (nlisteners entries), the name it was opened from (a --listen argument,
	 * "127.0.0.1:0"), handed over with it so a new master finds it by the same name; NULL:
	 * its bound address.
	 */
	const char *const *listener_names;
	/*
	 * Called on the master's thread when the new master of an upgrade is ready, with its pid,
	 * before this master stops (a service manager's MAINPID=).
	 */
	void (*upgrade_ready)(void *arg, pid_t pid);
	void *upgrade_arg;
	/*
	 * In a master started by an upgrade: what fdp_upgrade_receive() gave, after the caller
	 * took the listeners it wants (passed in listeners above, as if bound). The master takes
	 * it (freed also on failure): it takes the control socket from it when control_path is the
	 * old one's, closes the listeners nobody took (the old master keeps accepting on those
	 * until it stops), and tells the old master once every worker is ready. NULL: none.
	 */
	struct fdp_upgrade *upgraded_from;
	/*
	 * Events (enum fdp_master_event above): event(event_arg, ev, info) on the master's thread,
	 * info valid for the call only. It must not block (the master serves every connection)
	 * and must not call the master. NULL: none.
	 */
	void (*event)(void *arg, enum fdp_master_event ev, const struct fdp_master_info *info);
	void *event_arg;
	unsigned tick_ms; /* FDP_MASTER_TICK every tick_ms (at least 1); 0: no ticks */
	/*
	 * Per listener, an array of nlisteners entries or NULL: non-zero for a socket another
	 * process holds too and keeps after this master (systemd's socket unit or fd store, a
	 * supervisor that passed it). At a stop the master leaves such a socket as it found it:
	 * no filter against new handshakes, its queue not emptied (the next server accepts what
	 * waits there), its Unix socket file not removed.
	 */
	const unsigned char *listener_shared;
	/*
	 * Entries ("NAME=VALUE", NULL-ended) added to the environment of an upgrade's new master:
	 * what the program took out of its own for the workers' sake and the next master needs
	 * (systemd's NOTIFY_SOCKET and WATCHDOG_USEC). NULL: none. Read at each upgrade: must stay
	 * valid until fdp_master_close().
	 */
	char *const *upgrade_env;
	/*
	 * Reloading the configuration (fdpass serve --config). On SIGHUP (or the control
	 * socket's reload), before any worker is replaced, the master calls
	 * reload(reload_arg, next, why, why_size) on its thread, with next a copy of the
	 * configuration in force (size: this library's; route: NULL). The callback may change in
	 * it workers, policy, tag, listener_policy, listener_tag, route, drain_timeout_ms,
	 * start_timeout_ms, ack_timeout_ms, worker_main, worker_arg, exec_argv, log_level, the
	 * new workers' ids (worker_set_ids, worker_uid, worker_gid), recycle_conns, recycle_ms,
	 * recycle_jitter_pct (for workers started from then on) and max_connections, and
	 * returns 0; or a negative errno to refuse the reload, with a one-line reason in why
	 * (why_size bytes; logged, and the control socket's answer): then nothing changes and no
	 * worker is replaced. What cannot change without new listeners or a new process is
	 * ignored: listeners, nlisteners, control_path, log, log_arg, max_conns_per_worker,
	 * reap_all, reload, reload_arg.
	 *   route: NULL keeps the routing in force (refused when the worker count changes, or a
	 *          listener starts routing); set, the router is built again from it, its map
	 *          file read again, and the clients still sending their key keep waiting.
	 *   workers: grown, the new slots start a worker at once; shrunk, the slots past the
	 *          count get no new connection, and their workers drain (as at a reload) once
	 *          the remaining slots' successors are ready; they are not replaced. hash-ip's
	 *          and route's rings are rebuilt for the new count.
	 * The master refuses, and logs, a configuration it cannot take (workers out of 1..1024,
	 * no program, a route that fails fdp_route_config_check()): the old one stays in force
	 * and no worker is replaced. Otherwise every worker is replaced, as by SIGHUP without a
	 * callback. The arrays and route are read before the reload goes on; exec_argv and
	 * worker_arg are kept: they must stay valid while they are in force, that is until a
	 * later reload is applied (the next call's next shows the ones in force) or
	 * fdp_master_close(). NULL: SIGHUP only replaces the workers.
	 */
	int (*reload)(void *arg, struct fdp_master_config *next, char *why, size_t why_size);
	void *reload_arg;
	/*
	 * A listening stream socket (fdp_listen(), TCP or Unix) on which the master serves its
	 * metrics over HTTP: GET /metrics answers them in Prometheus's text format (every metric
	 * is listed in docs/SERVE.md), any other path 404, any other method 405; one request per
	 * connection. NULL (or a pointer to -1): none. The master takes *metrics_fd like the
	 * listeners (closed on failure too; made non-blocking) and serves it from its loop without
	 * ever waiting for a client: at most 16 at once, each with a deadline.
	 */
	const int *metrics_fd;
	/*
	 * The workers' output (zero: off, as before these fields). Non-zero: each worker gets a
	 * pipe as its stdout (1) and another as its stderr (2), in place of the caller's; the
	 * master reads both in its loop and logs every line, stdout's at FDP_LOG_INFO, stderr's
	 * at FDP_LOG_WARN (so log_level filters them), through log_output, or through log as
	 * "worker N pid P: LINE" when log_output is NULL. A line is what ends with a newline,
	 * which is not part of it (nor a carriage return before it); an empty one is skipped; a
	 * line longer than FDP_OUTPUT_LINE_MAX bytes is logged in pieces of that size; what is
	 * left without a newline when the worker is reaped is logged as a last line. The master
	 * reads at most FDP_OUTPUT_LINE_MAX bytes of each pipe per wakeup, so a worker that
	 * floods its output slows itself (its writes block once the pipe is full), not the
	 * master. What a worker wrote before it died is logged before its exit is. The pipes
	 * are the same for what the worker starts (its process group); stdout is a pipe, so a
	 * program's stdio buffers it: flush it, or write lines to stderr.
	 */
	int capture_output;
	void (*log_output)(void *arg, enum fdp_log_level level, const struct fdp_output_line *line);
	/*
	 * Called with log_arg, on the master's thread, when SIGUSR1 arrives: reopen the log
	 * (logrotate's convention: the file was renamed, open the path again). Setting it adds
	 * SIGUSR1 to the signals fdp_master_run() reads from its signalfd, which the caller must
	 * then block too. NULL: SIGUSR1 is not the master's (and need not be blocked).
	 */
	void (*reopen)(void *arg);
	/*
	 * Kernel dispatch (enum fdp_dispatch above): every listener's, or per listener an array of
	 * nlisteners entries (NULL: dispatch for all). 0: FDP_DISPATCH_PASS. Read at open: a
	 * reload keeps each listener's dispatch, and may change the worker count and a steered
	 * listener's policy (not to route: refused, as max_connections and recycle_conns are).
	 */
	enum fdp_dispatch dispatch;
	const enum fdp_dispatch *listener_dispatch;
	/*
	 * Per listener, an array of nlisteners entries or NULL: non-zero for a TCP listener whose
	 * clients speak first (HTTP, most request-response protocols). It gets TCP_DEFER_ACCEPT
	 * (1 s), and so do the slot sockets of its steering group under kernel dispatch. The
	 * kernel then hands a connection over, to the master or to a worker, only once its first
	 * bytes are in, which saves a read that finds nothing and an epoll round trip on about
	 * half the connections (docs/BENCHMARKS.md). A client that sends nothing is handed over
	 * after that second. At a stop, a client that has connected but sends only after its
	 * listener closed is reset, where it would otherwise be served: under load, dozens per
	 * stop (docs/RELIABILITY.md).
	 * Wrong where the server speaks first: every client would wait 1 s. Read at open; a
	 * route listener is deferred anyway (struct fdp_route_config's timeout_ms). A socket
	 * that refuses the option (a Unix one) is served undeferred, with a warning logged.
	 */
	const unsigned char *listener_defer;
	/*
	 * Dispatcher processes for the route listeners (docs/ROUTING.md, "Several
	 * dispatchers"): 0, the master accepts and routes their clients itself, as before this
	 * field. N (at most 16): the master forks N dispatchers, which accept on the route
	 * listeners (one accept queue, shared), read each client's key and hand it to its slot's
	 * worker over that worker's own channel, as the master would; every one routes a key to
	 * the same slot. The routed connections per second are then N cores' worth, not the
	 * master's one; the master only forwards the workers' ACKs to them. Workers need nothing
	 * new. The master supervises them: one that dies is restarted (what it was reading dies
	 * with it; what waits in the listener's queue does not), a reload's new routing starts
	 * new ones while the old ones finish, and a stop waits for them. The other listeners stay
	 * the master's. Read at open.
	 */
	unsigned dispatchers;
};

/*
 * The new master's side of an upgrade. An old master starts it with FDPASS_UPGRADE_FD set;
 * fdp_upgrade_receive() reads what the old one handed over (waits up to timeout_ms) and
 * unsets the variable. Returns 1 and sets *out, 0 (*out NULL) when this process was not
 * started by an upgrade, or a negative errno (-EPROTO: not an upgrade's message).
 */
struct fdp_upgrade;
int fdp_upgrade_receive(struct fdp_upgrade **out, int timeout_ms);

/*
 * Take the listener the old master had under name (its listener_names entry, else its
 * address, "127.0.0.1:8080", "unix:/path"): returns its descriptor, now the caller's, or
 * -ENOENT (none, or taken already).
 */
int fdp_upgrade_take_listener(struct fdp_upgrade *u, const char *name);

/*
 * The same for the old master's metrics listener (its metrics_fd), by its address: returns its
 * descriptor, now the caller's (pass it as metrics_fd), or -ENOENT.
 */
int fdp_upgrade_take_metrics(struct fdp_upgrade *u, const char *name);

/*
 * Non-zero when fd, taken from u, was a shared listener of the old master (its config's
 * listener_shared: systemd keeps it too): give it the same mark in the new master's config.
 */
int fdp_upgrade_shared(const struct fdp_upgrade *u, int fd);

/* Free u (only when it is not given to fdp_master_open()): closes what nobody took. */
void fdp_upgrade_free(struct fdp_upgrade *u);

/*
 * Make a master: takes the listeners and *metrics_fd (closed on failure too) and sets
 * O_NONBLOCK on them, binds the control socket. cfg is copied, and so is cfg->route; the
 * strings and arrays they point to (control_path, exec_argv, listener_policy, listener_tag,
 * route->key and map_path) are read here and by fdp_master_run() and must stay valid until
 * fdp_master_close() (listener_shared is read here only). Returns 0 and sets *out, or a
 * negative errno (-EINVAL: a bad config, a size this library does not know, or a listener,
 * the metrics one too, that is not listening; -EADDRINUSE: a live server already answers on
 * the control path).
 */
int fdp_master_open(struct fdp_master **out, const struct fdp_master_config *cfg);

/*
 * Fork the workers and run the event loop until the server stops. SIGTERM, SIGINT, SIGHUP and
 * SIGCHLD are read from a signalfd, and so are SIGUSR1 when cfg.reopen is set and SIGUSR2 when
 * cfg.upgrade is: the caller must have blocked them (sigprocmask) in every thread first, before
 * starting other threads (a thread with one unblocked takes it, and the master never sees it)
 * (SIGCHLD is used where pidfd_open() is missing, and to reap orphans with reap_all or as PID 1;
 * otherwise the master reaps only its own workers, by pid). SIGTERM/SIGINT drain and stop (a
 * second one stops at once); SIGHUP replaces every worker; SIGUSR1 calls cfg.reopen; SIGUSR2
 * starts an upgrade. A caller that sets neither reopen nor upgrade need block only the four:
 * SIGUSR1 and SIGUSR2 are then left alone. In a forked worker it never returns: the child
 * _exit()s with worker_main's status. Returns 0 after a stop, or a negative errno:
 *   -EINVAL   one of those signals is not blocked in the calling thread: nothing is run
 *             (unblocked, a SIGTERM would kill the master and leave its workers behind);
 *   -ENOEXEC  a worker of the first generation could not be executed: its execve() failed
 *             (the errno is logged at FDP_LOG_ERROR, "cannot execute PATH: REASON"), or it
 *             exited with status 126 or 127 before READY, as a shell that cannot run its
 *             command does. The workers already started are killed by fdp_master_close().
 *             (Later, a reload's new worker that cannot be executed leaves the old one
 *             serving, and a replacement is tried again after a pause; both are logged.)
 *   -EPERM    a worker of the first generation could not take worker_uid and worker_gid
 *             (logged, with the step that failed and why).
 *   other     the event loop could not run (epoll, signalfd).
 */
int fdp_master_run(struct fdp_master *m);

/* Close the master: listeners, control socket (its file is removed), channels. NULL: no-op. */
void fdp_master_close(struct fdp_master *m);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* FDPASS_RUNTIME_H */
