/* The subcommands of the fdpass program: each is main()-shaped and returns an exit status. */
#ifndef FDPASS_COMMANDS_H
#define FDPASS_COMMANDS_H

struct fdpass_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_cat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_status(int argc, char **argv);

/* Exit statuses shared by every subcommand. */
#define FDPASS_EXIT_OK      0
#define FDPASS_EXIT_FAILURE 1 /* the work failed (a file, an address in use, ...) */
#define FDPASS_EXIT_USAGE   2 /* bad command line */

#endif
