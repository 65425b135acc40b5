/* fdpass: the command-line program. Dispatches to one subcommand per file. */
#include "commands.h"
#include "fdpass.h"

#include <stdio.h>
#include <string.h>

static const struct fdpass_command commands[] = {
        {"cat", "copy files to stdout, opened by a child that passes the descriptors", cmd_cat},
        {"serve", "run the pre-forked server (master hands connections to workers)", cmd_serve},
        {"status", "show a running server's workers and counters", cmd_status},
        {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: fdpass COMMAND [ARGS...]\n"
	             "       fdpass --help | --version\n\n"
	             "Hand open descriptors between processes over Unix-domain sockets.\n\n"
	             "Commands:\n");
	for (const struct fdpass_command *c = commands; c->name; c++)
		fprintf(out, "  %-8s %s\n", c->name, c->summary);
	fprintf(out, "\nRun 'fdpass COMMAND --help' for the options of one command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return FDPASS_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return FDPASS_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("fdpass %s\n", fdp_version());
		return FDPASS_EXIT_OK;
	}
	for (const struct fdpass_command *c = commands; c->name; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->run(argc - 1, argv + 1);
	fprintf(stderr, "fdpass: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return FDPASS_EXIT_USAGE;
}
