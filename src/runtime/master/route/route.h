/*
 * Content routing, the pure pieces the master builds on (docs/ROUTING.md):
 *   route_key.c   key extractors over the bytes MSG_PEEK returned so far, and their specs;
 *   route_ring.c  consistent hashing of keys onto worker slots;
 *   route_map.c   the --route-map table of exact keys and key prefixes.
 * None of them does I/O on sockets, prints, or keeps global state.
 */
#ifndef FDP_ROUTE_H
#define FDP_ROUTE_H

/* Routing is the master's sub-part: only the master and the program above it use it. */
#if defined(FDP_LAYER_MECH) || defined(FDP_LAYER_PROTO) || defined(FDP_LAYER_WORKER)
#error "routing is part of the master: the layers beneath it may not use it"
#endif

#include "fdpass_runtime.h"
#include "util.h"

#include <stddef.h>
#include <stdint.h>

/* The first published layout of struct fdp_route_config ends with default_worker. */
#define FDP__ROUTE_CONFIG_SIZE_MIN                                                                 \
	(offsetof(struct fdp_route_config, default_worker) + sizeof(unsigned))

/* What an extractor made of the bytes seen so far. */
enum fdp__route_verdict {
	ROUTE_MORE,    /* no key yet: wait for more bytes */
	ROUTE_FOUND,   /* the key is buf[off, off + len) */
	ROUTE_REJECT,  /* the bytes cannot hold a key (malformed, or the key is absent) */
	ROUTE_TOO_BIG, /* the key would end past the byte limit */
};

enum fdp__route_kind {
	ROUTE_LINE,            /* the first line, or one of its tokens */
	ROUTE_HTTP_HOST,       /* the Host of an HTTP/1.x request (absolute-form target first) */
	ROUTE_HTTP_PATH,       /* the path of the request target, without query or fragment */
	ROUTE_HTTP_HEADER,     /* the value of the first header of a given name */
	ROUTE_PREFIX,          /* the first N bytes */
	ROUTE_LENGTH_PREFIXED, /* a 1, 2 or 4-byte big-endian length, then that many key bytes */
	ROUTE_CALLBACK,        /* the embedder's fdp_route_key_fn */
};

#define FDP__ROUTE_HEADER_MAX 64 /* longest header name http-header:NAME accepts */

/* An extractor: a parsed --route-key spec, or a callback. */
struct fdp__route_key {
	enum fdp__route_kind kind;
	unsigned token; /* line: 0 the whole line, N >= 1 the Nth token */
	int delim;      /* line: the token delimiter, or -1 for runs of blanks (space, tab) */
	size_t n;       /* prefix: the byte count; length-prefixed: the length's width */
	int fold_case;  /* the key is case-insensitive (a host): lowercase it before use */
	size_t header_len;
	char header[FDP__ROUTE_HEADER_MAX + 1];
	fdp_route_key_fn fn;
	void *arg;
};

/* A key found in the buffer. */
struct fdp__route_span {
	size_t off, len;
};

/*
 * Parse an extractor spec ("line", "line:2", "line:1::", "http-host", "http-path",
 * "http-header:X-User", "prefix:8", "length-prefixed:2"). Returns 0, or -EINVAL with a
 * message in err (errlen bytes, always terminated).
 */
int fdp__route_key_parse(struct fdp__route_key *k, const char *spec, char *err, size_t errlen);

/* An extractor that calls fn(arg, ...). */
void fdp__route_key_callback(struct fdp__route_key *k, fdp_route_key_fn fn, void *arg);

/*
 * Look for the key in buf[0, len), the first len bytes of the stream. max is the byte limit:
 * a key that cannot be complete within max bytes gives ROUTE_TOO_BIG, as soon as that is known.
 * A found key is never empty and lies within the first min(len, max) bytes.
 */
enum fdp__route_verdict fdp__route_extract(const struct fdp__route_key *k, const unsigned char *buf,
                                           size_t len, size_t max, struct fdp__route_span *key);

/* Lowercase ASCII letters in place (keys of extractors with fold_case). */
void fdp__route_fold(unsigned char *p, size_t n);

/* 64-bit hash of a key: FNV-1a over the bytes, then a 64-bit finalizer to spread them. */
uint64_t fdp__route_hash(const void *p, size_t n);

/* Consistent hashing: `points` points on a 64-bit circle for each slot, sorted. */
struct fdp__hashring {
	struct fdp__hashring_point {
		uint64_t at;
		unsigned slot;
	} * v;
	size_t n;
	unsigned slots;
};

#define FDP__RING_POINTS 160 /* virtual points per slot */

/*
 * Build the ring for slots 0..slots-1. The points depend only on the slot indexes, so a slot
 * keeps its keys whatever happens to its process. Returns 0, -EINVAL or -ENOMEM.
 */
int fdp__hashring_build(struct fdp__hashring *r, unsigned slots, unsigned points);

/* The slot that owns a key's hash: the first point at or after it, round the circle. */
unsigned fdp__hashring_slot(const struct fdp__hashring *r, uint64_t hash);

void fdp__hashring_free(struct fdp__hashring *r);

/* The --route-map table: exact keys, and prefixes (longest wins); exact beats prefix. */
struct fdp__route_map {
	struct fdp__route_map_entry {
		unsigned char *key;
		size_t len;
		unsigned slot;
		unsigned line;
	} * exact, *prefix;
	size_t nexact, nprefix;
};

/*
 * Parse a map from text: one "key worker-index" or "prefix* worker-index" per line, blank
 * lines and "#" comments. Indexes must be below slots. With fold_case the keys are lowercased
 * (to match a case-insensitive extractor). Returns 0, -EINVAL with "line N: ..." in err, or
 * -ENOMEM. On failure *map is left empty.
 */
int fdp__route_map_parse(struct fdp__route_map *map, const char *text, size_t len, unsigned slots,
                         int fold_case, char *err, size_t errlen);

/* fdp__route_map_parse() on a file's contents; -errno of open/read with err naming the file. */
int fdp__route_map_load(struct fdp__route_map *map, const char *path, unsigned slots, int fold_case,
                        char *err, size_t errlen);

/* The slot a key is mapped to, or -1 when the map does not name it. */
int fdp__route_map_lookup(const struct fdp__route_map *map, const void *key, size_t len);

void fdp__route_map_free(struct fdp__route_map *map);

/* Write a one-line reason into err (errlen bytes, always terminated) and return -EINVAL. */
__attribute__((format(printf, 3, 4))) int fdp__route_error(char *err, size_t errlen,
                                                           const char *fmt, ...);

#endif
