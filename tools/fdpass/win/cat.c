/*
 * fdpass.exe cat FILE...: the textbook demonstration on Windows. A child process (this program
 * again, as `__cat-child`) opens each file and hands the open handle to its parent with
 * DuplicateHandle() into the parent's process (whose id the child reads from the pipe); the
 * parent copies each file to stdout through the handle it was given, and closes it.
 */
#include "win.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 30000

static int copy(HANDLE in, HANDLE out)
{
	static char buf[65536];

	for (;;) {
		DWORD n = 0, w = 0;

		if (!ReadFile(in, buf, sizeof(buf), &n, NULL)) {
			DWORD e = GetLastError();

			return e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF ? 0 : fdp_win_error(e);
		}
		if (n == 0)
			return 0;
		for (DWORD off = 0; off < n; off += w)
			if (!WriteFile(out, buf + off, n - off, &w, NULL))
				return fdp_win_error(GetLastError());
	}
}

int win_cmd_cat(int argc, char **argv)
{
	char name[128], **args;
	PROCESS_INFORMATION pi;
	HANDLE pipe, out = GetStdHandle(STD_OUTPUT_HANDLE);
	DWORD peer = 0, code = 1;
	int status = FDPASS_EXIT_OK, err;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		puts("usage: fdpass cat FILE...\n\n"
		     "Copy each FILE to standard output. A child process opens the files and hands\n"
		     "each open handle to this one (DuplicateHandle into this process), which reads\n"
		     "it. Exit status: 0 every file copied, 1 one could not be, 2 bad command line.");
		return FDPASS_EXIT_OK;
	}
	if (argc < 2) {
		fputs("fdpass cat: no file given\nTry 'fdpass cat --help' for more information.\n",
		      stderr);
		return FDPASS_EXIT_USAGE;
	}
	args = calloc((size_t)argc + 2, sizeof(*args));
	if (!args)
		return FDPASS_EXIT_FAILURE;
	win_pipe_name(name, sizeof(name), "cat");
	args[0] = "__cat-child";
	args[1] = name;
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	if ((err = fdp_win_pipe_create(name, &pipe)) < 0) {
		fprintf(stderr, "fdpass cat: cannot create the pipe: %s\n", win_strerror(err));
		free(args);
		return FDPASS_EXIT_FAILURE;
	}
	err = win_spawn_self(args, 0, &pi);
	free(args);
	if (err < 0) {
		fprintf(stderr, "fdpass cat: cannot start the child: %s\n", win_strerror(err));
		CloseHandle(pipe);
		return FDPASS_EXIT_FAILURE;
	}
	CloseHandle(pi.hThread);
	err = fdp_win_pipe_accept(pipe, WAIT_MS);
	if (err == 0)
		err = fdp_win_peer_pid(pipe, &peer);
	if (err == 0 && peer != pi.dwProcessId)
		err = -EACCES; /* someone else connected first: hand it nothing, trust nothing */
	for (int i = 1; err == 0 && i < argc; i++) {
		struct fdp_win_obj obj;
		size_t nobj = 0;
		char msg[512];
		int n = fdp_win_recv(pipe, msg, sizeof(msg) - 1, &obj, 1, &nobj, WAIT_MS);

		if (n < 0) {
			err = n;
			break;
		}
		msg[n] = '\0';
		if (nobj == 1 && obj.kind == FDP_WIN_HANDLE) {
			int e = copy(obj.handle, out);

			CloseHandle(obj.handle);
			if (e < 0) {
				fprintf(stderr, "fdpass cat: %s: %s\n", argv[i], win_strerror(e));
				status = FDPASS_EXIT_FAILURE;
			}
		} else {
			if (nobj == 1)
				closesocket(obj.sock); /* not what a file is */
			fprintf(stderr, "fdpass cat: %s: %s\n", argv[i], n ? msg : "no handle sent");
			status = FDPASS_EXIT_FAILURE;
		}
	}
	if (err < 0) {
		fprintf(stderr, "fdpass cat: the child's channel failed: %s\n", win_strerror(err));
		status = FDPASS_EXIT_FAILURE;
		TerminateProcess(pi.hProcess, 1);
	}
	CloseHandle(pipe);
	WaitForSingleObject(pi.hProcess, WAIT_MS);
	if (!GetExitCodeProcess(pi.hProcess, &code) || (code != 0 && status == FDPASS_EXIT_OK)) {
		fprintf(stderr, "fdpass cat: the child exited with status %lu\n", code);
		status = FDPASS_EXIT_FAILURE;
	}
	CloseHandle(pi.hProcess);
	return status;
}

/* __cat-child PIPE FILE...: open each file and hand its handle to the parent. */
int win_cmd_cat_child(int argc, char **argv)
{
	HANDLE pipe;
	int err;

	if (argc < 2)
		return FDPASS_EXIT_USAGE;
	err = fdp_win_pipe_connect(argv[1], WAIT_MS, &pipe);
	if (err < 0)
		return FDPASS_EXIT_FAILURE;
	for (int i = 2; i < argc && err == 0; i++) {
		HANDLE h = CreateFileA(argv[i], GENERIC_READ,
		                       FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
		                       OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);

		if (h == INVALID_HANDLE_VALUE) {
			const char *why = win_strerror(fdp_win_error(GetLastError()));

			err = fdp_win_send(pipe, why, strlen(why), NULL, 0);
		} else {
			struct fdp_win_obj obj = {FDP_WIN_HANDLE, INVALID_SOCKET, h};

			err = fdp_win_send(pipe, "", 0, &obj, 1);
			CloseHandle(h); /* the parent has its own now */
		}
	}
	CloseHandle(pipe);
	return err < 0 ? FDPASS_EXIT_FAILURE : FDPASS_EXIT_OK;
}
