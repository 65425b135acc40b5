/* Key extractors: what each finds, waits for and refuses, fed whole and byte by byte. */
#include "harness.h"
#include "route.h"

#include <errno.h>

/* Run spec over input (its whole length); on ROUTE_FOUND copy the key into out. */
static enum fdp__route_verdict run_max(const char *spec, const char *input, size_t max, char *out)
{
	struct fdp__route_key k;
	struct fdp__route_span key = {0, 0};
	char err[256];
	enum fdp__route_verdict v;

	CHECK_OK(fdp__route_key_parse(&k, spec, err, sizeof(err)));
	v = fdp__route_extract(&k, (const unsigned char *)input, strlen(input), max, &key);
	out[0] = '\0';
	if (v == ROUTE_FOUND) {
		CHECK(key.len > 0 && key.off + key.len <= strlen(input));
		memcpy(out, input + key.off, key.len);
		out[key.len] = '\0';
	}
	return v;
}

static enum fdp__route_verdict run(const char *spec, const char *input, char *out)
{
	return run_max(spec, input, 8192, out);
}

#define CHECK_KEY(spec, input, want)                                                               \
	do {                                                                                       \
		char got_[8192];                                                                   \
		CHECK_INT(run(spec, input, got_), ==, ROUTE_FOUND);                                \
		if (strcmp(got_, want))                                                            \
			fdp_test_fail(__FILE__, __LINE__, "key \"%s\", want \"%s\"", got_, want);  \
	} while (0)

#define CHECK_VERDICT(spec, input, want)                                                           \
	do {                                                                                       \
		char got_[8192];                                                                   \
		CHECK_INT(run(spec, input, got_), ==, want);                                       \
	} while (0)

/*
 * Feed input one byte more at a time: before the key is found the answer is "more"; once it
 * is found (or refused) every longer input gives the same answer and the same key.
 */
static void check_incremental(const char *spec, const char *input)
{
	struct fdp__route_key k;
	struct fdp__route_span key, first = {0, 0};
	enum fdp__route_verdict v, settled = ROUTE_MORE;
	char err[256];

	CHECK_OK(fdp__route_key_parse(&k, spec, err, sizeof(err)));
	for (size_t n = 0; n <= strlen(input); n++) {
		v = fdp__route_extract(&k, (const unsigned char *)input, n, 8192, &key);
		if (settled == ROUTE_MORE) {
			settled = v;
			first = key;
			continue;
		}
		CHECK_INT(v, ==, settled);
		if (v == ROUTE_FOUND)
			CHECK(key.off == first.off && key.len == first.len);
	}
	CHECK_INT(settled, ==, ROUTE_FOUND);
}

TEST(spec_parser_accepts_every_documented_form)
{
	static const char *ok[] = {"line",
	                           "line:2",
	                           "line:1::",
	                           "line:3:,",
	                           "http-host",
	                           "http-path",
	                           "http-header:X-User",
	                           "prefix:8",
	                           "length-prefixed",
	                           "length-prefixed:1",
	                           "length-prefixed:4"};
	struct fdp__route_key k;
	char err[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CHECK_OK(fdp__route_key_parse(&k, ok[i], err, sizeof(err)));
}

TEST(spec_parser_refuses_bad_specs_with_a_message_naming_them)
{
	static const char *bad[] = {"",
	                            "lines",
	                            "line:0",
	                            "line:x",
	                            "line:2:ab",
	                            "http-host:x",
	                            "http-header:",
	                            "http-header:a b",
	                            "prefix",
	                            "prefix:0",
	                            "prefix:-1",
	                            "length-prefixed:3",
	                            "length-prefixed:8",
	                            "http-path:1",
	                            "line:99999999999999999999"};
	struct fdp__route_key k;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(fdp__route_key_parse(&k, bad[i], err, sizeof(err)), ==, -EINVAL);
		CHECK(err[0] != '\0');
		if (bad[i][0])
			CHECK(strstr(err, bad[i]) != NULL);
	}
}

TEST(line_takes_the_whole_first_line_without_its_crlf)
{
	CHECK_KEY("line", "hello world\r\nrest", "hello world");
	CHECK_KEY("line", "hello\nrest", "hello");
	CHECK_VERDICT("line", "hello", ROUTE_MORE);
	CHECK_VERDICT("line", "\r\n", ROUTE_REJECT);
}

TEST(line_token_n_skips_runs_of_blanks)
{
	CHECK_KEY("line:2", "SET  user42\tvalue\n", "user42");
	CHECK_KEY("line:1", "  GET key\n", "GET");
	CHECK_KEY("line:3", "SET k v\r\n", "v");
	CHECK_KEY("line:2", "GET k\r\n", "k");
}

TEST(line_token_waits_until_its_end_is_seen)
{
	CHECK_VERDICT("line:2", "SET user4", ROUTE_MORE);
	CHECK_VERDICT("line:2", "SET ", ROUTE_MORE);
	CHECK_KEY("line:2", "SET user4 ", "user4");
}

TEST(line_token_missing_from_a_complete_line_is_rejected)
{
	CHECK_VERDICT("line:2", "GET\n", ROUTE_REJECT);
	CHECK_VERDICT("line:2", "GET   \r\n", ROUTE_REJECT);
	CHECK_VERDICT("line:3", "a b\n", ROUTE_REJECT);
}

TEST(line_token_with_a_delimiter_counts_fields_like_cut)
{
	CHECK_KEY("line:1::", "room7:hello\n", "room7");
	CHECK_KEY("line:3:,", "a,b,c,d\n", "c");
	CHECK_VERDICT("line:2:,", "a,,c\n", ROUTE_REJECT); /* an empty field is no key */
	CHECK_VERDICT("line:1::", "room7", ROUTE_MORE);
	CHECK_KEY("line:2:,", "a,last\r\n", "last");
}

TEST(line_key_is_found_the_same_fed_byte_by_byte)
{
	check_incremental("line", "one line\r\nmore");
	check_incremental("line:2", "SET key value\n");
	check_incremental("line:2::", "a:b:c\n");
}

TEST(http_path_is_the_target_without_query_or_fragment)
{
	CHECK_KEY("http-path", "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", "/a/b");
	CHECK_KEY("http-path", "GET /a#frag HTTP/1.0\r\n", "/a");
	CHECK_KEY("http-path", "POST http://example.com:8/p/q?z HTTP/1.1\r\n", "/p/q");
	CHECK_KEY("http-path", "OPTIONS * HTTP/1.1\r\n", "*");
}

TEST(http_path_is_found_at_the_end_of_the_request_line)
{
	CHECK_VERDICT("http-path", "GET /a/b HTTP/1.", ROUTE_MORE);
	CHECK_KEY("http-path", "GET /a/b HTTP/1.1\n", "/a/b");
	check_incremental("http-path", "GET /x/y HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST(http_request_line_must_be_well_formed)
{
	CHECK_VERDICT("http-path", "GET /a HTTP/2.0\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-path", "GET  /a HTTP/1.1\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-path", "GET /a\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-path", "G(T /a HTTP/1.1\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-path", "GET /a HTTP/1.1 \r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-path", "GET /a\rb HTTP/1.1\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-path", "CONNECT host:443 HTTP/1.1\r\n", ROUTE_REJECT);
}

TEST(http_garbage_is_rejected_before_a_line_ends)
{
	CHECK_VERDICT("http-path", "\x16\x03\x01", ROUTE_REJECT); /* a TLS ClientHello */
	CHECK_VERDICT("http-path", "GE(", ROUTE_REJECT);
	CHECK_VERDICT("http-path", "GET /a\x01", ROUTE_REJECT);
	CHECK_VERDICT("http-path", "GET /a HTTP/1.1\r", ROUTE_MORE);
	CHECK_VERDICT("http-path", "GET /a HTTP/1.1\rx", ROUTE_REJECT);
}

TEST(http_leading_empty_lines_are_skipped)
{
	CHECK_KEY("http-path", "\r\n\r\nGET /a HTTP/1.1\r\n", "/a");
	CHECK_VERDICT("http-path", "\n\n\n\n\n\nGET /a HTTP/1.1\r\n", ROUTE_REJECT);
}

TEST(http_host_is_the_host_header_without_its_port)
{
	CHECK_KEY("http-host", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "example.com");
	CHECK_KEY("http-host", "GET / HTTP/1.1\r\nhOsT:Example.COM:8080  \r\n\r\n", "Example.COM");
	CHECK_KEY("http-host", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "[::1]");
	CHECK_KEY("http-host", "GET / HTTP/1.1\nA: b\nHost: \t x.y \t\nC: d\n\n", "x.y");
}

TEST(http_host_of_an_absolute_form_target_overrides_the_header)
{
	CHECK_KEY("http-host", "GET http://u@one.test:81/p HTTP/1.1\r\nHost: two.test\r\n\r\n",
	          "one.test");
	CHECK_KEY("http-host", "GET http://one.test HTTP/1.0\r\n\r\n", "one.test");
}

TEST(http_host_is_case_insensitive_and_folded_by_the_caller)
{
	struct fdp__route_key k;
	unsigned char key[] = "Example.COM";
	char err[64];

	CHECK_OK(fdp__route_key_parse(&k, "http-host", err, sizeof(err)));
	CHECK(k.fold_case);
	fdp__route_fold(key, sizeof(key) - 1);
	CHECK(!strcmp((char *)key, "example.com"));
	CHECK_OK(fdp__route_key_parse(&k, "http-header:HOST", err, sizeof(err)));
	CHECK_INT(k.kind, ==, ROUTE_HTTP_HOST);
	CHECK_OK(fdp__route_key_parse(&k, "http-path", err, sizeof(err)));
	CHECK(!k.fold_case);
}

TEST(http_host_waits_for_the_whole_head)
{
	/* A second Host line could still come, and would make the request malformed. */
	CHECK_VERDICT("http-host", "GET / HTTP/1.1\r\nHost: a\r\n", ROUTE_MORE);
	check_incremental("http-host", "GET / HTTP/1.1\r\nHost: a.b\r\nX: y\r\n\r\nbody");
}

TEST(http_host_missing_repeated_or_malformed_is_rejected)
{
	CHECK_VERDICT("http-host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-host", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ROUTE_REJECT);
}

TEST(http_header_value_is_trimmed_and_its_name_case_insensitive)
{
	CHECK_KEY("http-header:X-User", "GET / HTTP/1.1\r\nx-user:   bob smith \t\r\n\r\n",
	          "bob smith");
	CHECK_KEY("http-header:x-user", "GET / HTTP/1.1\r\nX-USER: a\r\nX-User: b\r\n\r\n", "a");
}

TEST(http_header_is_found_once_its_line_cannot_continue)
{
	CHECK_VERDICT("http-header:X-User", "GET / HTTP/1.1\r\nX-User: bob\r\n", ROUTE_MORE);
	CHECK_KEY("http-header:X-User", "GET / HTTP/1.1\r\nX-User: bob\r\nA", "bob");
	check_incremental("http-header:X-User",
	                  "GET / HTTP/1.1\r\nA: b\r\nX-User: c\r\nD: e\r\n\r\n");
}

TEST(http_header_absent_from_a_complete_head_is_rejected)
{
	CHECK_VERDICT("http-header:X-User", "GET / HTTP/1.1\r\nA: b\r\n\r\nX-User: late\r\n",
	              ROUTE_REJECT);
	CHECK_VERDICT("http-header:X-User", "GET / HTTP/1.1\r\nX-User:   \r\n\r\n", ROUTE_REJECT);
}

TEST(http_obs_fold_is_skipped_on_other_headers_and_rejected_on_the_key)
{
	CHECK_KEY("http-header:X-User", "GET / HTTP/1.1\r\nA: b\r\n  more\r\nX-User: c\r\n\r\n",
	          "c");
	CHECK_VERDICT("http-header:X-User", "GET / HTTP/1.1\r\nX-User: c\r\n  more\r\n\r\n",
	              ROUTE_REJECT);
	CHECK_VERDICT("http-header:X-User", "GET / HTTP/1.1\r\n  lead\r\nX-User: c\r\n\r\n",
	              ROUTE_REJECT);
}

TEST(http_malformed_header_lines_are_rejected)
{
	CHECK_VERDICT("http-header:A", "GET / HTTP/1.1\r\nA : b\r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-header:A", "GET / HTTP/1.1\r\nno colon\r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-header:A", "GET / HTTP/1.1\r\n: b\r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-header:A", "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", ROUTE_REJECT);
	CHECK_VERDICT("http-header:A", "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", ROUTE_REJECT);
}

TEST(prefix_takes_exactly_n_bytes)
{
	CHECK_KEY("prefix:4", "abcdefgh", "abcd");
	CHECK_VERDICT("prefix:4", "abc", ROUTE_MORE);
	check_incremental("prefix:3", "xyzzy");
}

static enum fdp__route_verdict run_bytes(const char *spec, const unsigned char *b, size_t n,
                                         size_t max, struct fdp__route_span *key)
{
	struct fdp__route_key k;
	char err[64];

	CHECK_OK(fdp__route_key_parse(&k, spec, err, sizeof(err)));
	return fdp__route_extract(&k, b, n, max, key);
}

TEST(length_prefixed_reads_a_big_endian_length_of_each_width)
{
	static const unsigned char one[] = {3, 'k', 'e', 'y', 'x'};
	static const unsigned char two[] = {0, 3, 'k', 'e', 'y'};
	static const unsigned char four[] = {0, 0, 0, 2, 'a', 'b'};
	struct fdp__route_span key;

	CHECK_INT(run_bytes("length-prefixed:1", one, 5, 100, &key), ==, ROUTE_FOUND);
	CHECK(key.off == 1 && key.len == 3);
	CHECK_INT(run_bytes("length-prefixed", two, 5, 100, &key), ==, ROUTE_FOUND);
	CHECK(key.off == 2 && key.len == 3);
	CHECK_INT(run_bytes("length-prefixed:4", four, 6, 100, &key), ==, ROUTE_FOUND);
	CHECK(key.off == 4 && key.len == 2);
	CHECK_INT(run_bytes("length-prefixed:4", four, 5, 100, &key), ==, ROUTE_MORE);
	CHECK_INT(run_bytes("length-prefixed:4", four, 3, 100, &key), ==, ROUTE_MORE);
}

TEST(length_prefixed_zero_length_is_rejected)
{
	static const unsigned char zero[] = {0, 0, 'x'};
	struct fdp__route_span key;

	CHECK_INT(run_bytes("length-prefixed:2", zero, 3, 100, &key), ==, ROUTE_REJECT);
}

TEST(length_prefixed_length_past_the_limit_is_too_big_at_once)
{
	static const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff};
	static const unsigned char just[] = {0, 98};
	struct fdp__route_span key;

	CHECK_INT(run_bytes("length-prefixed:4", huge, 4, 8192, &key), ==, ROUTE_TOO_BIG);
	CHECK_INT(run_bytes("length-prefixed:2", just, 2, 100, &key), ==, ROUTE_MORE);
	CHECK_INT(run_bytes("length-prefixed:2", just, 2, 99, &key), ==, ROUTE_TOO_BIG);
}

TEST(a_key_not_complete_within_the_limit_is_too_big)
{
	char out[64];

	CHECK_INT(run_max("line", "0123456789", 10, out), ==, ROUTE_TOO_BIG);
	CHECK_INT(run_max("line", "012345678", 10, out), ==, ROUTE_MORE);
	/* Bytes past the limit are not looked at, even when they would complete the key. */
	CHECK_INT(run_max("line", "0123456789\n", 10, out), ==, ROUTE_TOO_BIG);
	CHECK_INT(run_max("line", "012345678\n", 10, out), ==, ROUTE_FOUND);
	CHECK_INT(run_max("http-host", "GET / HTTP/1.1\r\nHost: a\r\n", 20, out), ==,
	          ROUTE_TOO_BIG);
	CHECK_INT(run_max("prefix:11", "0123456789abc", 10, out), ==, ROUTE_TOO_BIG);
}

static int cb_calls;

/* A toy extractor: the key is what follows "k=" up to ';'. */
static int key_after_k(void *arg, const unsigned char *buf, size_t len, size_t *off, size_t *n)
{
	const unsigned char *semi;

	cb_calls++;
	CHECK(arg == &cb_calls);
	if (len < 2)
		return FDP_ROUTE_KEY_MORE;
	if (buf[0] != 'k' || buf[1] != '=')
		return FDP_ROUTE_KEY_REJECT;
	semi = memchr(buf, ';', len);
	if (!semi)
		return FDP_ROUTE_KEY_MORE;
	*off = 2;
	*n = (size_t)(semi - buf) - 2;
	return FDP_ROUTE_KEY_FOUND;
}

TEST(callback_extractor_is_called_with_what_has_arrived)
{
	struct fdp__route_key k;
	struct fdp__route_span key;
	const unsigned char *in = (const unsigned char *)"k=abc;rest";

	fdp__route_key_callback(&k, key_after_k, &cb_calls);
	CHECK_INT(fdp__route_extract(&k, in, 1, 100, &key), ==, ROUTE_MORE);
	CHECK_INT(fdp__route_extract(&k, in, 5, 100, &key), ==, ROUTE_MORE);
	CHECK_INT(fdp__route_extract(&k, in, 10, 100, &key), ==, ROUTE_FOUND);
	CHECK(key.off == 2 && key.len == 3);
	CHECK_INT(fdp__route_extract(&k, (const unsigned char *)"zz", 2, 100, &key), ==,
	          ROUTE_REJECT);
	CHECK_INT(cb_calls, ==, 4);
}

static int bad_span(void *arg, const unsigned char *buf, size_t len, size_t *off, size_t *n)
{
	*off = len - 1;
	*n = 2; /* one byte past what it was shown */
	return FDP_ROUTE_KEY_FOUND;
}

static int empty_key(void *arg, const unsigned char *buf, size_t len, size_t *off, size_t *n)
{
	*off = 0;
	*n = 0;
	return FDP_ROUTE_KEY_FOUND;
}

TEST(callback_key_outside_the_buffer_or_empty_is_rejected)
{
	struct fdp__route_key k;
	struct fdp__route_span key;

	fdp__route_key_callback(&k, bad_span, NULL);
	CHECK_INT(fdp__route_extract(&k, (const unsigned char *)"abcd", 4, 100, &key), ==,
	          ROUTE_REJECT);
	fdp__route_key_callback(&k, empty_key, NULL);
	CHECK_INT(fdp__route_extract(&k, (const unsigned char *)"abcd", 4, 100, &key), ==,
	          ROUTE_REJECT);
}

TEST(config_check_refuses_a_config_without_its_size)
{
	struct fdp_route_config rc = {.key = "line:2"};
	char err[256];

	CHECK_INT(fdp_route_config_check(&rc, 4, err, sizeof(err)), ==, -EINVAL);
	CHECK(strstr(err, "0 bytes"));
}

TEST(config_check_names_what_is_wrong)
{
	struct fdp_route_config rc = {.size = sizeof(rc), .key = "line:2"};
	char err[256];

	CHECK_OK(fdp_route_config_check(&rc, 4, err, sizeof(err)));
	rc.key = "bogus";
	CHECK_INT(fdp_route_config_check(&rc, 4, err, sizeof(err)), ==, -EINVAL);
	CHECK(strstr(err, "bogus"));
	rc.key = NULL;
	CHECK_INT(fdp_route_config_check(&rc, 4, err, sizeof(err)), ==, -EINVAL);
	rc.key = "prefix:100";
	rc.max_bytes = 50;
	CHECK_INT(fdp_route_config_check(&rc, 4, err, sizeof(err)), ==, -EINVAL);
	rc.max_bytes = 0;
	rc.on_fail = FDP_ROUTE_FAIL_DEFAULT;
	rc.default_worker = 4;
	CHECK_INT(fdp_route_config_check(&rc, 4, err, sizeof(err)), ==, -EINVAL);
	CHECK(strstr(err, "default worker 4"));
	rc.default_worker = 3;
	CHECK_OK(fdp_route_config_check(&rc, 4, err, sizeof(err)));
	rc.map_path = "/nonexistent/route.map";
	CHECK_INT(fdp_route_config_check(&rc, 4, err, sizeof(err)), ==, -ENOENT);
	CHECK(strstr(err, "/nonexistent/route.map"));
}
