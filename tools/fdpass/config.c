/*
 * fdpass serve --config FILE: the long options of the command line, one per line, each handed
 * to the command line's own parser (serve.c) as a two-word argv, so a file accepts exactly
 * what the command line does and says so in the same words, prefixed with FILE:LINE. Also the
 * capture of what that parser prints, for those prefixes and for a reload's log, and the
 * --check of an --exec program.
 *
 * A line is `NAME VALUE`, `NAME=VALUE` or `NAME` (an option without a value), with an
 * optional leading `--`; the value is the rest of the line after the blanks that follow the
 * name, with trailing blanks removed, taken as it is: no quoting and no escapes (quotes in an
 * --exec command go to the shell, as on the command line). Blank lines and lines whose first
 * non-blank character is `#` are skipped; a `#` elsewhere is part of the value.
 */
#include "commands.h"
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (1 << 20) /* a configuration file is a few lines: refuse a huge one */

struct fdpass_config_file {
	char *text; /* the file, then each line's "--NAME" and VALUE: the options point there */
};

void fdpass_capture_begin(struct fdpass_capture *c)
{
	c->buf = NULL;
	c->len = 0;
	c->saved = stderr;
	c->mem = open_memstream(&c->buf, &c->len);
	if (c->mem)
		stderr = c->mem; /* glibc's stderr is a variable: only this thread prints */
}

char *fdpass_capture_end(struct fdpass_capture *c)
{
	if (!c->mem)
		return strdup("");
	stderr = c->saved;
	fclose(c->mem);
	return c->buf ? c->buf : strdup("");
}

/* The first line of what the parser printed, without its "fdpass serve: " prefix. */
static const char *first_line(char *text)
{
	static const char prefix[] = "fdpass serve: ";

	text[strcspn(text, "\n")] = '\0';
	if (strncmp(text, prefix, sizeof(prefix) - 1) == 0)
		text += sizeof(prefix) - 1;
	return *text ? text : "invalid line";
}

/* The whole file, NUL-terminated, in *out (malloc'd); 0 or a negative errno. */
static int read_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
	struct stat st;
	char *buf = NULL;
	size_t n = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (S_ISDIR(st.st_mode))
		err = -EISDIR;
	else if (st.st_size > CONFIG_MAX_BYTES)
		err = -EFBIG;
	else if (!(buf = malloc(CONFIG_MAX_BYTES + 1)))
		err = -ENOMEM;
	while (!err && n < CONFIG_MAX_BYTES) {
		ssize_t r = read(fd, buf + n, CONFIG_MAX_BYTES - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err = -errno;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!err && memchr(buf, '\0', n))
		err = -EINVAL; /* not text */
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/*
 * Split one line (NUL-terminated, in place) into "--NAME" and VALUE in out (room for both
 * with 3 bytes more); returns how many words (0: nothing on the line).
 */
static int split_line(char *line, char *out, char **words)
{
	char *name, *value, *end;
	size_t nlen;

	line += strspn(line, " \t");
	end = line + strlen(line);
	while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	if (!*line || *line == '#')
		return 0;
	if (strncmp(line, "--", 2) == 0)
		line += 2;
	name = line;
	nlen = strcspn(name, " \t");
	if (!nlen) { /* "--" alone would end getopt's options: make it an unknown one instead */
		name = "-";
		nlen = 1;
	}
	/* NAME=VALUE: the whole line is one argument, as --NAME=VALUE on the command line */
	if (memchr(name, '=', nlen))
		nlen = strlen(name);
	value = name + nlen;
	value += strspn(value, " \t");
	words[0] = out;
	memcpy(out, "--", 2);
	memcpy(out + 2, name, nlen);
	out[2 + nlen] = '\0';
	if (!*value)
		return 1;
	words[1] = out + 3 + nlen;
	memcpy(words[1], value, strlen(value) + 1);
	return 2;
}

int fdpass_config_read(const char *path, int (*apply)(void *arg, int argc, char **argv), void *arg,
                       struct fdpass_config_file **out)
{
	struct fdpass_config_file *f = calloc(1, sizeof(*f));
	char *text = NULL, *line, *words, *next;
	size_t len = 0;
	unsigned lineno = 0;
	int err = f ? read_file(path, &text, &len) : -ENOMEM;

	if (err < 0) {
		fprintf(stderr, "fdpass serve: --config %s: %s\n", path,
		        err == -EINVAL ? "not a text file" : strerror(-err));
		free(f);
		return FDPASS_EXIT_USAGE;
	}
	/* Each line's words are copied after the text: "--" and NULs add at most 4 bytes. */
	f->text = realloc(text, 2 * len + 4 * (len + 1) + 2);
	if (!f->text) {
		free(text);
		free(f);
		fprintf(stderr, "fdpass serve: --config %s: out of memory\n", path);
		return FDPASS_EXIT_FAILURE;
	}
	words = f->text + len + 1;
	for (line = f->text; line; line = next) {
		char *argv[4] = {"serve"}, *said;
		struct fdpass_capture cap;
		int argc, status;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		argc = split_line(line, words, argv + 1);
		if (!argc)
			continue;
		words = argv[argc] + strlen(argv[argc]) + 1;
		fdpass_capture_begin(&cap);
		status = apply(arg, argc + 1, argv);
		said = fdpass_capture_end(&cap);
		if (status >= 0) {
			fprintf(stderr, "fdpass serve: %s:%u: %s\n", path, lineno,
			        first_line(said));
			free(said);
			fdpass_config_free(f);
			return status ? status : FDPASS_EXIT_USAGE;
		}
		free(said);
	}
	*out = f;
	return -1;
}

void fdpass_config_free(struct fdpass_config_file *f)
{
	if (!f)
		return;
	free(f->text);
	free(f);
}

/* 0 if path is a regular file we may execute, else why not (an errno). */
static int executable(const char *path)
{
	struct stat st;

	if (access(path, X_OK) < 0)
		return errno;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? 0 : EACCES;
}

/*
 * The search the master makes before it forks a worker (as execvp(): a name with a slash as
 * it is, else each directory of $PATH, default /bin:/usr/bin, an empty entry the current
 * directory). 0 when found, else the errno its execve() would fail with.
 */
int fdpass_exec_find(const char *name)
{
	const char *path = getenv("PATH"), *dir;
	size_t nlen = strlen(name);
	int seen_eacces = 0;
	char *buf;

	if (strchr(name, '/'))
		return executable(name);
	if (!path)
		path = "/bin:/usr/bin";
	buf = malloc(strlen(path) + nlen + 3);
	if (!buf)
		return ENOMEM;
	for (dir = path;; dir++) {
		size_t dlen = strcspn(dir, ":");
		int why;

		memcpy(buf, dlen ? dir : ".", dlen ? dlen : 1);
		buf[dlen ? dlen : 1] = '/';
		memcpy(buf + (dlen ? dlen : 1) + 1, name, nlen + 1);
		why = executable(buf);
		if (!why) {
			free(buf);
			return 0;
		}
		seen_eacces |= why == EACCES;
		dir += dlen;
		if (!*dir)
			break;
	}
	free(buf);
	return seen_eacces ? EACCES : ENOENT;
}
