/*
 * The small helpers every layer shares, defined once: little-endian loads and stores (every
 * integer on a channel is little-endian) and the monotonic clock in milliseconds. Written with
 * shifts rather than <endian.h>, so they build on any C11 system.
 */
#ifndef FDP_UTIL_H
#define FDP_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static inline void fdp__put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void fdp__put32(unsigned char *p, uint32_t v)
{
	fdp__put16(p, (uint16_t)v);
	fdp__put16(p + 2, (uint16_t)(v >> 16));
}

static inline void fdp__put64(unsigned char *p, uint64_t v)
{
	fdp__put32(p, (uint32_t)v);
	fdp__put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t fdp__get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static inline uint32_t fdp__get32(const unsigned char *p)
{
	return fdp__get16(p) | (uint32_t)fdp__get16(p + 2) << 16;
}

static inline uint64_t fdp__get64(const unsigned char *p)
{
	return fdp__get32(p) | (uint64_t)fdp__get32(p + 4) << 32;
}

/* Milliseconds on the monotonic clock: for deadlines, never for dates. */
static inline long long fdp__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Copy a caller's configuration, whose first member is its size as the caller was compiled,
 * into the library's own (dst_size bytes). An older caller's shorter struct leaves the newer
 * fields zero, which always means their default; a newer caller's longer one is taken when
 * every byte this library does not know is zero. min is the size of the first published
 * layout. Returns 0, or -EINVAL (size below min, or a field this library does not know set).
 */
static inline int fdp__config_copy(void *dst, size_t dst_size, const void *src, size_t min)
{
	size_t size;

	memcpy(&size, src, sizeof(size));
	if (size < min)
		return -EINVAL;
	for (size_t i = dst_size; i < size; i++)
		if (((const unsigned char *)src)[i])
			return -EINVAL;
	memset(dst, 0, dst_size);
	memcpy(dst, src, size < dst_size ? size : dst_size);
	return 0;
}

#endif
