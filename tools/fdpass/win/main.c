/* fdpass.exe: the Windows program. Its verbs show the mechanism of fdpass_win.h at work. */
#include "win.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
	fputs("usage: fdpass COMMAND [ARGS...]\n"
	      "       fdpass --help | --version\n\n"
	      "Hand open sockets and files between processes (Windows: WSADuplicateSocketW and\n"
	      "DuplicateHandle over a named pipe).\n\n"
	      "Commands:\n"
	      "  cat      copy files to stdout, opened by a child that passes the handles\n"
	      "  serve    run the pre-forked server (master hands connections to workers)\n\n"
	      "Run 'fdpass COMMAND --help' for the options of one command. docs/WINDOWS.md says\n"
	      "what the Windows program does not do yet.\n",
	      out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return FDPASS_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return FDPASS_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("fdpass (windows) " FDPASS_VERSION "\n");
		return FDPASS_EXIT_OK;
	}
	if (fdp_win_startup() < 0) {
		fputs("fdpass: cannot start Winsock\n", stderr);
		return FDPASS_EXIT_FAILURE;
	}
	if (!strcmp(argv[1], "cat"))
		return win_cmd_cat(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return win_cmd_serve(argc - 1, argv + 1);
	/* The halves this program starts of itself; not for people to type. */
	if (!strcmp(argv[1], "__cat-child"))
		return win_cmd_cat_child(argc - 1, argv + 1);
	if (!strcmp(argv[1], "__worker"))
		return win_cmd_worker(argc - 1, argv + 1);
	fprintf(stderr, "fdpass: unknown command '%s'\nTry 'fdpass --help' for more information.\n",
	        argv[1]);
	return FDPASS_EXIT_USAGE;
}
