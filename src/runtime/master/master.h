/*
 * The master's internal state, shared by its files, which call each other one way only, each
 * calling only files below it (docs/ARCHITECTURE.md; tools/check-master-calls.sh, a test,
 * fails on a cycle):
 *
 *   loop.c          the event loop, signals, timers, and when flagged failures are settled
 *   control.c       the control socket: its commands (status, metrics, reload, stop, upgrade)
 *   reconfig.c      a reload's new configuration (cfg.reload): built, then applied or refused
 *   upgrade.c       a hot upgrade: starting a new master, handing it the sockets, rollback
 *   metrics.c       the metrics: Prometheus's text format, served over HTTP (--metrics)
 *   recycle.c       replacing workers past their connections or lifetime (successor first)
 *   orphans.c       as PID 1 (or reap_all): reaping the children that are not workers
 *   linger.c        a stop with a deferred listener: serving on while the kernel holds its
 *                   clients' handshakes, before the listeners close
 *   supervise.c     forking, reaping, backoff, drain and reload; settling what was flagged
 *   disps.c         the dispatchers (cfg.dispatchers): forking and reaping them, telling them
 *                   of the workers, forwarding the workers' ACKs to them
 *   dispatcher.c    a dispatcher's own process: accepting and routing, its own loop
 *   child.c         forking a worker, and its first steps before its handler or program runs
 *   output.c        the workers' stdout and stderr: a pipe each, read and logged line by line
 *   kernel.c        kernel dispatch: steered listeners' slot sockets, given to the workers;
 *                   and every listener's deferral (TCP_DEFER_ACCEPT), slot sockets included
 *   dispatch.c      accepting, and the workers' channels: READY, ACK, DONE, flushing
 *   route_policy.c  the route policy: reading each connection's routing key
 *   conns.c         the owner of every connection the master holds: pending, in flight,
 *                   held for routing; the only file that hands, counts or closes them
 *   policy.c        choosing a worker
 *   log.c           the log, and the program's event callback
 *
 * A failure met below supervise.c (a worker's channel failing in a hand-over, a read or a
 * flush) is not handled in place: the worker is flagged (fdp__proc_flag_lost()), used no more
 * (fdp__proc_usable()), and the loop has supervise.c settle it (fdp__supervise_flagged()).
 */
#ifndef FDP_MASTER_H
#define FDP_MASTER_H

/* Only the master's own files see its state (docs/ARCHITECTURE.md, the layers). */
#if defined(FDP_LAYER_MECH) || defined(FDP_LAYER_PROTO) || defined(FDP_LAYER_WORKER) ||          \
        defined(FDP_LAYER_ROUTE) || defined(FDP_LAYER_STEER)
#error "the master's state is its own: no layer beneath it may include master.h"
#endif

#include "fdpass_runtime.h"
#include "route.h"
#include "util.h"

#include <stdint.h>
#include <sys/socket.h>

/* Limits: every one explicit and enforced (docs/ARCHITECTURE.md). */
#define FDP__MAX_WORKERS     1024
#define FDP__MAX_INFLIGHT    4096  /* unacknowledged connections per worker */
#define FDP__MAX_PENDING     4096  /* accepted, waiting for a worker; past it accept pauses */
#define FDP__PENDING_TIMEOUT 10000 /* ms a connection may wait for a worker before closing */
#define FDP__ACCEPT_BATCH    64
#define FDP__INPUT_BATCH     64    /* messages read from one worker per wakeup */
#define FDP__EMFILE_PAUSE_MS 100   /* a socket whose accept() fails sits out this long */
#define FDP__LOG_INTERVAL_MS 10000 /* a repeated warning is logged at most this often */
#define FDP__LOST_GRACE_MS   1000  /* a worker whose channel closed has this long to exit */
#define FDP__READY_WAIT_MS   60000 /* a new worker's time to say READY, unless configured */
#define FDP__ACK_WAIT_MS     2000  /* a ready worker's time to ACK a connection, unless configured */
#define FDP__STABLE_MS       1000  /* a worker up this long resets the backoff */
#define FDP__BACKOFF_BASE_MS 100
#define FDP__BACKOFF_MAX_MS  10000
#define FDP__RETRY_MIN_MS    1         /* flush retries after -ETOOMANYREFS or -ENOMEM: 1 ms ... */
#define FDP__RETRY_MAX_MS    64        /* ... doubling to 64 ms */
#define FDP__FD_RESERVE      64        /* a worker's descriptors besides its connections */
#define FDP__CONN_CAP_MAX    (1 << 20) /* per-worker open connections when nothing limits */
#define FDP__ACK_BUCKETS     13        /* the ACK latency histogram's bounds (fdp__ack_bound_ns) */
#define FDP__CONTROL_CLIENTS 16        /* control clients at once; past it none is accepted */
#define FDP__CONTROL_LINE    128       /* a command line's bytes, with its newline */
#define FDP__CONTROL_READ_MS 500       /* a silent control client gets the status after it */
#define FDP__DEFER_S         1 /* a deferred listener's TCP_DEFER_ACCEPT: a silent client's wait */
#define FDP__CHANNEL_POLL_MS 1 /* with dispatchers, a busy worker's channel is read this often */

/* What an epoll registration points at. */
enum fdp__watch_kind {
	W_LISTENER,
	W_SIGNAL,
	W_CONTROL,
	W_CTLCLIENT,
	W_CHANNEL,
	W_PIDFD,
	W_ROUTE,
	W_OUTPUT,
	W_METRICS,        /* the metrics listener (metrics.c) */
	W_METRICS_CLIENT, /* one of its clients: index is its place in metrics.c's table */
	W_UPGRADE,
	W_KSLOT, /* a kernel listener's slot socket no worker accepts on (kernel.c) */
	W_DISP,    /* a dispatcher's channel (disps.c; in a dispatcher: the master's) */
	W_DISPPID, /* a dispatcher's pidfd (disps.c) */
};

struct fdp__watch {
	enum fdp__watch_kind kind;
	unsigned index; /* listener index; W_OUTPUT: 0 stdout, 1 stderr */
	unsigned sub;   /* W_KSLOT: the slot */
	struct fdp__proc *proc;
	struct fdp__disp *disp; /* W_DISP, W_DISPPID */
};

/* A steering group's descriptors as an old master handed them (upgrade.c, for kernel.c). */
struct fdp__kparts {
	unsigned slots;
	int *fds; /* fds[0]: the listener itself (the master's); the others ours until adopted */
	int prog, sockarray, state;
	int policy; /* enum fdp__steer_policy of prog */
};

/* One slot of a kernel listener (kernel.c's). */
struct fdp__kslot {
	int watched;              /* in the master's epoll: no worker accepts there now */
	long long paused_until;   /* accept() failed on it (EMFILE...): not watched until then */
	uint32_t seen;            /* the worker's accepted[] word at the last look */
	uint32_t counted;         /* and what of it is in the listener's kaccepted */
	uint32_t stolen_seen;     /* the stolen[] word at the last look (other workers took) */
	long long stalled_since;  /* connections queued and none accepted since (0: not) */
	struct fdp__watch w;
};

/* A connection the master holds: accepted and not yet handed, or handed and not acked. */
struct fdp__conn {
	uint64_t id;
	uint64_t seq; /* handed: its CONN message's place in the channel (fdp_channel_sent()) */
	int fd;
	unsigned listener;
	long long since_ms;
	long long handed_ms; /* in flight: when it was handed to its worker */
	long long handed_ns; /* the same in nanoseconds: the ACK latency histogram's */
	int routed;    /* a routing key (or the route failure action) chose its slot: */
	unsigned slot; /* this one, which it keeps if handed again (route.c) */
	/* The route failure action chose that slot (a second failure closes it); and, while it is
	 * held for the slot's worker (conns.c), when the failure action runs. */
	int route_failed;
	long long held_until;
	int again; /* handed before (taken back, handed back): not counted again for recycling */
	socklen_t peer_len;
	struct sockaddr_storage peer;
};

/*
 * Dispatchers (cfg.dispatchers, disps.c and dispatcher.c). A dispatcher's connection ids carry
 * its tag (1..FDP__DISP_TAGS-1) in bits 56..62 and its process's generation in bits 48..55,
 * so that the master knows whose an ACK is, and a late ACK for a dead dispatcher's
 * connection never names one of its successor's. The master's own ids stay below 2^48.
 */
#define FDP__MAX_DISPATCHERS 16
#define FDP__DISP_TAGS       64 /* a reload's new ones start while the old ones finish */
#define FDP__DISP_TAG_SHIFT  56
#define FDP__DISP_GEN_SHIFT  48

static inline unsigned fdp__disp_tag(uint64_t id)
{
	return (unsigned)(id >> FDP__DISP_TAG_SHIFT) & 0x7f;
}

/* The messages between the master and a dispatcher, on their socketpair. */
#define FDP__D_WORKER  1  /* master: a worker to hand to (slot, generation, pid; its channel) */
#define FDP__D_DRAIN   2  /* master: hand that worker nothing more, then say DRAINED */
#define FDP__D_LOST    3  /* master: that worker is gone; take back what it did not ACK */
#define FDP__D_ACKS    4  /* master: ids of this dispatcher's the workers acknowledged */
#define FDP__D_STOP    5  /* master: accept no more, finish what is held, exit */
#define FDP__D_DRAINED 16 /* dispatcher: it hands that worker nothing more */
#define FDP__D_HUNG    17 /* dispatcher: that worker left a connection unacknowledged */

/* What a worker message names: its slot and process generation. */
struct fdp__d_worker {
	uint32_t slot, generation;
	int32_t pid;
};

/* What a dispatcher counts, where the master reads it: its row of a shared mapping. */
struct fdp__disp_row {
	uint64_t accepted, handed, rehanded, acked;
	uint64_t closed[4]; /* CLOSE_NREASONS */
	uint64_t route[10]; /* route_policy.c's counters */
	uint64_t waiting, held;
};

/* Shared by the master and its dispatchers (MAP_SHARED): the master writes open[] and
 * open_total, each dispatcher its row. */
struct fdp__disp_shared {
	uint64_t open_total;                 /* fdp__conns_open() of the master */
	uint64_t open[FDP__MAX_WORKERS];     /* per slot: its current worker's open connections */
	struct fdp__disp_row row[FDP__DISP_TAGS];
};

/* One dispatcher process, as the master sees it (disps.c's). */
struct fdp__disp {
	unsigned tag, generation;
	pid_t pid;
	int pidfd;
	struct fdp_channel *ch;
	struct fdp__watch wch, wpid;
	int retiring; /* sent STOP: it finishes what it holds, and is not started again */
	int killed;   /* SIGKILL sent (the stop's time was up) */
	int epollout; /* its channel is watched for writability (something waits to leave) */
	long long started_ms;
	struct fdp__disp *next;
};

/* A FIFO of connections that can also take items at its front (re-handed ones go first). */
struct fdp__ring {
	struct fdp__conn *v;
	size_t head, n, cap;
};

enum fdp__proc_state { PROC_STARTING, PROC_READY, PROC_DRAINING, PROC_DEAD };

/* One worker process. A slot has one current process; during a reload also draining ones. */
struct fdp__proc {
	unsigned slot;
	unsigned generation;
	pid_t pid;
	int pidfd;
	struct fdp_channel *ch; /* NULL once the channel is lost */
	struct fdp_channel
	        *lost_ch; /* lost with connections in flight: read for ACKs when reaped */
	enum fdp__proc_state state;
	uint64_t open, served;
	long long started_ms, drain_deadline;
	long long start_deadline; /* not READY by then: killed (0: READY, or killed already) */
	long long kill_at;        /* channel lost, process not yet gone: SIGKILL then (0: none) */
	int dirty, epollout;
	int polled;       /* its channel is read on the master's timer (fdp__channel_poll()) */
	int unwatched_in; /* and so not watched for input (or, in a dispatcher, never) */
	int said_ready;
	int accepts_own; /* said ACCEPTS: takes kernel listeners' slot sockets (kernel.c) */
	int listening;   /* and was sent them (LISTEN): accepts on them until its drain */
	unsigned listen_next; /* the listener whose LISTEN goes next (kernel.c) */
	long long ready_ms; /* when it said READY: its acknowledgement deadlines start no earlier */
	int start_failed;   /* killed for not saying READY in time: a late one is ignored */
	int retry_ms;       /* flush said "later" (-ETOOMANYREFS, -ENOMEM): current backoff */
	long long retry_at; /* and when to flush again (0: not waiting) */
	int drain_pending;  /* asked to drain; the DRAIN has not left yet (fdp__send_drains()) */
	/* Flagged where they were met, settled later by supervise.c (fdp__supervise_flagged()): */
	int lost, lost_err; /* the channel failed (lost_err: why; 0 for end of file) */
	int ready_seen;     /* said READY: it may take its slot (a reload's successor) */
	/* Recycling (recycle.c): connections ever handed to it (conns.c counts them); its two
	 * limits, jitter included, set once it is ready (0: none); recycling: its successor was
	 * started because it reached one; not tried again before retry_at after one failed. */
	uint64_t handed, recycle_conns;
	long long recycle_at, recycle_retry_at;
	int recycle_set, recycling;
	struct fdp__ring inflight;
	/* Dispatchers (disps.c): the tags of those that must still say they hand p nothing more
	 * before its DRAIN may leave. In a dispatcher's process (dispatcher.c): its own flags
	 * for p, and what p holds that it did not hand (the master's count, from the shared
	 * mapping), for the per-worker cap. */
	uint64_t disp_wait;
	unsigned disp_flags;
	uint64_t open_other;
	struct fdp__watch wch, wpid;
	/* cfg.capture_output: its stdout and stderr (output.c's; NULL: not captured, or closed).
	 * Their watches are here, in p, which outlives a round of events: out does not. */
	struct fdp__output *out;
	struct fdp__watch wout[2];
	struct fdp__proc *next;
};

struct fdp__slot {
	struct fdp__proc *proc; /* the current process, NULL while waiting to respawn */
	struct fdp__proc *next; /* reload: the successor, current once it says READY */
	unsigned generation;
	unsigned restarts, quick_fails;
	long long respawn_at; /* 0: nothing scheduled */
	uint64_t served;      /* by every process this slot has had */
	/* Counted by conns.c for the metrics (metrics.c), over every process of the slot: */
	uint64_t handed, acked, rehanded, returned, lost, ack_timeouts;
	uint64_t kaccepted; /* kernel dispatch: accepted by its workers themselves (kernel.c) */
};

/*
 * Why the master closed a connection it held. CLOSE_ROUTE: the route policy's own reasons (no
 * key, the failure action), which its counters tell apart; never in the "closed unserved"
 * totals of the status and the stop log, which did not count them before conns.c either.
 */
enum fdp__close_reason {
	CLOSE_NO_WORKER,
	CLOSE_SHUTDOWN,
	CLOSE_ERROR,
	CLOSE_ROUTE,
	CLOSE_NREASONS
};

struct fdp__listener {
	int fd;
	long long paused_until; /* EMFILE backoff; 0: accepting */
	int registered;
	enum fdp_policy policy; /* this listener's (config listener_policy, else policy) */
	unsigned tag;           /* the protocol tag its connections carry */
	/* An upgrade's new master took it (upgrade.c): at the stop it is closed here with no
	 * handshake filter and its file left, since the new master accepts on it. In a new
	 * master, set too for what it took from the old one until it has said READY: the old
	 * master serves on it until then, and a new master that fails must leave it as it is. */
	int handed;
	int shared;             /* config listener_shared: left as it is at a stop */
	int defer;              /* config listener_defer: its clients speak first */
	int deferred;           /* TCP_DEFER_ACCEPT is set on it (fdp__kernel_defer()) */
	/* Kernel dispatch (kernel.c): the steering group, whose slot 0 socket fd is; NULL when
	 * the master accepts here itself. */
	struct fdp__steer *steer;
	struct fdp__kslot *kslots;
	/* An upgrade: the group went from the old master to the new one, which shares it (both
	 * masters' workers accept on its sockets) until the old one is gone: while handed, only
	 * the new master (once ready) decides which slots are live, and only the old one's
	 * stop leaves them alone. In a new master: the group's parts the old one handed, until
	 * fdp__kernel_open() adopts them. */
	int kadopted;
	struct fdp__kparts *kparts;
	uint64_t kaccepted; /* accepted by the workers themselves, as far as seen */
	struct fdp__watch w;
	/* Counted by conns.c for the metrics (metrics.c): */
	uint64_t accepted, handovers, closed[CLOSE_NREASONS];
};

/*
 * One of a worker's output pipes (cfg.capture_output), owned by output.c: the master's read
 * end, and until the fork the worker's write end (which the child puts on 1 or 2).
 */
struct fdp__output {
	int fd;       /* the master's (read, non-blocking); -1 once at end of file or closed */
	int child_fd; /* the worker's, open from fdp__output_open() to fdp__output_forked() */
	size_t len;   /* bytes of an unfinished line in buf */
	char buf[FDP_OUTPUT_LINE_MAX];
};

/* A control client (control.c): reading its command, or waiting for what it asked. */
enum fdp__ctl_wait { CTL_READING, CTL_WAIT_RELOAD, CTL_WAIT_STOP, CTL_WAIT_UPGRADE };

struct fdp__ctl_client {
	int fd; /* -1: a free entry */
	int watched;
	enum fdp__ctl_wait waiting;
	size_t len;
	char line[FDP__CONTROL_LINE];
	long long deadline;     /* reading: nothing by then is a request for the status */
	unsigned reload_target; /* CTL_WAIT_RELOAD: answered once reloads_done reaches it */
	unsigned refused_base;  /* CTL_WAIT_RELOAD: reloads_refused when it asked */
	struct fdp__watch w;
};

/* A warning that may repeat fast: logged at most once per FDP__LOG_INTERVAL_MS. */
struct fdp__ratelimit {
	long long next_ms;
	unsigned held; /* not logged since the last one */
};

/*
 * Every connection the master holds, owned by conns.c alone: only it creates, moves, hands,
 * counts and closes them; the other files read these fields and call it. With each worker's
 * in-flight ring (struct fdp__proc), which conns.c owns too.
 */
struct fdp__conns {
	struct fdp__ring pending; /* accepted, waiting for any worker */
	struct fdp__ring held;    /* routed, waiting for their own slot's worker (held_until) */
	size_t routing;           /* lent to route_policy.c while it reads their key */
	unsigned hold_ms;         /* the route timeout: how long a routed one waits for its slot */
	uint64_t next_id;
	uint64_t accepted, handed, rehanded, closed[CLOSE_NREASONS];
	uint64_t ack_timeouts; /* workers killed for leaving a connection unacknowledged */
	uint64_t returned;     /* handed back by a draining worker, for another to serve */
	uint64_t lost;         /* acknowledged by a worker that died before reporting them done */
	uint64_t acked;        /* acknowledged by their worker */
	/* Time from hand-over to ACK (metrics.c's buckets): count per bucket (not cumulative;
	 * the last is past the largest bound), and the sum in nanoseconds. */
	uint64_t ack_latency[FDP__ACK_BUCKETS + 1];
	uint64_t ack_latency_sum_ns;
	/* After an upgrade's commit: what goes to the new master (upgrade.c sends it). */
	struct fdp__ring forward;
	uint64_t forwarded;
};

/* Upgrade message types on the socketpair between two masters (docs/PROTOCOL.md). */
#define FDP__UP_HANDOVER      1 /* old -> new: every socket, each with its kind, index and name */
#define FDP__UP_READY         2 /* new -> old: its workers are ready; which sockets it took */
#define FDP__UP_CONN          3 /* old -> new: a connection with nothing of it read yet */
#define FDP__UP_END           4 /* old -> new: nothing more follows */
#define FDP__UP_KIND_LISTENER 1
#define FDP__UP_KIND_CONTROL  2
#define FDP__UP_KIND_METRICS  3 /* the metrics listener (metrics.c) */
#define FDP__UP_KIND_STEER    4 /* part of a steered listener's group: "slot:K", "prog:POLICY",
                                 * "sockarray", "state" (kernel.c) */
#define FDP__UP_FLAG_SHARED   0x1 /* an entry's flags: a listener another process keeps too */
#define FDP__UP_MAX_SOCKETS   253 /* SCM_RIGHTS' limit (FDP_MAX_FDS): one message */

/* A hot upgrade, owned by upgrade.c. */
struct fdp__upgrade {
	/* This master is the old one: a new master is starting (pid != 0) or has taken over. */
	pid_t pid;
	int pidfd, sock; /* upgrade.c's; -1 when closed */
	long long deadline;
	int committed;  /* the new master is ready: this one stops and forwards (conns.c reads) */
	int ended;      /* END sent */
	int closed;     /* it closed its socket before it was ready: it has a second to exit */
	int ctl_handed; /* the new master took the control socket: closed here, file left (in a
	                 * new master: it took the old one's and has not said READY yet) */
	struct fdp__watch wsock, wpid;
	void (*done)(struct fdp_master *m, void *arg, int result); /* fdp__upgrade_start()'s */
	void *done_arg;
	/* This master is the new one: the old one's socket, until it says END or is gone. */
	struct fdp_upgrade *from;
	int from_sock, said_ready;
	struct fdp__watch wfrom;
};

struct fdp_master {
	struct fdp_master_config cfg;
	struct fdp__listener *listeners;
	size_t nlisteners;
	char *control_path;
	int epfd, sigfd, ctlfd;
	struct fdp__watch wsig, wctl;
	int ctl_registered;
	long long ctl_paused_until; /* the control socket's accept() failed: out of epoll until */
	struct fdp__ctl_client ctl_clients[FDP__CONTROL_CLIENTS];
	unsigned ctl_nclients;
	int want_stop;               /* a control client asked for a stop: loop.c begins it */
	unsigned reloads_done;       /* reloads complete so far (supervise.c) */
	unsigned last_reload_failed; /* and how many slots the last one could not replace */
	unsigned reloads_refused;    /* reloads whose configuration was refused (reconfig.c) */
	char refused_why[256];       /* why the last one was */
	struct fdp__ratelimit rl_accept, rl_control, rl_expire;
	struct fdp__slot *slots;
	struct fdp__proc *procs, *dead;
	struct fdp__conns conns; /* conns.c's */
	long long start_ms;
	unsigned rr_cursor;
	uint64_t conn_cap; /* max_conns_per_worker, or what the descriptor limit allows */
	int stopping;      /* 1: draining, 2: stopping at once */
	int linger;        /* a stop waits for deferred handshakes (linger.c): 1 while, 2 after */
	long long linger_until, linger_look; /* its end at the latest; its next look (linger.c) */
	int linger_blind; /* the kernel could not be asked: the linger is waited out */
	int ready_logged, reloading;
	int reload_again;        /* a SIGHUP came during the reload: another follows it */
	int reload_due;          /* that one: the loop runs it (fdp__reconfigure()) */
	int reload_chained;      /* and its RELOADING event was sent when it was asked for */
	unsigned retire_end;     /* shrunk: slots cfg.workers..retire_end-1 drain (supervise.c) */
	unsigned reload_failed;  /* slots whose successor did not start in this reload */
	unsigned drains_pending; /* processes with drain_pending set */
	unsigned flagged;        /* lost and ready_seen flags not settled yet */
	int in_child;
	int start_err; /* a first-generation worker could not be executed: -ENOEXEC (loop.c) */
	struct fdp_channel_msg msg;
	struct fdp__router *router; /* route.c; NULL when no listener routes */
	/* hash-ip's ring of slots (policy.c); empty when no listener uses hash-ip */
	struct fdp__hashring ip_ring;
	uint64_t recycle_rand; /* recycle.c's jitter: a xorshift state (0: not seeded) */
	int reap_all;          /* orphans.c: reap every child (cfg reap_all, or PID 1) */
	int conns_limited;     /* at max_connections: the listeners are out of epoll */
	struct fdp__ratelimit rl_limit;
	struct fdp__metrics *metrics; /* metrics.c's; NULL without a metrics listener */
	struct fdp__upgrade up; /* upgrade.c's */
	long long next_tick; /* when FDP_MASTER_TICK is due (0: no ticks) */
	/* Kernel dispatch (kernel.c): a listener is steered; something that decides which
	 * slots take connections changed (a worker's state, ACCEPTS): kernel.c settles it. */
	int kernel, kernel_dirty;
	long long kernel_next; /* its timer: hung workers, least-conn's counts */
	unsigned kernel_ticks;
	/* Dispatchers (disps.c): the processes, live and retiring; the shared rows; the tags in
	 * use; a respawn due (0: none); how many are wanted (cfg.dispatchers - 1). */
	struct fdp__disp *disps, *disps_dead; /* dead: freed after the round of events */
	struct fdp__disp_shared *dshared;
	uint64_t disp_tags;
	unsigned disp_gen, disps_wanted, disp_quick_fails;
	long long disp_respawn_at, disp_stop_at; /* 0: no respawn due; not stopping them */
	long long chan_poll_at; /* the workers' channels are read then (0: none is polled) */
	/* In a dispatcher's process (dispatcher.c): its tag, its channel to the master. */
	unsigned disp_self;
	struct fdp_channel *dch;
};

/* A change kernel.c must look at (a worker ready, draining, lost, gone; an ACCEPTS). */
static inline void fdp__kernel_flag(struct fdp_master *m)
{
	m->kernel_dirty = m->kernel;
}

/* The ACK latency histogram's upper bound i (< FDP__ACK_BUCKETS), in nanoseconds, ascending. */
static inline long long fdp__ack_bound_ns(unsigned i)
{
	static const long long bound[FDP__ACK_BUCKETS] = {
	        100000,   250000,   500000,    1000000,   2500000,   5000000,   10000000,
	        25000000, 50000000, 100000000, 250000000, 500000000, 1000000000};

	return bound[i];
}

/*
 * A worker's channel failed where the failure cannot be handled (a hand-over, a read, a flush,
 * below supervise.c in the call order): flag it, and use it no more. The loop's next settling
 * point hands it to supervise.c (fdp__proc_lost()). The first error is the one reported.
 */
static inline void fdp__proc_flag_lost(struct fdp_master *m, struct fdp__proc *p, int err)
{
	if (p->lost)
		return;
	p->lost = 1;
	p->lost_err = err;
	m->flagged++;
}

/* p said READY (dispatch.c): supervise.c gives it its slot when it settles the flags. */
static inline void fdp__proc_flag_ready(struct fdp_master *m, struct fdp__proc *p)
{
	p->ready_seen = 1;
	m->flagged++;
}

/* p's channel can carry messages: it has one, and no failure on it is waiting to be settled. */
static inline int fdp__proc_usable(const struct fdp__proc *p)
{
	return p->ch && !p->lost;
}

/* log.c */
void fdp__log(struct fdp_master *m, enum fdp_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void fdp__log_limited(struct fdp_master *m, struct fdp__ratelimit *rl, enum fdp_log_level level,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void fdp__log_output(struct fdp_master *m, enum fdp_log_level level,
                     const struct fdp_output_line *line);
/* The program's event callback (config event), with the master's state; never in a worker. */
void fdp__event(struct fdp_master *m, enum fdp_master_event ev);

/* conns.c: every connection the master holds (pending, in flight, held for routing) */
int fdp__conns_accept(struct fdp_master *m, const struct fdp__listener *l,
                      const struct fdp_accepted *a, long long now, struct fdp__conn *lent);
void fdp__conns_dispatch_pending(struct fdp_master *m);
void fdp__conns_expire_pending(struct fdp_master *m, long long now, long long *next);
/* Connection fd (meta as the worker had it) handed back by p: to another worker, or closed. */
void fdp__conns_returned(struct fdp_master *m, struct fdp__proc *p, int fd,
                         const struct fdp_conn *meta);
/* Flag every ready worker whose oldest unacknowledged connection is past the ACK deadline. */
void fdp__conns_ack_deadlines(struct fdp_master *m, long long now, long long *next);
int fdp__conns_ack(struct fdp_master *m, struct fdp__proc *p, uint64_t id);
int fdp__conns_done(struct fdp_master *m, struct fdp__proc *p, size_t n);
void fdp__conns_take_back(struct fdp_master *m, struct fdp__proc *p);
void fdp__conns_hold_for(struct fdp_master *m, unsigned ms);
void fdp__conns_route_deliver(struct fdp_master *m, struct fdp__conn *c);
void fdp__conns_route_close(struct fdp_master *m, struct fdp__conn *c, enum fdp__close_reason why);
int fdp__conns_route_expired(struct fdp_master *m, long long now, struct fdp__conn *c);
long long fdp__conns_held_next(const struct fdp_master *m);
void fdp__conns_dispatch_held(struct fdp_master *m);
void fdp__conns_close_held(struct fdp_master *m, enum fdp__close_reason why);
void fdp__conns_shutdown(struct fdp_master *m);
void fdp__conns_free_proc(struct fdp__proc *p);
/* Every connection open now: held by the master, or handed and not reported done. */
uint64_t fdp__conns_open(const struct fdp_master *m);
void fdp__conns_free(struct fdp_master *m);

/* kernel.c: kernel dispatch (docs/STEERING.md) */
int fdp__kernel_open(struct fdp_master *m);
/* TCP_DEFER_ACCEPT where a listener's clients speak first (or it routes), slot sockets too. */
void fdp__kernel_defer(struct fdp_master *m);
void fdp__kparts_free(struct fdp__kparts *k);
void fdp__kernel_close(struct fdp_master *m, struct fdp__listener *l);
void fdp__kernel_settle(struct fdp_master *m);
void fdp__kernel_event(struct fdp_master *m, const struct fdp__watch *w);
void fdp__kernel_timers(struct fdp_master *m, long long now, long long *next);
void fdp__kernel_reattach(struct fdp_master *m);
/* p is gone: what it had accepted itself and not finished is lost (counted, logged). */
void fdp__kernel_reaped(struct fdp_master *m, struct fdp__proc *p);
/* Bring the counts of what the workers accepted themselves up to date (status, metrics). */
void fdp__kernel_refresh(struct fdp_master *m);
/* What the workers accepted themselves, over every listener, as far as counted. */
uint64_t fdp__kernel_accepted(const struct fdp_master *m);
/* The status's "kernel ..." line into line (size bytes); returns its length. */
size_t fdp__kernel_status(struct fdp_master *m, char *line, size_t size);
/*
 * The steered listeners' programs for a new worker count and policies (policy: one per
 * listener; NULL: the listeners' own). All or none: 0, or a negative errno with why, the
 * listeners as they were. A reload calls it last of what can fail (reconfig.c).
 */
int fdp__kernel_reconfigure(struct fdp_master *m, unsigned workers, const enum fdp_policy *policy,
                            char *why, size_t size);
/* A reload's next configuration against the steered listeners: 0, or -EINVAL and why. */
int fdp__kernel_reconfig_check(const struct fdp_master *m, const struct fdp_master_config *next,
                               const enum fdp_policy *policy, char *why, size_t size);
/*
 * Before a stop closes the listeners (loop.c): take what is queued on l's slot sockets but
 * those another process keeps (fdp__accept_closing()), its slots out of the program first.
 * Returns how many.
 */
unsigned long fdp__kernel_accept_queued(struct fdp_master *m, struct fdp__listener *l);
struct fdp__queue; /* dispatch.c's, below */
/* The slot sockets of l a stop takes from, into q (room for FDP__STEER_MAX_SLOTS): how many. */
unsigned fdp__kernel_stop_queues(struct fdp__listener *l, struct fdp__queue *q);

/* dispatch.c */
/* Accept a batch from l into conns.c (or the route policy); returns how many. */
int fdp__accept_from(struct fdp_master *m, struct fdp__listener *l);
/* The same from fd, one of l's sockets (a kernel listener's slot), pausing *paused_until. */
int fdp__accept_on(struct fdp_master *m, struct fdp__listener *l, int fd,
                   long long *paused_until);
/* One of l's sockets a stop accepts on: fd, and where its accept pause is kept. */
struct fdp__queue {
	int fd;
	long long *paused_until;
};
/*
 * Before a stop closes them: stop new handshakes on q[0..n), l's sockets, and accept what is
 * queued there (as far as the pending limit allows), looking again until a short wait sees no
 * handshake still in flight. Returns how many.
 */
unsigned long fdp__accept_closing(struct fdp_master *m, struct fdp__listener *l,
                                  const struct fdp__queue *q, unsigned n);
/* A TCP listener that starts no more handshakes (a socket filter drops SYNs); see dispatch.c. */
void fdp__stop_handshakes(int fd);

void fdp__accept_failed(struct fdp_master *m, int control, int err, long long *paused_until);
void fdp__channel_input(struct fdp_master *m, struct fdp__proc *p);
/* With dispatchers: read the channels being polled, when due (see fdp__channel_input()). */
void fdp__channel_poll(struct fdp_master *m, long long now, long long *next);
void fdp__channel_drain(struct fdp_master *m, struct fdp__proc *p);
void fdp__flush_dirty(struct fdp_master *m);

/* linger.c: a stop with a deferred listener waits for the handshakes the kernel holds */
/* The sockets of l a stop takes from (a steered group's slots, or l's own), into q (room for
 * FDP__STEER_MAX_SLOTS): how many. */
unsigned fdp__stop_queues(struct fdp__listener *l, struct fdp__queue *q);
/*
 * A stop asked for: refuse new handshakes on every listener; then where the kernel holds
 * handshakes for a deferred listener's port (or cannot say), tell the program STOPPING and
 * return 1: the server goes on serving until fdp__linger_over(). 0: stop at once (nothing
 * deferred, or nothing held).
 */
int fdp__linger_begin(struct fdp_master *m);
/* When the loop must wake for the linger's next look, or its end. */
void fdp__linger_timers(const struct fdp_master *m, long long *next);
/* 1 once the linger is over (nothing held any more, or its time is up): stop now. */
int fdp__linger_over(struct fdp_master *m);
/* A stop was asked for: lingering, draining or stopping at once. */
static inline int fdp__stop_begun(const struct fdp_master *m)
{
	return m->stopping || m->linger;
}

/* policy.c */
int fdp__proc_can_take(const struct fdp_master *m, const struct fdp__proc *p);
/* Kernel dispatch: the connections p accepted itself and has not finished (0 unless p is its
 * slot's current process: a draining one's left the slot's counts). */
uint64_t fdp__proc_own_open(const struct fdp_master *m, const struct fdp__proc *p);
uint64_t fdp__conn_cap(const struct fdp_master *m);
struct fdp__proc *fdp__policy_pick(struct fdp_master *m, const struct fdp__conn *c);
const char *fdp__policy_name(enum fdp_policy p);

/* child.c: a pidfd for pid (close-on-exec), or -errno (none: old kernels, valgrind). */
int fdp__pidfd_open(pid_t pid);

/* Where a forked child stopped before its worker ran (fdp__fork_worker()'s *failed). */
enum fdp__child_fail {
	CHILD_STARTED, /* nothing failed */
	CHILD_EXEC,    /* execve() (or the program's path was not found) */
	CHILD_SETGROUPS,
	CHILD_SETGID,
	CHILD_SETUID,
	CHILD_NO_NEW_PRIVS,
};

/*
 * child.c: forking a worker (what the child needs is prepared before fork(): it may run only
 * async-signal-safe calls until it execs), its first steps, and what an exec worker's early
 * exit says. fdp__fork_worker() returns 0 once the child runs its handler or has executed its
 * program, else -errno; *failed then says which step of the child failed (CHILD_STARTED:
 * none, the fork itself did), and such a child is reaped already.
 */
int fdp__fork_worker(struct fdp_master *m, struct fdp__proc *p, int chan,
                     enum fdp__child_fail *failed);
const char *fdp__child_fail_step(enum fdp__child_fail step);
void fdp__check_start_exit(struct fdp_master *m, const struct fdp__proc *p, int status);

/*
 * output.c: the workers' stdout and stderr (cfg.capture_output; each a no-op without it).
 * open: before the fork, a pipe for each (p->out); forked: after it, in the master, close the
 * worker's ends; input: read and log what one of them (0 stdout, 1 stderr) has; close: when p
 * is reaped (or never started), log what is left, then close and free p->out.
 */
int fdp__output_open(struct fdp_master *m, struct fdp__proc *p);
void fdp__output_forked(struct fdp__proc *p);
void fdp__output_input(struct fdp_master *m, struct fdp__proc *p, unsigned stream);
void fdp__output_close(struct fdp_master *m, struct fdp__proc *p);

/*
 * disps.c: the dispatchers, as the master sees them (cfg.dispatchers). start: the shared
 * mapping and the first ones, from fdp_master_run(); worker, drain, lost: a slot's current
 * worker changed, one must take no more, one is gone (supervise.c); stop: the master's stop
 * (or upgrade); restart: a reload's new routing (the old ones finish what they hold); flush:
 * what is queued for them, and the open counts they read; close: from fdp_master_close().
 */
int fdp__disps_start(struct fdp_master *m);
void fdp__disps_worker(struct fdp_master *m, struct fdp__proc *p);
void fdp__disps_drain(struct fdp_master *m, struct fdp__proc *p);
void fdp__disps_lost(struct fdp_master *m, struct fdp__proc *p);
void fdp__disps_stop(struct fdp_master *m);
void fdp__disps_restart(struct fdp_master *m);
/* An upgrade's new master said READY: the listeners are its own, its dispatchers start. */
void fdp__disps_owned(struct fdp_master *m);
void fdp__disps_event(struct fdp_master *m, struct fdp__watch *w);
void fdp__disps_sigchld(struct fdp_master *m);
/* orphans.c: a dispatcher of pid that exited is reaped here (1), else 0. */
int fdp__disps_reap_pid(struct fdp_master *m, pid_t pid);
void fdp__disps_timers(struct fdp_master *m, long long now, long long *next);
void fdp__disps_flush(struct fdp_master *m);
void fdp__disps_close(struct fdp_master *m);
/* Every dispatcher's counts added up, and how many run (the status, the metrics). */
unsigned fdp__disps_totals(const struct fdp_master *m, struct fdp__disp_row *sum);

/* dispatcher.c: a dispatcher's process, forked by disps.c; never returns. */
__attribute__((noreturn)) void fdp__dispatcher_main(struct fdp_master *m, unsigned tag,
                                                    unsigned gen, int sock, pid_t master);

/* supervise.c */
int fdp__spawn(struct fdp_master *m, unsigned slot, int successor);
void fdp__reap(struct fdp_master *m, struct fdp__proc *p);
void fdp__proc_lost(struct fdp_master *m, struct fdp__proc *p, int err);
void fdp__supervise_flagged(struct fdp_master *m);
void fdp__proc_kill(struct fdp__proc *p);
void fdp__supervise_timers(struct fdp_master *m, long long now, long long *next);
void fdp__start_drain(struct fdp_master *m);
void fdp__stop_now(struct fdp_master *m);
void fdp__reload(struct fdp_master *m);
void fdp__reload_check(struct fdp_master *m);
void fdp__send_drains(struct fdp_master *m);
void fdp__supervise_resize(struct fdp_master *m, unsigned n);
void fdp__free_dead(struct fdp_master *m);
const char *fdp__proc_state_name(enum fdp__proc_state s);

/* route_policy.c: the route policy (reading each connection's key; conns.c holds the ones
 * waiting for their key's slot) */
int fdp__route_open(struct fdp_master *m, const struct fdp_route_config *rc);
void fdp__route_close(struct fdp_master *m);
/* A reconfiguration's router (the map read again), then put in use or discarded. */
int fdp__route_build(const struct fdp_route_config *rc, unsigned workers,
                     struct fdp__router **out, char *err, size_t errlen);
void fdp__route_replace(struct fdp_master *m, struct fdp__router *r);
void fdp__route_discard(struct fdp__router *r);
/* In a dispatcher's process: r (the master's, as forked) is d's, with nothing waiting and
 * nothing counted yet. */
void fdp__route_forked(struct fdp_master *d, struct fdp__router *r);
/* Whether route listeners are deferred: a route timeout of at least the deferral. */
int fdp__route_defers(const struct fdp_master *m);
void fdp__route_accept(struct fdp_master *m, const struct fdp__conn *c);
void fdp__route_input(struct fdp_master *m, struct fdp__watch *w, uint32_t events);
int fdp__route_full(const struct fdp_master *m);
/* How many more clients may wait for their key or slot (SIZE_MAX without routing). */
size_t fdp__route_room(const struct fdp_master *m);
void fdp__route_timers(struct fdp_master *m, long long now, long long *next);
void fdp__route_status(const struct fdp_master *m, char *buf, size_t size);
/* What the route policy counted, for the metrics. */
struct fdp__route_stats {
	size_t waiting, held; /* for their key; for their slot's worker */
	int on_fail_default;  /* the failure action: 1 to the default worker, 0 close */
	uint64_t hashed, mapped, timeout, too_big, rejected, overflow, eof, unavailable;
	uint64_t defaulted, closed;
};
void fdp__route_stats(const struct fdp_master *m, struct fdp__route_stats *st);

/*
 * metrics.c: the metrics in Prometheus's text format (docs/SERVE.md), served over HTTP on
 * cfg.metrics_fd by the loop, and rendered for the control socket's `metrics` command.
 */
int fdp__metrics_open(struct fdp_master *m, int fd);
void fdp__metrics_close(struct fdp_master *m);
void fdp__metrics_log(struct fdp_master *m);
void fdp__metrics_event(struct fdp_master *m, struct fdp__watch *w, uint32_t events);
void fdp__metrics_timers(struct fdp_master *m, long long now, long long *next);
/* The whole text into a malloc'd *out (*len bytes); 0, or -ENOMEM. */
int fdp__metrics_render(struct fdp_master *m, char **out, size_t *len);
/* For an upgrade (upgrade.c): the metrics listener (-1: none); the new master took it. */
int fdp__metrics_fd(const struct fdp_master *m);
void fdp__metrics_handed(struct fdp_master *m);
/* The metrics socket is this master's own again (a new master said READY): see handed. */
void fdp__metrics_owned(struct fdp_master *m);

/* reconfig.c: SIGHUP reads the configuration again (cfg.reload), applies it, reloads */
void fdp__reconfigure(struct fdp_master *m);

/*
 * upgrade.c: the old master starts the new one (fdp__upgrade_start(): 0 once started, -EBUSY
 * during one, -ENOTSUP when upgrades are off, -ESHUTDOWN while stopping, another -errno; done,
 * when not NULL, is called once with 0 when the new master is ready or the -errno that rolled
 * it back); the new master takes what it was handed and says when it is ready.
 */
int fdp__upgrade_start(struct fdp_master *m,
                       void (*done)(struct fdp_master *m, void *arg, int result), void *arg);
/* Returns 1 when the new master has taken over: the loop stops this one (without closing or
 * filtering what it handed over: fdp__listener.handed, up.ctl_handed). */
int fdp__upgrade_event(struct fdp_master *m, struct fdp__watch *w);
void fdp__upgrade_run(struct fdp_master *m);
void fdp__upgrade_cancel(struct fdp_master *m);
void fdp__upgrade_sigchld(struct fdp_master *m);
void fdp__upgrade_timers(struct fdp_master *m, long long now, long long *next);
void fdp__upgrade_forward(struct fdp_master *m);
void fdp__upgrade_finish(struct fdp_master *m);
void fdp__upgrade_close(struct fdp_master *m);
int fdp__upgrade_take_control(struct fdp_master *m);
/* Whether fd is one this master (an upgrade's new one) took from the old master. */
int fdp__upgrade_took(const struct fdp_master *m, int fd);
/* The steering group handed with the listener fd took (kernel.c adopts it): its parts, taken
 * (*out malloc'd; NULL when none came whole). 0, or -ENOMEM. */
int fdp__upgrade_take_steer(struct fdp_master *m, int fd, struct fdp__kparts **out);
/* Parts kernel.c did not adopt: the old master's again (READY says so); frees k. */
void fdp__upgrade_untake_steer(struct fdp_master *m, struct fdp__kparts *k);

/* conns.c, for an upgrade: the first connection to forward (NULL: none), then drop it here */
struct fdp__conn *fdp__conns_forward_next(struct fdp_master *m);
void fdp__conns_forward_done(struct fdp_master *m, int sent);

/* recycle.c: replacing a worker past cfg recycle_conns or recycle_ms (successor first) */
void fdp__recycle_timers(struct fdp_master *m, long long now, long long *next);

/* orphans.c: reaping every child (cfg reap_all, or as PID 1), never a worker's status */
void fdp__orphans_start(struct fdp_master *m);
void fdp__orphans_reap(struct fdp_master *m);

/* control.c */
int fdp__control_open(struct fdp_master *m);
void fdp__control_accept(struct fdp_master *m);
void fdp__control_input(struct fdp_master *m, struct fdp__watch *w);
void fdp__control_timers(struct fdp_master *m, long long now, long long *next);
void fdp__control_stopped(struct fdp_master *m);
void fdp__control_close(struct fdp_master *m);
void fdp__control_handed(struct fdp_master *m);

#endif
