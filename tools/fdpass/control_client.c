/*
 * The client side of the control socket, shared by the verbs that talk to a running server
 * (fdpass status, and the verbs that send it commands): connect, check who answers, send one
 * command line, read the whole answer. The protocol is in docs/SERVE.md, "The control socket".
 */
#include "serve.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * The server must be root or this user: anyone else could have put a socket at a path we were
 * given, and would then be believed (and, for a command, obeyed in our name).
 */
static int trusted_server(const char *verb, int fd, const char *control, pid_t *pid)
{
	struct fdp_cred cred;
	int err = fdp_peer_cred(fd, &cred);

	if (err < 0) {
		fprintf(stderr, "fdpass %s: %s: cannot tell who answers: %s\n", verb, control,
		        fdp_strerror(err));
		return 0;
	}
	if (cred.uid != 0 && cred.uid != getuid()) {
		fprintf(stderr,
		        "fdpass %s: %s is answered by uid %u (pid %d), neither root nor you: "
		        "refusing to trust it\n",
		        verb, control, (unsigned)cred.uid, (int)cred.pid);
		return 0;
	}
	if (pid)
		*pid = cred.pid;
	return 1;
}

/* Read everything the server sends, waiting at most timeout_ms (-1: no limit) for each piece. */
static char *read_reply(int fd, int timeout_ms)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	while (buf) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;
		int r;

		if (len + 1 == cap) {
			char *b = realloc(buf, cap * 2);

			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (buf)
		buf[len] = '\0';
	return buf;
}

int fdpass_control_resolve(const char *verb, const char **control, char *path, size_t size)
{
	char why[512];
	int r;

	if (*control)
		return 0;
	/* A missing directory is no server: the connect that follows says so. */
	r = fdpass_default_control_path(path, size, 0, why, sizeof(why));
	if (r < 0 && r != -ENOENT) {
		fprintf(stderr, "fdpass %s: %s\n", verb, why);
		return r;
	}
	*control = path;
	return 0;
}

char *fdpass_control_call(const char *verb, const char *control, const char *command,
                          int timeout_ms)
{
	return fdpass_control_call_pid(verb, control, command, timeout_ms, NULL);
}

char *fdpass_control_call_pid(const char *verb, const char *control, const char *command,
                              int timeout_ms, pid_t *server)
{
	size_t len = strlen(command);
	char *reply;
	int fd = fdp_unix_connect(control, SOCK_STREAM);

	if (fd < 0) {
		fprintf(stderr, "fdpass %s: cannot connect to %s: %s%s\n", verb, control,
		        fdp_strerror(fd),
		        fd == -ENOENT || fd == -ECONNREFUSED ? " (is fdpass serve running?)" : "");
		return NULL;
	}
	if (!trusted_server(verb, fd, control, server)) {
		close(fd);
		return NULL;
	}
	/* One command, then end of file: the server answers and closes. */
	if (send(fd, command, len, MSG_NOSIGNAL) == (ssize_t)len && send(fd, "\n", 1, MSG_NOSIGNAL) == 1)
		shutdown(fd, SHUT_WR);
	reply = read_reply(fd, timeout_ms);
	close(fd);
	if (!reply)
		fprintf(stderr, "fdpass %s: out of memory\n", verb);
	return reply;
}
