/* fdpass: the command-line program. Dispatches to one subcommand per file. */
#include "commands.h"
#include "fdpass.h"

#include <stdio.h>
#include <string.h>

static const struct fdpass_command commands[] = {
        {"cat", "copy files to stdout, opened by a child that passes the descriptors", cmd_cat},
        {"serve", "run the pre-forked server (master hands connections to workers)", cmd_serve},
        {"status", "show a running server's workers and counters", cmd_status},
        {"reload", "replace a running server's workers, and wait until it is done", cmd_reload},
        {"stop", "stop a running server (drain; --wait: until it has exited)", cmd_stop},
        {"upgrade", "replace a running server's master by a new one (hot upgrade)", cmd_upgrade},
        {NULL, NULL, NULL},
};

static void usage(void)
{
	printf("usage: fdpass COMMAND [ARGS...]\n"
	       "       fdpass help [COMMAND]\n"
	       "       fdpass --help | --version\n\n"
	       "Hand open descriptors between processes over Unix-domain sockets.\n\n"
	       "Commands:\n");
	for (const struct fdpass_command *c = commands; c->name; c++)
		printf("  %-8s %s\n", c->name, c->summary);
	printf("\nRun 'fdpass help COMMAND' or 'fdpass COMMAND --help' for the options of one\n"
	       "command.\n\n"
	       "Exit status: 0 done, 1 failure, 2 bad command line (each command's help says\n"
	       "more); a bad command line is one line saying what is wrong and one pointing "
	       "here.\n");
}

static const struct fdpass_command *find(const char *name)
{
	for (const struct fdpass_command *c = commands; c->name; c++)
		if (strcmp(name, c->name) == 0)
			return c;
	return NULL;
}

/* Run a command; a bad command line it reported in one line gets the line pointing at help. */
static int run(const struct fdpass_command *c, int argc, char **argv)
{
	int status = c->run(argc, argv);

	if (status == FDPASS_EXIT_USAGE) {
		fflush(stdout);
		fdpass_try_help(c->name);
	}
	return status;
}

/* fdpass help [COMMAND]: this usage, or the command's own --help. */
static int help(int argc, char **argv)
{
	const struct fdpass_command *c;
	char *args[] = {NULL, "--help", NULL};

	if (argc < 3 || strcmp(argv[2], "help") == 0) {
		usage();
		return FDPASS_EXIT_OK;
	}
	if (argc > 3 || !(c = find(argv[2]))) {
		if (argc > 3)
			fprintf(stderr, "fdpass help: unexpected argument '%s'\n", argv[3]);
		else
			fprintf(stderr, "fdpass help: unknown command '%s'\n", argv[2]);
		fdpass_try_help(NULL);
		return FDPASS_EXIT_USAGE;
	}
	args[0] = (char *)c->name;
	return run(c, 2, args);
}

int main(int argc, char **argv)
{
	const struct fdpass_command *c;

	if (argc < 2) {
		fprintf(stderr, "fdpass: missing command\n");
		fdpass_try_help(NULL);
		return FDPASS_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage();
		return FDPASS_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("fdpass %s\n", fdp_version());
		return FDPASS_EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0)
		return help(argc, argv);
	if ((c = find(argv[1])))
		return run(c, argc - 1, argv + 1);
	if (argv[1][0] == '-' && argv[1][1])
		fprintf(stderr, "fdpass: unknown option '%.*s'\n", (int)strcspn(argv[1], "="),
		        argv[1]);
	else
		fprintf(stderr, "fdpass: unknown command '%s'\n", argv[1]);
	fdpass_try_help(NULL);
	return FDPASS_EXIT_USAGE;
}
