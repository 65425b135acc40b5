/*
 * Design 7, thread per client: the main thread accepts and starts a detached thread to serve
 * each client.
 */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "skeleton.h"

static struct dsg_server server;

static void *serve(void *arg)
{
	if (dsg_echo((int)(intptr_t)arg) == 0)
		dsg_count(&server, 0);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_attr_t attr;

	dsg_init(&server, argc, argv, "thread", 0);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	dsg_ready(&server);
	while (!dsg_stopping) {
		pthread_t tid;
		int fd = dsg_accept(server.listen_fd);
		if (fd < 0) {
			if (dsg_accept_transient(-fd))
				continue;
			break;
		}
		if (pthread_create(&tid, &attr, serve, (void *)(intptr_t)fd) != 0)
			close(fd);
	}
	return dsg_finish(&server);
}
