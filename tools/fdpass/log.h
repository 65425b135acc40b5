/* The log sink of `fdpass serve` (log.c): text or JSON lines, on stderr or in a file. */
#ifndef FDPASS_LOG_H
#define FDPASS_LOG_H

#include "fdpass_runtime.h"

#include <stddef.h>
#include <time.h>

enum fdpass_log_format { FDPASS_LOG_TEXT, FDPASS_LOG_JSON };

struct fdpass_log {
	enum fdpass_log_format format;
	const char *path; /* a copy of --log-file's path (freed by close), or NULL for stderr */
	int fd;           /* where lines go: 2, a descriptor of the same pipe, or the file's */
	int socket;       /* it is a socket: send() with MSG_DONTWAIT */
	int check;        /* a pipe or terminal we could not open again: poll() before each write */
	size_t max_line;  /* a pipe or terminal takes a whole line only up to PIPE_BUF */
	enum fdp_log_level level; /* of the sink's own messages (the master filters its own) */
	int pid;                  /* the master's, in every text line */
	unsigned long dropped;
	time_t stamp_sec; /* the second date and zone are for (-1: none yet) */
	char date[24];    /* "2026-12-01T23:05:01" */
	char zone[8];     /* "+01:00" */
};

/*
 * Open the log: path NULL for stderr, else the file, appended to (created with mode 0640, less
 * the umask). Returns 0, or a negative errno (the file could not be opened).
 */
int fdpass_log_open(struct fdpass_log *l, enum fdpass_log_format format, const char *path,
                    enum fdp_log_level level);
void fdpass_log_close(struct fdpass_log *l);

/* The master's callbacks, with arg the struct fdpass_log (cfg.log, log_output, reopen). */
void fdpass_log_msg(void *arg, enum fdp_log_level level, const char *msg);
void fdpass_log_output(void *arg, enum fdp_log_level level, const struct fdp_output_line *line);
void fdpass_log_reopen(void *arg);

/*
 * One line of the log: text or JSON, with the time stamp and the master's pid given, msg (len
 * bytes, any bytes) and, when line is not NULL, a worker's fields; at most size bytes (>= 512),
 * the newline included: msg is cut to fit, and says so. Returns the length.
 */
size_t fdpass_log_format_line(char *buf, size_t size, enum fdpass_log_format format,
                              const char *stamp, int pid, enum fdp_log_level level, const char *msg,
                              size_t len, const struct fdp_output_line *line);

#endif
