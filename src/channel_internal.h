/* Channel internals that tests reach for; not part of the public API. */
#ifndef FDP_CHANNEL_INTERNAL_H
#define FDP_CHANNEL_INTERNAL_H

#include "fdpass.h"

/*
 * Limit every recvmsg() of the channel to max bytes (0: no limit), so a test can make a stream
 * channel read one byte at a time and see messages and descriptors split at every position.
 */
void fdp__channel_set_read_max(struct fdp_channel *ch, size_t max);

#endif
