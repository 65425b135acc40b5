/*
 * Design 9, pre-threaded, the main thread accepts and hands off: accepted descriptors go into
 * a ring guarded by a mutex, and a condition variable wakes a pool thread to take one. No
 * descriptor passing is needed: threads share one descriptor table.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "skeleton.h"

#define RING_SIZE 1024

static struct dsg_server server;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_filled = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ring_drained = PTHREAD_COND_INITIALIZER;
static int ring[RING_SIZE];
static unsigned ring_put, ring_get; /* free-running; their difference is the fill */

static int ring_take(void)
{
	int fd;

	pthread_mutex_lock(&ring_lock);
	while (ring_put == ring_get)
		pthread_cond_wait(&ring_filled, &ring_lock);
	fd = ring[ring_get++ % RING_SIZE];
	pthread_cond_signal(&ring_drained);
	pthread_mutex_unlock(&ring_lock);
	return fd;
}

/* A full ring makes the acceptor wait, so clients queue in the listen backlog instead. */
static void ring_add(int fd)
{
	pthread_mutex_lock(&ring_lock);
	while (ring_put - ring_get == RING_SIZE)
		pthread_cond_wait(&ring_drained, &ring_lock);
	ring[ring_put++ % RING_SIZE] = fd;
	pthread_cond_signal(&ring_filled);
	pthread_mutex_unlock(&ring_lock);
}

static void *worker(void *arg)
{
	int index = (int)(intptr_t)arg;

	for (;;)
		if (dsg_echo(ring_take()) == 0)
			dsg_count(&server, index);
	return NULL;
}

int main(int argc, char **argv)
{
	dsg_init(&server, argc, argv, "prethread-handoff", DSG_POOL);
	for (int i = 0; i < server.workers; i++) {
		pthread_t tid;
		if (pthread_create(&tid, NULL, worker, (void *)(intptr_t)i) != 0) {
			fprintf(stderr, "dsg-prethread-handoff: pthread_create failed\n");
			return 1;
		}
		pthread_detach(tid);
	}
	dsg_ready(&server);
	while (!dsg_stopping) {
		int fd = dsg_accept(server.listen_fd);
		if (fd < 0) {
			if (dsg_accept_transient(-fd))
				continue;
			break;
		}
		ring_add(fd);
	}
	return dsg_finish(&server);
}
