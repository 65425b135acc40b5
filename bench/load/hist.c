/*
 * Clock and latency histogram. The histogram has fixed size so a run of any length records
 * every latency without allocating, at a relative error of 1/64.
 */
#include <time.h>

#include "load.h"

uint64_t load_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned hist_index(uint64_t v)
{
	unsigned msb;

	if (v < LOAD_HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return (msb - LOAD_HIST_SUB_BITS + 1) * LOAD_HIST_SUB +
	       (unsigned)((v >> (msb - LOAD_HIST_SUB_BITS)) - LOAD_HIST_SUB);
}

/* The middle of a bucket, so the reported value is off by at most half a bucket. */
static uint64_t hist_value(unsigned idx)
{
	unsigned octave = idx / LOAD_HIST_SUB, sub = idx % LOAD_HIST_SUB, shift;

	if (octave == 0)
		return idx;
	shift = octave - 1;
	return ((uint64_t)(LOAD_HIST_SUB + sub) << shift) + ((1ull << shift) >> 1);
}

void load_hist_add(struct load_hist *h, uint64_t v)
{
	const uint64_t top = (1ull << (LOAD_HIST_OCTAVES - 1 + LOAD_HIST_SUB_BITS)) - 1;

	if (v > top)
		v = top;
	h->buckets[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

void load_hist_merge(struct load_hist *into, const struct load_hist *from)
{
	for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++)
		into->buckets[i] += from->buckets[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}

/* The value at fraction p (0..1] of the recorded values; 0 when nothing was recorded. */
uint64_t load_hist_percentile(const struct load_hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)(p * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = hist_value(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}
