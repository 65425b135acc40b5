/*
 * Socket helpers: socketpairs, named Unix sockets (filesystem paths and Linux abstract names)
 * and peer credentials. Every socket made here is close-on-exec.
 */
#include "fdpass.h"
#include "compat.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int fdp_socketpair(int type, int sv[2])
{
	return fdp__socketpair(AF_UNIX, type, sv);
}

/* Fill sa from a name ('@' for an abstract name); returns the address length or -errno. */
static int unix_address(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, name, n);
	if (name[0] == '@') {
		if (!FDP_HAVE_ABSTRACT)
			return -EINVAL; /* a Linux name, where this system has none */
		sa->sun_path[0] = '\0'; /* abstract: the length, not a NUL, ends the name */
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*len = (socklen_t)sizeof(*sa);
	}
	return 0;
}

/*
 * Is there a socket file at path that nobody accepts on (left behind by a dead server)? errno
 * is left as it was: when the answer is no, the caller reports the bind()'s EADDRINUSE.
 */
static int is_stale_socket(const struct sockaddr_un *sa, socklen_t len, int type)
{
	struct stat st;
	int fd, stale = 0, saved = errno;

	if (lstat(sa->sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    (fd = fdp__socket(AF_UNIX, type)) >= 0) {
		stale = connect(fd, (const struct sockaddr *)sa, len) < 0 && errno == ECONNREFUSED;
		close(fd);
	}
	errno = saved;
	return stale;
}

int fdp_unix_listen(const char *name, int type, mode_t mode, int backlog)
{
	struct sockaddr_un sa;
	socklen_t len;
	int fd, err, abstract;

	err = unix_address(name, &sa, &len);
	if (err < 0)
		return err;
	abstract = name[0] == '@';
	fd = fdp__socket(AF_UNIX, type);
	if (fd < 0)
		return fd;
	/*
	 * Linux creates the socket file with the socket inode's mode less the umask, so setting it
	 * before bind() means the file is never more open than mode, not even for an instant;
	 * chmod() afterwards restores bits the umask took away.
	 */
	if (!abstract && fchmod(fd, mode) < 0 && errno != EINVAL)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		if (errno != EADDRINUSE || abstract || !is_stale_socket(&sa, len, type))
			goto fail;
		if (unlink(sa.sun_path) < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0)
			goto fail;
	}
	if (!abstract && chmod(sa.sun_path, mode) < 0)
		goto fail_unlink;
	if (listen(fd, backlog) < 0)
		goto fail_unlink;
	return fd;

fail_unlink:
	err = -errno;
	unlink(sa.sun_path);
	close(fd);
	return err;
fail:
	err = -errno;
	close(fd);
	return err;
}

/* A connect() interrupted by a signal goes on in the background: wait for its outcome. */
static int finish_connect(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof(err);

	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

int fdp_unix_connect(const char *name, int type)
{
	struct sockaddr_un sa;
	socklen_t len;
	int fd, err;

	err = unix_address(name, &sa, &len);
	if (err < 0)
		return err;
	fd = fdp__socket(AF_UNIX, type);
	if (fd < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		err = errno == EINTR ? finish_connect(fd) : -errno;
		if (err < 0) {
			close(fd);
			return err;
		}
	}
	return fd;
}

int fdp_peer_cred(int sock, struct fdp_cred *cred)
{
#ifdef SO_PEERCRED
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	cred->pid = uc.pid;
	cred->uid = uc.uid;
	cred->gid = uc.gid;
	return 0;
#else
	cred->pid = 0; /* getpeereid() does not tell the pid */
	if (getpeereid(sock, &cred->uid, &cred->gid) < 0)
		return -errno;
	return 0;
#endif
}
