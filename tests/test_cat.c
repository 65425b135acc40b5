/*
 * fdpass cat against cat(1): both run with the same arguments, standard input and kind of
 * standard output; their output bytes, their exit statuses and their messages (with "cat: "
 * read as "fdpass cat: ") must be the same.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAT_TIMEOUT_MS 20000

/* How to start one command. */
struct cmd {
	const char *argv[16]; /* NULL-terminated, without the program: "cat" is prepended */
	bool fdpass;          /* run fdpass cat rather than cat */
	const char *input;    /* written to a pipe on stdin (under 64 KiB), unless stdin_fd */
	int stdin_fd;         /* >= 0: stdin is this descriptor */
	int stdout_fd;        /* >= 0: stdout is this descriptor, else a pipe read back */
	const char *cwd;      /* directory to run in, or NULL */
	bool ignore_sigpipe;  /* start with SIGPIPE ignored */
};

/* A started command. */
struct proc {
	pid_t pid;
	int out; /* read end of its stdout, or -1 */
	int err; /* read end of its stderr */
};

/* What a command did. */
struct result {
	char *out;
	size_t out_len;
	char *err;
	size_t err_len;
	int status;
};

static struct cmd cmd_init(bool fdpass)
{
	return (struct cmd){.fdpass = fdpass, .stdin_fd = -1, .stdout_fd = -1};
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void exec_cmd(const struct cmd *c, int in, int out, int err)
{
	const char *argv[20];
	size_t n = 0;

	if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(err, STDERR_FILENO) < 0)
		_exit(126);
	if (c->cwd && chdir(c->cwd) < 0)
		_exit(126);
	if (c->ignore_sigpipe)
		signal(SIGPIPE, SIG_IGN);
	setenv("LC_ALL", "C", 1); /* cat's messages in English, as strerror() gives them */
	argv[n++] = c->fdpass ? FDPASS_TOOL : "cat";
	if (c->fdpass)
		argv[n++] = "cat";
	for (size_t i = 0; c->argv[i]; i++)
		argv[n++] = c->argv[i];
	argv[n] = NULL;
	execvp(argv[0], (char **)argv);
	_exit(127);
}

static struct proc start(const struct cmd *c)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2];
	struct proc p;

	CHECK(pipe2(err, O_CLOEXEC) == 0);
	if (c->stdout_fd < 0)
		CHECK(pipe2(out, O_CLOEXEC) == 0);
	if (c->stdin_fd < 0) {
		size_t len = c->input ? strlen(c->input) : 0;

		CHECK(pipe2(in, O_CLOEXEC) == 0);
		CHECK_INT(write(in[1], c->input ? c->input : "", len), ==, len);
		close(in[1]);
	}
	fflush(NULL);
	p.pid = fork();
	CHECK(p.pid >= 0);
	if (p.pid == 0)
		exec_cmd(c, c->stdin_fd >= 0 ? c->stdin_fd : in[0],
		         c->stdout_fd >= 0 ? c->stdout_fd : out[1], err[1]);
	if (in[0] >= 0)
		close(in[0]);
	if (out[1] >= 0)
		close(out[1]);
	close(err[1]);
	p.out = out[0];
	p.err = err[0];
	return p;
}

/* Append what fd has to *buf; returns false at end of file. */
static bool drain(int fd, char **buf, size_t *len)
{
	char chunk[65536];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0 && errno == EINTR)
		return true;
	CHECK(n >= 0);
	if (n == 0)
		return false;
	*buf = realloc(*buf, *len + (size_t)n + 1);
	CHECK(*buf != NULL);
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return true;
}

/* Read the command's stdout (if still a pipe) and stderr to end of file, then reap it. Fails
 * the test, after killing the command, if that takes longer than CAT_TIMEOUT_MS. */
static struct result finish(struct proc *p)
{
	struct result r = {.out = calloc(1, 1), .err = calloc(1, 1)};
	long long deadline = now_ms() + CAT_TIMEOUT_MS;

	while (p->out >= 0 || p->err >= 0) {
		struct pollfd fds[2] = {{.fd = p->out, .events = POLLIN},
		                        {.fd = p->err, .events = POLLIN}};
		long long left = deadline - now_ms();
		int n = poll(fds, 2, left > 0 ? (int)left : 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			kill(p->pid, SIGKILL);
			fdp_test_wait(p->pid);
			fdp_test_fail(__FILE__, __LINE__, "command still running after %d ms",
			              CAT_TIMEOUT_MS);
		}
		if (fds[0].revents && !drain(p->out, &r.out, &r.out_len)) {
			close(p->out);
			p->out = -1;
		}
		if (fds[1].revents && !drain(p->err, &r.err, &r.err_len)) {
			close(p->err);
			p->err = -1;
		}
	}
	r.status = fdp_test_wait(p->pid);
	return r;
}

static struct result run(const struct cmd *c)
{
	struct proc p = start(c);

	return finish(&p);
}

static void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
}

/* cat's messages as fdpass cat words them: "cat: " at the start of each line gets "fdpass ". */
static char *as_fdpass_messages(const char *err)
{
	char *s = malloc(strlen(err) * 2 + 1), *o = s;
	bool line_start = true;

	for (const char *c = err; *c; c++) {
		if (line_start && strncmp(c, "cat: ", 5) == 0)
			o += sprintf(o, "fdpass ");
		*o++ = *c;
		line_start = *c == '\n';
	}
	*o = '\0';
	return s;
}

static void check_same_result(const struct result *cat, const struct result *fdp)
{
	char *want_err = as_fdpass_messages(cat->err);

	if (strcmp(want_err, fdp->err) != 0)
		fdp_test_fail(__FILE__, __LINE__, "stderr differs:\ncat:    %sfdpass: %s", cat->err,
		              fdp->err);
	free(want_err);
	CHECK_INT(fdp->status, ==, cat->status);
	CHECK_INT(fdp->out_len, ==, cat->out_len);
	CHECK(memcmp(fdp->out, cat->out, cat->out_len) == 0);
}

/* Run cat and fdpass cat alike (stdout a pipe) and check they did the same. Returns the
 * status both had. */
static int check_like_cat(const struct cmd *c)
{
	struct cmd cc = *c, fc = *c;
	struct result cat, fdp;
	int status;

	cc.fdpass = false;
	fc.fdpass = true;
	cat = run(&cc);
	fdp = run(&fc);
	check_same_result(&cat, &fdp);
	status = cat.status;
	result_free(&cat);
	result_free(&fdp);
	return status;
}

/* A path in the test's private directory (a static buffer per slot). */
static const char *tmp_path(int slot, const char *name)
{
	static char paths[8][PATH_MAX];

	snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", fdp_test_tmpdir(), name);
	return paths[slot];
}

/* Create a file of size bytes that do not repeat in any short period. Returns its path. */
static const char *make_file(int slot, const char *name, size_t size)
{
	const char *path = tmp_path(slot, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	uint32_t x = 2463534242u + (uint32_t)size;
	char buf[65536];

	CHECK(fd >= 0);
	while (size > 0) {
		size_t n = size < sizeof(buf) ? size : sizeof(buf);

		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			buf[i] = (char)x;
		}
		CHECK_INT(write(fd, buf, n), ==, n);
		size -= n;
	}
	close(fd);
	return path;
}

static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *s;

	CHECK(fd >= 0);
	s = fdp_test_read_all(fd, len);
	close(fd);
	return s;
}

TEST(regular_file_matches_cat)
{
	struct cmd c = cmd_init(true);

	c.argv[0] = make_file(0, "a", 1000);
	CHECK_INT(check_like_cat(&c), ==, 0);
}

TEST(empty_file_matches_cat)
{
	struct cmd c = cmd_init(true);

	c.argv[0] = make_file(0, "empty", 0);
	CHECK_INT(check_like_cat(&c), ==, 0);
}

TEST(multi_megabyte_file_matches_cat)
{
	struct cmd c = cmd_init(true);

	c.argv[0] = make_file(0, "big", 5 * 1024 * 1024 + 123);
	CHECK_INT(check_like_cat(&c), ==, 0);
}

TEST(several_files_are_concatenated_in_order)
{
	struct cmd c = cmd_init(true);

	c.argv[0] = make_file(0, "a", 100);
	c.argv[1] = make_file(1, "empty", 0);
	c.argv[2] = make_file(2, "b", 200000);
	c.argv[3] = c.argv[0];
	CHECK_INT(check_like_cat(&c), ==, 0);
}

TEST(missing_file_is_reported_and_the_others_are_copied)
{
	struct cmd c = cmd_init(true);

	c.argv[0] = make_file(0, "a", 3000);
	c.argv[1] = tmp_path(1, "missing");
	c.argv[2] = make_file(2, "b", 5000);
	c.argv[3] = tmp_path(3, "missing-too");
	CHECK_INT(check_like_cat(&c), ==, 1);
}

TEST(unreadable_file_is_reported_like_cat)
{
	struct cmd c = cmd_init(true);

	if (geteuid() == 0) {
		/* root opens anything: use a path through a file, which fails for everyone */
		c.argv[0] = make_file(0, "a", 10);
		c.argv[1] = tmp_path(1, "a/below-a-file");
	} else {
		c.argv[0] = make_file(0, "a", 10);
		c.argv[1] = make_file(1, "secret", 10);
		CHECK(chmod(c.argv[1], 0) == 0);
	}
	CHECK_INT(check_like_cat(&c), ==, 1);
}

TEST(dash_reads_stdin_and_a_second_dash_gets_what_is_left)
{
	struct cmd c = cmd_init(true);

	c.argv[0] = make_file(0, "a", 100);
	c.argv[1] = "-";
	c.argv[2] = make_file(1, "b", 100);
	c.argv[3] = "-";
	c.input = "from standard input\n";
	CHECK_INT(check_like_cat(&c), ==, 0);
}

TEST(dash_twice_on_a_regular_file_stdin_shares_its_offset)
{
	struct cmd c = cmd_init(true);
	const char *in = make_file(0, "in", 300000);
	struct cmd cc, fc;
	struct result cat, fdp;

	c.argv[0] = "-";
	c.argv[1] = "-";
	cc = c;
	fc = c;
	cc.fdpass = false;
	cc.stdin_fd = open(in, O_RDONLY | O_CLOEXEC);
	fc.stdin_fd = open(in, O_RDONLY | O_CLOEXEC);
	CHECK(cc.stdin_fd >= 0 && fc.stdin_fd >= 0);
	cat = run(&cc);
	fdp = run(&fc);
	close(cc.stdin_fd);
	close(fc.stdin_fd);
	check_same_result(&cat, &fdp);
	CHECK_INT(fdp.out_len, ==, 300000);
	result_free(&cat);
	result_free(&fdp);
}

TEST(no_arguments_reads_stdin)
{
	struct cmd c = cmd_init(true);

	c.input = "no operands: standard input\n";
	CHECK_INT(check_like_cat(&c), ==, 0);
}

TEST(double_dash_ends_options)
{
	struct cmd c = cmd_init(true);

	make_file(0, "-n", 100);
	c.cwd = fdp_test_tmpdir();
	c.argv[0] = "--";
	c.argv[1] = "-n";
	c.argv[2] = "-";
	c.input = "after the dash-n file\n";
	CHECK_INT(check_like_cat(&c), ==, 0);
}

TEST(unknown_option_exits_2_with_one_line_and_a_pointer_to_help)
{
	struct cmd c = cmd_init(true);
	struct result r;

	c.argv[0] = "--no-such-option";
	r = run(&c);
	CHECK_INT(r.status, ==, 2);
	CHECK_INT(r.out_len, ==, 0);
	CHECK(strcmp(r.err, "fdpass cat: unknown option '--no-such-option'\n"
	                    "Try 'fdpass cat --help' for more information.\n") == 0);
	result_free(&r);
}

TEST(help_exits_0_and_prints_usage)
{
	struct cmd c = cmd_init(true);
	struct result r;

	c.argv[0] = "--help";
	r = run(&c);
	CHECK_INT(r.status, ==, 0);
	CHECK_INT(r.err_len, ==, 0);
	CHECK(strncmp(r.out, "usage: fdpass cat", 17) == 0);
	result_free(&r);
}

/* Both commands write into their own regular file, opened with flags; compare the files. */
static void check_like_cat_into_files(const struct cmd *c, int flags, size_t prefill)
{
	struct cmd cc = *c, fc = *c;
	const char *cat_path = prefill ? make_file(6, "out-cat", prefill) : tmp_path(6, "out-cat");
	const char *fdp_path = prefill ? make_file(7, "out-fdp", prefill) : tmp_path(7, "out-fdp");
	struct result cat, fdp;
	char *cat_out, *fdp_out;
	size_t cat_len, fdp_len;

	cc.fdpass = false;
	fc.fdpass = true;
	cc.stdout_fd = open(cat_path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
	fc.stdout_fd = open(fdp_path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
	CHECK(cc.stdout_fd >= 0 && fc.stdout_fd >= 0);
	cat = run(&cc);
	fdp = run(&fc);
	close(cc.stdout_fd);
	close(fc.stdout_fd);
	check_same_result(&cat, &fdp);
	CHECK_INT(cat.status, ==, 0);
	cat_out = read_file(cat_path, &cat_len);
	fdp_out = read_file(fdp_path, &fdp_len);
	CHECK_INT(fdp_len, ==, cat_len);
	CHECK(memcmp(cat_out, fdp_out, cat_len) == 0);
	free(cat_out);
	free(fdp_out);
	result_free(&cat);
	result_free(&fdp);
}

TEST(output_to_a_regular_file_matches_cat)
{
	struct cmd c = cmd_init(true);

	c.argv[0] = make_file(0, "a", 3 * 1024 * 1024 + 7);
	c.argv[1] = make_file(1, "empty", 0);
	c.argv[2] = make_file(2, "b", 4097);
	check_like_cat_into_files(&c, O_TRUNC, 0);
}

TEST(output_appended_to_a_regular_file_matches_cat)
{
	struct cmd c = cmd_init(true);

	/* O_APPEND: copy_file_range and sendfile refuse it, the fallback must take over. */
	c.argv[0] = make_file(0, "a", 2 * 1024 * 1024 + 5);
	c.argv[1] = make_file(1, "b", 10);
	check_like_cat_into_files(&c, O_APPEND, 1000);
}

TEST(output_to_a_pipe_matches_cat)
{
	struct cmd c = cmd_init(true);

	/* run() reads stdout through a pipe: the splice path, several pipe-fulls per file. */
	c.argv[0] = make_file(0, "a", 3 * 1024 * 1024 + 1);
	c.argv[1] = "-";
	c.argv[2] = make_file(1, "b", 70000);
	c.input = "pipe to pipe\n";
	CHECK_INT(check_like_cat(&c), ==, 0);
}

TEST(directory_is_reported_like_cat)
{
	struct cmd c = cmd_init(true);

	c.argv[0] = make_file(0, "a", 10);
	c.argv[1] = fdp_test_tmpdir();
	c.argv[2] = make_file(1, "b", 10);
	CHECK_INT(check_like_cat(&c), ==, 1);
}

TEST(file_that_is_also_the_output_is_refused_like_cat)
{
	struct cmd c = cmd_init(true);
	const char *path = make_file(0, "self", 100);
	struct cmd cc, fc;
	struct result cat, fdp;

	c.argv[0] = path;
	cc = c;
	fc = c;
	cc.fdpass = false;
	cc.stdout_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	fc.stdout_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(cc.stdout_fd >= 0 && fc.stdout_fd >= 0);
	cat = run(&cc);
	fdp = run(&fc);
	close(cc.stdout_fd);
	close(fc.stdout_fd);
	check_same_result(&cat, &fdp);
	CHECK_INT(fdp.status, ==, 1);
	result_free(&cat);
	result_free(&fdp);
}

/* Read a few bytes of the output, close the pipe and collect the rest. */
static struct result run_and_close_output_early(const struct cmd *c)
{
	struct proc p = start(c);
	char buf[10];

	CHECK_INT(read(p.out, buf, sizeof(buf)), >, 0);
	close(p.out);
	p.out = -1;
	/* finish() reads stderr to end of file: that proves fdpass cat's child exited too. */
	return finish(&p);
}

TEST(stdout_closed_early_ends_by_sigpipe_like_cat)
{
	struct cmd c = cmd_init(false);
	struct result cat, fdp;

	c.argv[0] = make_file(0, "big", 4 * 1024 * 1024);
	c.argv[1] = make_file(1, "more", 1024 * 1024);
	cat = run_and_close_output_early(&c);
	c.fdpass = true;
	fdp = run_and_close_output_early(&c);
	CHECK_INT(cat.status, ==, 128 + SIGPIPE);
	CHECK_INT(fdp.status, ==, 128 + SIGPIPE);
	CHECK_INT(fdp.err_len, ==, 0);
	result_free(&cat);
	result_free(&fdp);
}

TEST(stdout_closed_early_with_sigpipe_ignored_exits_1_quietly)
{
	struct cmd c = cmd_init(true);
	struct result r;

	c.argv[0] = make_file(0, "big", 4 * 1024 * 1024);
	c.ignore_sigpipe = true;
	r = run_and_close_output_early(&c);
	CHECK_INT(r.status, ==, 1);
	CHECK_INT(r.err_len, ==, 0);
	result_free(&r);
}

/* The pid of the only child of pid, waiting for it to appear. */
static pid_t child_of(pid_t pid)
{
	char path[64];
	long long deadline = now_ms() + CAT_TIMEOUT_MS;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	while (now_ms() < deadline) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		char *s;
		pid_t child;

		CHECK(fd >= 0);
		s = fdp_test_read_all(fd, NULL);
		close(fd);
		child = (pid_t)atoi(s);
		free(s);
		if (child > 0)
			return child;
		usleep(10000);
	}
	fdp_test_fail(__FILE__, __LINE__, "no child of %d appeared", (int)pid);
}

TEST(child_killed_midway_is_reported_and_exits_1)
{
	struct cmd c = cmd_init(true);
	const char *fifo = tmp_path(1, "fifo");
	struct proc p;
	struct result r;
	char buf[100];
	size_t got = 0;

	/* Opening a FIFO with no writer blocks the child after it passed the first file. */
	CHECK(mkfifo(fifo, 0600) == 0);
	c.argv[0] = make_file(0, "a", sizeof(buf));
	c.argv[1] = fifo;
	p = start(&c);
	while (got < sizeof(buf)) {
		ssize_t n = read(p.out, buf + got, sizeof(buf) - got);

		CHECK(n > 0);
		got += (size_t)n;
	}
	CHECK(kill(child_of(p.pid), SIGKILL) == 0);
	r = finish(&p);
	CHECK_INT(r.status, ==, 1);
	CHECK_INT(r.out_len, ==, 0);
	CHECK(strstr(r.err, "fdpass cat: the child process was killed by signal 9") != NULL);
	result_free(&r);
}
