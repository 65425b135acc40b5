/*
 * Design 5, pre-forked, process-shared mutex around accept(): the lock is a pthread mutex
 * with PTHREAD_PROCESS_SHARED in memory mapped shared before the children are forked, which
 * costs no system call when uncontended (a futex), unlike the file lock of design 4.
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>

#include "skeleton.h"

static pthread_mutex_t *accept_lock;

static void child(struct dsg_server *s, int index)
{
	while (!dsg_stopping) {
		int fd;

		pthread_mutex_lock(accept_lock);
		fd = dsg_accept(s->listen_fd);
		pthread_mutex_unlock(accept_lock);
		if (fd < 0) {
			if (dsg_accept_transient(-fd))
				continue;
			return;
		}
		if (dsg_echo(fd) == 0)
			dsg_count(s, index);
	}
}

static int lock_create(void)
{
	pthread_mutexattr_t attr;
	void *mem = mmap(NULL, sizeof(*accept_lock), PROT_READ | PROT_WRITE,
	                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED)
		return -1;
	accept_lock = mem;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(accept_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return 0;
}

int main(int argc, char **argv)
{
	struct dsg_server s;

	dsg_init(&s, argc, argv, "prefork-mutex", DSG_POOL);
	if (lock_create() < 0) {
		perror("dsg-prefork-mutex: mmap");
		return 1;
	}
	for (int i = 0; i < s.workers; i++)
		if (dsg_spawn(&s, child, i) < 0)
			return dsg_finish(&s) | 1;
	dsg_ready(&s);
	dsg_wait_stop();
	return dsg_finish(&s);
}
