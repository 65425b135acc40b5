/*
 * Accepting connections, and the workers' channels: what a worker says (READY, ACK, DONE,
 * RETURN, ACCEPTS) and flushing what is queued for it. The connections themselves are
 * conns.c's, which this file asks to take each new one, and to close the master's copy of
 * each one acknowledged.
 */
#include "master.h"
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * accept() failed for want of something (EMFILE, ENFILE, ENOBUFS, ENOMEM...): the socket stays
 * readable, so it sits out FDP__EMFILE_PAUSE_MS out of epoll instead of spinning the loop; the
 * connections wait in the kernel's backlog.
 */
void fdp__accept_failed(struct fdp_master *m, int control, int err, long long *paused_until)
{
	*paused_until = fdp__now_ms() + FDP__EMFILE_PAUSE_MS;
	fdp__log_limited(m, control ? &m->rl_control : &m->rl_accept, FDP_LOG_WARN,
	                 "accept on %s: %s; pausing it for %d ms",
	                 control ? "the control socket" : "a listener", fdp_strerror(err),
	                 FDP__EMFILE_PAUSE_MS);
}

int fdp__accept_from(struct fdp_master *m, struct fdp__listener *l)
{
	return fdp__accept_on(m, l, l->fd, &l->paused_until);
}

int fdp__accept_on(struct fdp_master *m, struct fdp__listener *l, int fd,
                   long long *paused_until)
{
	struct fdp_accepted acc[FDP__ACCEPT_BATCH];
	long long now = fdp__now_ms();
	size_t room =
	        m->conns.pending.n < FDP__MAX_PENDING ? FDP__MAX_PENDING - m->conns.pending.n : 0;
	int n;

	/* A route listener takes no more than may wait for a key: the rest stay in the backlog. */
	if (l->policy == FDP_POLICY_ROUTE && fdp__route_room(m) < room)
		room = fdp__route_room(m);
	/* And no more than max_connections open (the loop unwatches the listeners at it). */
	if (m->cfg.max_connections) {
		uint64_t open = fdp__conns_open(m);

		if (open >= m->cfg.max_connections)
			room = 0;
		else if (m->cfg.max_connections - open < room)
			room = (size_t)(m->cfg.max_connections - open);
	}
	if (!room)
		return 0; /* the loop pauses accepting until workers catch up */
	/* Never past the limit: at most the room left (a re-hand may still go over it). */
	n = fdp_accept_batch(fd, acc, room < FDP__ACCEPT_BATCH ? room : FDP__ACCEPT_BATCH);
	if (n < 0) {
		if (n != -EAGAIN)
			fdp__accept_failed(m, 0, n, paused_until);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		struct fdp__conn c;

		if (fdp__conns_accept(m, l, &acc[i], now, &c))
			fdp__route_accept(m, &c); /* route.c reads its key, then gives it back */
	}
	return n;
}

/* How long a stop waits, once the queues it takes are empty, for a handshake still under
 * way; at most how many times (a pending limit may leave a queue readable); and over how many
 * sockets one wait looks. */
#define STOP_SETTLE_MS     2
#define STOP_SETTLE_ROUNDS 3
#define STOP_SETTLE_POLL   64

/*
 * A TCP listener that starts no more handshakes: a socket filter that drops every segment with
 * SYN set. The kernel runs a listener's filter, at the TCP header, on SYNs and on the ACKs that
 * complete a handshake, not on connections already queued. New clients retry their SYN until
 * the close refuses them, instead of joining the queue just before it is closed and reset. A
 * handshake already under way still completes, which is why the ACK must pass: were it dropped
 * too, the client would think itself connected, and its first retransmission would meet the
 * closed listener's reset. A connection that completes from now on inherits the filter, which
 * only drops the SYNs an established socket never needs. A Unix listener has no such filter.
 */
void fdp__stop_handshakes(int fd)
{
	enum { TCP_FLAGS = 13, TCP_SYN = 0x02 }; /* the byte of the TCP header with SYN in it */
	struct sock_filter syn_dropped[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, TCP_FLAGS),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, TCP_SYN, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0),          /* drop */
		BPF_STMT(BPF_RET | BPF_K, 0xffffffffu), /* keep it whole */
	};
	struct sock_fprog prog = {.len = 4, .filter = syn_dropped};

	setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)); /* TCP only */
}

/* Accept what waits on q[0..n) (n <= STOP_SETTLE_POLL), filtered already: a handshake under
 * way may still join a queue (its ACK in flight, or on another CPU), so look again until a
 * short wait sees none. */
static unsigned long settle(struct fdp_master *m, struct fdp__listener *l,
                            const struct fdp__queue *q, unsigned n)
{
	struct pollfd p[STOP_SETTLE_POLL];
	unsigned long total = 0;
	int got;

	for (unsigned i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = q[i].fd, .events = POLLIN};
	for (int round = 0; round <= STOP_SETTLE_ROUNDS; round++) {
		for (unsigned i = 0; i < n; i++)
			while ((got = fdp__accept_on(m, l, q[i].fd, q[i].paused_until)) > 0)
				total += (unsigned long)got;
		if (round == STOP_SETTLE_ROUNDS || poll(p, n, STOP_SETTLE_MS) <= 0)
			break;
	}
	return total;
}

unsigned long fdp__accept_closing(struct fdp_master *m, struct fdp__listener *l,
                                  const struct fdp__queue *q, unsigned n)
{
	unsigned long total = 0;

	for (unsigned i = 0; i < n; i++) /* every filter first: the waits then serve them all */
		fdp__stop_handshakes(q[i].fd);
	for (unsigned first = 0; first < n; first += STOP_SETTLE_POLL)
		total += settle(m, l, q + first,
		                n - first < STOP_SETTLE_POLL ? n - first : STOP_SETTLE_POLL);
	return total;
}

#define FORWARD_IDS 512 /* ids per ACKS message to a dispatcher */

/*
 * ACKs of a dispatcher's connections (its tag in their ids) go to it, which closes its copies
 * (disps.c, dispatcher.c); from now on the master counts them open in p, as its own. One whose
 * dispatcher is gone was lost with it, or already taken back: only counted.
 */
static void forward_acks(struct fdp_master *m, struct fdp__proc *p, const unsigned char *ids,
                         size_t n, uint64_t tags)
{
	struct fdp__d_worker w = {.slot = p->slot, .generation = p->generation, .pid = p->pid};
	unsigned char buf[sizeof(w) + 8 * FORWARD_IDS];

	memcpy(buf, &w, sizeof(w));
	for (struct fdp__disp *d = m->disps; d && tags; d = d->next) {
		size_t len = sizeof(w);

		if (!(tags >> d->tag & 1))
			continue;
		tags &= ~(UINT64_C(1) << d->tag);
		for (size_t k = 0; k <= n; k++) {
			uint64_t id = k < n ? fdp_proto_id(ids, k) : 0;

			if (k < n && fdp__disp_tag(id) == d->tag) {
				memcpy(buf + len, &id, 8);
				len += 8;
			}
			if ((len == sizeof(buf) || (k == n && len > sizeof(w))) && d->ch &&
			    fdp_channel_send(d->ch, FDP__D_ACKS, buf, len, NULL, 0, FDP_CHANNEL_MORE) ==
			            -ENOBUFS) {
				fdp__log(m, FDP_LOG_ERROR,
				         "dispatcher %u pid %d reads nothing from the master: killing it",
				         d->tag, (int)d->pid);
				kill(d->pid, SIGKILL);
			}
			if (len == sizeof(buf))
				len = sizeof(w);
		}
	}
}

/* The worker has its copy of these connections: conns.c closes ours. 0, or -EPROTO for a lie. */
static int handle_ack(struct fdp_master *m, struct fdp__proc *p, const unsigned char *ids,
                      size_t n)
{
	uint64_t tags = 0;

	for (size_t k = 0; k < n; k++) {
		uint64_t id = fdp_proto_id(ids, k);
		unsigned tag = fdp__disp_tag(id);

		if (tag >= FDP__DISP_TAGS && !(id & FDP_CONN_OWN))
			return -EPROTO; /* no dispatcher's: a made-up id */
		if (tag && !(id & FDP_CONN_OWN)) {
			tags |= UINT64_C(1) << tag;
			p->open++;
		} else if (fdp__conns_ack(m, p, id) < 0) {
			return -EPROTO;
		}
	}
	if (tags)
		forward_acks(m, p, ids, n, tags);
	return 0;
}

/*
 * READY counts once; a worker that repeats it is not listened to again (nor logged), nor one
 * already killed for being late with it (it must not take a slot on its way out).
 */
static void handle_ready(struct fdp_master *m, struct fdp__proc *p)
{
	if (p->said_ready || p->start_failed)
		return;
	p->said_ready = 1;
	p->ready_ms = fdp__now_ms();
	p->start_deadline = 0;
	if (p->state == PROC_STARTING)
		p->state = PROC_READY;
	fdp__log(m, FDP_LOG_INFO, "worker %u pid %d generation %u ready", p->slot, (int)p->pid,
	         p->generation);
	fdp__proc_flag_ready(m, p); /* the slot is supervise.c's to give */
}

/* A connection p hands back (RETURN, checked): conns.c gives it to another worker. */
static void handle_return(struct fdp_master *m, struct fdp__proc *p, struct fdp_channel_msg *msg)
{
	struct fdp_conn meta;
	int fd = fdp_channel_msg_take_fd(msg, 0);

	fdp_proto_conn_decode(msg->payload, msg->len, &meta); /* fdp_proto_check() passed it */
	fdp__conns_returned(m, p, fd, &meta);
}

static int handle_message(struct fdp_master *m, struct fdp__proc *p, struct fdp_channel_msg *msg)
{
	/* Unknown types pass the check and are ignored: a newer worker may say more. */
	int err = fdp_proto_check(msg->type, msg->payload, msg->len, msg->nfds);

	if (err < 0)
		return err;
	if (msg->type == FDP_PROTO_ACK)
		return handle_ack(m, p, msg->payload, msg->len / 8);
	if (msg->type == FDP_PROTO_DONE)
		return fdp__conns_done(m, p, msg->len / 8);
	if (msg->type == FDP_PROTO_READY)
		handle_ready(m, p);
	if (msg->type == FDP_PROTO_RETURN)
		handle_return(m, p, msg);
	if (msg->type == FDP_PROTO_ACCEPTS && !p->accepts_own) {
		p->accepts_own = 1; /* kernel.c sends it its sockets when it may have them */
		fdp__kernel_flag(m);
	}
	return 0;
}

/*
 * Apply what p sent, up to max messages or max * 64 ids: the channel is level-triggered, so
 * what is left wakes the loop again, and one worker cannot hold the master. Returns 1 when it
 * stopped at the cap, 0 when the channel said -EAGAIN; a channel that ended or a message that
 * breaks the protocol flags the worker lost, for supervise.c (and returns 0).
 */
static int read_input(struct fdp_master *m, struct fdp__proc *p, unsigned max, unsigned *got)
{
	struct fdp_channel_msg *msg = &m->msg;
	unsigned long ids = 0;

	for (unsigned k = 0; fdp__proc_usable(p) && k < max && ids < 64ul * max; k++) {
		int r = fdp_channel_recv(p->ch, msg);

		if (r == -EAGAIN)
			return 0;
		++*got;
		if (r <= 0) {
			fdp__proc_flag_lost(m, p, r);
			return 0;
		}
		r = handle_message(m, p, msg);
		fdp_channel_msg_release(msg); /* any descriptor not taken: unknown types' */
		if (r < 0) {
			fdp__log(
			        m, FDP_LOG_ERROR,
			        "worker %u pid %d broke the protocol: message type 0x%x, %zu bytes",
			        p->slot, (int)p->pid, msg->type, msg->len);
			fdp__proc_flag_lost(m, p, r);
			return 0;
		}
		ids += msg->len / 8;
	}
	return fdp__proc_usable(p);
}

/* Watch p's channel for input (unless it is polled: fdp__channel_poll()), and for writability
 * while something waits to leave. */
static void watch_proc(struct fdp_master *m, struct fdp__proc *p)
{
	int want = p->ch && !p->retry_at && fdp_channel_wants_write(p->ch);
	/* A dispatcher only writes a worker's channel: the master reads it. */
	int in = !m->disp_self && !p->polled;
	struct epoll_event ev = {.events = (in ? EPOLLIN : 0) | (want ? EPOLLOUT : 0),
	                         .data.ptr = &p->wch};

	if (!p->ch || (want == p->epollout && in == !p->unwatched_in))
		return;
	if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, fdp_channel_fd(p->ch), &ev) == 0) {
		p->epollout = want;
		p->unwatched_in = !in;
	}
}

void fdp__channel_input(struct fdp_master *m, struct fdp__proc *p)
{
	unsigned got = 0;

	read_input(m, p, FDP__INPUT_BATCH, &got);
	/*
	 * With dispatchers every routed connection costs the master its worker's ACK and DONE,
	 * which would wake it once or twice a connection: from the first message on, the
	 * channel is read on a timer (FDP__CHANNEL_POLL_MS) while messages keep coming, so one
	 * wake-up reads many. Its end of file still wakes the loop (EPOLLHUP is always said).
	 */
	if (m->dshared && fdp__proc_usable(p) && !p->polled) {
		p->polled = 1;
		watch_proc(m, p);
		if (!m->chan_poll_at)
			m->chan_poll_at = fdp__now_ms() + FDP__CHANNEL_POLL_MS;
	}
}

void fdp__channel_poll(struct fdp_master *m, long long now, long long *next)
{
	int again = 0, more = 0;

	if (!m->chan_poll_at)
		return;
	if (now < m->chan_poll_at) {
		if (m->chan_poll_at < *next)
			*next = m->chan_poll_at;
		return;
	}
	m->chan_poll_at = 0;
	for (struct fdp__proc *p = m->procs; p; p = p->next) {
		unsigned got = 0;

		if (!p->polled)
			continue;
		if (fdp__proc_usable(p))
			more |= read_input(m, p, FDP__INPUT_BATCH, &got); /* 1: stopped at its cap */
		if (got && fdp__proc_usable(p)) {
			again = 1;
			continue;
		}
		p->polled = 0; /* quiet (or lost): woken by its next message again */
		watch_proc(m, p);
	}
	if (again) {
		m->chan_poll_at = more ? now : now + FDP__CHANNEL_POLL_MS;
		if (m->chan_poll_at < *next)
			*next = m->chan_poll_at;
	}
}

/*
 * A worker that has exited can send nothing more: read what it sent before, up to end of file,
 * so that every connection it acknowledged is known as such before the rest are handed again.
 * Bounded by what its socket holds. -EAGAIN twice: the first may come from what the channel's
 * batched reader remembers, without asking the socket.
 */
void fdp__channel_drain(struct fdp_master *m, struct fdp__proc *p)
{
	unsigned got = 0;

	for (int again = 0; again < 2 && fdp__proc_usable(p);)
		again = read_input(m, p, FDP__INPUT_BATCH, &got) ? 0 : again + 1;
}

/*
 * -ETOOMANYREFS (this user has more descriptors in flight than RLIMIT_NOFILE) and -ENOMEM
 * leave the channel intact and everything queued: try again on a doubling timer, not on
 * writability, which the socket still has and which would spin.
 */
static void flush_later(struct fdp_master *m, struct fdp__proc *p, int err)
{
	if (!p->retry_ms)
		fdp__log(m, FDP_LOG_WARN, "worker %u pid %d: channel: %s; retrying", p->slot,
		         (int)p->pid, fdp_strerror(err));
	p->retry_ms = p->retry_ms ? p->retry_ms * 2 : FDP__RETRY_MIN_MS;
	if (p->retry_ms > FDP__RETRY_MAX_MS)
		p->retry_ms = FDP__RETRY_MAX_MS;
	p->retry_at = fdp__now_ms() + p->retry_ms;
}


/* Move the first worker to the end of the list (the next round flushes it last). */
static void rotate_procs(struct fdp_master *m)
{
	struct fdp__proc *head = m->procs, **tail = &m->procs;

	if (!head || !head->next)
		return;
	m->procs = head->next;
	while (*tail)
		tail = &(*tail)->next;
	*tail = head;
	head->next = NULL;
}

void fdp__flush_dirty(struct fdp_master *m)
{
	int flushed = 0;

	for (struct fdp__proc *p = m->procs; p; p = p->next) {
		int err;

		if (!p->dirty || !fdp__proc_usable(p) || p->retry_at)
			continue;
		p->dirty = 0;
		flushed = 1;
		err = fdp_channel_flush(p->ch);
		if (err == -ETOOMANYREFS || err == -ENOMEM) {
			flush_later(m, p, err);
		} else if (err < 0 && err != -EAGAIN) {
			fdp__proc_flag_lost(m, p, err);
			continue;
		} else if (p->retry_ms) {
			fdp__log(m, FDP_LOG_INFO, "worker %u pid %d: channel writes again", p->slot,
			         (int)p->pid);
			p->retry_ms = 0;
		}
		watch_proc(m, p);
	}
	/*
	 * The worker flushed first is woken first and finishes first, round after round: under
	 * least-conn, where finishing first means being picked more, that head start would
	 * become a lasting bias. Taking turns at the front spreads it.
	 */
	if (flushed)
		rotate_procs(m);
}
