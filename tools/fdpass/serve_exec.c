/* How `fdpass serve --exec COMMAND` becomes the argv of each worker process. */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * --exec COMMAND with none of these characters is split on blanks (spaces, tabs) and executed
 * directly; with any of them it is a shell command: quotes and escapes (" ' \\), expansion
 * ($ ` ~), globbing (* ? [ ]), redirection (< >), pipes and lists (| & ; newline), grouping
 * (( ) { }), comments (#), assignments (=) and negation (!); and so is one whose first word
 * is a shell word that is no program (shell_word(): exit, cd, ...). docs/SERVE.md says so too.
 */
#define EXEC_SHELL_CHARS "\"'\\$`~*?[]<>|&;\n(){}#=!"
/* A shell command without these is one simple command, which `exec` can replace the shell by. */
#define EXEC_LIST_CHARS "|&;\n()"

/* Shell words that are not programs: executing WORD, or `exec WORD`, fails where WORD works. */
static int shell_word(const char *cmd)
{
	static const char *const words[] = {
	        "!",      "{",       ".",        ":",     "alias", "break", "case",
	        "cd",     "command", "continue", "eval",  "exec",  "exit",  "export",
	        "for",    "getopts", "hash",     "if",    "local", "read",  "readonly",
	        "return", "set",     "shift",    "times", "trap",  "type",  "ulimit",
	        "umask",  "unalias", "unset",    "until", "wait",  "while"};
	size_t len = strcspn(cmd, " \t");

	if (memchr(cmd, '=', len)) /* an assignment: `exec` would take it for the program */
		return 1;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == len && strncmp(cmd, words[i], len) == 0)
			return 1;
	return 0;
}

/*
 * The argv that runs --exec COMMAND as the worker process itself, so that the pid the master
 * shows, signals and reaps is the program's, not a shell's: split on blanks when no shell is
 * needed, else `/bin/sh -c 'exec COMMAND'` when COMMAND is one simple command (the shell
 * replaces itself with the program), else `/bin/sh -c COMMAND` as written (a list: its own
 * last `exec` makes the program the worker). One allocation; NULL if out of memory.
 */
char **fdpass_exec_argv(const char *cmd)
{
	/* At most len / 2 + 1 words and their NULL, or the shell's 4; then the text, "exec ". */
	size_t len, nptr, n = 0;
	char **argv, *buf;

	cmd += strspn(cmd, " \t"); /* before len: the copies below are of what follows */
	len = strlen(cmd);
	nptr = len / 2 + 4;
	argv = malloc(nptr * sizeof(*argv) + len + 6);
	if (!argv)
		return NULL;
	buf = (char *)(argv + nptr);
	if (strpbrk(cmd, EXEC_SHELL_CHARS) || shell_word(cmd)) {
		snprintf(buf, len + 6, "%s%s",
		         strpbrk(cmd, EXEC_LIST_CHARS) || shell_word(cmd) ? "" : "exec ", cmd);
		argv[0] = "/bin/sh";
		argv[1] = "-c";
		argv[2] = buf;
		argv[3] = NULL;
		return argv;
	}
	memcpy(buf, cmd, len + 1);
	for (char *w = strtok(buf, " \t"); w; w = strtok(NULL, " \t"))
		argv[n++] = w;
	argv[n] = NULL;
	return argv;
}

