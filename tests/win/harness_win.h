/*
 * The Windows tests' harness: every TEST(name) is one case, run as `test_win.exe name` (ctest
 * runs each under Wine) or all in turn with no argument. Each case must leave the process's
 * handle count as it found it; a failed CHECK prints where and exits 1.
 */
#ifndef FDPASS_HARNESS_WIN_H
#define FDPASS_HARNESS_WIN_H

#include "fdpass_win.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct win_test {
	const char *name;
	void (*fn)(void);
};

extern struct win_test win_tests[];
extern int win_ntests;

#define TEST(tname)                                                                                \
	static void tname(void);                                                                   \
	__attribute__((constructor)) static void reg_##tname(void)                                 \
	{                                                                                          \
		win_tests[win_ntests].name = #tname;                                               \
		win_tests[win_ntests++].fn = tname;                                                \
	}                                                                                          \
	static void tname(void)

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: CHECK(%s) failed (GetLastError %lu)\n", __FILE__, \
			        __LINE__, #c, GetLastError());                                     \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, op, b)                                                                        \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (!(a_ op b_)) {                                                                 \
			fprintf(stderr, "%s:%d: CHECK_INT(%s %s %s): %lld vs %lld\n", __FILE__,    \
			        __LINE__, #a, #op, #b, a_, b_);                                    \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#endif
