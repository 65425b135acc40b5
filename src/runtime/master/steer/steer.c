/*
 * Steering groups (steer.h, docs/STEERING.md): the sockets, the maps, loading and attaching the
 * program, and the master's side of the shared state.
 */
#include "steer.h"
#include "steer_prog.h"

#include "fdpass.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct fdp__steer {
	unsigned slots;  /* sockets, in the socket array at their slot */
	unsigned active; /* the program chooses among slots 0..active-1 (fdp__steer_resize()) */
	enum fdp__steer_policy policy;
	int *fds;          /* the slots' listening sockets: owned */
	int sockarray;     /* BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: owned */
	int state_fd;      /* the state map: owned */
	int prog;          /* the program: owned */
	/* What the last fdp__steer_resize() replaced, for fdp__steer_undo(): the program (owned,
	 * until fdp__steer_keep()), the count and the policy. */
	int undo_prog;
	unsigned undo_active;
	enum fdp__steer_policy undo_policy;
	struct fdp__steer_state *state; /* state_fd's value, mapped */
	size_t state_size;              /* its bytes: an adopted older state's may be fewer */
	size_t state_len;               /* mapped: state_size rounded up to the page */
};

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int rc,
                                                      const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
#ifdef __NR_bpf
	long r = syscall(__NR_bpf, cmd, attr, sizeof(*attr));

	return r < 0 ? -errno : r;
#else
	(void)cmd;
	(void)attr;
	return -ENOSYS;
#endif
}

/* The errno of a bpf(2) call, as steer.h promises it, with the reason. */
static int bpf_fail(char *err, size_t errlen, long rc, const char *what)
{
	switch (rc) {
	case -ENOSYS:
		return fail(err, errlen, -ENOSYS, "%s: this kernel has no bpf(2)", what);
	case -EPERM:
	case -EACCES:
		return fail(err, errlen, -EPERM, "%s: not allowed (needs CAP_BPF, or root)", what);
	case -EINVAL:
	case -EOPNOTSUPP:
		return fail(err, errlen, -EINVAL, "%s: not supported by this kernel", what);
	default:
		return fail(err, errlen, (int)rc, "%s: %s", what, strerror((int)-rc));
	}
}

static int map_create(uint32_t type, uint32_t value_size, uint32_t entries, uint32_t flags)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = type;
	attr.key_size = sizeof(uint32_t);
	attr.value_size = value_size;
	attr.max_entries = entries;
	attr.map_flags = flags;
	return (int)sys_bpf(BPF_MAP_CREATE, &attr); /* the kernel's descriptors are close-on-exec */
}

/* The last non-empty line of the verifier's log: what it objected to. */
static void log_reason(char *log, char *out, size_t outlen)
{
	char *end = log + strlen(log), *start;

	while (end > log && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	start = end;
	while (start > log && start[-1] != '\n')
		start--;
	snprintf(out, outlen, "%s", start);
}

/* Load the program; on a refusal, load it again with a log to say why. */
static int prog_load(const struct bpf_insn *v, int n, char *err, size_t errlen)
{
	union bpf_attr attr;
	long fd;
	char *log;
	char reason[160];

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
	attr.insns = (uint64_t)(uintptr_t)v;
	attr.insn_cnt = (uint32_t)n;
	/*
	 * The license only matters to helpers reserved to GPL programs, and the program calls none
	 * of those (map_lookup_elem, skb_load_bytes_relative, sk_select_reuseport).
	 */
	attr.license = (uint64_t)(uintptr_t) "fdpass";
	fd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd >= 0)
		return (int)fd;
	if (fd != -EINVAL && fd != -EACCES)
		return bpf_fail(err, errlen, fd, "loading the steering program");
	/* -EACCES is the verifier's refusal or no privilege: the log tells them apart. */
	log = calloc(1, 65536);
	if (!log)
		return fail(err, errlen, -ENOMEM, "loading the steering program: out of memory");
	attr.log_buf = (uint64_t)(uintptr_t)log;
	attr.log_size = 65536;
	attr.log_level = 1;
	fd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd >= 0) { /* refused once, taken with a log: take it */
		free(log);
		return (int)fd;
	}
	log_reason(log, reason, sizeof(reason));
	free(log);
	if (fd == -EPERM || (fd == -EACCES && !reason[0]))
		return bpf_fail(err, errlen, -EPERM, "loading the steering program");
	return fail(err, errlen, -EINVAL, "the kernel refused the steering program: %s",
	            reason[0] ? reason : strerror((int)-fd));
}

static void table_fill(struct fdp__steer *g, const struct fdp__hashring *ring, int honour_live);
static void state_restore(struct fdp__steer *g);

static int slot_ok(const struct fdp__steer *g, unsigned slot)
{
	return g && slot < g->slots;
}

/* Slot i's socket into the socket array: 0 or a negative errno (-EBUSY: in another's). */
static int array_put(struct fdp__steer *g, uint32_t key)
{
	uint64_t value = (uint64_t)g->fds[key];
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (uint32_t)g->sockarray;
	attr.key = (uint64_t)(uintptr_t)&key;
	attr.value = (uint64_t)(uintptr_t)&value;
	attr.flags = BPF_ANY;
	return (int)sys_bpf(BPF_MAP_UPDATE_ELEM, &attr);
}

/* One slot's listening socket on sa: the first picks the port when sa's is 0. */
static int slot_socket(const struct sockaddr_storage *sa, socklen_t len, int backlog)
{
	int one = 1, fd, e;

	fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	/* As fdp_listen(): "[::]" is IPv6 only. */
	if (sa->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)sa, len) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	e = -errno;
	close(fd);
	return e;
}

/*
 * A group on sa (len bytes): slot 0's socket is first when it is not -1 (then the group owns
 * it only on success), else made like the others. addr names sa in the reasons.
 */
static int group_open(struct fdp__steer **out, struct sockaddr_storage sa, socklen_t len,
                      int first, const char *addr, unsigned slots, enum fdp__steer_policy policy,
                      int backlog, char *err, size_t errlen)
{
	struct bpf_insn prog[FDP__STEER_PROG_MAX];
	struct fdp__steer *g;
	struct fdp__hashring ring;
	long page = sysconf(_SC_PAGESIZE);
	int rc, n;

	if (slots == 0 || slots > FDP__STEER_MAX_SLOTS)
		return fail(err, errlen, -EINVAL, "steering: %u slots (1 to %u)", slots,
		            FDP__STEER_MAX_SLOTS);
	if ((unsigned)policy > FDP__STEER_HASH)
		return fail(err, errlen, -EINVAL, "steering: unknown policy %d", (int)policy);
	if (sa.ss_family != AF_INET && sa.ss_family != AF_INET6)
		return fail(err, errlen, -EINVAL, "steering: %s is not a TCP address", addr);
	if (backlog <= 0)
		backlog = SOMAXCONN;

	g = calloc(1, sizeof(*g));
	if (!g || !(g->fds = calloc(slots, sizeof(int)))) {
		free(g);
		return fail(err, errlen, -ENOMEM, "steering: out of memory");
	}
	g->slots = g->active = slots;
	g->policy = policy;
	g->sockarray = g->state_fd = g->prog = g->undo_prog = -1;
	for (unsigned i = 0; i < slots; i++)
		g->fds[i] = -1;

	/* The maps first: with no privilege this is where it shows. */
	/* Room for every slot a resize may add: an entry is a pointer in the kernel. */
	rc = map_create(BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, sizeof(uint64_t), FDP__STEER_MAX_SLOTS, 0);
	if (rc < 0) {
		rc = bpf_fail(err, errlen, rc, "creating the socket array");
		goto fail;
	}
	g->sockarray = rc;
	rc = map_create(BPF_MAP_TYPE_ARRAY, sizeof(struct fdp__steer_state), 1, BPF_F_MMAPABLE);
	if (rc < 0) {
		rc = bpf_fail(err, errlen, rc, "creating the steering state (mmap-able array)");
		goto fail;
	}
	g->state_fd = rc;
	g->state_size = sizeof(struct fdp__steer_state);
	g->state_len = (g->state_size + (size_t)page - 1) & ~((size_t)page - 1);
	g->state = mmap(NULL, g->state_len, PROT_READ | PROT_WRITE, MAP_SHARED, g->state_fd, 0);
	if (g->state == MAP_FAILED) {
		g->state = NULL;
		rc = fail(err, errlen, -errno, "mapping the steering state: %s", strerror(errno));
		goto fail;
	}
	g->state->slots = slots;
	for (unsigned i = 0; i < slots; i++)
		__atomic_store_n(&g->state->live[i], 1, __ATOMIC_RELEASE);
	rc = fdp__hashring_build(&ring, slots, FDP__RING_POINTS);
	if (rc < 0) {
		rc = fail(err, errlen, rc, "steering: building the hash ring: %s", strerror(-rc));
		goto fail;
	}
	fdp__steer_table_from_ring(g, &ring);
	fdp__hashring_free(&ring);

	n = fdp__steer_prog_build(prog, FDP__STEER_PROG_MAX, policy, slots, g->state_fd,
	                          g->sockarray);
	if (n < 0) {
		rc = fail(err, errlen, n, "steering: assembling the program: %s", strerror(-n));
		goto fail;
	}
	rc = prog_load(prog, n, err, errlen);
	if (rc < 0)
		goto fail;
	g->prog = rc;

	/* The sockets, all on the first one's port, each in the array at its slot. */
	for (unsigned i = 0; i < slots; i++) {
		rc = i == 0 && first >= 0 ? first : slot_socket(&sa, len, backlog);
		if (rc < 0) {
			rc = fail(err, errlen, rc, "steering: listening on %s: %s", addr,
			          strerror(-rc));
			goto fail;
		}
		g->fds[i] = rc;
		if (i == 0) {
			len = sizeof(sa);
			if (getsockname(g->fds[0], (struct sockaddr *)&sa, &len) < 0) {
				rc = fail(err, errlen, -errno, "steering: getsockname: %s",
				          strerror(errno));
				goto fail;
			}
		}
		rc = array_put(g, i);
		if (rc < 0) {
			rc = bpf_fail(err, errlen, rc, "putting a slot's socket in the socket array");
			goto fail;
		}
	}
	/* The program belongs to the group from now on, whichever of its sockets closes first. */
	rc = fdp__steer_attach(g);
	if (rc < 0) {
		rc = rc == -ENOPROTOOPT
		             ? fail(err, errlen, -ENOSYS,
		                    "SO_ATTACH_REUSEPORT_EBPF: not supported by this kernel")
		             : bpf_fail(err, errlen, rc, "SO_ATTACH_REUSEPORT_EBPF");
		goto fail;
	}
	*out = g;
	return 0;
fail:
	if (first >= 0 && g->fds[0] == first)
		g->fds[0] = -1; /* the caller's again */
	fdp__steer_close(g);
	return rc;
}

int fdp__steer_open(struct fdp__steer **out, const char *addr, unsigned slots,
                    enum fdp__steer_policy policy, int backlog, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	*out = NULL;
	rc = fdp_addr_parse(addr, &sa, &len);
	if (rc < 0)
		return fail(err, errlen, rc, "steering: bad address %s", addr);
	return group_open(out, sa, len, -1, addr, slots, policy, backlog, err, errlen);
}

int fdp__steer_open_fd(struct fdp__steer **out, int fd, unsigned slots,
                       enum fdp__steer_policy policy, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa), olen;
	char addr[FDP_ADDR_STRLEN];
	int on = 0, type = 0, backlog = SOMAXCONN;

	if (err && errlen)
		err[0] = '\0';
	*out = NULL;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return fail(err, errlen, -errno, "steering: getsockname: %s", strerror(errno));
	if (fdp_addr_format((struct sockaddr *)&sa, len, addr, sizeof(addr)) < 0)
		snprintf(addr, sizeof(addr), "?");
	olen = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &olen) < 0 || type != SOCK_STREAM ||
	    (sa.ss_family != AF_INET && sa.ss_family != AF_INET6))
		return fail(err, errlen, -EINVAL, "steering: %s is not a TCP listener", addr);
	olen = sizeof(on);
	if (getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, &olen) < 0 || !on)
		return fail(err, errlen, -EINVAL,
		            "steering: the listener on %s was bound without SO_REUSEPORT", addr);
	return group_open(out, sa, len, fd, addr, slots, policy, backlog, err, errlen);
}

int fdp__steer_resize(struct fdp__steer *g, unsigned active, enum fdp__steer_policy policy,
                      char *err, size_t errlen)
{
	struct bpf_insn prog[FDP__STEER_PROG_MAX];
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	struct fdp__hashring ring;
	int n, rc, fd;

	if (err && errlen)
		err[0] = '\0';
	if (active == 0 || active > FDP__STEER_MAX_SLOTS || (unsigned)policy > FDP__STEER_HASH)
		return fail(err, errlen, -EINVAL, "steering: %u slots (1 to %u)", active,
		            FDP__STEER_MAX_SLOTS);
	if (getsockname(g->fds[0], (struct sockaddr *)&sa, &len) < 0)
		return fail(err, errlen, -errno, "steering: getsockname: %s", strerror(errno));
	/* New slots: sockets in the group, each out until its worker takes it. */
	if (active > g->slots) {
		int *fds = realloc(g->fds, active * sizeof(int));

		if (!fds)
			return fail(err, errlen, -ENOMEM, "steering: out of memory");
		g->fds = fds;
	}
	while (g->slots < active) {
		fd = slot_socket(&sa, len, SOMAXCONN);
		if (fd < 0)
			return fail(err, errlen, fd, "steering: a new slot's socket: %s", strerror(-fd));
		g->fds[g->slots] = fd;
		__atomic_store_n(&g->state->live[g->slots], 0, __ATOMIC_RELEASE);
		__atomic_store_n(&g->state->count[g->slots], 0, __ATOMIC_RELAXED);
		rc = array_put(g, g->slots);
		if (rc < 0) {
			close(fd);
			return bpf_fail(err, errlen, rc, "putting a slot's socket in the socket array");
		}
		g->slots++;
	}
	if (active == g->active && policy == g->policy)
		return 0;
	/* hash-ip's table for the new count first: the new program reads it at once. */
	if (policy == FDP__STEER_HASH_IP) {
		rc = fdp__hashring_build(&ring, active, FDP__RING_POINTS);
		if (rc < 0)
			return fail(err, errlen, rc, "steering: building the hash ring: %s",
			            strerror(-rc));
		table_fill(g, &ring, 0);
		fdp__hashring_free(&ring);
	}
	n = fdp__steer_prog_build(prog, FDP__STEER_PROG_MAX, policy, active, g->state_fd,
	                          g->sockarray);
	if (n < 0)
		return fail(err, errlen, n, "steering: assembling the program: %s", strerror(-n));
	fd = prog_load(prog, n, err, errlen);
	/* The new program replaces the old one on the group at once: no SYN goes unsteered. */
	if (fd >= 0 &&
	    setsockopt(g->fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &fd, sizeof(fd)) < 0) {
		rc = bpf_fail(err, errlen, -errno, "SO_ATTACH_REUSEPORT_EBPF");
		close(fd);
		fd = rc;
	}
	if (fd < 0) {
		state_restore(g); /* hash-ip's table for the program still attached */
		return fd;
	}
	/* The program replaced stays open until fdp__steer_keep(): an undo needs no descriptor. */
	fdp__steer_keep(g);
	g->undo_prog = g->prog;
	g->undo_active = g->active;
	g->undo_policy = g->policy;
	g->prog = fd;
	g->active = active;
	g->policy = policy;
	g->state->slots = active;
	return 0;
}

int fdp__steer_undo(struct fdp__steer *g)
{
	if (g->undo_prog < 0)
		return -ENOENT;
	if (setsockopt(g->fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &g->undo_prog,
	               sizeof(g->undo_prog)) < 0) {
		int e = -errno;

		fdp__steer_keep(g); /* the new program stays: nothing left to undo */
		return e;
	}
	close(g->prog);
	g->prog = g->undo_prog;
	g->active = g->undo_active;
	g->policy = g->undo_policy;
	g->undo_prog = -1;
	state_restore(g); /* the state's count and hash-ip's table: the old ones */
	return 0;
}

int fdp__steer_keep(struct fdp__steer *g)
{
	if (g->undo_prog < 0)
		return 0;
	close(g->undo_prog);
	g->undo_prog = -1;
	return 1;
}

unsigned fdp__steer_active(const struct fdp__steer *g)
{
	return g->active;
}

/* The value size of the map fd (bytes), 0 if it cannot be had. */
static size_t map_value_size(int fd)
{
	struct bpf_map_info info;
	union bpf_attr attr;

	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = (uint32_t)fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0 || info.max_entries != 1)
		return 0;
	return info.value_size;
}

size_t fdp__steer_state_size(const struct fdp__steer *g)
{
	return g->state_size;
}

int fdp__steer_adopt(struct fdp__steer **out, const int *fds, unsigned slots,
                     enum fdp__steer_policy policy, int prog, int sockarray, int state_fd)
{
	long page = sysconf(_SC_PAGESIZE);
	struct fdp__steer *g;

	*out = NULL;
	if (slots == 0 || slots > FDP__STEER_MAX_SLOTS || (unsigned)policy > FDP__STEER_HASH)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g || !(g->fds = calloc(slots, sizeof(int)))) {
		free(g);
		return -ENOMEM;
	}
	/* The old master's state may be an older library's, shorter: map what it has. */
	g->state_size = map_value_size(state_fd);
	if (!FDP_PROTO_STATE_HAS(g->state_size, stolen)) {
		free(g->fds);
		free(g);
		return -EPROTO; /* none, or older than any this code can share */
	}
	if (g->state_size > sizeof(struct fdp__steer_state))
		g->state_size = sizeof(struct fdp__steer_state); /* a newer one's: our prefix */
	g->state_len = (g->state_size + (size_t)page - 1) & ~((size_t)page - 1);
	g->state = mmap(NULL, g->state_len, PROT_READ | PROT_WRITE, MAP_SHARED, state_fd, 0);
	if (g->state == MAP_FAILED) {
		int e = -errno;

		free(g->fds);
		free(g);
		return e;
	}
	memcpy(g->fds, fds, slots * sizeof(int));
	g->slots = slots;
	g->active = g->state->slots ? g->state->slots : slots; /* the old master's resize's */
	g->policy = policy;
	g->prog = prog;
	g->undo_prog = -1;
	g->sockarray = sockarray;
	g->state_fd = state_fd;
	*out = g;
	return 0;
}

#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68 /* Linux 5.3 */
#endif

void fdp__steer_detach(struct fdp__steer *g)
{
	int zero = 0;

	for (uint32_t key = 0; key < g->slots; key++) {
		union bpf_attr attr;

		memset(&attr, 0, sizeof(attr));
		attr.map_fd = (uint32_t)g->sockarray;
		attr.key = (uint64_t)(uintptr_t)&key;
		sys_bpf(BPF_MAP_DELETE_ELEM, &attr); /* -ENOENT: not there, fine */
	}
	setsockopt(g->fds[0], SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof(zero));
}

/* The state's slot count and hash-ip's table for the program in g (its count and policy). */
static void state_restore(struct fdp__steer *g)
{
	struct fdp__hashring ring;

	g->state->slots = g->active;
	if (g->policy == FDP__STEER_HASH_IP &&
	    fdp__hashring_build(&ring, g->active, FDP__RING_POINTS) == 0) {
		table_fill(g, &ring, 0);
		fdp__hashring_free(&ring);
	}
}

int fdp__steer_attach(struct fdp__steer *g)
{
	if (setsockopt(g->fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &g->prog, sizeof(g->prog)) <
	    0)
		return -errno;
	state_restore(g); /* what another group's resize may have changed: ours again */
	return 0;
}

void fdp__steer_close(struct fdp__steer *g)
{
	if (!g)
		return;
	for (unsigned i = 0; g->fds && i < g->slots; i++)
		if (g->fds[i] >= 0)
			close(g->fds[i]);
	if (g->state)
		munmap(g->state, g->state_len);
	if (g->prog >= 0)
		close(g->prog);
	fdp__steer_keep(g);
	if (g->state_fd >= 0)
		close(g->state_fd);
	if (g->sockarray >= 0)
		close(g->sockarray);
	free(g->fds);
	free(g);
}

unsigned fdp__steer_slots(const struct fdp__steer *g)
{
	return g->slots;
}

enum fdp__steer_policy fdp__steer_policy(const struct fdp__steer *g)
{
	return g->policy;
}

int fdp__steer_fd(const struct fdp__steer *g, unsigned slot)
{
	return slot_ok(g, slot) ? g->fds[slot] : -EINVAL;
}

int fdp__steer_addr(const struct fdp__steer *g, char *buf, size_t size)
{
	return fdp_addr_local(g->fds[0], buf, size);
}

int fdp__steer_slot_out(struct fdp__steer *g, unsigned slot)
{
	if (!slot_ok(g, slot))
		return -EINVAL;
	__atomic_store_n(&g->state->live[slot], 0, __ATOMIC_SEQ_CST);
	return 0;
}

int fdp__steer_slot_in(struct fdp__steer *g, unsigned slot)
{
	if (!slot_ok(g, slot))
		return -EINVAL;
	__atomic_store_n(&g->state->live[slot], 1, __ATOMIC_SEQ_CST);
	return 0;
}

int fdp__steer_slot_live(const struct fdp__steer *g, unsigned slot)
{
	if (!slot_ok(g, slot))
		return -EINVAL;
	return __atomic_load_n(&g->state->live[slot], __ATOMIC_ACQUIRE) != 0;
}

int fdp__steer_rescue(struct fdp__steer *g, unsigned slot, int *fds, int max)
{
	int n = 0;

	if (!slot_ok(g, slot) || max < 0)
		return -EINVAL;
	while (n < max) {
		int fd = accept4(g->fds[slot], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (n > 0)
				break;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		fds[n++] = fd;
	}
	return n;
}

long fdp__steer_queued(const struct fdp__steer *g, unsigned slot)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (!slot_ok(g, slot))
		return -EINVAL;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(g->fds[slot], IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	/* On a listener, tcpi_unacked is the accept queue's length (tcpi_sacked its backlog). */
	return (long)ti.tcpi_unacked;
}

long fdp__steer_count(const struct fdp__steer *g, unsigned slot)
{
	if (!slot_ok(g, slot))
		return -EINVAL;
	return (long)__atomic_load_n(&g->state->count[slot], __ATOMIC_RELAXED);
}

int fdp__steer_count_set(struct fdp__steer *g, unsigned slot, uint32_t value)
{
	if (!slot_ok(g, slot))
		return -EINVAL;
	__atomic_store_n(&g->state->count[slot], value, __ATOMIC_RELAXED);
	return 0;
}

int fdp__steer_count_add(struct fdp__steer *g, unsigned slot, int32_t delta)
{
	if (!slot_ok(g, slot))
		return -EINVAL;
	__atomic_fetch_add(&g->state->count[slot], (uint32_t)delta, __ATOMIC_RELAXED);
	return 0;
}

long fdp__steer_count_resync(struct fdp__steer *g, unsigned slot, uint32_t open)
{
	long queued = fdp__steer_queued(g, slot);
	uint32_t now;
	int32_t delta;

	if (queued < 0)
		return queued;
	/*
	 * The truth, stored whole: a compare-and-swap, retried while the program or a worker
	 * changes the word meanwhile. (Adding a difference computed from an older read could take
	 * the word below 0, which the program reads as a slot taken out, bit 31.)
	 */
	now = __atomic_load_n(&g->state->count[slot], __ATOMIC_RELAXED);
	do
		delta = (int32_t)(open + (uint32_t)queued - now);
	while (delta && !__atomic_compare_exchange_n(&g->state->count[slot], &now,
	                                             open + (uint32_t)queued, 1, __ATOMIC_RELAXED,
	                                             __ATOMIC_RELAXED));
	return delta;
}

struct fdp__steer_state *fdp__steer_state(struct fdp__steer *g)
{
	return g->state;
}

static uint32_t fmix32(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* 32-bit words as the program loads them: in the host's order, from the header's bytes. */
static uint32_t word(const void *p)
{
	uint32_t w;

	memcpy(&w, p, sizeof(w));
	return w;
}

unsigned fdp__steer_bucket(const struct sockaddr *peer)
{
	uint32_t h;

	if (peer->sa_family == AF_INET) {
		h = word(&((const struct sockaddr_in *)peer)->sin_addr);
	} else if (peer->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;

		h = word(a) ^ word(a + 4) ^ word(a + 8) ^ word(a + 12);
	} else {
		return FDP__STEER_BUCKETS;
	}
	return fmix32(h) & (FDP__STEER_BUCKETS - 1);
}

int fdp__steer_table_set(struct fdp__steer *g, unsigned bucket, unsigned slot)
{
	if (!slot_ok(g, slot) || bucket >= FDP__STEER_BUCKETS)
		return -EINVAL;
	__atomic_store_n(&g->state->table[bucket], slot, __ATOMIC_RELAXED);
	return 0;
}

/* The first point of the ring at or after hash. */
static size_t ring_point(const struct fdp__hashring *r, uint64_t hash)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->v[mid].at < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == r->n ? 0 : lo;
}

/* Each bucket to its slot on ring; with honour_live, a slot taken out's to the next live. */
static void table_fill(struct fdp__steer *g, const struct fdp__hashring *ring, int honour_live)
{
	/* Bucket b covers [b, b + 1) * 2^64 / BUCKETS of the circle; it goes by its middle. */
	const unsigned shift = 64 - 12;

	_Static_assert(FDP__STEER_BUCKETS == 1u << 12, "the shift above assumes 4096 buckets");
	for (unsigned b = 0; b < FDP__STEER_BUCKETS; b++) {
		uint64_t mid = ((uint64_t)b << shift) + (1ULL << (shift - 1));
		size_t p = ring_point(ring, mid), i;
		unsigned slot = ring->v[p].slot;

		/* A slot taken out: the next live one round the circle, as a ring without it. */
		for (i = 0; honour_live && i < ring->n && !fdp__steer_slot_live(g, ring->v[p].slot);
		     i++)
			p = (p + 1) % ring->n;
		if (honour_live && i < ring->n)
			slot = ring->v[p].slot;
		__atomic_store_n(&g->state->table[b], slot, __ATOMIC_RELAXED);
	}
}

int fdp__steer_table_from_ring(struct fdp__steer *g, const struct fdp__hashring *ring)
{
	if (!g || !ring || ring->n == 0 || ring->slots != g->active)
		return -EINVAL;
	table_fill(g, ring, 1);
	return 0;
}

int fdp__steer_prog_fd(const struct fdp__steer *g)
{
	return g->prog;
}

int fdp__steer_sockarray_fd(const struct fdp__steer *g)
{
	return g->sockarray;
}

int fdp__steer_state_fd(const struct fdp__steer *g)
{
	return g->state_fd;
}

const char *fdp__steer_policy_name(enum fdp__steer_policy policy)
{
	switch (policy) {
	case FDP__STEER_ROUND_ROBIN:
		return "round-robin";
	case FDP__STEER_LEAST_CONN:
		return "least-conn";
	case FDP__STEER_HASH_IP:
		return "hash-ip";
	case FDP__STEER_HASH:
		return "hash";
	}
	return "unknown";
}
