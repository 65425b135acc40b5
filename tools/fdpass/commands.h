/* The subcommands of the fdpass program: each is main()-shaped and returns an exit status. */
#ifndef FDPASS_COMMANDS_H
#define FDPASS_COMMANDS_H

#include <getopt.h>

struct fdpass_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_cat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_reload(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);

/* Exit statuses shared by every subcommand. */
#define FDPASS_EXIT_OK      0
#define FDPASS_EXIT_FAILURE 1 /* the work failed (a file, an address in use, ...) */
#define FDPASS_EXIT_USAGE   2 /* bad command line */

/*
 * A bad command line (cli.c), as coreutils reports one: the command prints ONE line saying
 * what is wrong ("fdpass VERB: ...") and returns FDPASS_EXIT_USAGE; main() then adds
 * "Try 'fdpass VERB --help' for more information." The usage text is never printed on an
 * error. fdpass_usage_error() prints the line (a newline is added) and returns the status.
 */
__attribute__((format(printf, 2, 3))) int fdpass_usage_error(const char *verb, const char *fmt,
                                                             ...);

/*
 * What getopt_long() returned for an option it could not take ('?', or ':' when optstring
 * starts with ':', which every command's does), as one line: "unknown option '--frob'",
 * "option '--control' needs a value", "option '--json' takes no value". Returns
 * FDPASS_EXIT_USAGE.
 */
int fdpass_getopt_error(const char *verb, int c, char **argv, const struct option *longopts);

/* The line main() prints after a command returned FDPASS_EXIT_USAGE (verb NULL: fdpass's). */
void fdpass_try_help(const char *verb);

#endif
