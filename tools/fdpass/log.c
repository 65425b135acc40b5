/*
 * The log sink of `fdpass serve`: one line per message, text or JSON, each with an RFC 3339
 * time (milliseconds and the local zone's offset), on stderr or appended to --log-file, which
 * SIGUSR1 reopens (the master calls fdpass_log_reopen()).
 *
 * It must never stop the master, which serves every connection: a line that does not fit at
 * once (a stalled reader of stderr, a pipe nobody drains) is dropped and counted, and the next
 * line that fits is preceded by how many were lost. Non-blocking without O_NONBLOCK on
 * descriptor 2 itself: that flag belongs to the file description, shared with the shell and
 * whatever else writes there. A pipe or terminal is opened again through /proc (a description
 * of its own); a socket takes MSG_DONTWAIT; a file never blocks for long (a regular file has
 * no non-blocking mode: a disk that stalls stalls the write). A line on a pipe or terminal
 * stays within PIPE_BUF, so the pipe takes a whole line or nothing.
 *
 * Called on the master's thread only (the master never logs from a forked worker), so
 * localtime_r() is safe here, and the time zone is read once (tzset(), TZ respected).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A worker's line of FDP_OUTPUT_LINE_MAX bytes, each escaped as \u00XX at worst, and more. */
#define LINE_BUF (FDP_OUTPUT_LINE_MAX * 6 + 512)

static const char cut_mark[] = " [cut]";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/*
 * What the log's descriptor is: a regular file takes any line whole; a pipe or terminal only
 * up to PIPE_BUF, and a socket (journald's stream) only what its buffer has room for, so
 * lines there stay within PIPE_BUF too.
 */
static void sink_kind(struct fdpass_log *l, const struct stat *st)
{
	l->socket = S_ISSOCK(st->st_mode);
	l->max_line = S_ISREG(st->st_mode) ? LINE_BUF : PIPE_BUF;
}

static void open_stderr(struct fdpass_log *l)
{
	struct stat st;
	int fd;

	l->fd = 2;
	if (fstat(2, &st) < 0)
		return;
	sink_kind(l, &st);
	if (!S_ISFIFO(st.st_mode) && !(S_ISCHR(st.st_mode) && isatty(2)))
		return;
	fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0)
		l->fd = fd;
	else
		l->check = 1; /* only a race with another writer can still block it */
}

/* The file at path, appended to; a FIFO there is opened non-blocking (as our own). */
static int open_file(struct fdpass_log *l, const char *path)
{
	struct stat st;
	int fd =
	        open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0640);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	l->fd = fd;
	l->check = 0;
	sink_kind(l, &st);
	return 0;
}

int fdpass_log_open(struct fdpass_log *l, enum fdpass_log_format format, const char *path,
                    enum fdp_log_level level)
{
	*l = (struct fdpass_log){.format = format,
	                         .path = path,
	                         .fd = 2,
	                         .max_line = PIPE_BUF,
	                         .level = level,
	                         .pid = (int)getpid(),
	                         .stamp_sec = -1};
	tzset();
	if (!path) {
		open_stderr(l);
		return 0;
	}
	/* Ours: the option's string may go with the configuration it came from (a reload). */
	l->path = strdup(path);
	if (!l->path)
		return -ENOMEM;
	return open_file(l, path);
}

void fdpass_log_close(struct fdpass_log *l)
{
	if (l->fd > 2)
		close(l->fd);
	l->fd = 2;
	free((char *)l->path);
	l->path = NULL;
}

/* Write a whole line now or not at all (-1); never raises SIGPIPE. */
static int sink_write(struct fdpass_log *l, const char *line, size_t len)
{
	sigset_t pipe_sig, old;
	ssize_t n;

	if (l->socket)
		return send(l->fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
	if (l->check && poll(&(struct pollfd){.fd = l->fd, .events = POLLOUT}, 1, 0) != 1)
		return -1;
	/* A reader gone raises SIGPIPE: block it for the write and take it if it came. */
	sigemptyset(&pipe_sig);
	sigaddset(&pipe_sig, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_sig, &old);
	n = write(l->fd, line, len);
	if (n < 0 && errno == EPIPE && !sigismember(&old, SIGPIPE))
		sigtimedwait(&pipe_sig, NULL, &(struct timespec){0, 0});
	sigprocmask(SIG_SETMASK, &old, NULL);
	return n == (ssize_t)len ? 0 : -1;
}

/* "2026-12-01T23:05:01.123+01:00": local time, the zone's offset from UTC. */
static void log_stamp(struct fdpass_log *l, char *buf, size_t size)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != l->stamp_sec) {
		struct tm tm;
		long off;

		localtime_r(&ts.tv_sec, &tm);
		strftime(l->date, sizeof(l->date), "%Y-%m-%dT%H:%M:%S", &tm);
		off = tm.tm_gmtoff / 60; /* minutes: RFC 3339 has no seconds in an offset */
		snprintf(l->zone, sizeof(l->zone), "%c%02ld:%02ld", off < 0 ? '-' : '+',
		         (off < 0 ? -off : off) / 60 % 100, (off < 0 ? -off : off) % 60);
		l->stamp_sec = ts.tv_sec;
	}
	snprintf(buf, size, "%s.%03ld%s", l->date, ts.tv_nsec / 1000000, l->zone);
}

/*
 * The length of the valid UTF-8 sequence at s (n bytes, n >= 1, s[0] >= 0x80), or 0 when it
 * is not one: *skip is then how many bytes one U+FFFD replaces (the maximal subpart, as the
 * Unicode standard recommends and Python's decoder does). No overlong form, no surrogate,
 * nothing past U+10FFFF.
 */
static size_t utf8_sequence(const unsigned char *s, size_t n, size_t *skip)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;

	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else {
		*skip = 1;
		return 0;
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*skip = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

/*
 * One character of msg as the format writes it, into enc (at least 8 bytes); returns its
 * length and sets *used to the bytes of msg it took. JSON: a string's escapes, and U+FFFD for
 * what is not UTF-8. Text: control characters but the tab as \xHH, the rest as it is.
 */
static size_t encode_char(enum fdpass_log_format format, const unsigned char *s, size_t n,
                          char *enc, size_t *used)
{
	unsigned char c = s[0];
	size_t len;

	*used = 1;
	if (format == FDPASS_LOG_TEXT) {
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return (size_t)snprintf(enc, 8, "\\x%02x", c);
		enc[0] = (char)c;
		return 1;
	}
	if (c == '"' || c == '\\') {
		enc[0] = '\\';
		enc[1] = (char)c;
		return 2;
	}
	if (c < 0x20 || c == 0x7f) {
		static const char short_esc[] = "btn\0fr"; /* \b 8, \t 9, \n 10, \f 12, \r 13 */

		if (c >= 8 && c <= 13 && short_esc[c - 8]) {
			enc[0] = '\\';
			enc[1] = short_esc[c - 8];
			return 2;
		}
		return (size_t)snprintf(enc, 8, "\\u%04x", c);
	}
	if (c < 0x80) {
		enc[0] = (char)c;
		return 1;
	}
	len = utf8_sequence(s, n, used);
	if (!len) {
		memcpy(enc, "\\ufffd", 6);
		return 6;
	}
	memcpy(enc, s, len);
	*used = len;
	return len;
}

size_t fdpass_log_format_line(char *buf, size_t size, enum fdpass_log_format format,
                              const char *stamp, int pid, enum fdp_log_level level, const char *msg,
                              size_t len, const struct fdp_output_line *line)
{
	const unsigned char *s = (const unsigned char *)msg;
	char tail[128] = "\n";
	size_t n, tlen, room, i = 0;
	int h;

	if (format == FDPASS_LOG_JSON) {
		h = snprintf(buf, size, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp,
		             level_names[level]);
		if (line)
			snprintf(tail, sizeof(tail),
			         "\",\"worker\":%u,\"pid\":%d,\"stream\":\"%s\"}\n", line->worker,
			         (int)line->pid, line->fd == 1 ? "stdout" : "stderr");
		else
			snprintf(tail, sizeof(tail), "\"}\n");
	} else if (line) {
		h = snprintf(buf, size, "%s fdpass[%d] %s: worker %u pid %d: ", stamp, pid,
		             level_names[level], line->worker, (int)line->pid);
	} else {
		h = snprintf(buf, size, "%s fdpass[%d] %s: ", stamp, pid, level_names[level]);
	}
	tlen = strlen(tail);
	n = h < 0 ? 0 : (size_t)h;
	room = size - tlen - sizeof(cut_mark) + 1;
	while (i < len) {
		char enc[8];
		size_t used, k = encode_char(format, s + i, len - i, enc, &used);

		if (n + k > room)
			break;
		memcpy(buf + n, enc, k);
		n += k;
		i += used;
	}
	if (i < len) {
		memcpy(buf + n, cut_mark, sizeof(cut_mark) - 1);
		n += sizeof(cut_mark) - 1;
	}
	memcpy(buf + n, tail, tlen);
	return n + tlen;
}

/* Write one message (msg, len bytes; line: a worker's), after the note of lines dropped. */
static void log_write(struct fdpass_log *l, enum fdp_log_level level, const char *msg, size_t len,
                      const struct fdp_output_line *line)
{
	char buf[LINE_BUF], stamp[48];
	size_t n;

	log_stamp(l, stamp, sizeof(stamp));
	if (l->dropped) {
		char note[96];
		int k = snprintf(note, sizeof(note), "%lu log lines dropped: %s was full",
		                 l->dropped, l->path ? "the log file" : "stderr");

		n = fdpass_log_format_line(buf, l->max_line, l->format, stamp, l->pid, FDP_LOG_WARN,
		                           note, (size_t)k, NULL);
		if (sink_write(l, buf, n) < 0) {
			l->dropped++;
			return;
		}
		l->dropped = 0;
	}
	n = fdpass_log_format_line(buf, l->max_line, l->format, stamp, l->pid, level, msg, len,
	                           line);
	if (sink_write(l, buf, n) < 0)
		l->dropped++;
}

void fdpass_log_msg(void *arg, enum fdp_log_level level, const char *msg)
{
	log_write(arg, level, msg, strlen(msg), NULL);
}

void fdpass_log_output(void *arg, enum fdp_log_level level, const struct fdp_output_line *line)
{
	log_write(arg, level, line->data, line->len, line);
}

/* The sink's own message, at its level. */
static __attribute__((format(printf, 3, 4))) void
log_own(struct fdpass_log *l, enum fdp_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (level > l->level)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	log_write(l, level, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, NULL);
}

/*
 * SIGUSR1 (cfg.reopen): open the path again, so that a file logrotate renamed is left to it
 * and a new one takes the next lines. If the path cannot be opened, the old file keeps them.
 */
void fdpass_log_reopen(void *arg)
{
	struct fdpass_log *l = arg, fresh = *l;
	int err;

	if (!l->path) {
		log_own(l, FDP_LOG_DEBUG, "SIGUSR1: the log is stderr: nothing to reopen");
		return;
	}
	err = open_file(&fresh, l->path);
	if (err < 0) {
		log_own(l, FDP_LOG_WARN,
		        "cannot reopen the log file %s: %s; still writing to the old one", l->path,
		        strerror(-err));
		return;
	}
	close(l->fd);
	*l = fresh;
	log_own(l, FDP_LOG_INFO, "log file %s reopened", l->path);
}
