/*
 * A stop's linger (docs/RELIABILITY.md, "Deferred listeners at a stop"). On a deferred listener
 * (TCP_DEFER_ACCEPT: --listen ADDR,defer=on, a TCP route listener, systemd's DeferAcceptSec=)
 * a client whose handshake is complete waits in the kernel, not in the accept queue, until its
 * first bytes arrive; a listener closed meanwhile resets it. So a stop with such a listener
 * first refuses new handshakes on every listener (the SYN filter of dispatch.c) and goes on
 * serving, as before, until the kernel holds no handshake for a deferred listener's port any
 * more (asked of sock_diag, as ss(8) asks) or LINGER_MS have passed; then loop.c stops as it
 * would have at once: it takes what is queued, closes the listeners and drains the workers.
 * Nothing waits when no handshake is held at the stop. A client that connected but waits
 * longer than that to send is reset, as every client of a deferred listener was before.
 */
#include "master.h"
#include "steer.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The longest linger: fdpass's own deferral (1 s) with room for the kernel's SYN-ACK resend
 * that ends it, and the ACK that answers it. */
#define LINGER_MS 1500
/* How often it asks the kernel what is left (each look walks the kernel's TCP hash table). */
#define LINGER_LOOK_MS 10

unsigned fdp__stop_queues(struct fdp__listener *l, struct fdp__queue *q)
{
	if (l->steer)
		return fdp__kernel_stop_queues(l, q);
	if (l->fd < 0 || l->handed || l->shared) /* handed: the new master has it */
		return 0;
	q[0] = (struct fdp__queue){l->fd, &l->paused_until};
	return 1;
}

static int deferred(int fd)
{
	int secs = 0;
	socklen_t len = sizeof(secs);

	return getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, &len) == 0 && secs > 0;
}

/* Ask sock_diag for family's TCP sockets in SYN_RECV on local port (network order): the count
 * of replies, or -errno. */
static int handshakes_in(int family, uint16_t port)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req;
	struct timeval tv = {0, 100 * 1000}; /* the dump answers at once; never hang the master */
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	uint32_t buf[8192]; /* 32 KiB (a dump's reply fills what it is given), nlmsghdr-aligned */
	int fd, n = 0, done = 0;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = 1u << TCP_SYN_RECV; /* the kernel's request sockets answer to it */
	req.r.id.idiag_sport = port;
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	while (!done) {
		ssize_t got = recv(fd, buf, sizeof(buf), MSG_TRUNC);
		size_t off = 0;

		if (got <= 0 || got > (ssize_t)sizeof(buf)) { /* an error, or a reply cut short */
			n = got < 0 ? -errno : -EPROTO;
			break;
		}
		while (!done && off + sizeof(struct nlmsghdr) <= (size_t)got) {
			const struct nlmsghdr *h = (const struct nlmsghdr *)((const char *)buf + off);

			if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > (size_t)got - off) {
				n = -EPROTO; /* a message not whole */
				done = 1;
			} else if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				/* The end: DONE carries the dump's status, ERROR a failure. */
				const int *status = NLMSG_DATA(h);
				int err = h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) ? *status : 0;

				if (h->nlmsg_type == NLMSG_ERROR && err == 0)
					err = -EPROTO; /* an acknowledgement, which a dump never sends */
				if (err < 0)
					n = err;
				done = 1;
			} else if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
				n++;
			}
			off += NLMSG_ALIGN(h->nlmsg_len);
		}
		if (!done && off < (size_t)got) { /* a header cut short */
			n = -EPROTO;
			break;
		}
	}
	close(fd);
	return n;
}

/*
 * Handshakes the kernel holds for fd's port, a TCP listener's: those waiting for the client's
 * ACK, and on a deferred listener those waiting for its first bytes. A request socket has its
 * listener's family (an IPv6 listener's IPv4 clients too), so one family is asked. Counted by
 * port: another listener of the family on the same port, on another address, counts too.
 * -errno when the kernel cannot be asked.
 */
static int handshakes(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return handshakes_in(AF_INET, ((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return handshakes_in(AF_INET6, ((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* What the kernel holds for the deferred listeners: a count, or -1 when it could not say. */
static int held(struct fdp_master *m)
{
	struct fdp__queue q[FDP__STEER_MAX_SLOTS];
	int total = 0;

	for (size_t i = 0; i < m->nlisteners; i++) {
		struct fdp__listener *l = &m->listeners[i];
		int n;

		/* A steered group's slot sockets share one port: one look for all of them. */
		if (!fdp__stop_queues(l, q) || !deferred(q[0].fd))
			continue;
		n = handshakes(q[0].fd);
		if (n < 0)
			return -1;
		total += n;
	}
	return total;
}

int fdp__linger_begin(struct fdp_master *m)
{
	struct fdp__queue q[FDP__STEER_MAX_SLOTS];
	int n;

	/* Every listener at once, deferred or not, so that no new client joins any: the filters
	 * the stop puts on them anyway (fdp__accept_closing()), a moment early. */
	for (size_t i = 0; i < m->nlisteners; i++) {
		unsigned k = fdp__stop_queues(&m->listeners[i], q);

		for (unsigned j = 0; j < k; j++)
			fdp__stop_handshakes(q[j].fd);
	}
	n = held(m); /* 0 where nothing is deferred */
	if (n == 0)
		return 0;
	m->linger = 1;
	m->linger_blind = n < 0;
	m->linger_look = fdp__now_ms() + LINGER_LOOK_MS;
	m->linger_until = m->linger_look - LINGER_LOOK_MS + LINGER_MS;
	fdp__event(m, FDP_MASTER_STOPPING);
	if (n > 0)
		fdp__log(m, FDP_LOG_INFO,
		         "stopping: new clients refused; waiting up to %d ms for %d handshake(s) on "
		         "deferred listeners (clients connected, their first bytes not in yet)",
		         LINGER_MS, n);
	else
		fdp__log(m, FDP_LOG_INFO,
		         "stopping: new clients refused; waiting %d ms for clients connected to "
		         "deferred listeners to send their first bytes (the kernel cannot say how "
		         "many there are: no sock_diag)",
		         LINGER_MS);
	return 1;
}

void fdp__linger_timers(const struct fdp_master *m, long long *next)
{
	long long at = m->linger_look < m->linger_until ? m->linger_look : m->linger_until;

	if (m->linger == 1 && at < *next)
		*next = at;
}

int fdp__linger_over(struct fdp_master *m)
{
	long long now = fdp__now_ms();
	int n = -1;

	if (m->linger != 1 || (now < m->linger_look && now < m->linger_until))
		return 0;
	m->linger_look = now + LINGER_LOOK_MS;
	if (now < m->linger_until) {
		if (m->linger_blind)
			return 0;
		n = held(m);
		if (n < 0)
			m->linger_blind = 1; /* no use asking again: the linger is waited out */
		if (n != 0)
			return 0;
	}
	m->linger = 2;
	if (n != 0 && !m->linger_blind && (n = held(m)) > 0)
		fdp__log(m, FDP_LOG_WARN,
		         "stopping: %d client(s) connected to a deferred listener sent nothing in %d "
		         "ms; closing the listeners resets them",
		         n, LINGER_MS);
	return 1;
}
