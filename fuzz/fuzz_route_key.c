/*
 * libFuzzer target for content routing's parsers. Byte 0 picks what to fuzz:
 *   0-199   an extractor (byte 0 mod the table below), byte 1 the byte limit (0: 8192),
 *           the rest the client's stream. The stream is fed as it would arrive, one prefix
 *           after another; every answer must keep the extractor's promises: a found key is
 *           non-empty and inside the bytes shown (and the limit), and once an answer other
 *           than "more" is given, every longer stream gives the same answer and the same key.
 *   200-227 the rest as a --route-key spec: parsing must not crash, and must either fail
 *           with a message or give an extractor that the stream "GET / HTTP/1.1\r\n..." runs.
 *   228-255 the rest as a --route-map file: parsed (4 slots), and when it parses, looked up
 *           with each of its own lines as a key.
 */
#include "route.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const specs[] = {
        "line",
        "line:1",
        "line:2",
        "line:3:,",
        "line:1::",
        "http-host",
        "http-path",
        "http-header:X-Key",
        "prefix:1",
        "prefix:7",
        "length-prefixed:1",
        "length-prefixed:2",
        "length-prefixed:4",
};

static void check_span(const struct fdp__route_span *key, size_t len, size_t max)
{
	if (key->len == 0 || key->off > len || key->len > len - key->off ||
	    key->off + key->len > max)
		abort();
}

static void fuzz_extractor(const char *spec, size_t max, const uint8_t *in, size_t n)
{
	struct fdp__route_key k;
	struct fdp__route_span key, first = {0, 0};
	enum fdp__route_verdict v, settled = ROUTE_MORE;
	char err[256];

	if (fdp__route_key_parse(&k, spec, err, sizeof(err)) < 0)
		abort();
	for (size_t len = 0; len <= n; len++) {
		v = fdp__route_extract(&k, in, len, max, &key);
		if (v == ROUTE_FOUND)
			check_span(&key, len, max);
		if (settled == ROUTE_MORE) {
			settled = v;
			first = key;
		} else if (v != settled ||
		           (v == ROUTE_FOUND && (key.off != first.off || key.len != first.len))) {
			abort();
		}
	}
}

static void fuzz_spec(const uint8_t *in, size_t n)
{
	static const unsigned char req[] = "GET /p HTTP/1.1\r\nHost: h\r\nX-Key: k\r\n\r\n";
	struct fdp__route_key k;
	struct fdp__route_span key;
	char spec[128], err[256];

	if (n >= sizeof(spec))
		n = sizeof(spec) - 1;
	memcpy(spec, in, n);
	spec[n] = '\0';
	if (fdp__route_key_parse(&k, spec, err, sizeof(err)) < 0) {
		if (!err[0])
			abort();
		return;
	}
	if (fdp__route_extract(&k, req, sizeof(req) - 1, 8192, &key) == ROUTE_FOUND)
		check_span(&key, sizeof(req) - 1, 8192);
}

static void fuzz_map(const uint8_t *in, size_t n)
{
	struct fdp__route_map map;
	char err[256];
	size_t at = 0;

	if (fdp__route_map_parse(&map, (const char *)in, n, 4, in[0] & 1, err, sizeof(err)) < 0) {
		if (!err[0] || map.nexact || map.nprefix)
			abort();
		return;
	}
	while (at < n) {
		const uint8_t *nl = memchr(in + at, '\n', n - at);
		size_t end = nl ? (size_t)(nl - in) : n;
		int slot = fdp__route_map_lookup(&map, in + at, end - at);

		if (slot < -1 || slot >= 4)
			abort();
		at = end + 1;
	}
	fdp__route_map_free(&map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (data[0] < 200)
		fuzz_extractor(specs[data[0] % (sizeof(specs) / sizeof(specs[0]))],
		               data[1] ? data[1] : 8192, data + 2, size - 2);
	else if (data[0] < 228)
		fuzz_spec(data + 1, size - 1);
	else
		fuzz_map(data + 1, size - 1);
	return 0;
}
