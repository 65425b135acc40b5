/*
 * fdpass.exe serve: the seeds' server model on Windows. The master listens on one TCP address,
 * starts N worker processes (this program again, as `__worker`), each connected to it by its
 * own named pipe, accepts every connection and hands it to the next worker in turn: the
 * socket is described for the worker's process with WSADuplicateSocketW() and the worker
 * makes its own from the description and acknowledges it. The master closes its copy only
 * after the acknowledgement, so a worker that dies or hangs before it (killed, crashed) loses
 * nothing: the connection goes to the next worker, and the dead one is restarted.
 *
 * Workers are in a job object that kills them when the master's last handle to it closes, so
 * none outlives a master that is killed. Ctrl-C or Ctrl-Break stops the master: it accepts no
 * more, closes the workers' pipes, and each worker finishes its connections and exits.
 *
 * What the Linux server has and this one does not yet is refused by name (docs/WINDOWS.md).
 */
#include "win.h"

#include <ws2tcpip.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS    64
#define READY_MS       10000 /* a new worker's time to say READY */
#define ACK_MS         2000  /* a worker's time to acknowledge a connection */
#define BACKOFF_MS     100   /* a worker that died within STABLE_MS restarts after this, doubling */
#define BACKOFF_MAX_MS 5000
#define STABLE_MS      1000

struct worker {
	HANDLE proc, pipe; /* NULL when the slot has no process */
	DWORD pid;
	unsigned generation, quick_fails;
	ULONGLONG started, respawn_at;
	unsigned long long served;
};

static struct worker workers[MAX_WORKERS];
static unsigned nworkers = 2, next_rr;
static HANDLE job;
static volatile LONG stop_requested;

static void __attribute__((format(printf, 2, 3))) say(const char *level, const char *fmt, ...)
{
	SYSTEMTIME t;
	va_list ap;

	GetLocalTime(&t);
	fprintf(stderr, "%04u-%02u-%02uT%02u:%02u:%02u.%03u fdpass[%lu] %s: ", t.wYear, t.wMonth,
	        t.wDay, t.wHour, t.wMinute, t.wSecond, t.wMilliseconds, GetCurrentProcessId(), level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static BOOL WINAPI on_console(DWORD event)
{
	if (event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT && event != CTRL_CLOSE_EVENT)
		return FALSE;
	InterlockedExchange(&stop_requested, 1);
	return TRUE;
}

static void drop(struct worker *w)
{
	if (w->pipe)
		CloseHandle(w->pipe);
	if (w->proc)
		CloseHandle(w->proc);
	w->pipe = w->proc = NULL;
	w->pid = 0;
}

/* Start slot i's next process and wait for its READY. */
static int spawn(unsigned i)
{
	struct worker *w = &workers[i];
	char name[128], index[16], gen[16], ready[64];
	char *args[] = {"__worker", name, index, gen, NULL};
	PROCESS_INFORMATION pi;
	struct fdp_win_obj obj;
	size_t nobj;
	DWORD peer = 0;
	int err, n;

	win_pipe_name(name, sizeof(name), "worker");
	snprintf(index, sizeof(index), "%u", i);
	snprintf(gen, sizeof(gen), "%u", w->generation + 1);
	err = fdp_win_pipe_create(name, &w->pipe);
	if (err < 0) {
		w->pipe = NULL;
		return err;
	}
	err = win_spawn_self(args, 1, &pi);
	if (err < 0) {
		drop(w);
		return err;
	}
	w->proc = pi.hProcess;
	w->pid = pi.dwProcessId;
	w->generation++;
	/* In the job before it runs a line: it can never outlive the master. */
	AssignProcessToJobObject(job, pi.hProcess);
	ResumeThread(pi.hThread);
	CloseHandle(pi.hThread);
	w->started = GetTickCount64();
	err = fdp_win_pipe_accept(w->pipe, READY_MS);
	if (err == 0)
		err = fdp_win_peer_pid(w->pipe, &peer);
	if (err == 0 && peer != w->pid)
		err = -EACCES; /* not our child at the other end */
	n = err < 0 ? err : fdp_win_recv(w->pipe, ready, sizeof(ready) - 1, &obj, 1, &nobj, READY_MS);
	if (n >= 0 && nobj) {
		/* A socket it described is ours to close; a handle value is not checked (it could
		 * name any of ours), so it is left alone: a worker sends no objects. */
		if (obj.kind == FDP_WIN_SOCKET)
			closesocket(obj.sock);
		n = -EPROTO;
	}
	if (n >= 5 && memcmp(ready, "READY", 5) == 0) {
		say("info", "worker %u pid %lu generation %u ready", i, w->pid, w->generation);
		return 0;
	}
	say("warn", "worker %u pid %lu generation %u did not start: %s", i, w->pid,
	     w->generation, win_strerror(n < 0 ? n : -EPROTO));
	TerminateProcess(w->proc, 1);
	WaitForSingleObject(w->proc, READY_MS);
	drop(w);
	return n < 0 ? n : -EPROTO;
}

/* Reap the slots whose process has exited, and restart what is due. */
static void supervise(void)
{
	ULONGLONG now = GetTickCount64();

	for (unsigned i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];
		DWORD code = 0;

		if (w->proc && WaitForSingleObject(w->proc, 0) == WAIT_OBJECT_0) {
			GetExitCodeProcess(w->proc, &code);
			w->quick_fails = now - w->started < STABLE_MS ? w->quick_fails + 1 : 0;
			w->respawn_at = now;
			if (w->quick_fails) {
				ULONGLONG d = (ULONGLONG)BACKOFF_MS << (w->quick_fails < 6 ? w->quick_fails - 1 : 5);

				w->respawn_at = now + (d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS);
			}
			say("warn", "worker %u pid %lu exited with status %lu; restarting in %llu ms",
			     i, w->pid, code, w->respawn_at - now);
			drop(w);
		}
		if (!w->proc && now >= w->respawn_at && !stop_requested)
			spawn(i);
	}
}

/* Kill slot i's process (it failed to take a connection); supervise() restarts it. */
static void kill_worker(unsigned i, const char *why)
{
	struct worker *w = &workers[i];

	say("warn", "worker %u pid %lu %s: killing it; the connection goes to another", i,
	     w->pid, why);
	TerminateProcess(w->proc, 1);
	WaitForSingleObject(w->proc, 5000);
}

/*
 * Hand connection c to a worker: to each in turn until one acknowledges it. Returns 0 (the
 * master's copy may close) or -1 (no worker took it).
 */
static int hand(SOCKET c, unsigned long long id, const char *peer)
{
	char msg[128], ack[64];
	int len = snprintf(msg, sizeof(msg), "CONN %llu %s", id, peer);

	for (unsigned attempt = 0; attempt < 2 * nworkers + 2 && !stop_requested; attempt++) {
		struct fdp_win_obj obj = {FDP_WIN_SOCKET, c, NULL}, got;
		unsigned i = next_rr++ % nworkers;
		struct worker *w = &workers[i];
		size_t nobj = 0;
		int n;

		if (!w->proc || WaitForSingleObject(w->proc, 0) == WAIT_OBJECT_0) {
			supervise(); /* reaps it, and restarts it when it may */
			continue;
		}
		n = fdp_win_send(w->pipe, msg, (size_t)len, &obj, 1);
		if (n == 0)
			n = fdp_win_recv(w->pipe, ack, sizeof(ack) - 1, &got, 1, &nobj, ACK_MS);
		if (n >= 0 && nobj) { /* a worker sends no objects (a handle value: see spawn()) */
			if (got.kind == FDP_WIN_SOCKET)
				closesocket(got.sock);
			n = -EPROTO;
		}
		if (n >= 4 && memcmp(ack, "ACK ", 4) == 0) {
			w->served++;
			return 0;
		}
		kill_worker(i, n == -ETIMEDOUT ? "did not acknowledge a connection in time"
		                               : "lost its channel");
	}
	return -1;
}

static int parse_listen(const char *arg, struct sockaddr_in *sa)
{
	const char *colon = strrchr(arg, ':');
	char host[64], *end;
	long port;

	if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(host))
		return -1;
	memcpy(host, arg, (size_t)(colon - arg));
	host[colon - arg] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((unsigned short)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static const char usage_text[] =
        "usage: fdpass serve [--listen HOST:PORT] [--workers N] [--handler echo]\n"
        "\n"
        "Run the pre-forked server on Windows: the master accepts every TCP connection and hands\n"
        "it to the next worker process in turn (WSADuplicateSocketW over the worker's named\n"
        "pipe); a worker that dies is restarted, and a connection it had not acknowledged goes\n"
        "to another.\n"
        "\n"
        "Options:\n"
        "  --listen HOST:PORT  an IPv4 address and port. Default 127.0.0.1:8080. Port 0 picks\n"
        "                      a free port (the log says which).\n"
        "  --workers N         worker processes, 1..64. Default 2.\n"
        "  --handler echo      the built-in handler: echo (the only one on Windows).\n"
        "  --policy round-robin\n"
        "                      the only policy on Windows.\n"
        "  --help              show this help.\n"
        "\n"
        "Ctrl-C or Ctrl-Break stops it. The other options of the Linux server are refused by\n"
        "name: docs/WINDOWS.md lists them.\n";

/* Options of the Linux server that this one does not have yet. */
static const char *const not_yet[] = {
        "--exec", "--control", "--route-key", "--route-map", "--route-timeout",
        "--route-max-bytes", "--route-max-pending", "--route-fail", "--backlog",
        "--drain-timeout", "--start-timeout", "--ack-timeout", "--header-timeout",
        "--idle-timeout", "--max-output", "--log-level", NULL};

static int usage_error(const char *fmt, const char *arg)
{
	fputs("fdpass serve: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'fdpass serve --help' for more information.\n", stderr);
	return FDPASS_EXIT_USAGE;
}

int win_cmd_serve(int argc, char **argv)
{
	const char *listen_at = "127.0.0.1:8080";
	struct sockaddr_in sa;
	int salen = sizeof(sa);
	JOBOBJECT_EXTENDED_LIMIT_INFORMATION lim;
	unsigned long long id = 0;
	SOCKET ls;
	int one = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			return FDPASS_EXIT_OK;
		}
		for (const char *const *n = not_yet; *n; n++)
			if (!strcmp(a, *n) || (!strncmp(a, *n, strlen(*n)) && a[strlen(*n)] == '='))
				return usage_error("%s is not supported on Windows yet (see "
				                   "docs/WINDOWS.md)",
				                   *n);
		if (strcmp(a, "--listen") && strcmp(a, "--workers") && strcmp(a, "--handler") &&
		    strcmp(a, "--policy"))
			return usage_error("unknown option '%s'", a);
		if (!v)
			return usage_error("option '%s' needs a value", a);
		i++;
		if (!strcmp(a, "--listen")) {
			listen_at = v;
		} else if (!strcmp(a, "--workers")) {
			char *end;
			long n = strtol(v, &end, 10);

			if (!*v || *end || n < 1 || n > MAX_WORKERS)
				return usage_error("--workers: '%s' is not a number in 1..64", v);
			nworkers = (unsigned)n;
		} else if (!strcmp(a, "--handler")) {
			if (!strcmp(v, "http"))
				return usage_error("--handler %s is not supported on Windows yet (see "
				                   "docs/WINDOWS.md)",
				                   v);
			if (strcmp(v, "echo"))
				return usage_error("--handler: unknown handler '%s' (echo)", v);
		} else if (strcmp(v, "round-robin")) {
			return usage_error("--policy %s is not supported on Windows yet (see "
			                   "docs/WINDOWS.md)",
			                   v);
		}
	}
	if (parse_listen(listen_at, &sa) < 0)
		return usage_error("--listen: '%s' is not IPv4-ADDRESS:PORT", listen_at);
	ls = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
	                WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	if (ls == INVALID_SOCKET)
		return FDPASS_EXIT_FAILURE;
	setsockopt(ls, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, SOMAXCONN) != 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &salen) != 0) {
		fprintf(stderr, "fdpass serve: cannot listen on %s: %s\n", listen_at,
		        win_strerror(fdp_win_error((DWORD)WSAGetLastError())));
		closesocket(ls);
		return FDPASS_EXIT_FAILURE;
	}
	job = CreateJobObjectA(NULL, NULL);
	memset(&lim, 0, sizeof(lim));
	lim.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
	if (!job || !SetInformationJobObject(job, JobObjectExtendedLimitInformation, &lim,
	                                     sizeof(lim))) {
		fputs("fdpass serve: cannot create the workers' job object\n", stderr);
		closesocket(ls);
		return FDPASS_EXIT_FAILURE;
	}
	SetConsoleCtrlHandler(on_console, TRUE);
	{
		char addr[INET_ADDRSTRLEN] = "?";

		inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof(addr));
		say("info", "listening on %s:%u", addr, ntohs(sa.sin_port));
	}
	for (unsigned i = 0; i < nworkers; i++)
		spawn(i);
	while (!stop_requested) {
		fd_set r;
		struct timeval tv = {0, 100000};
		struct sockaddr_in peer;
		int plen = sizeof(peer);
		char paddr[INET_ADDRSTRLEN + 8] = "?";
		SOCKET c;

		supervise();
		FD_ZERO(&r);
		FD_SET(ls, &r);
		if (select(0, &r, NULL, NULL, &tv) <= 0)
			continue;
		c = accept(ls, (struct sockaddr *)&peer, &plen);
		if (c == INVALID_SOCKET)
			continue;
		inet_ntop(AF_INET, &peer.sin_addr, paddr, INET_ADDRSTRLEN);
		snprintf(paddr + strlen(paddr), 8, ":%u", ntohs(peer.sin_port));
		if (hand(c, ++id, paddr) < 0)
			say("warn", "connection %llu from %s: no worker took it; closed", id, paddr);
		closesocket(c); /* the worker has its own */
	}
	say("info", "stopping: accepted %llu", id);
	closesocket(ls);
	for (unsigned i = 0; i < nworkers; i++) /* end of its channel: it finishes and exits */
		if (workers[i].pipe) {
			CloseHandle(workers[i].pipe);
			workers[i].pipe = NULL;
		}
	for (unsigned i = 0; i < nworkers; i++)
		if (workers[i].proc) {
			if (WaitForSingleObject(workers[i].proc, 10000) != WAIT_OBJECT_0)
				TerminateProcess(workers[i].proc, 1);
			drop(&workers[i]);
		}
	for (unsigned i = 0; i < nworkers; i++)
		say("info", "worker %u served %llu connections", i, workers[i].served);
	CloseHandle(job);
	return FDPASS_EXIT_OK;
}

/* ---- The worker: __worker PIPE INDEX GENERATION ---- */

static volatile LONG active;

static DWORD WINAPI serve_echo(LPVOID arg)
{
	SOCKET s = (SOCKET)(uintptr_t)arg;
	char buf[16384];
	int n;

	while ((n = recv(s, buf, sizeof(buf), 0)) > 0)
		for (int off = 0, w; off < n; off += w)
			if ((w = send(s, buf + off, n - off, 0)) <= 0) {
				n = -1;
				goto out;
			}
out:
	shutdown(s, SD_SEND);
	closesocket(s);
	InterlockedDecrement(&active);
	return 0;
}

int win_cmd_worker(int argc, char **argv)
{
	char ready[64], msg[256];
	HANDLE pipe;
	int err;

	if (argc < 4)
		return FDPASS_EXIT_USAGE;
	err = fdp_win_pipe_connect(argv[1], READY_MS, &pipe);
	if (err < 0)
		return FDPASS_EXIT_FAILURE;
	snprintf(ready, sizeof(ready), "READY %s %s", argv[2], argv[3]);
	if (fdp_win_send(pipe, ready, strlen(ready), NULL, 0) < 0)
		return FDPASS_EXIT_FAILURE;
	for (;;) {
		struct fdp_win_obj obj;
		size_t nobj = 0;
		char ack[64];
		HANDLE t;
		int n = fdp_win_recv(pipe, msg, sizeof(msg) - 1, &obj, 1, &nobj, -1);

		if (n < 0)
			break; /* the master is gone or stopping: finish what we serve */
		msg[n] = '\0';
		if (nobj != 1 || obj.kind != FDP_WIN_SOCKET || strncmp(msg, "CONN ", 5) != 0) {
			if (nobj == 1 && obj.kind == FDP_WIN_HANDLE)
				CloseHandle(obj.handle);
			else if (nobj == 1)
				closesocket(obj.sock);
			break; /* not the protocol: the master is not ours */
		}
		snprintf(ack, sizeof(ack), "ACK %.40s", msg + 5);
		if (fdp_win_send(pipe, ack, strlen(ack), NULL, 0) < 0) {
			closesocket(obj.sock); /* the master has its copy and hands it again */
			break;
		}
		InterlockedIncrement(&active);
		t = CreateThread(NULL, 0, serve_echo, (LPVOID)(uintptr_t)obj.sock, 0, NULL);
		if (t)
			CloseHandle(t);
		else
			serve_echo((LPVOID)(uintptr_t)obj.sock);
	}
	CloseHandle(pipe);
	for (int i = 0; i < 1000 && active > 0; i++) /* at most 10 s for the last ones */
		Sleep(10);
	return FDPASS_EXIT_OK;
}
