/*
 * The log of `fdpass serve`: RFC 3339 times in the local zone, --log-format json (every line
 * parses, with its escapes), --log-file and its reopening on SIGUSR1, and the workers' stdout
 * and stderr logged by the master, line by line, with the worker's slot and pid.
 *
 * A log file is followed through inotify on the test's folder: every wait is an event (the
 * file was written, created or moved), bounded in time; nothing sleeps.
 */
#include "log.h"
#include "test_serve_util.h"

#include <sys/inotify.h>
#include <sys/stat.h>

#define UPPER_WORKER  FDPASS_BINARY_DIR "/examples/upper_worker"
#define PYTHON        "/usr/bin/python3"
#define LINE_MAX_TEST (FDP_OUTPUT_LINE_MAX * 6 + 512)

static void need_upper_worker(void)
{
	if (access(UPPER_WORKER, X_OK) < 0)
		fdp_test_skip(UPPER_WORKER " is not built");
}

/* A file of the test's folder, read as it grows. */
struct logfile {
	char path[300];
	char *buf;
	size_t len, seen;
};

/* Every change in the test's folder (one inotify for all its files). */
static int folder_watch(void)
{
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	CHECK(fd >= 0);
	CHECK(inotify_add_watch(fd, fdp_test_tmpdir(),
	                        IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) >= 0);
	return fd;
}

static void logfile_init(struct logfile *f, const char *name)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s/%s", fdp_test_tmpdir(), name);
	f->buf = calloc(1, SERVE_LOG_MAX);
	CHECK(f->buf != NULL);
}

/* Read what was appended since the last time (the file may not exist yet). */
static void logfile_read(struct logfile *f)
{
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	while ((n = pread(fd, f->buf + f->len, SERVE_LOG_MAX - 1 - f->len, (off_t)f->len)) > 0)
		f->len += (size_t)n;
	f->buf[f->len] = '\0';
	CHECK(f->len < SERVE_LOG_MAX - 1);
	close(fd);
}

/* Wait until one of the files shows needle after its last match; returns that line's start. */
static const char *logfiles_wait(int ino, struct logfile **fs, int n, const char *needle, int ms)
{
	long long deadline = test_now_ms() + ms;

	for (;;) {
		char ev[4096];

		/* Events first, then the files: a write after this read is an event still to come.
		 */
		while (read(ino, ev, sizeof(ev)) > 0)
			;
		for (int i = 0; i < n; i++) {
			struct logfile *f = fs[i];
			char *hit, *nl;

			logfile_read(f);
			hit = strstr(f->buf + f->seen, needle);
			if (!hit || !(nl = strchr(hit, '\n')))
				continue;
			f->seen = (size_t)(hit - f->buf) + strlen(needle);
			while (hit > f->buf && hit[-1] != '\n')
				hit--;
			return hit;
		}
		if (test_now_ms() >= deadline || poll(&(struct pollfd){.fd = ino, .events = POLLIN},
		                                      1, (int)(deadline - test_now_ms())) < 0) {
			for (int i = 0; i < n; i++)
				fprintf(stderr, "--- %s ---\n%s------------------\n", fs[i]->path,
				        fs[i]->buf);
			fdp_test_fail(__FILE__, __LINE__, "the log did not show '%s' in %d ms",
			              needle, ms);
		}
	}
}

static const char *logfile_wait(int ino, struct logfile *f, const char *needle, int ms)
{
	return logfiles_wait(ino, &f, 1, needle, ms);
}

/*
 * Start `fdpass serve --listen 127.0.0.1:0 --control DIR/ctl.sock --log-file LOG ARGS...`
 * (NULL-ended) and wait in the log file until it listens and its workers are ready. Its stderr
 * is s->err, as for server_start().
 */
static void server_start_logfile(struct server *s, int ino, struct logfile *log,
                                 const char *const *args)
{
	const char *argv[64] = {FDPASS_TOOL, "serve", "--listen", "127.0.0.1:0", "--control"};
	int n = 5;
	const char *line;

	memset(s, 0, sizeof(*s));
	snprintf(s->control, sizeof(s->control), "%s/ctl.sock", fdp_test_tmpdir());
	argv[n++] = s->control;
	argv[n++] = "--log-file";
	argv[n++] = log->path;
	s->log = calloc(1, SERVE_LOG_MAX);
	for (; args && *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	server_spawn(s, argv);
	line = logfile_wait(ino, log, "listening on ", 10000);
	sscanf(strstr(line, "listening on ") + 13, "%63s", s->addr);
	logfile_wait(ino, log, "ready: ", 10000);
}

/* A shell script in the test's folder, run by `--exec "sh PATH"`; its path in path. */
static void script(char *path, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void script(char *path, size_t size, const char *fmt, ...)
{
	va_list ap;
	FILE *f;

	snprintf(path, size, "sh %s/worker.sh", fdp_test_tmpdir());
	f = fopen(path + 3, "w");
	CHECK(f != NULL);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	CHECK_INT(fclose(f), ==, 0);
}

/* The pid of the server's only worker process, from its status. */
static pid_t only_worker(struct server *s)
{
	pid_t pid[2];
	char *st = server_status(s);

	CHECK_INT(status_pids(st, pid, 2), ==, 1);
	free(st);
	return pid[0];
}

TEST(log_lines_carry_an_rfc3339_time_with_milliseconds_and_the_local_zone)
{
	struct server s;
	const char *line;
	int y, mo, d, h, mi, sec, ms, oh, om, n = 0;
	char sign;
	struct tm tm = {0};
	long long t;

	/* POSIX TZ: a zone named FDP, 5 h 30 min east of UTC (the sign is POSIX's, reversed). */
	CHECK_OK(setenv("TZ", "FDP-05:30", 1));
	server_start(&s, "--workers", "1", NULL);
	line = strstr(s.log, "listening on ");
	while (line > s.log && line[-1] != '\n')
		line--;
	CHECK_INT(sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c%2d:%2d fdpass[%*d] info: %n", &y, &mo,
	                 &d, &h, &mi, &sec, &ms, &sign, &oh, &om, &n),
	          ==, 10);
	CHECK(n > 0);
	CHECK(line[10] == 'T' && line[19] == '.' && line[23] == '+' && line[29] == ' ');
	CHECK_INT(sign, ==, '+');
	CHECK_INT(oh * 60 + om, ==, 330);
	tm = (struct tm){.tm_year = y - 1900,
	                 .tm_mon = mo - 1,
	                 .tm_mday = d,
	                 .tm_hour = h,
	                 .tm_min = mi,
	                 .tm_sec = sec};
	t = (long long)timegm(&tm) - 330 * 60; /* the local time, back to UTC */
	CHECK(llabs(t - (long long)time(NULL)) < 60);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_workers_stderr_line_goes_to_the_log_file_with_its_worker_and_pid)
{
	char cmd[400], want[128];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct logfile log;
	struct server s;
	int ino = folder_watch();

	need_upper_worker();
	script(cmd, sizeof(cmd), "echo 'a line on stderr' >&2\nexec %s\n", UPPER_WORKER);
	logfile_init(&log, "serve.log");
	server_start_logfile(&s, ino, &log, args);
	snprintf(want, sizeof(want), " warn: worker 0 pid %d: a line on stderr\n",
	         (int)only_worker(&s));
	log.seen = 0; /* it may have come before the workers were ready */
	logfile_wait(ino, &log, want, 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "a line on stderr") == NULL); /* not on the server's own stderr */
	close(ino);
	free(log.buf);
	server_free(&s);
}

TEST(a_workers_stdout_line_is_logged_at_info)
{
	char cmd[400], want[128];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;

	need_upper_worker();
	script(cmd, sizeof(cmd), "echo 'a line on stdout'\nexec %s\n", UPPER_WORKER);
	server_start_argv(&s, args, 0);
	snprintf(want, sizeof(want), " info: worker 0 pid %d: a line on stdout\n",
	         (int)only_worker(&s));
	s.seen = 0; /* it may have come before the workers were ready */
	server_wait_log(&s, want, 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(what_a_worker_writes_before_it_dies_is_logged_before_its_exit)
{
	char cmd[400];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;
	const char *last, *exited;
	pid_t pid;

	need_upper_worker();
	/* Generation 1 says its last words (with no newline) once killed; the next one serves. */
	script(cmd, sizeof(cmd),
	       "if [ ! -e %s/once ]; then : >%s/once; trap 'printf \"last words\" >&2; exit 3' "
	       "TERM; %s & wait; fi\nexec %s\n",
	       fdp_test_tmpdir(), fdp_test_tmpdir(), UPPER_WORKER, UPPER_WORKER);
	server_start_argv(&s, args, 0);
	pid = only_worker(&s);
	CHECK_OK(kill(pid, SIGTERM));
	last = server_wait_log(&s, ": last words\n", 10000);
	exited = server_wait_log(&s, " exited with status 3 ", 10000);
	CHECK(last < exited);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* A worker script that writes a line of 10000 x's to stderr. */
static void long_line_script(char *cmd, size_t size)
{
	script(cmd, size,
	       "i=0; s=x; while [ $i -lt 4 ]; do s=$s$s$s$s$s; i=$((i+1)); done\n" /* 625 */
	       "printf '%%s%%s%%s%%s%%s%%s%%s%%s%%s%%s%%s%%s%%s%%s%%s%%s\\n' $s $s $s $s $s $s $s "
	       "$s "
	       "$s $s $s $s $s $s $s $s >&2\nexec %s\n",
	       UPPER_WORKER);
}

TEST(a_workers_long_line_is_logged_in_pieces_of_4_kib)
{
	char cmd[600], want[64];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct logfile log;
	struct server s;
	const char *line, *p;
	size_t total = 0;
	int pieces = 0, ino = folder_watch();

	need_upper_worker();
	/* 10000 x's and a newline: pieces of 4096, 4096 and 1808 bytes. */
	long_line_script(cmd, sizeof(cmd));
	logfile_init(&log, "serve.log");
	server_start_logfile(&s, ino, &log, args);
	snprintf(want, sizeof(want), "worker 0 pid %d: x", (int)only_worker(&s));
	log.seen = 0;
	for (int k = 0; k < 3; k++) {
		size_t len;

		line = logfile_wait(ino, &log, want, 10000);
		p = strstr(line, want) + strlen(want) - 1;
		len = strcspn(p, "\n");
		CHECK_INT(strspn(p, "x"), ==, len);
		CHECK_INT(len, ==, k < 2 ? 4096 : 1808);
		total += len;
		pieces++;
	}
	CHECK_INT(total, ==, 10000);
	CHECK_INT(pieces, ==, 3);
	CHECK_INT(server_stop(&s), ==, 0);
	close(ino);
	free(log.buf);
	server_free(&s);
}

/* A pipe takes a line whole only up to PIPE_BUF: a longer one is cut, and says so. */
TEST(a_log_line_too_long_for_a_pipe_is_cut_to_4096_bytes_and_says_so)
{
	char cmd[600], want[64];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;
	const char *line;

	need_upper_worker();
	long_line_script(cmd, sizeof(cmd));
	server_start_argv(&s, args, 0);
	snprintf(want, sizeof(want), "worker 0 pid %d: x", (int)only_worker(&s));
	s.seen = 0;
	line = server_wait_log(&s, want, 10000);
	CHECK_INT(strcspn(line, "\n") + 1, ==, 4096);
	CHECK(strncmp(line + 4095 - 6, " [cut]\n", 7) == 0);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/*
 * The worker writes tricky bytes to stderr; Python's json module parses every line of the log,
 * checks the fields, and compares the message with the bytes decoded as UTF-8 with U+FFFD for
 * what is not (maximal subparts, as Python decodes).
 */
TEST(json_lines_parse_with_their_fields_and_escape_every_byte)
{
	static const char checker[] =
	        "import datetime, json, sys\n"
	        "want = bytes.fromhex(sys.argv[2]).decode('utf-8', 'replace')\n"
	        "pid = int(sys.argv[3])\n"
	        "found = 0\n"
	        "for raw in open(sys.argv[1], 'rb'):\n"
	        "    assert raw.endswith(b'\\n') and raw.count(b'\\n') == 1, raw\n"
	        "    raw.decode('utf-8')\n"
	        "    o = json.loads(raw)\n"
	        "    assert set(o) >= {'time', 'level', 'msg'}, o\n"
	        "    assert o['level'] in ('error', 'warn', 'info', 'debug'), o\n"
	        "    t = datetime.datetime.fromisoformat(o['time'])\n"
	        "    assert t.tzinfo is not None and len(o['time']) == 29, o\n"
	        "    if 'worker' in o:\n"
	        "        assert o['worker'] == 0 and o['pid'] == pid, o\n"
	        "        assert o['stream'] == 'stderr' and o['level'] == 'warn', o\n"
	        "        assert o['msg'] == want, (o['msg'], want)\n"
	        "        found += 1\n"
	        "assert found == 1, found\n";
	/* Quote, backslash, control characters, DEL, a lone continuation byte, an overlong NUL, a
	 * surrogate, a truncated sequence, bytes that never start one, and valid é, € and 😀. */
	static const char bytes[] = "q\"b\\c\001\tx\ry\033z\177 \200 \300\200 \355\240\200 "
	                            "\342\202 \377\376 \303\251\342\202\254\360\237\230\200 end";
	char cmd[800], hex[256], oct[512], pids[32], path[300];
	const char *args[] = {"--workers", "1", "--log-format", "json", "--exec", cmd, NULL};
	struct logfile log;
	struct server s;
	int ino = folder_watch(), fd;
	size_t o = 0;

	need_upper_worker();
	if (access(PYTHON, X_OK) < 0)
		fdp_test_skip(PYTHON " is not installed");
	for (size_t i = 0; i + 1 < sizeof(bytes); i++) {
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)bytes[i]);
		o += (size_t)snprintf(oct + o, sizeof(oct) - o, "\\%03o", (unsigned char)bytes[i]);
	}
	script(cmd, sizeof(cmd), "printf '%s\\n' >&2\nexec %s\n", oct, UPPER_WORKER);
	logfile_init(&log, "serve.log");
	server_start_logfile(&s, ino, &log, args);
	log.seen = 0;
	logfile_wait(ino, &log, " end\",\"worker\":0,", 10000);
	snprintf(pids, sizeof(pids), "%d", (int)only_worker(&s));
	CHECK_INT(server_stop(&s), ==, 0);
	snprintf(path, sizeof(path), "%s/check.py", fdp_test_tmpdir());
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, checker, sizeof(checker) - 1), ==, sizeof(checker) - 1);
	close(fd);
	{
		const char *py[] = {PYTHON, path, log.path, hex, pids, NULL};
		pid_t pid = fork();

		CHECK(pid >= 0);
		if (pid == 0) {
			execv(PYTHON, (char **)py);
			_exit(127);
		}
		CHECK_INT(fdp_test_wait(pid), ==, 0);
	}
	close(ino);
	free(log.buf);
	server_free(&s);
}

/*
 * logrotate's way: rename the file, SIGUSR1. Lines in flight at the reopen go to one file or
 * the other, in order, and none is lost; the lines after it go to the new file. The worker's
 * writer waits on two FIFOs: the first releases lines racing the reopen, the second (once the
 * new file exists) lines that must all be in it.
 */
TEST(sigusr1_after_a_rename_sends_new_lines_to_a_new_file_and_loses_none)
{
	char cmd[1200], gate1[300], gate2[300], *joined;
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct logfile old, fresh, *both[2] = {&old, &fresh};
	struct server s;
	int ino = folder_watch(), g1, g2, next = 1;
	const char *p;

	need_upper_worker();
	snprintf(gate1, sizeof(gate1), "%s/gate1", fdp_test_tmpdir());
	snprintf(gate2, sizeof(gate2), "%s/gate2", fdp_test_tmpdir());
	CHECK_OK(mkfifo(gate1, 0600));
	CHECK_OK(mkfifo(gate2, 0600));
	/* Read-write: never blocks, and keeps what is written until the worker opens it. */
	g1 = open(gate1, O_RDWR | O_CLOEXEC);
	g2 = open(gate2, O_RDWR | O_CLOEXEC);
	CHECK(g1 >= 0 && g2 >= 0);
	script(cmd, sizeof(cmd),
	       "count() { while [ $i -lt $1 ]; do i=$((i+1)); echo \"n $i\"; done; }\n"
	       "{ i=0; count 200; read x <%s; count 1200; read x <%s; count 1500; echo 'n end'; } "
	       ">&2 &\nexec %s\n",
	       gate1, gate2, UPPER_WORKER);
	logfile_init(&old, "serve.log");
	logfile_init(&fresh, "serve.log");
	snprintf(old.path, sizeof(old.path), "%s/serve.log", fdp_test_tmpdir());
	server_start_logfile(&s, ino, &old, args);
	old.seen = 0; /* the first lines may come before the worker is ready */
	logfile_wait(ino, &old, ": n 200\n", 10000);
	snprintf(old.path, sizeof(old.path), "%s/serve.log.1", fdp_test_tmpdir());
	CHECK_OK(rename(fresh.path, old.path));
	CHECK_INT(write(g1, "go\n", 3), ==, 3);
	CHECK_OK(kill(s.pid, SIGUSR1));
	logfile_wait(ino, &fresh, "reopened\n", 10000);
	CHECK_INT(write(g2, "go\n", 3), ==, 3);
	logfiles_wait(ino, both, 2, ": n end\n", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	/* The old file ends with the master's word of the reopen; the new starts with the sink's.
	 */
	CHECK(strstr(old.buf, "info: received SIGUSR1: reopening the log\n") != NULL);
	CHECK(strstr(fresh.buf, "reopened\n") == strchr(fresh.buf, '\n') - 8);
	CHECK(strstr(fresh.buf, ": n 1500\n") != NULL);
	CHECK(strstr(old.buf, ": n 1201\n") == NULL);
	/* Every line once, in order, across the two files. */
	joined = malloc(old.len + fresh.len + 1);
	CHECK(joined != NULL);
	memcpy(joined, old.buf, old.len);
	memcpy(joined + old.len, fresh.buf, fresh.len + 1);
	for (p = joined; (p = strstr(p, ": n ")); p++) {
		if (strncmp(p, ": n end\n", 8) == 0)
			break;
		CHECK_INT(atoi(p + 4), ==, next);
		next++;
	}
	CHECK_INT(next, ==, 1501);
	CHECK(p != NULL);
	free(joined);
	close(g1);
	close(g2);
	close(ino);
	free(old.buf);
	free(fresh.buf);
	server_free(&s);
}

TEST(a_log_file_that_cannot_be_reopened_is_kept_and_the_log_says_why)
{
	const char *args[] = {"--workers", "1", NULL};
	struct logfile log;
	struct server s;
	char moved[300];
	int ino = folder_watch();

	logfile_init(&log, "serve.log");
	server_start_logfile(&s, ino, &log, args);
	snprintf(moved, sizeof(moved), "%s/serve.log.1", fdp_test_tmpdir());
	CHECK_OK(rename(log.path, moved));
	CHECK_OK(
	        mkdir(log.path, 0700)); /* a directory cannot be opened for writing, even by root */
	CHECK_OK(kill(s.pid, SIGUSR1));
	snprintf(log.path, sizeof(log.path), "%s", moved);
	logfile_wait(ino, &log, "warn: cannot reopen the log file ", 10000);
	logfile_wait(ino, &log, "serve.log: Is a directory; still writing to the old one\n", 10000);
	/* And it still is. */
	CHECK_OK(kill(s.pid, SIGTERM));
	logfile_wait(ino, &log, "info: stopped: ", 10000);
	CHECK_INT(server_wait_exit(&s), ==, 0);
	snprintf(moved, sizeof(moved), "%s/serve.log", fdp_test_tmpdir());
	CHECK_OK(rmdir(moved));
	close(ino);
	free(log.buf);
	server_free(&s);
}

TEST(sigusr1_without_a_log_file_leaves_the_server_running)
{
	struct server s;
	char *st;

	server_start(&s, "--workers", "1", NULL);
	CHECK_OK(kill(s.pid, SIGUSR1));
	server_wait_log(&s, "received SIGUSR1: reopening the log", 10000);
	st = server_status(&s);
	CHECK(strncmp(st, "master ", 7) == 0);
	free(st);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

TEST(a_log_file_that_cannot_be_opened_fails_the_start_with_status_1)
{
	char path[300], *out, *err;
	const char *args[] = {"serve", "--listen",   "127.0.0.1:0", "--control",
	                      "none",  "--log-file", path,          NULL};

	snprintf(path, sizeof(path), "%s/no/such/dir/serve.log", fdp_test_tmpdir());
	CHECK_INT(run_tool(args, &out, &err), ==, 1);
	CHECK(strstr(err, "fdpass serve: cannot open the log file ") != NULL);
	CHECK(strstr(err, "serve.log: No such file or directory\n") != NULL);
	free(out);
	free(err);
}

TEST(an_unknown_log_format_is_a_usage_error)
{
	char *out, *err;
	const char *args[] = {"serve", "--log-format", "xml", NULL};

	CHECK_INT(run_tool(args, &out, &err), ==, 2);
	CHECK(strstr(err, "invalid value 'xml' for --log-format: expected text or json") != NULL);
	free(out);
	free(err);
}

TEST(a_new_log_file_is_created_with_mode_0640_less_the_umask)
{
	const char *args[] = {"--workers", "1", NULL};
	struct logfile log;
	struct server s;
	struct stat st;
	mode_t old = umask(022); /* 0666 would be 0644 */
	int ino = folder_watch();

	logfile_init(&log, "serve.log");
	server_start_logfile(&s, ino, &log, args);
	umask(old);
	CHECK_OK(stat(log.path, &st));
	CHECK_INT(st.st_mode & 07777, ==, 0640 & ~022);
	CHECK_INT(server_stop(&s), ==, 0);
	close(ino);
	free(log.buf);
	server_free(&s);
}

TEST(a_sigusr1_sent_to_a_built_in_worker_does_not_kill_it)
{
	struct server s;
	pid_t pid, again;

	server_start(&s, "--workers", "1", NULL);
	http_get_worker(s.addr, NULL, &pid);
	CHECK_OK(kill(pid, SIGUSR1));
	/* Delivered before it can serve the next request: the same process answers it. */
	http_get_worker(s.addr, NULL, &again);
	CHECK_INT(again, ==, pid);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK(strstr(s.log, "killed by signal") == NULL);
	server_free(&s);
}

/* Run /usr/bin/python3 on a program (written to the test's folder) with args; its status. */
static int python(const char *program, const char *const *args)
{
	char path[300];
	const char *argv[8] = {PYTHON, path};
	int fd, n = 2;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/check.py", fdp_test_tmpdir());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, program, strlen(program)), ==, strlen(program));
	close(fd);
	for (; *args && n < 7; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execv(PYTHON, (char **)argv);
		_exit(127);
	}
	return fdp_test_wait(pid);
}

/*
 * Random byte strings, weighted to what breaks escapers (control characters, continuation
 * bytes, lead bytes of every length, the edges of the valid ranges), each formatted as a JSON
 * line, whole and cut to a short line: Python must parse every line and find exactly the
 * bytes decoded as UTF-8 with U+FFFD for what is not (a cut one: a prefix of it, then " [cut]").
 */
TEST(json_lines_of_random_bytes_decode_as_python_decodes_them)
{
	static const char checker[] =
	        "import json, sys\n"
	        "raws = [bytes.fromhex(h) for h in open(sys.argv[1]).read().split()]\n"
	        "lines = open(sys.argv[2], 'rb').read().split(b'\\n')[:-1]\n"
	        "assert len(lines) == 2 * len(raws), (len(lines), len(raws))\n"
	        "for i, raw in enumerate(raws):\n"
	        "    want = raw.decode('utf-8', 'replace')\n"
	        "    whole = json.loads(lines[2 * i].decode('utf-8'))\n"
	        "    assert whole['msg'] == want, (raw, whole['msg'], want)\n"
	        "    assert (whole['worker'], whole['pid'], whole['stream']) == (3, 77, 'stdout')\n"
	        "    cut = json.loads(lines[2 * i + 1].decode('utf-8'))['msg']\n"
	        "    assert len(lines[2 * i + 1]) < 512, len(lines[2 * i + 1])\n"
	        "    if cut != want:\n"
	        "        assert cut.endswith(' [cut]') and want.startswith(cut[:-6]), (raw, cut)\n"
	        "print('checked', len(raws))\n";
	static const unsigned char pool[] = {
	        'a',  ' ',  '"',  '\\', '/',  0x00, 0x01, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f,
	        0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1,
	        0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xfe, 0xff};
	const struct fdp_output_line fields = {.worker = 3, .pid = 77, .fd = 1};
	char hexpath[300], linepath[300], line[LINE_MAX_TEST];
	FILE *hex, *lines;
	unsigned seed = 20261201;

	if (access(PYTHON, X_OK) < 0)
		fdp_test_skip(PYTHON " is not installed");
	snprintf(hexpath, sizeof(hexpath), "%s/raw.hex", fdp_test_tmpdir());
	snprintf(linepath, sizeof(linepath), "%s/lines.json", fdp_test_tmpdir());
	hex = fopen(hexpath, "w");
	lines = fopen(linepath, "w");
	CHECK(hex && lines);
	for (int i = 0; i < 3000; i++) {
		unsigned char raw[300];
		size_t len = (size_t)(rand_r(&seed) % (i < 2000 ? 24 : 300)), n;

		for (size_t k = 0; k < len; k++)
			raw[k] = pool[rand_r(&seed) % sizeof(pool)];
		for (size_t k = 0; k < len; k++)
			fprintf(hex, "%02x", raw[k]);
		fputs(len ? "\n" : "00\n", hex); /* an empty one stands for a NUL: never empty */
		if (!len)
			raw[len++] = 0;
		n = fdpass_log_format_line(line, sizeof(line), FDPASS_LOG_JSON, "T", 1,
		                           FDP_LOG_INFO, (const char *)raw, len, &fields);
		CHECK(n <= sizeof(line) && line[n - 1] == '\n');
		CHECK(memchr(line, '\n', n - 1) == NULL);
		fwrite(line, 1, n, lines);
		n = fdpass_log_format_line(line, 512, FDPASS_LOG_JSON, "T", 1, FDP_LOG_INFO,
		                           (const char *)raw, len, &fields);
		CHECK(n <= 512 && line[n - 1] == '\n');
		fwrite(line, 1, n, lines);
	}
	CHECK_INT(fclose(hex), ==, 0);
	CHECK_INT(fclose(lines), ==, 0);
	CHECK_INT(python(checker, (const char *const[]){hexpath, linepath, NULL}), ==, 0);
}

/* A worker cannot write escape sequences to the operator's terminal through the text log. */
TEST(text_lines_show_a_workers_control_characters_as_hex_escapes)
{
	char cmd[400], want[128];
	const char *args[] = {"--workers", "1", "--exec", cmd, NULL};
	struct server s;

	need_upper_worker();
	script(cmd, sizeof(cmd), "printf 'a\\033[31mred\\ttab\\rcr\\001end\\n' >&2\nexec %s\n",
	       UPPER_WORKER);
	server_start_argv(&s, args, 0);
	snprintf(want, sizeof(want), "pid %d: a\\x1b[31mred\ttab\\x0dcr\\x01end\n",
	         (int)only_worker(&s));
	s.seen = 0;
	server_wait_log(&s, want, 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	server_free(&s);
}

/* A reload reads the configuration again; the log keeps the path it was opened with. */
TEST(sigusr1_after_a_reload_still_reopens_the_log_file)
{
	const char *args[] = {"--workers", "1", NULL};
	struct logfile log, fresh;
	struct server s;
	char moved[300];
	int ino = folder_watch();

	logfile_init(&log, "serve.log");
	logfile_init(&fresh, "serve.log");
	server_start_logfile(&s, ino, &log, args);
	CHECK_OK(kill(s.pid, SIGHUP));
	logfile_wait(ino, &log, "reload complete", 10000);
	snprintf(moved, sizeof(moved), "%s/serve.log.1", fdp_test_tmpdir());
	CHECK_OK(rename(log.path, moved));
	CHECK_OK(kill(s.pid, SIGUSR1));
	snprintf(fresh.buf, 2, "%s", "");
	logfile_wait(ino, &fresh, "serve.log reopened\n", 10000);
	CHECK_INT(server_stop(&s), ==, 0);
	close(ino);
	free(log.buf);
	free(fresh.buf);
	server_free(&s);
}
