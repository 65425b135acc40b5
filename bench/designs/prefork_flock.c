/*
 * Design 4, pre-forked, file lock around accept(): only the child holding an fcntl() write
 * lock on a shared file may call accept(). Record locks belong to a process, not to a
 * descriptor, so children can share the descriptor they inherit and still exclude each other.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "skeleton.h"

static int lock_fd = -1;

static int lock_set(short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET};

	while (fcntl(lock_fd, F_SETLKW, &fl) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static void child(struct dsg_server *s, int index)
{
	while (!dsg_stopping) {
		int fd;

		if (lock_set(F_WRLCK) < 0)
			return;
		fd = dsg_accept(s->listen_fd);
		lock_set(F_UNLCK);
		if (fd < 0) {
			if (dsg_accept_transient(-fd))
				continue;
			return;
		}
		if (dsg_echo(fd) == 0)
			dsg_count(s, index);
	}
}

/* A lock file nobody else can see: created, then unlinked at once. */
static int lock_open(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/dsg-lock.XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

int main(int argc, char **argv)
{
	struct dsg_server s;

	dsg_init(&s, argc, argv, "prefork-flock", DSG_POOL);
	lock_fd = lock_open();
	if (lock_fd < 0) {
		perror("dsg-prefork-flock: lock file");
		return 1;
	}
	for (int i = 0; i < s.workers; i++)
		if (dsg_spawn(&s, child, i) < 0)
			return dsg_finish(&s) | 1;
	dsg_ready(&s);
	dsg_wait_stop();
	return dsg_finish(&s);
}
