/*
 * The test harness: TEST(name) declares one behaviour. Run "<exe> name" for one test (what
 * ctest does) or "<exe>" for all of them, each in its own child process. Every test is checked
 * to leave the process's set of open descriptors exactly as it found it.
 */
#ifndef FDP_TEST_HARNESS_H
#define FDP_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* The exit status of a skipped test (ctest's SKIP_RETURN_CODE). */
#define FDP_TEST_SKIPPED 77

struct fdp_test {
	const char *name;
	void (*fn)(void);
	struct fdp_test *next;
};

void fdp_test_register(struct fdp_test *t);

#define TEST(name)                                                                                 \
	static void test_##name(void);                                                             \
	__attribute__((constructor)) static void register_##name(void)                             \
	{                                                                                          \
		static struct fdp_test t = {#name, test_##name, NULL};                             \
		fdp_test_register(&t);                                                             \
	}                                                                                          \
	static void test_##name(void)

/* Fail the running test (in a forked helper child, fail that child) with a message. */
__attribute__((noreturn, format(printf, 3, 4))) void fdp_test_fail(const char *file, int line,
                                                                   const char *fmt, ...);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fdp_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                     \
	} while (0)

/* Compare two integers; on failure print both values. */
#define CHECK_INT(a, op, b)                                                                        \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (!(a_ op b_))                                                                   \
			fdp_test_fail(__FILE__, __LINE__, "CHECK_INT(%s %s %s): %lld vs %lld", #a, \
			              #op, #b, a_, b_);                                            \
	} while (0)

/* A call that returns >= 0 on success and -errno on failure must succeed. */
#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		long long r_ = (long long)(expr);                                                  \
		if (r_ < 0)                                                                        \
			fdp_test_fail(__FILE__, __LINE__, "%s failed: %lld (%s)", #expr, r_,       \
			              strerror((int)-r_));                                         \
	} while (0)

/* The number of descriptors open in this process right now. */
int fdp_test_fd_count(void);

/* Fork a child that runs fn(arg) and exits 0 (or fails through CHECK). Returns its pid. */
pid_t fdp_test_fork(void (*fn)(void *), void *arg);

/* Wait for a child and return its exit status, or 128 + signal if it was killed. */
int fdp_test_wait(pid_t pid);

/* Read all of fd into a malloc'd buffer (NUL-terminated); *len gets its length. */
char *fdp_test_read_all(int fd, size_t *len);

/* Wait up to ms milliseconds for fd to become readable; fails the test on timeout. */
void fdp_test_wait_readable(int fd, int ms);

/* The path of the running test program (not valgrind's, when run under it). */
const char *fdp_test_self(void);

/* End the running test as skipped (ctest shows it as such) with a reason. */
__attribute__((noreturn)) void fdp_test_skip(const char *why);

/* True when running under valgrind, which virtualises some kernel limits. */
int fdp_test_under_valgrind(void);

/*
 * Write the first ```python block of the file doc (a path) that follows the text after (NULL:
 * from the start) to name in the test's directory; returns the file's path (static buffer).
 */
const char *fdp_test_doc_python(const char *doc, const char *after, const char *name);

/*
 * A fresh private directory for this test, /tmp/fdpass-test.TAG.XXXXXX, made at the first call
 * and removed when the test ends, however it ends (a crash or a time-out leaves it, and the
 * suite's check harness.tests_leave_no_temporary_directory then fails). A forked child that
 * calls it first makes its own, removed when it ends through fdp_test_fork(), CHECK or
 * fdp_test_skip().
 */
const char *fdp_test_tmpdir(void);

#endif
