/*
 * Consistent hashing of routing keys onto worker slots. Every slot owns FDP__RING_POINTS
 * points on a 64-bit circle; a key belongs to the slot of the first point at or after its hash.
 * The points are a function of the slot index alone, never of a process id or a generation,
 * so a key stays with its slot while that slot's worker crashes and is replaced, or all of
 * them are replaced on SIGHUP; and going from N to N+1 slots only moves the keys that the new
 * slot's points capture, about 1/(N+1) of them. Many points per slot even out the arcs.
 */
#include "route.h"

#include <errno.h>
#include <stdlib.h>

/* The 64-bit finalizer of MurmurHash3: every input bit flips about half the output bits. */
static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

uint64_t fdp__route_hash(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis */

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	/* FNV alone leaves short keys' high bits poorly mixed: the circle is ordered by them. */
	return mix64(h ^ n);
}

/* The position of point i of slot s: splitmix64's output function over (s, i). */
static uint64_t point_at(unsigned s, unsigned i)
{
	uint64_t z = ((uint64_t)s << 32 | i) + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int cmp_point(const void *a, const void *b)
{
	const struct fdp__hashring_point *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	/* Equal positions (vanishingly rare) order by slot, so the outcome is still stable. */
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

int fdp__hashring_build(struct fdp__hashring *r, unsigned slots, unsigned points)
{
	size_t n = (size_t)slots * points;

	r->v = NULL;
	r->n = 0;
	r->slots = 0;
	if (slots == 0 || points == 0 || slots > 65536 || points > 4096)
		return -EINVAL;
	r->v = malloc(n * sizeof(*r->v));
	if (!r->v)
		return -ENOMEM;
	for (unsigned s = 0; s < slots; s++)
		for (unsigned i = 0; i < points; i++)
			r->v[(size_t)s * points + i] =
			        (struct fdp__hashring_point){point_at(s, i), s};
	qsort(r->v, n, sizeof(*r->v), cmp_point);
	r->n = n;
	r->slots = slots;
	return 0;
}

unsigned fdp__hashring_slot(const struct fdp__hashring *r, uint64_t hash)
{
	size_t lo = 0, hi = r->n;

	if (!r->n)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->v[mid].at < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return r->v[lo == r->n ? 0 : lo].slot;
}

void fdp__hashring_free(struct fdp__hashring *r)
{
	free(r->v);
	r->v = NULL;
	r->n = 0;
	r->slots = 0;
}
