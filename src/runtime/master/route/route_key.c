/*
 * Key extractors. Each looks at the first bytes of a client's stream, as MSG_PEEK returned
 * them so far, and says: here is the key, wait for more, or give up. They are called again
 * from the start each time more bytes arrive (the master keeps no parser state per client: a
 * waiting client costs it no memory beyond its descriptor), so they stay linear and simple.
 * The HTTP ones read an HTTP/1.x request head the way RFC 9112 asks a server to: CRLF or bare
 * LF line ends, leading empty lines skipped, no space before a header's colon, obs-fold
 * continuation lines tolerated on other headers but rejected on the one that holds the key.
 */
#include "route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal number in [lo, hi] filling all of s..end. */
static int parse_uint(const char *s, const char *end, unsigned long lo, unsigned long hi,
                      unsigned long *out)
{
	unsigned long v = 0;

	if (s == end)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9' || v > hi)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* RFC 9110 tchar: what a method or a header name is made of. */
static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int parse_line_spec(struct fdp__route_key *k, const char *arg, char *err, size_t errlen)
{
	const char *colon = strchr(arg, ':');
	const char *end = colon ? colon : arg + strlen(arg);
	unsigned long n;

	if (parse_uint(arg, end, 1, 1000, &n) < 0)
		return fdp__route_error(err, errlen, "route key \"line:%s\": the token must be 1..1000", arg);
	k->token = (unsigned)n;
	if (colon) {
		if (strlen(colon + 1) != 1 || colon[1] == '\r' || colon[1] == '\n')
			return fdp__route_error(err, errlen,
			            "route key \"line:%s\": the delimiter must be one character "
			            "other than CR and LF",
			            arg);
		k->delim = (unsigned char)colon[1];
	}
	return 0;
}

int fdp__route_key_parse(struct fdp__route_key *k, const char *spec, char *err, size_t errlen)
{
	const char *arg = spec ? strchr(spec, ':') : NULL;
	size_t name_len = arg ? (size_t)(arg - spec) : (spec ? strlen(spec) : 0);
	unsigned long n;

	memset(k, 0, sizeof(*k));
	k->delim = -1;
	if (errlen)
		err[0] = '\0';
	if (!spec || !*spec)
		return fdp__route_error(err, errlen, "%sroute key: empty spec", "");
	if (arg)
		arg++;
#define IS(name) (name_len == sizeof(name) - 1 && !memcmp(spec, name, name_len))
	if (IS("line")) {
		k->kind = ROUTE_LINE;
		return arg ? parse_line_spec(k, arg, err, errlen) : 0;
	}
	if (IS("http-host") && !arg) {
		k->kind = ROUTE_HTTP_HOST;
		k->fold_case = 1;
		return 0;
	}
	if (IS("http-path") && !arg) {
		k->kind = ROUTE_HTTP_PATH;
		return 0;
	}
	if (IS("http-header") && arg) {
		k->kind = ROUTE_HTTP_HEADER;
		k->header_len = strlen(arg);
		if (!k->header_len || k->header_len > FDP__ROUTE_HEADER_MAX)
			return fdp__route_error(err, errlen,
			            "route key \"%s\": the header name must be 1..64 "
			            "characters",
			            spec);
		for (size_t i = 0; i < k->header_len; i++)
			if (!is_tchar((unsigned char)arg[i]))
				return fdp__route_error(err, errlen,
				            "route key \"%s\": not a valid header name", spec);
		memcpy(k->header, arg, k->header_len + 1);
		if (k->header_len == 4 && !strncasecmp(arg, "host", 4)) {
			k->kind = ROUTE_HTTP_HOST; /* one Host, and absolute-form targets, rule */
			k->fold_case = 1;
		}
		return 0;
	}
	if (IS("prefix") && arg) {
		k->kind = ROUTE_PREFIX;
		if (parse_uint(arg, arg + strlen(arg), 1, 1u << 20, &n) < 0)
			return fdp__route_error(err, errlen, "route key \"%s\": N must be 1..1048576", spec);
		k->n = n;
		return 0;
	}
	if (IS("length-prefixed")) {
		k->kind = ROUTE_LENGTH_PREFIXED;
		k->n = 2;
		if (arg && (parse_uint(arg, arg + strlen(arg), 1, 4, &n) < 0 || n == 3))
			return fdp__route_error(err, errlen,
			            "route key \"%s\": the length's width must be 1, 2 or 4 bytes",
			            spec);
		if (arg)
			k->n = n;
		return 0;
	}
#undef IS
	return fdp__route_error(err, errlen,
	            "route key \"%s\": unknown (line[:N[:C]], http-host, http-path, "
	            "http-header:NAME, prefix:N, length-prefixed[:1|2|4])",
	            spec);
}

void fdp__route_key_callback(struct fdp__route_key *k, fdp_route_key_fn fn, void *arg)
{
	memset(k, 0, sizeof(*k));
	k->kind = ROUTE_CALLBACK;
	k->delim = -1;
	k->fn = fn;
	k->arg = arg;
}

void fdp__route_fold(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (unsigned char)(p[i] + ('a' - 'A'));
}

/* ---- line ---------------------------------------------------------------------------------- */

static int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/*
 * The first line ends at LF (a CR before it is not part of the line). Tokens are runs of
 * non-blanks, or with a delimiter the fields between delimiters (empty ones count, as cut -d
 * counts them). A token is known complete once its terminator has been seen.
 */
static enum fdp__route_verdict extract_line(const struct fdp__route_key *k,
                                            const unsigned char *buf, size_t len,
                                            struct fdp__route_span *key)
{
	const unsigned char *lf = memchr(buf, '\n', len);
	size_t end = lf ? (size_t)(lf - buf) : len, i = 0, start;

	if (lf && end > 0 && buf[end - 1] == '\r')
		end--;
	if (k->token == 0) {
		if (!lf)
			return ROUTE_MORE;
		key->off = 0;
		key->len = end;
		return end ? ROUTE_FOUND : ROUTE_REJECT;
	}
	for (unsigned t = 1;; t++) {
		if (k->delim < 0)
			while (i < end && is_blank(buf[i]))
				i++;
		start = i;
		if (k->delim < 0)
			while (i < end && !is_blank(buf[i]))
				i++;
		else
			while (i < end && buf[i] != (unsigned char)k->delim)
				i++;
		if (i == end && !lf)
			return ROUTE_MORE; /* the token (or the line) may go on */
		if (t == k->token) {
			key->off = start;
			key->len = i - start;
			return key->len ? ROUTE_FOUND : ROUTE_REJECT;
		}
		if (i == end)
			return ROUTE_REJECT; /* the line has fewer tokens */
		if (k->delim >= 0)
			i++;
	}
}

/* ---- HTTP/1.x request head ----------------------------------------------------------------- */

/* One line of the head: [start, end) without its CR LF; next is where the next one starts. */
struct http_line {
	size_t start, end, next;
};

static enum fdp__route_verdict next_line(const unsigned char *buf, size_t len, size_t at,
                                         struct http_line *l)
{
	const unsigned char *lf = memchr(buf + at, '\n', len - at);
	size_t end = lf ? (size_t)(lf - buf) : len;

	/* Control characters fail the line at once, before its end arrives (binary garbage). */
	for (size_t i = at; i < end; i++)
		if (((buf[i] < 0x20 && buf[i] != '\t') || buf[i] == 0x7f) &&
		    !(buf[i] == '\r' && i + 1 == end))
			return ROUTE_REJECT;
	if (!lf)
		return ROUTE_MORE;
	l->start = at;
	l->end = (size_t)(lf - buf);
	l->next = l->end + 1;
	if (l->end > at && buf[l->end - 1] == '\r')
		l->end--;
	return ROUTE_FOUND;
}

/* The request line: method SP request-target SP HTTP/1.D. Sets the target's span. */
static enum fdp__route_verdict request_line(const unsigned char *buf, size_t len,
                                            struct http_line *l, struct fdp__route_span *target)
{
	enum fdp__route_verdict v;
	size_t at = 0, i, sp1, sp2;

	/* RFC 9112 2.2: a server should ignore at least one empty line before the request. */
	for (int skipped = 0;; skipped++) {
		v = next_line(buf, len, at, l);
		if (v == ROUTE_MORE) {
			/* Not yet a whole line: it must at least start like a method. */
			for (i = at; i < len && is_tchar(buf[i]); i++)
				;
			return i == len || buf[i] == ' ' || (i == at && buf[i] == '\r')
			               ? ROUTE_MORE
			               : ROUTE_REJECT;
		}
		if (v != ROUTE_FOUND)
			return v;
		if (l->end > l->start)
			break;
		if (skipped == 4)
			return ROUTE_REJECT;
		at = l->next;
	}
	for (i = l->start; i < l->end && is_tchar(buf[i]); i++)
		;
	if (i == l->start || i == l->end || buf[i] != ' ')
		return ROUTE_REJECT;
	sp1 = i;
	for (i = sp1 + 1; i < l->end && buf[i] > ' ' && buf[i] != 0x7f; i++)
		;
	if (i == sp1 + 1 || i == l->end || buf[i] != ' ')
		return ROUTE_REJECT;
	sp2 = i;
	if (l->end - sp2 - 1 != 8 || memcmp(buf + sp2 + 1, "HTTP/1.", 7) || buf[sp2 + 8] < '0' ||
	    buf[sp2 + 8] > '9')
		return ROUTE_REJECT;
	target->off = sp1 + 1;
	target->len = sp2 - sp1 - 1;
	return ROUTE_FOUND;
}

/* The authority of an absolute-form target (scheme "://" authority [path]), if it is one. */
static int target_authority(const unsigned char *buf, const struct fdp__route_span *t,
                            struct fdp__route_span *auth)
{
	const unsigned char *p = buf + t->off, *sep;
	size_t n = t->len, i;

	sep = n > 3 ? memmem(p, n, "://", 3) : NULL;
	if (!sep || sep == p || p[0] == '/')
		return 0;
	i = (size_t)(sep - p) + 3;
	auth->off = t->off + i;
	while (i < n && p[i] != '/' && p[i] != '?' && p[i] != '#')
		i++;
	auth->len = t->off + i - auth->off;
	return 1;
}

/* The path of a target: origin-form up to '?' or '#'; absolute-form after its authority. */
static enum fdp__route_verdict
target_path(const unsigned char *buf, const struct fdp__route_span *t, struct fdp__route_span *key)
{
	struct fdp__route_span a;
	size_t i = t->off, end = t->off + t->len;

	if (t->len == 1 && buf[i] == '*') {
		*key = *t; /* OPTIONS * */
		return ROUTE_FOUND;
	}
	if (target_authority(buf, t, &a))
		i = a.off + a.len;
	else if (buf[i] != '/')
		return ROUTE_REJECT; /* authority-form (CONNECT) has no path */
	key->off = i;
	while (i < end && buf[i] != '?' && buf[i] != '#')
		i++;
	key->len = i - key->off;
	/* "http://host" means "/" but has no byte to point at: such a client is rejected. */
	return key->len ? ROUTE_FOUND : ROUTE_REJECT;
}

/* A host without its port: "example.com:80" -> "example.com", "[::1]:80" -> "[::1]". */
static enum fdp__route_verdict host_key(const unsigned char *buf, struct fdp__route_span *h)
{
	const unsigned char *p = buf + h->off;
	size_t n = h->len;

	if (n && p[0] == '[') {
		const unsigned char *close = memchr(p, ']', n);

		if (!close)
			return ROUTE_REJECT;
		n = (size_t)(close - p) + 1;
	} else {
		const unsigned char *colon = memchr(p, ':', n);

		if (colon)
			n = (size_t)(colon - p);
	}
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] == '/' || p[i] == '@')
			return ROUTE_REJECT;
	h->len = n;
	return n ? ROUTE_FOUND : ROUTE_REJECT;
}

/*
 * Walk the header lines for `name`. Sets *value to the first one's value (OWS trimmed) and
 * *count to how many there are; returns ROUTE_FOUND once the head is complete, or as soon as
 * the first one is known complete when stop_at_first is set.
 */
static enum fdp__route_verdict find_header(const unsigned char *buf, size_t len, size_t at,
                                           const char *name, size_t name_len, int stop_at_first,
                                           struct fdp__route_span *value, unsigned *count)
{
	struct http_line l;
	enum fdp__route_verdict v;
	int in_wanted = 0, first = 1;

	*count = 0;
	for (;; at = l.next, first = 0) {
		v = next_line(buf, len, at, &l);
		if (v != ROUTE_FOUND)
			return v;
		if (l.end == l.start)
			return ROUTE_FOUND; /* the empty line that ends the head */
		if (is_blank(buf[l.start])) {
			/* obs-fold: a continuation of the previous header line */
			if (first || in_wanted)
				return ROUTE_REJECT;
			continue;
		}
		size_t i = l.start, vs, ve;

		while (i < l.end && is_tchar(buf[i]))
			i++;
		if (i == l.start || i == l.end || buf[i] != ':')
			return ROUTE_REJECT; /* no name, no colon, or space before the colon */
		in_wanted = i - l.start == name_len &&
		            !strncasecmp((const char *)buf + l.start, name, name_len);
		if (!in_wanted)
			continue;
		for (vs = i + 1; vs < l.end && is_blank(buf[vs]); vs++)
			;
		for (ve = l.end; ve > vs && is_blank(buf[ve - 1]); ve--)
			;
		if (++*count > 1)
			continue;
		value->off = vs;
		value->len = ve - vs;
		if (stop_at_first) {
			/* Complete unless the next line folds onto it: that needs the next byte. */
			if (l.next >= len)
				return ROUTE_MORE;
			if (is_blank(buf[l.next]))
				return ROUTE_REJECT;
			return ROUTE_FOUND;
		}
	}
}

static enum fdp__route_verdict extract_http(const struct fdp__route_key *k,
                                            const unsigned char *buf, size_t len,
                                            struct fdp__route_span *key)
{
	struct fdp__route_span target, auth;
	struct http_line l;
	enum fdp__route_verdict v;
	unsigned count;

	v = request_line(buf, len, &l, &target);
	if (v != ROUTE_FOUND)
		return v;
	if (k->kind == ROUTE_HTTP_PATH)
		return target_path(buf, &target, key);
	if (k->kind == ROUTE_HTTP_HEADER) {
		v = find_header(buf, len, l.next, k->header, k->header_len, 1, key, &count);
		if (v == ROUTE_FOUND && !count)
			return ROUTE_REJECT; /* the head ended without it */
		return v == ROUTE_FOUND && !key->len ? ROUTE_REJECT : v;
	}
	/*
	 * Host (RFC 9112 3.2): more than one Host header is malformed; an absolute-form target's
	 * authority overrides the header (and stands in for it in HTTP/1.0).
	 */
	v = find_header(buf, len, l.next, "host", 4, 0, key, &count);
	if (v != ROUTE_FOUND)
		return v;
	if (count > 1)
		return ROUTE_REJECT;
	if (target_authority(buf, &target, &auth)) {
		const unsigned char *at = memchr(buf + auth.off, '@', auth.len);

		if (at) { /* userinfo@host */
			auth.len -= (size_t)(at - (buf + auth.off)) + 1;
			auth.off = (size_t)(at - buf) + 1;
		}
		*key = auth;
	} else if (!count) {
		return ROUTE_REJECT;
	}
	return host_key(buf, key);
}

/* ---- prefix, length-prefixed, callback ----------------------------------------------------- */

static enum fdp__route_verdict extract_length_prefixed(const struct fdp__route_key *k,
                                                       const unsigned char *buf, size_t len,
                                                       size_t max, struct fdp__route_span *key)
{
	uint64_t n = 0;

	if (len < k->n)
		return k->n > max ? ROUTE_TOO_BIG : ROUTE_MORE;
	for (size_t i = 0; i < k->n; i++)
		n = n << 8 | buf[i];
	if (n == 0)
		return ROUTE_REJECT;
	if (n > max - k->n || k->n > max)
		return ROUTE_TOO_BIG;
	if (len < k->n + n)
		return ROUTE_MORE;
	key->off = k->n;
	key->len = (size_t)n;
	return ROUTE_FOUND;
}

static enum fdp__route_verdict extract_callback(const struct fdp__route_key *k,
                                                const unsigned char *buf, size_t len,
                                                struct fdp__route_span *key)
{
	size_t off = 0, n = 0;
	int r = k->fn(k->arg, buf, len, &off, &n);

	if (r == FDP_ROUTE_KEY_MORE)
		return ROUTE_MORE;
	if (r != FDP_ROUTE_KEY_FOUND || n == 0 || off > len || n > len - off)
		return ROUTE_REJECT; /* a key outside the bytes it was shown is a broken extractor
		                      */
	key->off = off;
	key->len = n;
	return ROUTE_FOUND;
}

enum fdp__route_verdict fdp__route_extract(const struct fdp__route_key *k, const unsigned char *buf,
                                           size_t len, size_t max, struct fdp__route_span *key)
{
	enum fdp__route_verdict v;

	if (len > max)
		len = max;
	switch (k->kind) {
	case ROUTE_LINE:
		v = extract_line(k, buf, len, key);
		break;
	case ROUTE_HTTP_HOST:
	case ROUTE_HTTP_PATH:
	case ROUTE_HTTP_HEADER:
		v = extract_http(k, buf, len, key);
		break;
	case ROUTE_PREFIX:
		if (k->n > max)
			return ROUTE_TOO_BIG;
		key->off = 0;
		key->len = k->n;
		v = len >= k->n ? ROUTE_FOUND : ROUTE_MORE;
		break;
	case ROUTE_LENGTH_PREFIXED:
		return extract_length_prefixed(k, buf, len, max, key);
	case ROUTE_CALLBACK:
		v = extract_callback(k, buf, len, key);
		break;
	default:
		return ROUTE_REJECT;
	}
	/* Waiting for more when the limit is reached would wait for bytes never looked at. */
	return v == ROUTE_MORE && len >= max ? ROUTE_TOO_BIG : v;
}
