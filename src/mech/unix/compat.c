/*
 * The fallbacks behind compat.h: the same results as the Linux calls, made in two steps where
 * the system cannot make them in one.
 */
#include "compat.h"

#include <errno.h>
#include <unistd.h>

int fdp__set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

#if !FDP_HAVE_SOCK_CLOEXEC
/* The second step of a socket made without the atomic flags; closes fd on failure. */
static int finish(int fd, int nonblock)
{
	int flags;

	if (fdp__set_cloexec(fd) < 0)
		goto fail;
	if (nonblock &&
	    ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0))
		goto fail;
	return 0;
fail:
	flags = errno;
	close(fd);
	errno = flags;
	return -1;
}
#endif

int fdp__socket(int domain, int type)
{
	int fd;

#if FDP_HAVE_SOCK_CLOEXEC
	fd = socket(domain, type | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
#else
	fd = socket(domain, type & ~FDP__SOCK_FLAGS, 0);
	if (fd < 0 || finish(fd, type & FDP__SOCK_NONBLOCK) < 0)
		return -errno;
	return fd;
#endif
}

int fdp__socketpair(int domain, int type, int sv[2])
{
#if FDP_HAVE_SOCK_CLOEXEC
	return socketpair(domain, type | SOCK_CLOEXEC, 0, sv) < 0 ? -errno : 0;
#else
	int nonblock = type & FDP__SOCK_NONBLOCK;

	if (socketpair(domain, type & ~FDP__SOCK_FLAGS, 0, sv) < 0)
		return -errno;
	if (finish(sv[0], nonblock) < 0) {
		int err = errno;

		close(sv[1]);
		return -err;
	}
	if (finish(sv[1], nonblock) < 0) {
		int err = errno;

		close(sv[0]);
		return -err;
	}
	return 0;
#endif
}

int fdp__accept(int listener, struct sockaddr *sa, socklen_t *len)
{
#if FDP_HAVE_SOCK_CLOEXEC
	return accept4(listener, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
	int fd = accept(listener, sa, len);

	if (fd < 0 || finish(fd, 1) < 0)
		return -1;
	return fd;
#endif
}
