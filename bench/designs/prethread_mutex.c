/*
 * Design 8, pre-threaded, mutex around accept(): a pool of threads take turns to accept, one
 * at a time, and each serves the client it accepted.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "skeleton.h"

static struct dsg_server server;
static pthread_mutex_t accept_lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
	int index = (int)(intptr_t)arg;

	while (!dsg_stopping) {
		int fd;

		pthread_mutex_lock(&accept_lock);
		fd = dsg_accept(server.listen_fd);
		pthread_mutex_unlock(&accept_lock);
		if (fd < 0) {
			if (dsg_accept_transient(-fd))
				continue;
			break;
		}
		if (dsg_echo(fd) == 0)
			dsg_count(&server, index);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	dsg_init(&server, argc, argv, "prethread-mutex", DSG_POOL);
	for (int i = 0; i < server.workers; i++) {
		pthread_t tid;
		if (pthread_create(&tid, NULL, worker, (void *)(intptr_t)i) != 0) {
			fprintf(stderr, "dsg-prethread-mutex: pthread_create failed\n");
			return 1;
		}
		pthread_detach(tid);
	}
	dsg_ready(&server);
	dsg_wait_stop();
	return dsg_finish(&server);
}
