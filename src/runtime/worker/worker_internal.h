/* The worker side's internals that its tests reach for. Not part of the public API. */
#ifndef FDP_WORKER_INTERNAL_H
#define FDP_WORKER_INTERNAL_H

#include "fdpass_runtime.h"

#include <stddef.h>

/* Let the ACK batch hold at most max ids (0: no limit), as if memory ran out past them. */
void fdp__worker_limit_acks(struct fdp_worker *w, size_t max);

/*
 * fdp_worker_accept() without waiting for the connection's ACK to leave (it stays batched until
 * the next flush): what a worker that breaks the protocol's rule does, for the tests of how the
 * master copes with one that dies or fails before its ACK arrives.
 */
int fdp__worker_accept_early(struct fdp_worker *w, struct fdp_conn *conn);

#endif
