/*
 * The pid file of `fdpass serve --pid-file` (see pidfile.h). A pid file outlives a master
 * killed by SIGKILL or a crash, and its pid may since have gone to another process: only a
 * live process whose name is this program's counts as a running server.
 */
#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The pid path holds: > 0, 0 when it holds none (missing, empty, not a number), or -errno. */
static pid_t pidfile_read(const char *path)
{
	char buf[32], *end;
	ssize_t n;
	long v;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || v <= 0 || v > INT_MAX)
		return 0;
	return (pid_t)v;
}

/* A process's name (/proc/PID/comm, without its newline) into buf; 0 or -errno. */
static int proc_name(const char *pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int fdpass_pid_is_fdpass(pid_t pid)
{
	char num[16], name[64], self[64];

	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
		return 0;
	snprintf(num, sizeof(num), "%d", (int)pid);
	/* Its name unreadable (no /proc): take it for fdpass rather than start a second one. */
	if (proc_name(num, name, sizeof(name)) == 0 && proc_name("self", self, sizeof(self)) == 0 &&
	    strcmp(name, "fdpass") != 0 && strcmp(name, self) != 0)
		return 0; /* the pid went to another program */
	return 1;
}

int fdpass_pidfile_check(const char *path, char *why, size_t why_size)
{
	pid_t pid = pidfile_read(path);

	if (pid < 0) {
		snprintf(why, why_size, "cannot read %s: %s", path, strerror(-pid));
		return pid;
	}
	if (pid == 0 || pid == getpid() || !fdpass_pid_is_fdpass(pid))
		return 0; /* none, ours, or stale: that server is gone, its pid maybe reused */
	snprintf(why, why_size,
	         "%s names pid %d, a running fdpass: stop that server first, or give another "
	         "--pid-file",
	         path, (int)pid);
	return -EEXIST;
}

int fdpass_pidfile_write(const char *path, pid_t pid, char *why, size_t why_size)
{
	const char *slash = strrchr(path, '/');
	char tmp[PATH_MAX], line[24];
	int fd, n, err = 0;

	n = slash ? snprintf(tmp, sizeof(tmp), "%.*s/.%s.XXXXXX", (int)(slash - path), path,
	                     slash + 1)
	          : snprintf(tmp, sizeof(tmp), ".%s.XXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		snprintf(why, why_size, "%s: %s", path, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC); /* in path's directory: the rename cannot cross a mount */
	if (fd < 0) {
		err = -errno;
		snprintf(why, why_size, "cannot write %s: %s", path, strerror(errno));
		return err;
	}
	n = snprintf(line, sizeof(line), "%d\n", (int)pid);
	errno = 0;
	if (write(fd, line, (size_t)n) != n)
		err = errno ? -errno : -EIO;
	else if (fchmod(fd, 0644) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		snprintf(why, why_size, "cannot write %s: %s", path, strerror(-err));
	}
	return err;
}

int fdpass_pidfile_remove(const char *path, pid_t pid)
{
	pid_t holds = pidfile_read(path);

	if (holds < 0)
		return holds;
	if (holds != pid)
		return 0;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 1;
}
