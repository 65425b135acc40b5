/*
 * The --route-map table: keys and key prefixes pinned to worker slots, overriding the hash.
 *
 *   # comment            blank lines and lines starting with # are ignored
 *   alice     0          the key "alice" goes to worker 0
 *   user:*    2          any key starting with "user:" goes to worker 2
 *   *         1          every other key (the empty prefix) goes to worker 1
 *
 * An exact key beats any prefix; among prefixes the longest wins. Exact keys are kept sorted
 * for a binary search; prefixes are kept grouped by length, longest first, each group sorted,
 * so a lookup costs one binary search per distinct prefix length.
 */
#include "route.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAP_MAX_BYTES (64u << 20) /* a map file larger than this is refused */

static int cmp_bytes(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int cmp_exact(const void *x, const void *y)
{
	const struct fdp__route_map_entry *a = x, *b = y;

	return cmp_bytes(a->key, a->len, b->key, b->len);
}

static int cmp_prefix(const void *x, const void *y)
{
	const struct fdp__route_map_entry *a = x, *b = y;

	if (a->len != b->len)
		return a->len > b->len ? -1 : 1;
	return memcmp(a->key, b->key, a->len);
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int add_entry(struct fdp__route_map_entry **v, size_t *n, size_t *cap, const char *key,
                     size_t len, unsigned slot, unsigned line, int fold)
{
	struct fdp__route_map_entry *e;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		void *nv = realloc(*v, ncap * sizeof(**v));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	e = &(*v)[*n];
	e->key = malloc(len ? len : 1);
	if (!e->key)
		return -ENOMEM;
	memcpy(e->key, key, len);
	if (fold)
		fdp__route_fold(e->key, len);
	e->len = len;
	e->slot = slot;
	e->line = line;
	(*n)++;
	return 0;
}

/* Two entries with the same key (sorted neighbours) make the map ambiguous. */
static int check_duplicates(const struct fdp__route_map_entry *v, size_t n, int prefix, char *err,
                            size_t errlen)
{
	for (size_t i = 1; i < n; i++) {
		const struct fdp__route_map_entry *a = &v[i - 1], *b = &v[i];

		if (a->len == b->len && !memcmp(a->key, b->key, a->len))
			return fdp__route_error(err, errlen,
			                 "line %u: %s \"%.*s%s\" already given on line %u",
			                 a->line > b->line ? a->line : b->line,
			                 prefix ? "prefix" : "key", (int)a->len, a->key,
			                 prefix ? "*" : "", a->line < b->line ? a->line : b->line);
	}
	return 0;
}

/* One non-comment line: "key index [# comment]". */
static int parse_line(struct fdp__route_map *map, size_t caps[2], const char *s, size_t n,
                      unsigned lineno, unsigned slots, int fold, char *err, size_t errlen)
{
	size_t i = 0, ks, ke, is, ie;
	unsigned long slot = 0;
	int r;

	while (i < n && is_space(s[i]))
		i++;
	if (i == n || s[i] == '#')
		return 0;
	ks = i;
	while (i < n && !is_space(s[i]))
		i++;
	ke = i;
	while (i < n && is_space(s[i]))
		i++;
	is = i;
	while (i < n && !is_space(s[i]))
		i++;
	ie = i;
	while (i < n && is_space(s[i]))
		i++;
	if (is == ie || s[is] == '#')
		return fdp__route_error(err, errlen, "line %u: \"%.*s\" has no worker index", lineno,
		                 (int)(ke - ks), s + ks);
	if (i < n && s[i] != '#')
		return fdp__route_error(err, errlen, "line %u: unexpected \"%.*s\" after the worker index",
		                 lineno, (int)(n - i), s + i);
	for (size_t j = is; j < ie; j++) {
		if (s[j] < '0' || s[j] > '9' || slot > 1000000)
			return fdp__route_error(err, errlen,
			                 "line %u: worker index \"%.*s\" is not a number", lineno,
			                 (int)(ie - is), s + is);
		slot = slot * 10 + (unsigned long)(s[j] - '0');
	}
	if (slots && slot >= slots)
		return fdp__route_error(err, errlen, "line %u: worker index %lu out of range (%u workers)",
		                 lineno, slot, slots);
	if (s[ke - 1] == '*')
		r = add_entry(&map->prefix, &map->nprefix, &caps[1], s + ks, ke - ks - 1,
		              (unsigned)slot, lineno, fold);
	else
		r = add_entry(&map->exact, &map->nexact, &caps[0], s + ks, ke - ks, (unsigned)slot,
		              lineno, fold);
	return r;
}

int fdp__route_map_parse(struct fdp__route_map *map, const char *text, size_t len, unsigned slots,
                         int fold_case, char *err, size_t errlen)
{
	size_t caps[2] = {0, 0}, at = 0;
	unsigned lineno = 0;
	int r = 0;

	memset(map, 0, sizeof(*map));
	if (errlen)
		err[0] = '\0';
	while (at < len && r == 0) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - text) : len;

		lineno++;
		if (memchr(text + at, '\0', end - at))
			r = fdp__route_error(err, errlen, "line %u: contains a NUL byte", lineno);
		else
			r = parse_line(map, caps, text + at, end - at, lineno, slots, fold_case,
			               err, errlen);
		at = end + 1;
	}
	if (r == -ENOMEM && errlen)
		snprintf(err, errlen, "out of memory reading the route map");
	if (r == 0) {
		if (map->nexact)
			qsort(map->exact, map->nexact, sizeof(*map->exact), cmp_exact);
		if (map->nprefix)
			qsort(map->prefix, map->nprefix, sizeof(*map->prefix), cmp_prefix);
		r = check_duplicates(map->exact, map->nexact, 0, err, errlen);
		if (r == 0)
			r = check_duplicates(map->prefix, map->nprefix, 1, err, errlen);
	}
	if (r < 0)
		fdp__route_map_free(map);
	return r;
}

/* Read a whole regular file of at most MAP_MAX_BYTES into *text (NUL-terminated). */
static int read_file(const char *path, char **text, size_t *len, const char **why)
{
	struct stat st;
	int fd, r = 0;

	*text = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		*why = "not a regular file";
	} else if (st.st_size > MAP_MAX_BYTES) {
		r = -EFBIG;
		*why = "larger than 64 MiB";
	} else if (!(*text = malloc((size_t)st.st_size + 1))) {
		r = -ENOMEM;
	}
	while (r == 0 && *len < (size_t)st.st_size) {
		ssize_t n = read(fd, *text + *len, (size_t)st.st_size - *len);

		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n == 0)
			break; /* shrank while being read: parse what is there */
		else if (n > 0)
			*len += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(*text);
		*text = NULL;
	}
	return r;
}

int fdp__route_map_load(struct fdp__route_map *map, const char *path, unsigned slots, int fold_case,
                        char *err, size_t errlen)
{
	const char *why = NULL;
	char *text, inner[256];
	size_t len;
	int r;

	memset(map, 0, sizeof(*map));
	r = read_file(path, &text, &len, &why);
	if (r < 0) {
		if (errlen)
			snprintf(err, errlen, "route map %s: %s", path, why ? why : strerror(-r));
		return r;
	}
	r = fdp__route_map_parse(map, text, len, slots, fold_case, inner, sizeof(inner));
	free(text);
	if (r < 0 && errlen)
		snprintf(err, errlen, "route map %s: %s", path, inner);
	return r;
}

/* Binary search of entries [lo, hi) (sorted, all of length klen) for key's first klen bytes. */
static const struct fdp__route_map_entry *search(const struct fdp__route_map_entry *v, size_t lo,
                                                 size_t hi, const unsigned char *key, size_t klen,
                                                 int exact)
{
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = exact ? cmp_bytes(key, klen, v[mid].key, v[mid].len)
		              : memcmp(key, v[mid].key, klen);

		if (c == 0)
			return &v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int fdp__route_map_lookup(const struct fdp__route_map *map, const void *key, size_t len)
{
	const struct fdp__route_map_entry *e;
	size_t i = 0;

	e = search(map->exact, 0, map->nexact, key, len, 1);
	if (e)
		return (int)e->slot;
	/* Prefix groups, longest first: skip those longer than the key, search each other one. */
	while (i < map->nprefix) {
		size_t plen = map->prefix[i].len, j = i;

		while (j < map->nprefix && map->prefix[j].len == plen)
			j++;
		if (plen <= len) {
			e = search(map->prefix, i, j, key, plen, 0);
			if (e)
				return (int)e->slot;
		}
		i = j;
	}
	return -1;
}

void fdp__route_map_free(struct fdp__route_map *map)
{
	for (size_t i = 0; i < map->nexact; i++)
		free(map->exact[i].key);
	for (size_t i = 0; i < map->nprefix; i++)
		free(map->prefix[i].key);
	free(map->exact);
	free(map->prefix);
	memset(map, 0, sizeof(*map));
}
