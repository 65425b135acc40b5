#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

static struct fdp_test *tests;
static char tmpdir[PATH_MAX];
static pid_t tmpdir_owner; /* the process that made tmpdir, the one to remove it */

static void remove_tmpdir(void);

void fdp_test_register(struct fdp_test *t)
{
	struct fdp_test **p = &tests;

	while (*p)
		p = &(*p)->next;
	*p = t;
}

void fdp_test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	remove_tmpdir();
	_exit(1);
}

/* Fill open[] (one flag per descriptor number below max) from /proc/self/fd. */
static int list_fds(bool *open, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0, self;

	if (!d)
		fdp_test_fail(__FILE__, __LINE__, "opendir(/proc/self/fd): %s", strerror(errno));
	self = dirfd(d);
	while ((e = readdir(d))) {
		int fd;

		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd == self)
			continue;
		if (open && fd < max)
			open[fd] = true;
		n++;
	}
	closedir(d);
	return n;
}

int fdp_test_fd_count(void)
{
	return list_fds(NULL, 0);
}

pid_t fdp_test_fork(void (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fdp_test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	if (pid == 0) {
		fn(arg);
		remove_tmpdir(); /* one the child made itself; the parent's stays */
		_exit(0);
	}
	return pid;
}

int fdp_test_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fdp_test_fail(__FILE__, __LINE__, "waitpid: %s", strerror(errno));
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

char *fdp_test_read_all(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);

	for (;;) {
		ssize_t r;

		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fdp_test_fail(__FILE__, __LINE__, "read: %s", strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

void fdp_test_wait_readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;

	while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	if (r <= 0)
		fdp_test_fail(__FILE__, __LINE__, "fd %d not readable within %d ms", fd, ms);
}

const char *fdp_test_self(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

	if (n < 0)
		fdp_test_fail(__FILE__, __LINE__, "readlink(/proc/self/exe): %s", strerror(errno));
	path[n] = '\0';
	return path;
}

void fdp_test_skip(const char *why)
{
	fprintf(stderr, "skipped: %s\n", why);
	fflush(NULL);
	remove_tmpdir();
	_exit(FDP_TEST_SKIPPED);
}

int fdp_test_under_valgrind(void)
{
	const char *preload = getenv("LD_PRELOAD");

	return preload && strstr(preload, "vgpreload") != NULL;
}

const char *fdp_test_doc_python(const char *doc, const char *after, const char *name)
{
	static char path[PATH_MAX];
	const char *fence = "```python\n", *start, *end;
	int fd = open(doc, O_RDONLY | O_CLOEXEC);
	char *text;
	FILE *out;

	if (fd < 0)
		fdp_test_fail(__FILE__, __LINE__, "open %s: %s", doc, strerror(errno));
	text = fdp_test_read_all(fd, NULL);
	close(fd);
	start = after ? strstr(text, after) : text;
	if (start)
		start = strstr(start, fence);
	end = start ? strstr(start + strlen(fence), "```") : NULL;
	if (!end)
		fdp_test_fail(__FILE__, __LINE__, "no python block in %s", doc);
	start += strlen(fence);
	if (snprintf(path, sizeof(path), "%s/%s", fdp_test_tmpdir(), name) >= (int)sizeof(path))
		fdp_test_fail(__FILE__, __LINE__, "path too long for %s", name);
	out = fopen(path, "we");
	if (!out || fwrite(start, 1, (size_t)(end - start), out) != (size_t)(end - start) ||
	    fclose(out) != 0)
		fdp_test_fail(__FILE__, __LINE__, "write %s: %s", path, strerror(errno));
	free(text);
	return path;
}

/*
 * The directory is named for the build tree (FDPASS_TEST_TAG, a hash of its path), so that the
 * suite's last test (harness.tests_leave_no_temporary_directory) finds what this tree's tests
 * left in /tmp, whatever other trees' tests run at the same time. It is removed when the test
 * ends: passed, failed or skipped, in the process that made it.
 */
const char *fdp_test_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/fdpass-test.%s.XXXXXX", FDPASS_TEST_TAG);
		if (!mkdtemp(tmpdir)) {
			tmpdir[0] = '\0';
			fdp_test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
		}
		tmpdir_owner = getpid();
	}
	return tmpdir;
}

static void remove_tmpdir(void)
{
	char cmd[PATH_MAX + 16];

	if (!tmpdir[0] || tmpdir_owner != getpid())
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	tmpdir[0] = '\0';
}

/* Run one test in this process and check that it leaves the descriptor table as it found it. */
static int run_one(struct fdp_test *t)
{
	enum { MAXFD = 4096 };
	static bool before[MAXFD], after[MAXFD];
	int nbefore, nafter, fd;

	memset(before, 0, sizeof(before));
	memset(after, 0, sizeof(after));
	nbefore = list_fds(before, MAXFD);
	t->fn();
	nafter = list_fds(after, MAXFD);
	remove_tmpdir();
	if (nbefore != nafter) {
		fprintf(stderr, "%s: %d descriptors open before, %d after\n", t->name, nbefore,
		        nafter);
		for (fd = 0; fd < MAXFD; fd++) {
			char path[64], target[PATH_MAX] = "?";

			if (before[fd] == after[fd])
				continue;
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			if (readlink(path, target, sizeof(target) - 1) < 0)
				strcpy(target, "(closed)");
			fprintf(stderr, "  fd %d %s: %s\n", fd, after[fd] ? "leaked" : "lost",
			        target);
		}
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fdp_test *t;
	int passed = 0, failed = 0;

	/* A dead peer must show up as EPIPE in tests too, never kill the runner. */
	signal(SIGPIPE, SIG_DFL);
	if (argc == 2) {
		for (t = tests; t; t = t->next)
			if (strcmp(t->name, argv[1]) == 0)
				return run_one(t);
		fprintf(stderr, "no test named %s\n", argv[1]);
		return 2;
	}
	for (t = tests; t; t = t->next) {
		pid_t pid;
		int status;

		fflush(NULL);
		pid = fork();
		if (pid == 0)
			_exit(run_one(t));
		status = fdp_test_wait(pid);
		printf("%-60s %s\n", t->name,
		       status == 0                  ? "ok"
		       : status == FDP_TEST_SKIPPED ? "skipped"
		                                    : "FAILED");
		if (status == 0 || status == FDP_TEST_SKIPPED)
			passed++;
		else
			failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
