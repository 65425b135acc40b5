/* Consistent hashing: stable, balanced, and moving only about 1/N of keys when N changes. */
#include "harness.h"
#include "route.h"

#include <errno.h>
#include <stdint.h>

#define NKEYS 100000

static uint64_t key_hash(unsigned i)
{
	char key[32];
	int n = snprintf(key, sizeof(key), "user:%u", i);

	return fdp__route_hash(key, (size_t)n);
}

TEST(hash_is_a_pure_function_of_the_bytes)
{
	CHECK(fdp__route_hash("abc", 3) == fdp__route_hash("abc", 3));
	CHECK(fdp__route_hash("abc", 3) != fdp__route_hash("abd", 3));
	CHECK(fdp__route_hash("", 0) != fdp__route_hash("\0", 1));
}

TEST(hash_spreads_similar_keys_over_the_whole_range)
{
	unsigned top[16] = {0};

	/* Keys differing in one digit must land all over the circle, which sorts by high bits. */
	for (unsigned i = 0; i < NKEYS; i++)
		top[key_hash(i) >> 60]++;
	for (unsigned b = 0; b < 16; b++) {
		CHECK_INT(top[b], >, NKEYS / 16 * 9 / 10);
		CHECK_INT(top[b], <, NKEYS / 16 * 11 / 10);
	}
}

TEST(ring_refuses_zero_slots_or_points)
{
	struct fdp__hashring r;

	CHECK_INT(fdp__hashring_build(&r, 0, 160), ==, -EINVAL);
	CHECK_INT(fdp__hashring_build(&r, 4, 0), ==, -EINVAL);
}

TEST(ring_of_one_slot_sends_every_key_to_it)
{
	struct fdp__hashring r;

	CHECK_OK(fdp__hashring_build(&r, 1, FDP__RING_POINTS));
	for (unsigned i = 0; i < 1000; i++)
		CHECK_INT(fdp__hashring_slot(&r, key_hash(i)), ==, 0);
	CHECK_INT(fdp__hashring_slot(&r, 0), ==, 0);
	CHECK_INT(fdp__hashring_slot(&r, UINT64_MAX), ==, 0);
	fdp__hashring_free(&r);
}

TEST(ring_rebuilt_for_the_same_slots_gives_every_key_the_same_slot)
{
	struct fdp__hashring a, b;

	/* What a worker's replacement or a SIGHUP amounts to: the ring is built again. */
	CHECK_OK(fdp__hashring_build(&a, 8, FDP__RING_POINTS));
	CHECK_OK(fdp__hashring_build(&b, 8, FDP__RING_POINTS));
	for (unsigned i = 0; i < NKEYS; i++)
		CHECK_INT(fdp__hashring_slot(&a, key_hash(i)), ==,
		          fdp__hashring_slot(&b, key_hash(i)));
	fdp__hashring_free(&a);
	fdp__hashring_free(&b);
}

TEST(ring_shares_keys_evenly_between_slots)
{
	struct fdp__hashring r;
	unsigned count[8] = {0};

	CHECK_OK(fdp__hashring_build(&r, 8, FDP__RING_POINTS));
	for (unsigned i = 0; i < NKEYS; i++)
		count[fdp__hashring_slot(&r, key_hash(i))]++;
	/* With 160 points per slot the arcs vary by about 8%: allow 25% either way. */
	for (unsigned s = 0; s < 8; s++) {
		CHECK_INT(count[s], >, NKEYS / 8 * 3 / 4);
		CHECK_INT(count[s], <, NKEYS / 8 * 5 / 4);
	}
	fdp__hashring_free(&r);
}

/* Grow from n to n + 1 slots: the moved keys all go to the new slot, about 1/(n+1) of them. */
static void check_growth(unsigned n)
{
	struct fdp__hashring a, b;
	unsigned moved = 0;
	double frac, want = 1.0 / (n + 1);

	CHECK_OK(fdp__hashring_build(&a, n, FDP__RING_POINTS));
	CHECK_OK(fdp__hashring_build(&b, n + 1, FDP__RING_POINTS));
	for (unsigned i = 0; i < NKEYS; i++) {
		unsigned sa = fdp__hashring_slot(&a, key_hash(i));
		unsigned sb = fdp__hashring_slot(&b, key_hash(i));

		if (sa != sb) {
			CHECK_INT(sb, ==, n);
			moved++;
		}
	}
	frac = (double)moved / NKEYS;
	if (frac < want * 0.7 || frac > want * 1.3)
		fdp_test_fail(__FILE__, __LINE__, "%u -> %u slots moved %.4f of keys, want ~%.4f",
		              n, n + 1, frac, want);
	fdp__hashring_free(&a);
	fdp__hashring_free(&b);
}

TEST(adding_a_slot_moves_about_one_in_n_plus_one_keys_all_to_it)
{
	check_growth(1);
	check_growth(3);
	check_growth(4);
	check_growth(7);
	check_growth(16);
}

TEST(removing_the_last_slot_moves_only_its_own_keys)
{
	struct fdp__hashring a, b;

	CHECK_OK(fdp__hashring_build(&a, 6, FDP__RING_POINTS));
	CHECK_OK(fdp__hashring_build(&b, 5, FDP__RING_POINTS));
	for (unsigned i = 0; i < NKEYS; i++) {
		unsigned sa = fdp__hashring_slot(&a, key_hash(i));

		if (sa != 5)
			CHECK_INT(fdp__hashring_slot(&b, key_hash(i)), ==, sa);
	}
	fdp__hashring_free(&a);
	fdp__hashring_free(&b);
}
