/*
 * Kernel steering (docs/STEERING.md): one listening socket per worker slot, all in one
 * SO_REUSEPORT group, and a BPF_PROG_TYPE_SK_REUSEPORT program attached to the group that picks
 * the slot of every new connection by a policy, in the kernel, so that each worker accepts on
 * its own socket and the master is off the path of a connection.
 *
 * The program is assembled here from struct bpf_insn arrays and loaded with bpf(2): no libbpf,
 * no compiler for the BPF target (docs/ARCHITECTURE.md says why). Its two maps:
 *   the socket array   BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, slot -> that slot's listening socket;
 *   the state          a one-element BPF_MAP_TYPE_ARRAY (BPF_F_MMAPABLE) holding struct
 *                      fdp__steer_state: the round-robin counter, which slots are live, the
 *                      least-conn counts and the hash-ip table; the master (and a forked worker,
 *                      which inherits the mapping) reads and writes it through mmap, no system
 *                      call.
 *
 * The group owns every descriptor it opens: the N listening sockets, the two maps, the program;
 * fdp__steer_close() closes them all. A caller that hands a slot's socket to a worker sends a
 * duplicate (SCM_RIGHTS) and keeps the group's: so a dead worker's queue survives it.
 *
 * Like the other internal parts: never prints, never exits, returns a negative errno, and
 * writes a one-line reason into err where it says so. What a caller falling back to passing
 * needs to tell apart:
 *   -EPERM   not allowed to load BPF programs (no CAP_BPF / root, or a policy forbids it);
 *   -ENOSYS  the kernel has no bpf(2), or no SO_ATTACH_REUSEPORT_EBPF;
 *   -EINVAL  the kernel lacks a map type, program type or instruction the program needs (the
 *            verifier's reason is in err), or the arguments are wrong.
 */
#ifndef FDP_STEER_H
#define FDP_STEER_H

/* Steering is the master's part: the layers beneath it may not use it. */
#if defined(FDP_LAYER_MECH) || defined(FDP_LAYER_PROTO) || defined(FDP_LAYER_WORKER) ||          \
        defined(FDP_LAYER_ROUTE)
#error "steering is part of the master: the layers beneath it may not use it"
#endif

#include "proto.h"
#include "route.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Limits: a group has at most this many slots; hash-ip has this many buckets (a power of 2). */
#define FDP__STEER_MAX_SLOTS FDP_PROTO_STEER_SLOTS
#define FDP__STEER_BUCKETS   FDP_PROTO_STEER_BUCKETS

enum fdp__steer_policy {
	FDP__STEER_ROUND_ROBIN, /* a global counter, atomically incremented (Linux 5.12) */
	FDP__STEER_LEAST_CONN,  /* the live slot with the smallest count; the program adds 1 */
	FDP__STEER_HASH_IP,     /* the client's address hashed to a bucket of the table */
	FDP__STEER_HASH,        /* the kernel's hash of the 4-tuple: stateless, like bare reuseport */
};

/* The state map's one value, struct fdp__steer_state, is the protocol's: proto.h. */

struct fdp__steer;

/*
 * Open a steering group of `slots` listening sockets (1 to FDP__STEER_MAX_SLOTS) on one TCP
 * address (fdp_addr_parse()'s forms, IPv4 or IPv6; port 0 picks one port for all of them),
 * each non-blocking, close-on-exec, with SO_REUSEPORT, and attach the program of `policy`.
 * Every slot starts live, its count 0; the hash-ip table starts from the consistent-hash ring
 * of the slots (fdp__steer_table_from_ring()). backlog <= 0 means SOMAXCONN.
 * Returns 0 with *out set, or a negative errno with a reason in err (errlen bytes, always
 * terminated): the three above, -EADDRINUSE and the like from bind, -ENOMEM.
 */
int fdp__steer_open(struct fdp__steer **out, const char *addr, unsigned slots,
                    enum fdp__steer_policy policy, int backlog, char *err, size_t errlen);

/*
 * The same on a listening TCP socket bound with SO_REUSEPORT (an inherited one: systemd's
 * ReusePort=yes, or fdpass serve's): it becomes slot 0's socket, and the other slots bind its
 * address (port included) in its reuseport group. On success the group owns fd; on failure it
 * stays the caller's, as it was. -EINVAL also for a socket that is not TCP or has no
 * SO_REUSEPORT (the reason says which).
 */
int fdp__steer_open_fd(struct fdp__steer **out, int fd, unsigned slots,
                       enum fdp__steer_policy policy, char *err, size_t errlen);

/*
 * A group from the descriptors another process's group handed over (an upgrade's old master):
 * its slots' sockets fds[0..slots-1], its program (of policy), socket array and state, which
 * is mapped here as far as both this library and the map know it (an older master's state is
 * a prefix of ours: fdp__steer_state_size() says how much). On success the group owns every
 * one of them; on failure they stay the caller's. Returns 0, -EINVAL, -ENOMEM, -EPROTO (a
 * state older than any this library shares, or not a state map), or mmap's error.
 */
int fdp__steer_adopt(struct fdp__steer **out, const int *fds, unsigned slots,
                     enum fdp__steer_policy policy, int prog, int sockarray, int state_fd);

/*
 * Make the program choose among slots 0..active-1 by policy: a group grown past its sockets
 * gets new ones (in its reuseport group and socket array, each taken out until put in);
 * slots past active keep their sockets, never chosen by the program (take them out too, and
 * accept what waits there). The new program replaces the old on the group at once; hash-ip's
 * table is filled again for the new count first. Returns 0 or a negative errno with the
 * reason in err; on failure the group steers as before (new sockets made so far stay).
 * The program replaced stays open, for fdp__steer_undo(), until fdp__steer_keep() or the
 * next resize.
 */
int fdp__steer_resize(struct fdp__steer *g, unsigned active, enum fdp__steer_policy policy,
                      char *err, size_t errlen);
/*
 * Back to the program, count and policy the last fdp__steer_resize() replaced: attached
 * again as it was, with no new descriptor (the resize kept it), so that an undo works where
 * the resize ran out of them. 0, -ENOENT with nothing to undo, or another negative errno
 * (the new program then stays, and there is nothing left to undo).
 */
int fdp__steer_undo(struct fdp__steer *g);
/* Keep the last resize: close the program it replaced. 1 if there was one, else 0. */
int fdp__steer_keep(struct fdp__steer *g);
/* The slots the program chooses among (fdp__steer_slots() counts the sockets). */
unsigned fdp__steer_active(const struct fdp__steer *g);

/*
 * Attach the group's program to its reuseport group again: after another group's program
 * replaced it on the same sockets (an upgrade's new master that then failed). 0 or -errno.
 */
int fdp__steer_attach(struct fdp__steer *g);

/*
 * Before closing a group whose sockets outlive it (slot 0 kept by systemd, say): take every
 * socket out of the socket array and the program off the reuseport group, so that the next
 * group made on that socket can put it in its own array (a socket sits in one array at a
 * time: -EBUSY otherwise) and nothing steers to sockets that are gone.
 */
void fdp__steer_detach(struct fdp__steer *g);

/* Close every descriptor of the group and unmap its state. NULL is a no-op. */
void fdp__steer_close(struct fdp__steer *g);

unsigned fdp__steer_slots(const struct fdp__steer *g);
enum fdp__steer_policy fdp__steer_policy(const struct fdp__steer *g);

/* The slot's listening socket, owned by the group (duplicate it to give it away), or -EINVAL. */
int fdp__steer_fd(const struct fdp__steer *g, unsigned slot);

/* The address the group listens on, as fdp_addr_format() writes it (the port picked for 0). */
int fdp__steer_addr(const struct fdp__steer *g, char *buf, size_t size);

/*
 * Take a slot out: new connections go to the live slots; those already in its accept queue stay
 * there, to be accepted from its socket. Put it back in. Both return 0 or -EINVAL.
 * With no live slot at all the program leaves the choice to the kernel's own hash over the group.
 */
int fdp__steer_slot_out(struct fdp__steer *g, unsigned slot);
int fdp__steer_slot_in(struct fdp__steer *g, unsigned slot);
int fdp__steer_slot_live(const struct fdp__steer *g, unsigned slot); /* 1, 0 or -EINVAL */

/*
 * Accept up to max connections queued on the slot's socket (a dead slot's, to hand them to live
 * workers), non-blocking and close-on-exec, into fds[]. Returns how many (the caller owns them),
 * -EAGAIN when none is queued, or another negative errno.
 */
int fdp__steer_rescue(struct fdp__steer *g, unsigned slot, int *fds, int max);

/* The number of connections waiting in the slot's accept queue (TCP_INFO), or a negative errno. */
long fdp__steer_queued(const struct fdp__steer *g, unsigned slot);

/*
 * Least-conn counts. The program adds 1 to the slot it picks; whoever closes a connection (the
 * worker, or the master for one it rescued) subtracts 1; set replaces the value. The slot's
 * count, set and add return 0 or -EINVAL; count returns the value or -EINVAL.
 */
long fdp__steer_count(const struct fdp__steer *g, unsigned slot);
int fdp__steer_count_set(struct fdp__steer *g, unsigned slot, uint32_t value);
int fdp__steer_count_add(struct fdp__steer *g, unsigned slot, int32_t delta);

/*
 * Correct a slot's count to its truth: `open` connections its worker holds (accepted, not yet
 * closed) plus those waiting in its accept queue (fdp__steer_queued()), stored with a
 * compare-and-swap retried while the word changes under it, so it never goes below 0. For the drift of a connection the kernel
 * selected twice (docs/STEERING.md). Returns the correction applied, or a negative errno.
 */
long fdp__steer_count_resync(struct fdp__steer *g, unsigned slot, uint32_t open);

/*
 * The state shared with the program, mapped read-write (MAP_SHARED: a forked worker shares it).
 * For a worker's own atomic updates; the functions above are the master's.
 */
struct fdp__steer_state *fdp__steer_state(struct fdp__steer *g);

/* The state's size in bytes: sizeof(struct fdp__steer_state), or an adopted older one's. */
size_t fdp__steer_state_size(const struct fdp__steer *g);

/*
 * The hash-ip table. The bucket the program computes for a client address (AF_INET or
 * AF_INET6; FDP__STEER_BUCKETS for another family); set one bucket's slot; or fill the table
 * from a consistent-hash ring built for the group's slot count (route_ring.c), each bucket to the
 * slot owning the middle of its arc, or, when that slot is not live, to the next live slot round
 * the circle. Each returns 0 or -EINVAL.
 */
unsigned fdp__steer_bucket(const struct sockaddr *peer);
int fdp__steer_table_set(struct fdp__steer *g, unsigned bucket, unsigned slot);
int fdp__steer_table_from_ring(struct fdp__steer *g, const struct fdp__hashring *ring);

/* The program's and the maps' descriptors (owned by the group), for an upgrade's hand-over. */
int fdp__steer_prog_fd(const struct fdp__steer *g);
int fdp__steer_sockarray_fd(const struct fdp__steer *g);
int fdp__steer_state_fd(const struct fdp__steer *g);

/* The policy's name ("round-robin", "least-conn", "hash-ip", "hash"). */
const char *fdp__steer_policy_name(enum fdp__steer_policy policy);

#endif
