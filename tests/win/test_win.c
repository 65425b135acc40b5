/*
 * The Windows mechanism (include/fdpass_win.h) and fdpass.exe, run under Wine by ctest
 * (docs/WINDOWS.md). The cases that need a second process start this program again as
 * `test_win.exe --child ROLE PIPE`; fdpass.exe is found beside it. Every wait is bounded.
 */
#include "harness_win.h"

#include <ws2tcpip.h>

#include <errno.h>
#include <process.h>

struct win_test win_tests[64];
int win_ntests;

#define WAIT_MS 20000

static char self_dir[MAX_PATH];

/* ---- helpers ---- */

/*
 * The process's open handles. Wine's GetProcessHandleCount() says 0, so they are counted by
 * asking about every handle value in turn (multiples of 4, the first 16384 of them).
 */
static DWORD handle_count(void)
{
	DWORD n = 0, flags;

	if (GetProcessHandleCount(GetCurrentProcess(), &n) && n)
		return n;
	for (uintptr_t v = 4; v < 4 * 16384; v += 4)
		if (GetHandleInformation((HANDLE)v, &flags))
			n++;
	return n;
}

static void quote_into(char *cmd, size_t size, const char *arg)
{
	size_t n = strlen(cmd);

	snprintf(cmd + n, size - n, "%s\"%s\"", n ? " " : "", arg);
}

/* Start `exe ARGS` (NULL-ended); stderr_to, when not NULL, becomes its stderr and stdout. */
static PROCESS_INFORMATION start(const char *exe, const char *const *args, HANDLE out,
                                 DWORD flags)
{
	char path[MAX_PATH], cmd[4096] = "";
	STARTUPINFOA si;
	PROCESS_INFORMATION pi;

	snprintf(path, sizeof(path), "%s\\%s", self_dir, exe);
	quote_into(cmd, sizeof(cmd), path);
	for (const char *const *a = args; *a; a++)
		quote_into(cmd, sizeof(cmd), *a);
	memset(&si, 0, sizeof(si));
	si.cb = sizeof(si);
	if (out) {
		si.dwFlags = STARTF_USESTDHANDLES;
		si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
		si.hStdOutput = out;
		si.hStdError = out;
	}
	CHECK(CreateProcessA(path, cmd, NULL, NULL, out != NULL, flags, NULL, NULL, &si, &pi));
	CloseHandle(pi.hThread);
	return pi;
}

static DWORD wait_exit(HANDLE proc)
{
	DWORD code = 99;

	CHECK_INT(WaitForSingleObject(proc, WAIT_MS), ==, WAIT_OBJECT_0);
	CHECK(GetExitCodeProcess(proc, &code));
	CloseHandle(proc);
	return code;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	CHECK(f != NULL);
	CHECK(fwrite(data, 1, len, f) == len);
	CHECK(fclose(f) == 0);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(1 << 22);

	CHECK(f && buf);
	*len = fread(buf, 1, 1 << 22, f);
	fclose(f);
	return buf;
}

static void tmp_path(char *buf, size_t size, const char *what)
{
	char dir[MAX_PATH];

	CHECK(GetTempPathA(sizeof(dir), dir) > 0);
	snprintf(buf, size, "%sfdpass-test-%lu-%s", dir, GetCurrentProcessId(), what);
}

/* A connected loopback TCP pair. */
static void tcp_pair(SOCKET *a, SOCKET *b)
{
	struct sockaddr_in sa = {0};
	int len = sizeof(sa);
	SOCKET l = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(l != INVALID_SOCKET);
	CHECK(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 1) == 0);
	CHECK(getsockname(l, (struct sockaddr *)&sa, &len) == 0);
	*a = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(*a, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	*b = accept(l, NULL, NULL);
	CHECK(*b != INVALID_SOCKET);
	closesocket(l);
}

/* Both ends of a channel inside this process. */
static void channel_pair(HANDLE *server, HANDLE *client)
{
	char name[128];

	snprintf(name, sizeof(name), "fdpass-test-%lu-%lu", GetCurrentProcessId(), GetTickCount());
	CHECK_INT(fdp_win_pipe_create(name, server), ==, 0);
	CHECK_INT(fdp_win_pipe_connect(name, WAIT_MS, client), ==, 0);
	CHECK_INT(fdp_win_pipe_accept(*server, WAIT_MS), ==, 0);
}

/* ---- children ---- */

/* recv-file: take a handle, send back what it reads and the parent's pid as the pipe says. */
static int child_recv_file(HANDLE pipe)
{
	struct fdp_win_obj o;
	size_t n;
	char buf[4096];
	DWORD got = 0, peer = 0;
	int r = fdp_win_recv(pipe, buf, sizeof(buf), &o, 1, &n, WAIT_MS);

	if (r < 0 || n != 1 || o.kind != FDP_WIN_HANDLE)
		return 3;
	if (!ReadFile(o.handle, buf, sizeof(buf) - 32, &got, NULL))
		return 4;
	CloseHandle(o.handle);
	if (fdp_win_peer_pid(pipe, &peer) < 0)
		return 5;
	got += (DWORD)snprintf(buf + got, 32, "|%lu", peer);
	return fdp_win_send(pipe, buf, got, NULL, 0) < 0 ? 6 : 0;
}

/* recv-socket: take a socket, answer "ping" with "PONG". */
static int child_recv_socket(HANDLE pipe)
{
	struct fdp_win_obj o;
	size_t n;
	char buf[16];
	int r = fdp_win_recv(pipe, buf, sizeof(buf), &o, 1, &n, WAIT_MS);

	if (r < 0 || n != 1 || o.kind != FDP_WIN_SOCKET)
		return 3;
	if (recv(o.sock, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "ping", 4) != 0)
		return 4;
	if (send(o.sock, "PONG", 4, 0) != 4)
		return 5;
	closesocket(o.sock);
	return fdp_win_send(pipe, "done", 4, NULL, 0) < 0 ? 6 : 0;
}

static int run_child(const char *role, const char *name)
{
	HANDLE pipe;

	if (fdp_win_pipe_connect(name, WAIT_MS, &pipe) < 0)
		return 2;
	if (!strcmp(role, "recv-file"))
		return child_recv_file(pipe);
	if (!strcmp(role, "recv-socket"))
		return child_recv_socket(pipe);
	return 2;
}

/* Start a child of this program in role, connected to *pipe. */
static PROCESS_INFORMATION child(const char *role, HANDLE *pipe)
{
	char name[128];
	const char *args[] = {"--child", role, name, NULL};
	PROCESS_INFORMATION pi;
	DWORD peer = 0;

	snprintf(name, sizeof(name), "fdpass-test-%lu-%lu", GetCurrentProcessId(), GetTickCount());
	CHECK_INT(fdp_win_pipe_create(name, pipe), ==, 0);
	pi = start("test_win.exe", args, NULL, 0);
	CHECK_INT(fdp_win_pipe_accept(*pipe, WAIT_MS), ==, 0);
	CHECK_INT(fdp_win_peer_pid(*pipe, &peer), ==, 0);
	CHECK_INT(peer, ==, pi.dwProcessId); /* the pipe names the process at its other end */
	return pi;
}

/* ---- the mechanism ---- */

TEST(a_file_handle_sent_to_another_process_reads_the_same_file_there)
{
	char path[MAX_PATH], buf[256], want[256];
	struct fdp_win_obj o = {FDP_WIN_HANDLE, INVALID_SOCKET, NULL};
	HANDLE pipe;
	PROCESS_INFORMATION pi;
	size_t n;
	int r;

	tmp_path(path, sizeof(path), "file");
	write_file(path, "contents of the file", 20);
	o.handle = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_DELETE, NULL,
	                       OPEN_EXISTING, 0, NULL);
	CHECK(o.handle != INVALID_HANDLE_VALUE);
	pi = child("recv-file", &pipe);
	CHECK_INT(fdp_win_send(pipe, "", 0, &o, 1), ==, 0);
	CloseHandle(o.handle); /* the sender's copy: its own to close */
	r = fdp_win_recv(pipe, buf, sizeof(buf) - 1, &o, 1, &n, WAIT_MS);
	CHECK(r > 0 && n == 0);
	buf[r] = '\0';
	snprintf(want, sizeof(want), "contents of the file|%lu", GetCurrentProcessId());
	CHECK(strcmp(buf, want) == 0); /* and the child learned this pid from the pipe */
	CloseHandle(pipe);
	CHECK_INT(wait_exit(pi.hProcess), ==, 0);
	CHECK(DeleteFileA(path));
}

TEST(a_socket_sent_to_another_process_carries_the_connection)
{
	struct fdp_win_obj o = {FDP_WIN_SOCKET, INVALID_SOCKET, NULL};
	SOCKET c;
	HANDLE pipe;
	PROCESS_INFORMATION pi;
	char buf[8];
	size_t n;

	tcp_pair(&c, &o.sock);
	pi = child("recv-socket", &pipe);
	CHECK_INT(fdp_win_send(pipe, "conn", 4, &o, 1), ==, 0);
	closesocket(o.sock); /* the child has its own: the connection lives on */
	CHECK(send(c, "ping", 4, 0) == 4);
	CHECK(recv(c, buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "PONG", 4) == 0);
	CHECK(recv(c, buf, 1, 0) == 0); /* the child closed the last descriptor */
	CHECK_INT(fdp_win_recv(pipe, buf, sizeof(buf), &o, 1, &n, WAIT_MS), ==, 4);
	closesocket(c);
	CloseHandle(pipe);
	CHECK_INT(wait_exit(pi.hProcess), ==, 0);
}

TEST(objects_past_the_receivers_room_are_closed_and_the_message_is_emsgsize)
{
	HANDLE s, c, ev[3];
	struct fdp_win_obj o[3], got[1];
	size_t n = 9;
	char buf[8];
	DWORD before;

	channel_pair(&s, &c);
	for (int i = 0; i < 3; i++) {
		ev[i] = CreateEventA(NULL, TRUE, FALSE, NULL);
		o[i] = (struct fdp_win_obj){FDP_WIN_HANDLE, INVALID_SOCKET, ev[i]};
	}
	before = handle_count();
	CHECK_INT(fdp_win_send(c, "x", 1, o, 3), ==, 0);
	CHECK_INT(fdp_win_recv(s, buf, sizeof(buf), got, 1, &n, WAIT_MS), ==, -EMSGSIZE);
	CHECK_INT(n, ==, 1); /* the one that fit is the caller's */
	CHECK(CloseHandle(got[0].handle));
	CHECK_INT(handle_count(), ==, before); /* the two that did not were closed */
	for (int i = 0; i < 3; i++)
		CloseHandle(ev[i]);
	CloseHandle(c);
	CloseHandle(s);
}

TEST(bytes_past_the_receivers_room_are_read_away_and_the_next_message_is_whole)
{
	HANDLE s, c;
	struct fdp_win_obj o;
	size_t n;
	char buf[4];

	channel_pair(&s, &c);
	CHECK_INT(fdp_win_send(c, "abcdefgh", 8, NULL, 0), ==, 0);
	CHECK_INT(fdp_win_send(c, "next", 4, NULL, 0), ==, 0);
	CHECK_INT(fdp_win_recv(s, buf, sizeof(buf), &o, 1, &n, WAIT_MS), ==, -EMSGSIZE);
	CHECK(memcmp(buf, "abcd", 4) == 0);
	CHECK_INT(fdp_win_recv(s, buf, sizeof(buf), &o, 1, &n, WAIT_MS), ==, 4);
	CHECK(memcmp(buf, "next", 4) == 0 && n == 0);
	CloseHandle(c);
	CloseHandle(s);
}

TEST(bytes_that_are_not_an_fdpass_frame_are_eproto)
{
	HANDLE s, c;
	OVERLAPPED ov = {0};
	struct fdp_win_obj o;
	size_t n;
	DWORD w = 0;
	char buf[16];

	channel_pair(&s, &c);
	ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
	if (!WriteFile(c, "HELLO, WORLD", 12, NULL, &ov))
		CHECK(GetLastError() == ERROR_IO_PENDING);
	CHECK(GetOverlappedResult(c, &ov, &w, TRUE) && w == 12);
	CloseHandle(ov.hEvent);
	CHECK_INT(fdp_win_recv(s, buf, sizeof(buf), &o, 1, &n, WAIT_MS), ==, -EPROTO);
	CloseHandle(c);
	CloseHandle(s);
}

TEST(a_receive_with_nothing_sent_times_out_and_takes_nothing)
{
	HANDLE s, c;
	struct fdp_win_obj o;
	size_t n;
	char buf[8];

	channel_pair(&s, &c);
	CHECK_INT(fdp_win_recv(s, buf, sizeof(buf), &o, 1, &n, 50), ==, -ETIMEDOUT);
	CHECK_INT(fdp_win_send(c, "late", 4, NULL, 0), ==, 0);
	CHECK_INT(fdp_win_recv(s, buf, sizeof(buf), &o, 1, &n, WAIT_MS), ==, 4);
	CHECK(memcmp(buf, "late", 4) == 0);
	CloseHandle(c);
	CloseHandle(s);
}

TEST(the_end_of_a_channel_is_epipe_and_a_send_to_it_fails)
{
	HANDLE s, c;
	struct fdp_win_obj o;
	size_t n;
	char buf[8];

	channel_pair(&s, &c);
	CloseHandle(c);
	CHECK_INT(fdp_win_recv(s, buf, sizeof(buf), &o, 1, &n, WAIT_MS), ==, -EPIPE);
	CHECK_INT(fdp_win_send(s, "x", 1, NULL, 0), ==, -EPIPE);
	CloseHandle(s);
}

TEST(a_second_server_on_one_pipe_name_is_refused)
{
	HANDLE a, b;

	CHECK_INT(fdp_win_pipe_create("fdpass-test-one-name", &a), ==, 0);
	CHECK_INT(fdp_win_pipe_create("fdpass-test-one-name", &b), ==, -EADDRINUSE);
	CloseHandle(a);
}

TEST(a_message_of_nothing_is_einval)
{
	HANDLE s, c;

	channel_pair(&s, &c);
	CHECK_INT(fdp_win_send(c, "", 0, NULL, 0), ==, -EINVAL);
	CloseHandle(c);
	CloseHandle(s);
}

/* ---- fdpass.exe ---- */

TEST(cat_copies_files_byte_for_byte)
{
	char a[MAX_PATH], b[MAX_PATH], out[MAX_PATH], *data = malloc(300000), *got;
	const char *args[] = {"cat", a, b, NULL};
	SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
	PROCESS_INFORMATION pi;
	HANDLE f;
	size_t len;

	CHECK(data != NULL);
	for (size_t i = 0; i < 300000; i++)
		data[i] = (char)(i * 7919 % 251); /* every byte value, \r\n and \0 among them */
	tmp_path(a, sizeof(a), "cat-a");
	tmp_path(b, sizeof(b), "cat-b");
	tmp_path(out, sizeof(out), "cat-out");
	write_file(a, data, 200000);
	write_file(b, data + 200000, 100000);
	f = CreateFileA(out, GENERIC_WRITE, 0, &sa, CREATE_ALWAYS, 0, NULL);
	CHECK(f != INVALID_HANDLE_VALUE);
	pi = start("fdpass.exe", args, f, 0);
	CloseHandle(f);
	CHECK_INT(wait_exit(pi.hProcess), ==, 0);
	got = read_file(out, &len);
	CHECK_INT(len, ==, 300000);
	CHECK(memcmp(got, data, len) == 0);
	free(got);
	free(data);
	CHECK(DeleteFileA(a) && DeleteFileA(b) && DeleteFileA(out));
}

TEST(cat_of_a_missing_file_names_it_and_exits_1)
{
	char out[MAX_PATH], *got;
	const char *args[] = {"cat", "no-such-file.txt", NULL};
	SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
	PROCESS_INFORMATION pi;
	HANDLE f;
	size_t len;

	tmp_path(out, sizeof(out), "cat-err");
	f = CreateFileA(out, GENERIC_WRITE, 0, &sa, CREATE_ALWAYS, 0, NULL);
	pi = start("fdpass.exe", args, f, 0);
	CloseHandle(f);
	CHECK_INT(wait_exit(pi.hProcess), ==, 1);
	got = read_file(out, &len);
	got[len] = '\0';
	CHECK(strstr(got, "fdpass cat: no-such-file.txt: no such file") != NULL);
	free(got);
	CHECK(DeleteFileA(out));
}

/* A running fdpass.exe serve, its log read by a thread into a buffer. */
struct server {
	PROCESS_INFORMATION pi;
	HANDLE log_r, reader;
	CRITICAL_SECTION lock;
	char log[1 << 20];
	size_t len;
	unsigned short port;
};

static DWORD WINAPI read_log(LPVOID arg)
{
	struct server *s = arg;
	char buf[4096];
	DWORD n;

	while (ReadFile(s->log_r, buf, sizeof(buf), &n, NULL) && n) {
		EnterCriticalSection(&s->lock);
		if (s->len + n < sizeof(s->log) - 1) {
			memcpy(s->log + s->len, buf, n);
			s->len += n;
			s->log[s->len] = '\0';
		}
		LeaveCriticalSection(&s->lock);
	}
	return 0;
}

/* Wait until the log holds needle; returns a pointer just past it (in a stable log). */
static const char *wait_log(struct server *s, const char *needle)
{
	DWORD start = GetTickCount();

	for (;;) {
		const char *hit;

		EnterCriticalSection(&s->lock);
		hit = strstr(s->log, needle);
		LeaveCriticalSection(&s->lock);
		if (hit)
			return hit + strlen(needle);
		if (GetTickCount() - start > WAIT_MS) {
			fprintf(stderr, "--- log ---\n%s\n--- no '%s' ---\n", s->log, needle);
			exit(1);
		}
		Sleep(5); /* the log arrives on another thread; it is the event we wait for */
	}
}

static DWORD worker_pid(struct server *s, unsigned i, unsigned gen);

static void server_start(struct server *s, const char *workers)
{
	const char *args[] = {"serve", "--listen", "127.0.0.1:0", "--workers", workers, NULL};
	SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
	HANDLE w;

	memset(s, 0, sizeof(*s));
	InitializeCriticalSection(&s->lock);
	CHECK(CreatePipe(&s->log_r, &w, &sa, 0));
	SetHandleInformation(s->log_r, HANDLE_FLAG_INHERIT, 0);
	s->pi = start("fdpass.exe", args, w, CREATE_NEW_PROCESS_GROUP);
	CloseHandle(w);
	s->reader = CreateThread(NULL, 0, read_log, s, 0, NULL);
	s->port = (unsigned short)atoi(wait_log(s, "listening on 127.0.0.1:"));
	for (int i = 0; i < atoi(workers); i++)
		worker_pid(s, (unsigned)i, 1);
}

/* The pid of worker slot i's process of generation gen, from the log, waiting for its line. */
static DWORD worker_pid(struct server *s, unsigned i, unsigned gen)
{
	char needle[64], tail[64];
	DWORD start = GetTickCount();

	snprintf(needle, sizeof(needle), "worker %u pid ", i);
	snprintf(tail, sizeof(tail), " generation %u ready", gen);
	for (;;) {
		const char *p;

		EnterCriticalSection(&s->lock);
		for (p = s->log; (p = strstr(p, needle)); p++) {
			char *end;
			unsigned long pid = strtoul(p + strlen(needle), &end, 10);

			if (strncmp(end, tail, strlen(tail)) == 0) {
				LeaveCriticalSection(&s->lock);
				return (DWORD)pid;
			}
		}
		LeaveCriticalSection(&s->lock);
		if (GetTickCount() - start > WAIT_MS) {
			fprintf(stderr, "--- log ---\n%s\n--- no worker %u generation %u ---\n",
			        s->log, i, gen);
			exit(1);
		}
		Sleep(5);
	}
}

/* Kill the master (its job takes the workers) and collect everything. */
static void server_kill(struct server *s)
{
	TerminateProcess(s->pi.hProcess, 9);
	wait_exit(s->pi.hProcess);
	CHECK_INT(WaitForSingleObject(s->reader, WAIT_MS), ==, WAIT_OBJECT_0);
	CloseHandle(s->reader);
	CloseHandle(s->log_r);
	DeleteCriticalSection(&s->lock);
}

/* One echo round trip on a new connection; returns 0 when the echo is exact. */
static int echo_once(unsigned short port, unsigned n)
{
	struct sockaddr_in sa = {0};
	char msg[64], buf[64];
	int len = snprintf(msg, sizeof(msg), "connection %u\n", n), got = 0, r;
	SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
	DWORD tmo = WAIT_MS;

	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, (const char *)&tmo, sizeof(tmo));
	if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0 || send(c, msg, len, 0) != len) {
		closesocket(c);
		return -1;
	}
	shutdown(c, SD_SEND);
	while ((r = recv(c, buf + got, (int)sizeof(buf) - got, 0)) > 0)
		got += r;
	closesocket(c);
	return got == len && memcmp(buf, msg, (size_t)len) == 0 ? 0 : -1;
}

struct load {
	unsigned short port;
	unsigned from, count;
	volatile LONG failed;
};

static DWORD WINAPI load_thread(LPVOID arg)
{
	struct load *l = arg;

	for (unsigned i = 0; i < l->count; i++)
		if (echo_once(l->port, l->from + i) < 0)
			InterlockedIncrement(&l->failed);
	return 0;
}

TEST(serve_echoes_1000_connections_over_several_workers_and_loses_none)
{
	enum { THREADS = 4, EACH = 250 };
	struct server *s = calloc(1, sizeof(*s));
	struct load l[THREADS];
	HANDLE t[THREADS];
	HANDLE w[3];

	server_start(s, "3");
	for (unsigned i = 0; i < 3; i++)
		CHECK((w[i] = OpenProcess(SYNCHRONIZE, FALSE, worker_pid(s, i, 1))) != NULL);
	for (int i = 0; i < THREADS; i++) {
		l[i] = (struct load){s->port, (unsigned)i * EACH, EACH, 0};
		t[i] = CreateThread(NULL, 0, load_thread, &l[i], 0, NULL);
	}
	for (int i = 0; i < THREADS; i++) {
		CHECK_INT(WaitForSingleObject(t[i], 120000), ==, WAIT_OBJECT_0);
		CloseHandle(t[i]);
		CHECK_INT(l[i].failed, ==, 0);
	}
	server_kill(s);
	/* The master's job took its workers with it. */
	for (unsigned i = 0; i < 3; i++) {
		CHECK_INT(WaitForSingleObject(w[i], WAIT_MS), ==, WAIT_OBJECT_0);
		CloseHandle(w[i]);
	}
	free(s);
}

TEST(serve_loses_no_connection_when_a_worker_is_killed_and_restarts_it)
{
	struct server *s = calloc(1, sizeof(*s));
	HANDLE victim;

	server_start(s, "3");
	for (unsigned n = 0; n < 1000; n++) {
		if (n % 250 == 100) {
			/* Between connections: the next one handed to it finds it dead. */
			victim = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE,
			                     worker_pid(s, 1, n / 250 + 1));
			CHECK(victim != NULL);
			CHECK(TerminateProcess(victim, 9));
			CHECK_INT(WaitForSingleObject(victim, WAIT_MS), ==, WAIT_OBJECT_0);
			CloseHandle(victim);
		}
		CHECK_INT(echo_once(s->port, n), ==, 0);
	}
	wait_log(s, "worker 1 pid");
	wait_log(s, "exited with status 9");
	worker_pid(s, 1, 5); /* restarted four times */
	server_kill(s);
	free(s);
}

TEST(serve_refuses_what_windows_does_not_support_by_name)
{
	char out[MAX_PATH], *got;
	const char *args[] = {"serve", "--exec", "worker.exe", NULL};
	SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
	PROCESS_INFORMATION pi;
	HANDLE f;
	size_t len;

	tmp_path(out, sizeof(out), "serve-err");
	f = CreateFileA(out, GENERIC_WRITE, 0, &sa, CREATE_ALWAYS, 0, NULL);
	pi = start("fdpass.exe", args, f, 0);
	CloseHandle(f);
	CHECK_INT(wait_exit(pi.hProcess), ==, 2);
	got = read_file(out, &len);
	got[len] = '\0';
	CHECK(strstr(got, "fdpass serve: --exec is not supported on Windows yet") != NULL);
	free(got);
	CHECK(DeleteFileA(out));
}

int main(int argc, char **argv)
{
	char *slash;
	int ran = 0;

	GetModuleFileNameA(NULL, self_dir, sizeof(self_dir));
	if ((slash = strrchr(self_dir, '\\')))
		*slash = '\0';
	if (fdp_win_startup() < 0)
		return 1;
	if (argc == 4 && !strcmp(argv[1], "--child"))
		return run_child(argv[2], argv[3]);
	{ /* Winsock and the pipes set up what they keep on first use, before any count. */
		HANDLE a, b;
		SOCKET x, y;

		channel_pair(&a, &b);
		CloseHandle(a);
		CloseHandle(b);
		tcp_pair(&x, &y);
		closesocket(x);
		closesocket(y);
	}
	for (int i = 0; i < win_ntests; i++) {
		DWORD before;

		if (argc > 1 && strcmp(argv[1], win_tests[i].name))
			continue;
		before = handle_count();
		win_tests[i].fn();
		if (handle_count() != before) {
			fprintf(stderr, "%s: handle count %lu before, %lu after\n", win_tests[i].name,
			        before, handle_count());
			return 1;
		}
		printf("ok %s\n", win_tests[i].name);
		ran++;
	}
	if (!ran) {
		fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "(any)");
		return 1;
	}
	return 0;
}
