/*
 * fdpass cat FILE...: the textbook demonstration of descriptor passing, made real.
 *
 * A child process opens each FILE, in order, and passes the open descriptor to the parent over
 * a SOCK_SEQPACKET socketpair with the file name as the message data; the parent copies it to
 * standard output with the fastest call the kernel accepts for that pair of descriptors. The
 * output, messages and exit status follow cat(1).
 *
 * The protocol, child to parent, one fdp_msg per FILE operand, in command-line order:
 *
 *	data: int32 err (host byte order: both ends are one machine), then the file name
 *	      (not NUL-terminated, at most CAT_NAME_MAX bytes: longer names are cut there)
 *	fds:  exactly one, the open file, when err is 0; none when err is an errno value
 *	      saying why the file could not be opened
 *
 * then end of file when the child has sent them all and exits 0. The parent checks each name
 * against the operand it expects, so a lost or reordered message cannot put one file's error
 * on another's name.
 *
 * "-" is standard input. The child, forked from the parent, shares its open file description,
 * so the child passes its own descriptor 0: reads advance the one shared offset and a second
 * "-" gets whatever is left (end of file for a pipe), as with cat.
 *
 * Standard output closed early (fdpass cat big | head): like cat, fdpass cat dies of SIGPIPE
 * when SIGPIPE has its default disposition; it ignores it while copying, reaps the child, then
 * raises it. When SIGPIPE was already ignored it exits 1 without a message.
 */
#include "commands.h"
#include "fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The longest name carried in a message; the kernel refuses longer paths with ENAMETOOLONG. */
#define CAT_NAME_MAX PATH_MAX

/* Bytes asked of one copy_file_range/sendfile/splice call: large, and below sendfile's cap. */
#define CAT_CHUNK (1u << 30)

/* The buffer of the read/write fallback. */
#define CAT_BUF_SIZE (128 * 1024)

/* A copy method that returns this declined the pair of descriptors: try the next method. */
#define CAT_DECLINED 1

struct cat_out {
	int fd;
	struct stat st;
};

/* Where a copy failed: reading FILE ("fdpass cat: FILE: ...") or writing stdout. */
struct cat_error {
	int err;
	bool on_write;
};

static void cat_help(void)
{
	printf("usage: fdpass cat [-u] [--] [FILE]...\n");
	printf("\nConcatenate FILEs to standard output, as cat(1) does, the textbook way: a child\n"
	       "process opens each FILE and passes the open descriptor, with the file name, to\n"
	       "this process over a Unix socketpair (SCM_RIGHTS); this process copies it with\n"
	       "copy_file_range, splice or sendfile, whichever suits standard output.\n\n"
	       "With no FILE, or when FILE is -, read standard input.\n\n"
	       "  -u      ignored (POSIX: output is never buffered anyway)\n"
	       "  --      end of options: every later argument is a FILE\n"
	       "  --help  print this help and exit\n\n"
	       "Exit status: 0 on success; 1 if a FILE could not be opened or read, standard\n"
	       "output could not be written, or the child process died; 2 for a bad command line.\n"
	       "A closed output pipe ends fdpass cat by SIGPIPE, as it ends cat (or with status 1\n"
	       "when SIGPIPE is ignored).\n");
}

/* Errors after which a faster copy call is not supported for these descriptors (see cat.c of
 * coreutils for the list), as opposed to real input or output errors. */
static bool cat_is_declined(int err)
{
	return err == EINVAL || err == ENOSYS || err == EXDEV || err == EOPNOTSUPP ||
	       err == ENOTSUP || err == EBADF || err == ETXTBSY || err == EPERM;
}

/* Errors of a copy_file_range/sendfile/splice call that belong to the output side. */
static bool cat_is_write_error(int err)
{
	return err == EPIPE || err == ENOSPC || err == EDQUOT || err == EFBIG;
}

/* A non-blocking standard input or output said EAGAIN: wait until both can move again. */
static void cat_wait_ready(int in, int out)
{
	struct pollfd p[2] = {{.fd = in, .events = POLLIN}, {.fd = out, .events = POLLOUT}};

	for (int i = 0; i < 2; i++)
		while (poll(&p[i], 1, -1) < 0 && errno == EINTR)
			;
}

enum cat_method { CAT_COPY_FILE_RANGE, CAT_SENDFILE, CAT_SPLICE };

static ssize_t cat_call(enum cat_method method, int in, int out)
{
	switch (method) {
	case CAT_COPY_FILE_RANGE:
		return copy_file_range(in, NULL, out, NULL, CAT_CHUNK, 0);
	case CAT_SENDFILE:
		return sendfile(out, in, NULL, CAT_CHUNK);
	case CAT_SPLICE:
		return splice(in, NULL, out, NULL, CAT_CHUNK, SPLICE_F_MOVE);
	}
	return -1;
}

/*
 * Copy in to out with one in-kernel method until end of file, through any number of short
 * copies. Returns 0 at end of file, CAT_DECLINED when the kernel does not support the method
 * for these descriptors (the rest is then for the next method, from the current offsets), or
 * -1 with *e set.
 */
static int cat_copy_kernel(enum cat_method method, int in, int out, struct cat_error *e)
{
	for (bool copied = false;; copied = true) {
		ssize_t n = cat_call(method, in, out);

		if (n > 0)
			continue;
		if (n == 0) {
			/* copy_file_range says 0 for /proc files that are not empty (Linux up to
			 * at least 5.6); coreutils then falls back to read, and so does this. */
			return method == CAT_COPY_FILE_RANGE && !copied ? CAT_DECLINED : 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			cat_wait_ready(in, out);
			continue;
		}
		if (cat_is_declined(errno))
			return CAT_DECLINED;
		e->err = errno;
		e->on_write = cat_is_write_error(errno);
		return -1;
	}
}

/* Write all of buf[0..len) to out, through short writes. Returns 0, or -1 with *e set. */
static int cat_write_all(int in, int out, const char *buf, size_t len, struct cat_error *e)
{
	while (len > 0) {
		ssize_t n = write(out, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			cat_wait_ready(in, out);
			continue;
		}
		if (n < 0) {
			*e = (struct cat_error){errno, true};
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The method that always works: read and write through a buffer. Returns 0 or -1 (*e set). */
static int cat_copy_buffered(int in, int out, struct cat_error *e)
{
	static char buf[CAT_BUF_SIZE];

	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));

		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			cat_wait_ready(in, out);
			continue;
		}
		if (n < 0) {
			*e = (struct cat_error){errno, false};
			return -1;
		}
		if (cat_write_all(in, out, buf, (size_t)n, e) < 0)
			return -1;
	}
}

/*
 * Copy in to standard output until end of file. The in-kernel methods that suit the output are
 * tried first, in order, each taking over where a declining one stopped; read/write is last.
 * Returns 0, or -1 with *e set.
 */
static int cat_copy(int in, const struct cat_out *out, struct cat_error *e)
{
	enum cat_method order[3];
	size_t n = 0;
	struct stat st;
	bool in_is_pipe = fstat(in, &st) == 0 && S_ISFIFO(st.st_mode);

	if (S_ISREG(out->st.st_mode)) {
		order[n++] = CAT_COPY_FILE_RANGE;
		order[n++] = CAT_SENDFILE;
		if (in_is_pipe)
			order[n++] = CAT_SPLICE;
	} else if (S_ISFIFO(out->st.st_mode)) {
		order[n++] = CAT_SPLICE;
	} else {
		/* Sockets, terminals, character devices: sendfile where the kernel can. */
		order[n++] = CAT_SENDFILE;
		if (in_is_pipe)
			order[n++] = CAT_SPLICE;
	}
	for (size_t i = 0; i < n; i++) {
		int r = cat_copy_kernel(order[i], in, out->fd, e);

		if (r != CAT_DECLINED)
			return r;
	}
	return cat_copy_buffered(in, out->fd, e);
}

/* Copying a non-empty file onto itself would only fill the disk: refuse it as cat does. */
static bool cat_is_output_file(int in, const struct cat_out *out)
{
	struct stat st;

	if (!S_ISREG(out->st.st_mode) || fstat(in, &st) < 0)
		return false;
	return st.st_dev == out->st.st_dev && st.st_ino == out->st.st_ino &&
	       lseek(in, 0, SEEK_CUR) < st.st_size;
}

/* ---- the child: open each file and pass it ---- */

/* Send one operand's message: the descriptor fd, or err when fd < 0. Returns fdp_msg_send(). */
static ssize_t cat_send(int sock, const char *name, int fd, int err)
{
	char data[sizeof(int32_t) + CAT_NAME_MAX];
	size_t len = strlen(name);
	int32_t err32 = fd < 0 ? err : 0;
	struct fdp_msg m = {.data = data, .fds = &fd, .nfds = fd < 0 ? 0 : 1};

	if (len > CAT_NAME_MAX)
		len = CAT_NAME_MAX;
	memcpy(data, &err32, sizeof(err32));
	memcpy(data + sizeof(err32), name, len);
	m.len = sizeof(err32) + len;
	return fdp_msg_send(sock, &m, 0);
}

/* Open and pass every name in order, then exit: 0 when all were sent, 1 if the parent left. */
static void cat_child(int sock, char **names, size_t n)
{
	/* The output is the parent's: a child held up in open() (a FIFO) must not keep it open. */
	close(STDOUT_FILENO);
	for (size_t i = 0; i < n; i++) {
		bool is_stdin = strcmp(names[i], "-") == 0;
		int fd, err = 0;
		ssize_t r;

		if (is_stdin)
			fd = fcntl(STDIN_FILENO, F_GETFD) < 0 ? -1 : STDIN_FILENO;
		else
			fd = open(names[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			err = errno;
		r = cat_send(sock, names[i], fd, err);
		/* A descriptor the kernel will not carry (ETOOMANYREFS) is one file's error. */
		if (r < 0 && fd >= 0 && r != -EPIPE && r != -ECONNRESET)
			r = cat_send(sock, names[i], -1, (int)-r);
		if (fd >= 0 && !is_stdin)
			close(fd);
		if (r < 0) {
			close(sock);
			_exit(FDPASS_EXIT_FAILURE);
		}
	}
	close(sock);
	_exit(FDPASS_EXIT_OK);
}

/* ---- the parent ---- */

struct cat_run {
	pid_t child;
	int sock;
	struct cat_out out;
	int status;        /* exit status so far */
	bool broken_pipe;  /* standard output's reader went away */
	bool stopped;      /* the parent gave up before the child was done */
	bool died_early;   /* the child closed the socket before passing every file */
	bool sigpipe_dflt; /* SIGPIPE had its default disposition on entry */
};

/* What cat_receive() returns when it has no descriptor. */
#define CAT_RECV_FAILED -1 /* the child could not open this file (reported) */
#define CAT_RECV_EOF    -2 /* the child is gone (cat_reap() reports how) */
#define CAT_RECV_BROKEN -3 /* the conversation with the child is broken (reported) */

/* Receive the message for operand name: the descriptor (owned by the caller), or CAT_RECV_*. */
static int cat_receive(struct cat_run *run, const char *name)
{
	char data[sizeof(int32_t) + CAT_NAME_MAX];
	int fd = -1;
	int32_t err;
	struct fdp_msg m = {.data = data, .len = sizeof(data), .fds = &fd, .nfds = 1};
	size_t namelen = strlen(name) > CAT_NAME_MAX ? CAT_NAME_MAX : strlen(name);
	int r = fdp_msg_recv(run->sock, &m, 0);

	if (r == 0)
		return CAT_RECV_EOF;
	if (r < 0 && r != -EXFULL) {
		fprintf(stderr, "fdpass cat: receiving from the child: %s\n", fdp_strerror(r));
		return CAT_RECV_BROKEN;
	}
	if (m.len != sizeof(err) + namelen || memcmp(data + sizeof(err), name, namelen) != 0 ||
	    m.flags) {
		fdp_close_fds(&fd, m.nfds);
		fprintf(stderr, "fdpass cat: %s: unexpected message from the child\n", name);
		return CAT_RECV_BROKEN;
	}
	memcpy(&err, data, sizeof(err));
	if (r == -EXFULL) {
		/* This process is at its descriptor limit: one file lost, the others may pass. */
		fprintf(stderr, "fdpass cat: %s: %s\n", name, fdp_strerror(r));
		return CAT_RECV_FAILED;
	}
	if ((err == 0) != (m.nfds == 1) || err < 0) {
		fdp_close_fds(&fd, m.nfds);
		fprintf(stderr, "fdpass cat: %s: unexpected message from the child\n", name);
		return CAT_RECV_BROKEN;
	}
	if (err) {
		fprintf(stderr, "fdpass cat: %s: %s\n", name, strerror(err));
		return CAT_RECV_FAILED;
	}
	return fd;
}

/* Copy one received descriptor to standard output. Returns false when the run must stop. */
static bool cat_one(struct cat_run *run, const char *name, int fd)
{
	struct cat_error e = {0, false};

	if (cat_is_output_file(fd, &run->out)) {
		fprintf(stderr, "fdpass cat: %s: input file is output file\n", name);
		run->status = FDPASS_EXIT_FAILURE;
		return true;
	}
	if (cat_copy(fd, &run->out, &e) == 0)
		return true;
	run->status = FDPASS_EXIT_FAILURE;
	if (!e.on_write) {
		fprintf(stderr, "fdpass cat: %s: %s\n", name, strerror(e.err));
		return true;
	}
	if (e.err == EPIPE)
		run->broken_pipe = true;
	else
		fprintf(stderr, "fdpass cat: write error: %s\n", strerror(e.err));
	return false;
}

/* Wait for the child, killing it first if the parent gave up; report it if it failed. */
static void cat_reap(struct cat_run *run)
{
	int st = 0; /* if waitpid() fails the status is unknown: only died_early tells */

	if (run->stopped)
		kill(run->child, SIGKILL); /* it may sit in open() of a FIFO forever */
	while (waitpid(run->child, &st, 0) < 0 && errno == EINTR)
		;
	if (run->stopped)
		return;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && !run->died_early)
		return;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		fprintf(stderr, "fdpass cat: the child process exited before passing every file\n");
	else if (WIFSIGNALED(st))
		fprintf(stderr, "fdpass cat: the child process was killed by signal %d (%s)\n",
		        WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		fprintf(stderr, "fdpass cat: the child process exited with status %d\n",
		        WEXITSTATUS(st));
	run->status = FDPASS_EXIT_FAILURE;
}

/* Receive and copy every operand in order. */
static void cat_parent(struct cat_run *run, char **names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int fd = cat_receive(run, names[i]);
		bool go_on;

		if (fd == CAT_RECV_FAILED) {
			run->status = FDPASS_EXIT_FAILURE;
			continue;
		}
		if (fd == CAT_RECV_EOF) {
			run->died_early = true;
			return;
		}
		if (fd == CAT_RECV_BROKEN) {
			run->status = FDPASS_EXIT_FAILURE;
			run->stopped = true;
			return;
		}
		go_on = cat_one(run, names[i], fd);
		close(fd);
		if (!go_on) {
			run->stopped = true;
			return;
		}
	}
}

/*
 * Parse options anywhere before "--", as getopt does, and gather the operands, in order, into
 * argv[1..*n] (each lands at or before its own place). Returns 0, or -1 for --help and -2 for
 * a usage error (reported).
 */
static int cat_parse(int argc, char **argv, size_t *n)
{
	bool options = true;

	*n = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (options && strcmp(a, "--") == 0) {
			options = false;
		} else if (options && strcmp(a, "--help") == 0) {
			return -1;
		} else if (options && strcmp(a, "-u") == 0) {
			continue;
		} else if (options && a[0] == '-' && a[1] != '\0') {
			fdpass_usage_error("cat", "unknown option '%s'", a);
			return -2;
		} else {
			argv[1 + (*n)++] = argv[i];
		}
	}
	return 0;
}

/* Move a descriptor to 3 or above, so 0, 1 and 2 keep meaning what they mean to cat. */
static int cat_above_stdio(int fd)
{
	int moved;

	if (fd > STDERR_FILENO)
		return fd;
	moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	close(fd);
	return moved;
}

static int cat_start(struct cat_run *run, char **names, size_t n)
{
	int sv[2], r;

	r = fdp_socketpair(SOCK_SEQPACKET, sv);
	if (r < 0) {
		fprintf(stderr, "fdpass cat: socketpair: %s\n", fdp_strerror(r));
		return -1;
	}
	sv[0] = cat_above_stdio(sv[0]);
	sv[1] = cat_above_stdio(sv[1]);
	if (sv[0] < 0 || sv[1] < 0) {
		fprintf(stderr, "fdpass cat: socketpair: %s\n", strerror(errno));
		fdp_close_fds(sv, 2);
		return -1;
	}
	fflush(NULL);
	run->child = fork();
	if (run->child < 0) {
		fprintf(stderr, "fdpass cat: fork: %s\n", strerror(errno));
		fdp_close_fds(sv, 2);
		return -1;
	}
	if (run->child == 0) {
		close(sv[0]);
		cat_child(sv[1], names, n);
	}
	close(sv[1]);
	run->sock = sv[0];
	return 0;
}

int cmd_cat(int argc, char **argv)
{
	static char *dash[] = {"-"};
	struct cat_run run = {.status = FDPASS_EXIT_OK, .sock = -1};
	struct sigaction ign = {.sa_handler = SIG_IGN}, dfl = {.sa_handler = SIG_DFL};
	struct sigaction old_pipe, old_chld;
	char **names = argv + 1;
	size_t n;
	int r = cat_parse(argc, argv, &n);

	if (r < 0) {
		if (r == -1) {
			cat_help();
			return FDPASS_EXIT_OK;
		}
		return FDPASS_EXIT_USAGE; /* main() points at --help */
	}
	run.out.fd = STDOUT_FILENO;
	if (fstat(STDOUT_FILENO, &run.out.st) < 0) {
		fprintf(stderr, "fdpass cat: standard output: %s\n", strerror(errno));
		return FDPASS_EXIT_FAILURE;
	}
	/* SIGPIPE: see the top of this file. SIGCHLD ignored would reap the child for us and
	 * hide how it died. */
	sigaction(SIGPIPE, &ign, &old_pipe);
	sigaction(SIGCHLD, &dfl, &old_chld);
	run.sigpipe_dflt = old_pipe.sa_handler == SIG_DFL;
	if (cat_start(&run, n ? names : dash, n ? n : 1) < 0) {
		sigaction(SIGPIPE, &old_pipe, NULL);
		sigaction(SIGCHLD, &old_chld, NULL);
		return FDPASS_EXIT_FAILURE;
	}
	cat_parent(&run, n ? names : dash, n ? n : 1);
	close(run.sock); /* a child still sending gets EPIPE; descriptors in flight are closed */
	cat_reap(&run);
	sigaction(SIGPIPE, &old_pipe, NULL);
	sigaction(SIGCHLD, &old_chld, NULL);
	if (run.broken_pipe && run.sigpipe_dflt)
		raise(SIGPIPE);
	return run.status;
}
