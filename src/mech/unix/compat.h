/*
 * The seam between Linux and other POSIX systems, for the mechanism only (the runtime above it
 * is Linux-only). fdpass uses the Linux interfaces that make it correct and fast; where one is
 * missing, or FDP_PORTABLE switches them all off (the CI build that proves the fallbacks
 * compile and pass the tests), the portable way is taken, selected by the FDP_HAVE_* macros.
 */
#ifndef FDP_COMPAT_H
#define FDP_COMPAT_H

#include <fcntl.h>
#include <sys/socket.h>

/* Received descriptors close-on-exec atomically; else fcntl() right after recvmsg(). */
#if defined(MSG_CMSG_CLOEXEC) && !defined(FDP_PORTABLE)
#define FDP_HAVE_MSG_CMSG_CLOEXEC 1
#define FDP__MSG_CMSG_CLOEXEC     MSG_CMSG_CLOEXEC
#else
#define FDP_HAVE_MSG_CMSG_CLOEXEC 0
#define FDP__MSG_CMSG_CLOEXEC     0
#endif

/* New sockets close-on-exec (and non-blocking) atomically, accept4(); else fcntl() after. */
#if defined(SOCK_CLOEXEC) && !defined(FDP_PORTABLE)
#define FDP_HAVE_SOCK_CLOEXEC 1
#else
#define FDP_HAVE_SOCK_CLOEXEC 0
#endif

/*
 * The flag a caller ORs into a socket type to ask for a non-blocking socket: the system's
 * SOCK_NONBLOCK where it has one (also under FDP_PORTABLE, whose fallback then strips it and
 * uses fcntl()); a system without it has no such flag to pass.
 */
#ifdef SOCK_NONBLOCK
#define FDP__SOCK_NONBLOCK SOCK_NONBLOCK
#define FDP__SOCK_FLAGS    (SOCK_NONBLOCK | SOCK_CLOEXEC)
#else
#define FDP__SOCK_NONBLOCK 0
#define FDP__SOCK_FLAGS    0
#endif

/* Several packets per system call (sendmmsg(), recvmmsg()); else one sendmsg()/recvmsg(). */
#if defined(__linux__) && !defined(FDP_PORTABLE)
#define FDP_HAVE_SENDMMSG 1
#else
#define FDP_HAVE_SENDMMSG 0
#endif

/* Abstract Unix socket names ("@name"): Linux only. */
#if defined(__linux__) && !defined(FDP_PORTABLE)
#define FDP_HAVE_ABSTRACT 1
#else
#define FDP_HAVE_ABSTRACT 0
#endif

/* Without MSG_NOSIGNAL the platform's SO_NOSIGPIPE must be set on the socket instead. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Set FD_CLOEXEC on fd; returns 0 or -1 with errno set. */
int fdp__set_cloexec(int fd);

/*
 * socket() and socketpair(): type may carry FDP__SOCK_NONBLOCK; the result is close-on-exec
 * (and non-blocking when asked), atomically where the system allows. Return the socket (0 for
 * the pair) or a negative errno; nothing is left open on failure.
 */
int fdp__socket(int domain, int type);
int fdp__socketpair(int domain, int type, int sv[2]);

/* accept(): the connection is close-on-exec and non-blocking. Returns it or -1 with errno. */
int fdp__accept(int listener, struct sockaddr *sa, socklen_t *len);

#endif
