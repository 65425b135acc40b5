/*
 * The small seam between Linux and other POSIX systems. fdpass uses the Linux interfaces that
 * make it correct and fast; where a flag does not exist, the code that needs it falls back to
 * the portable way, selected by the FDP_HAVE_* macros defined here.
 */
#ifndef FDP_COMPAT_H
#define FDP_COMPAT_H

#include <fcntl.h>
#include <sys/socket.h>

/* Received descriptors close-on-exec atomically; else fcntl() right after recvmsg(). */
#ifdef MSG_CMSG_CLOEXEC
#define FDP_HAVE_MSG_CMSG_CLOEXEC 1
#else
#define FDP_HAVE_MSG_CMSG_CLOEXEC 0
#define MSG_CMSG_CLOEXEC          0
#endif

/* New sockets close-on-exec atomically; else fcntl() right after socket(). */
#ifdef SOCK_CLOEXEC
#define FDP_HAVE_SOCK_CLOEXEC 1
#else
#define FDP_HAVE_SOCK_CLOEXEC 0
#define SOCK_CLOEXEC          0
#define SOCK_NONBLOCK         0
#endif

/* Without MSG_NOSIGNAL the platform's SO_NOSIGPIPE must be set on the socket instead. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Set FD_CLOEXEC on fd; returns 0 or a negative errno. */
static inline int fdp__set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

#endif
