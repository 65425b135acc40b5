/* fdpass.exe: starting itself again, naming pipes, error text. */
#include "win.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Append arg to the command line as CommandLineToArgvW() and the C runtime split it: quoted
 * when it has a blank or a quote or is empty, a quote escaped by a backslash, and the
 * backslashes before a quote (or before the closing quote) doubled.
 */
static int quote(char *out, size_t size, size_t *len, const char *arg)
{
	int needs = !*arg || strpbrk(arg, " \t\n\v\"") != NULL;
	size_t n = *len;

#define PUT(c)                                                                                     \
	do {                                                                                       \
		if (n + 1 >= size)                                                                 \
			return -E2BIG;                                                             \
		out[n++] = (c);                                                                    \
	} while (0)
	if (n)
		PUT(' ');
	if (needs)
		PUT('"');
	for (const char *p = arg;; p++) {
		size_t slashes = 0;

		while (*p == '\\') {
			slashes++;
			p++;
		}
		if (!*p) {
			for (size_t i = 0; i < (needs ? slashes * 2 : slashes); i++)
				PUT('\\');
			break;
		}
		if (*p == '"')
			slashes = slashes * 2 + 1;
		for (size_t i = 0; i < slashes; i++)
			PUT('\\');
		PUT(*p);
	}
	if (needs)
		PUT('"');
#undef PUT
	out[n] = '\0';
	*len = n;
	return 0;
}

int win_spawn_self(char *const *args, int suspended, PROCESS_INFORMATION *pi)
{
	char self[MAX_PATH], cmd[8192];
	size_t len = 0;
	STARTUPINFOA si;
	DWORD n = GetModuleFileNameA(NULL, self, sizeof(self));

	if (n == 0 || n >= sizeof(self))
		return -ENAMETOOLONG;
	if (quote(cmd, sizeof(cmd), &len, self) < 0)
		return -E2BIG;
	for (char *const *a = args; *a; a++)
		if (quote(cmd, sizeof(cmd), &len, *a) < 0)
			return -E2BIG;
	memset(&si, 0, sizeof(si));
	si.cb = sizeof(si);
	if (!CreateProcessA(self, cmd, NULL, NULL, FALSE, suspended ? CREATE_SUSPENDED : 0, NULL,
	                    NULL, &si, pi))
		return fdp_win_error(GetLastError());
	return 0;
}

void win_pipe_name(char *buf, size_t size, const char *what)
{
	static LONG counter;

	snprintf(buf, size, "fdpass-%s-%lu-%ld-%lu", what, GetCurrentProcessId(),
	         InterlockedIncrement(&counter), GetTickCount());
}

const char *win_strerror(int err)
{
	switch (-err) {
	case EPIPE: return "the other end is gone";
	case EPROTO: return "not an fdpass frame";
	case EMSGSIZE: return "message too long";
	case ENOMEM: return "out of memory";
	case EINVAL: return "invalid argument";
	case ETIMEDOUT: return "timed out";
	case ENOENT: return "no such file or pipe";
	case EACCES: return "access denied";
	case EADDRINUSE: return "address in use";
	case ECONNRESET: return "connection reset";
	case EMFILE: return "too many open handles";
	default: return strerror(-err);
	}
}
