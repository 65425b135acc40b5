/* The worker side's internals that its tests reach for. Not part of the public API. */
#ifndef FDP_WORKER_INTERNAL_H
#define FDP_WORKER_INTERNAL_H

#include "fdpass_runtime.h"

#include <stddef.h>

/* Let the ACK batch hold at most max ids (0: no limit), as if memory ran out past them. */
void fdp__worker_limit_acks(struct fdp_worker *w, size_t max);

#endif
