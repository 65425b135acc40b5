/* The --route-map table: syntax, errors with line numbers, exact before longest prefix. */
#include "harness.h"
#include "route.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int parse(struct fdp__route_map *m, const char *text, unsigned slots, char *err)
{
	return fdp__route_map_parse(m, text, strlen(text), slots, 0, err, 256);
}

static int lookup(const struct fdp__route_map *m, const char *key)
{
	return fdp__route_map_lookup(m, key, strlen(key));
}

TEST(map_pins_exact_keys)
{
	struct fdp__route_map m;
	char err[256];

	CHECK_OK(parse(&m, "alice 0\nbob 3\n", 4, err));
	CHECK_INT(lookup(&m, "alice"), ==, 0);
	CHECK_INT(lookup(&m, "bob"), ==, 3);
	CHECK_INT(lookup(&m, "bo"), ==, -1);
	CHECK_INT(lookup(&m, "bobby"), ==, -1);
	CHECK_INT(lookup(&m, "carol"), ==, -1);
	fdp__route_map_free(&m);
}

TEST(map_ignores_comments_blank_lines_and_odd_spacing)
{
	struct fdp__route_map m;
	char err[256];

	CHECK_OK(parse(&m, "# a comment\n\n   \t\n  alice\t\t 1  # pinned\r\n  # indented\nbob 2",
	               4, err));
	CHECK_INT(lookup(&m, "alice"), ==, 1);
	CHECK_INT(lookup(&m, "bob"), ==, 2);
	CHECK_INT(m.nexact, ==, 2);
	fdp__route_map_free(&m);
}

TEST(map_longest_prefix_wins)
{
	struct fdp__route_map m;
	char err[256];

	CHECK_OK(parse(&m, "user:* 1\nuser:vip:* 2\nu* 3\n", 4, err));
	CHECK_INT(lookup(&m, "user:42"), ==, 1);
	CHECK_INT(lookup(&m, "user:vip:7"), ==, 2);
	CHECK_INT(lookup(&m, "user:vip:"), ==, 2);
	CHECK_INT(lookup(&m, "us"), ==, 3);
	CHECK_INT(lookup(&m, "x"), ==, -1);
	fdp__route_map_free(&m);
}

TEST(map_exact_key_beats_any_prefix)
{
	struct fdp__route_map m;
	char err[256];

	CHECK_OK(parse(&m, "user:vip:* 2\nuser:vip:7 0\n* 3\n", 4, err));
	CHECK_INT(lookup(&m, "user:vip:7"), ==, 0);
	CHECK_INT(lookup(&m, "user:vip:8"), ==, 2);
	CHECK_INT(lookup(&m, "anything"), ==, 3); /* "*": the empty prefix catches the rest */
	fdp__route_map_free(&m);
}

TEST(map_lookup_finds_every_key_of_a_large_map)
{
	struct fdp__route_map m;
	char err[256], key[32];
	size_t cap = 2000 * 24, len = 0;
	char *text = malloc(cap);

	CHECK(text);
	for (unsigned i = 0; i < 2000; i++)
		len += (size_t)snprintf(text + len, cap - len, "k%u%s %u\n", i, i % 3 ? "" : "*",
		                        i % 7);
	CHECK_OK(fdp__route_map_parse(&m, text, len, 7, 0, err, sizeof(err)));
	for (unsigned i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "k%u%s", i, i % 3 ? "" : "-tail");
		CHECK_INT(lookup(&m, key), ==, i % 7);
	}
	free(text);
	fdp__route_map_free(&m);
}

/* Parsing text must fail with -EINVAL and a message starting "line N:" and containing what. */
static void check_error(const char *text, unsigned slots, unsigned line, const char *what)
{
	struct fdp__route_map m;
	char err[256], want[32];

	CHECK_INT(parse(&m, text, slots, err), ==, -EINVAL);
	snprintf(want, sizeof(want), "line %u:", line);
	if (strncmp(err, want, strlen(want)) || !strstr(err, what))
		fdp_test_fail(__FILE__, __LINE__, "error \"%s\", want \"%s ...%s...\"", err, want,
		              what);
	CHECK_INT(m.nexact + m.nprefix, ==, 0);
}

TEST(map_errors_name_the_line)
{
	check_error("a 0\nb\n", 4, 2, "no worker index");
	check_error("a 0\n\nb # 1\n", 4, 3, "no worker index");
	check_error("a x\n", 4, 1, "not a number");
	check_error("a -1\n", 4, 1, "not a number");
	check_error("a 99999999999999\n", 4, 1, "not a number");
	check_error("a 1 2\n", 4, 1, "unexpected \"2\"");
	check_error("# ok\na 4\n", 4, 2, "out of range (4 workers)");
	check_error("a 1\nb 2\na 3\n", 4, 3, "key \"a\" already given on line 1");
	check_error("p* 1\np* 2\n", 4, 2, "prefix \"p*\" already given on line 1");
}

TEST(map_with_a_nul_byte_is_refused)
{
	struct fdp__route_map m;
	char err[256];

	CHECK_INT(fdp__route_map_parse(&m, "a 1\nb\0c 1\n", 11, 4, 0, err, sizeof(err)), ==,
	          -EINVAL);
	CHECK(strstr(err, "line 2:") && strstr(err, "NUL"));
}

TEST(map_same_text_as_key_and_prefix_is_no_conflict)
{
	struct fdp__route_map m;
	char err[256];

	CHECK_OK(parse(&m, "ab 1\nab* 2\n", 4, err));
	CHECK_INT(lookup(&m, "ab"), ==, 1);
	CHECK_INT(lookup(&m, "abc"), ==, 2);
	fdp__route_map_free(&m);
}

TEST(map_with_fold_case_lowercases_its_keys)
{
	struct fdp__route_map m;
	char err[256];
	const char *text = "Example.COM 1\nAPI.* 2\n";

	CHECK_OK(fdp__route_map_parse(&m, text, strlen(text), 4, 1, err, sizeof(err)));
	CHECK_INT(lookup(&m, "example.com"), ==, 1);
	CHECK_INT(lookup(&m, "api.example.com"), ==, 2);
	fdp__route_map_free(&m);
}

TEST(map_load_reads_a_file_and_prefixes_errors_with_its_path)
{
	struct fdp__route_map m;
	char path[512], err[512];
	int fd;

	snprintf(path, sizeof(path), "%s/route.map", fdp_test_tmpdir());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "k 1\nbad\n", 8), ==, 8);
	close(fd);
	CHECK_INT(fdp__route_map_load(&m, path, 4, 0, err, sizeof(err)), ==, -EINVAL);
	CHECK(strstr(err, path) && strstr(err, "line 2:"));
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "k 1\n", 4), ==, 4);
	close(fd);
	CHECK_OK(fdp__route_map_load(&m, path, 4, 0, err, sizeof(err)));
	CHECK_INT(lookup(&m, "k"), ==, 1);
	fdp__route_map_free(&m);
	CHECK_INT(fdp__route_map_load(&m, fdp_test_tmpdir(), 4, 0, err, sizeof(err)), ==, -EINVAL);
	CHECK(strstr(err, "not a regular file"));
	CHECK_INT(fdp__route_map_load(&m, "/nonexistent/x", 4, 0, err, sizeof(err)), ==, -ENOENT);
}

TEST(map_of_only_comments_is_empty_and_names_nothing)
{
	struct fdp__route_map m;
	char err[256];

	CHECK_OK(parse(&m, "# c!ali\n\n", 4, err));
	CHECK_INT(m.nexact + m.nprefix, ==, 0);
	CHECK_INT(lookup(&m, "ali"), ==, -1);
	fdp__route_map_free(&m);
}

/* The first fenced block after "## The map" in docs/ROUTING.md, written to a file; its path. */
static const char *routing_doc_map(void)
{
	static char path[512];
	const char *doc = FDPASS_SOURCE_DIR "/docs/ROUTING.md", *start, *end;
	int fd = open(doc, O_RDONLY | O_CLOEXEC);
	char *text;

	CHECK(fd >= 0);
	text = fdp_test_read_all(fd, NULL);
	close(fd);
	start = strstr(text, "\n## The map");
	start = start ? strstr(start, "\n```\n") : NULL;
	end = start ? strstr(start + 5, "\n```\n") : NULL;
	if (!end)
		fdp_test_fail(__FILE__, __LINE__, "no map block after '## The map' in %s", doc);
	start += 5;
	snprintf(path, sizeof(path), "%s/doc.map", fdp_test_tmpdir());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, start, (size_t)(end + 1 - start)), ==, end + 1 - start);
	close(fd);
	free(text);
	return path;
}

TEST(routing_doc_map_example_loads_and_sends_each_key_where_its_comment_says)
{
	struct fdp_route_config rc = {.size = sizeof(rc), .key = "line"};
	struct fdp__route_map m;
	char err[512] = "";

	rc.map_path = routing_doc_map();
	/* What fdpass serve --route-map does with it at startup, for 4 workers. */
	if (fdp_route_config_check(&rc, 4, err, sizeof(err)) != 0)
		fdp_test_fail(__FILE__, __LINE__, "docs/ROUTING.md's map is refused: %s", err);
	CHECK_OK(fdp__route_map_load(&m, rc.map_path, 4, 0, err, sizeof(err)));
	CHECK_INT(lookup(&m, "alice"), ==, 3);
	CHECK_INT(lookup(&m, "user:bob"), ==, 1);
	CHECK_INT(lookup(&m, "user:vip:carol"), ==, 2);
	CHECK_INT(lookup(&m, "dave"), ==, 0);
	fdp__route_map_free(&m);
}
