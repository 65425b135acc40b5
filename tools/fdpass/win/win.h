/* fdpass.exe: the Windows program (docs/WINDOWS.md). Shared by its verbs. */
#ifndef FDPASS_WIN_TOOL_H
#define FDPASS_WIN_TOOL_H

#include "fdpass_win.h"

#include <stddef.h>

#define FDPASS_EXIT_OK      0
#define FDPASS_EXIT_FAILURE 1
#define FDPASS_EXIT_USAGE   2

int win_cmd_cat(int argc, char **argv);
int win_cmd_cat_child(int argc, char **argv);
int win_cmd_serve(int argc, char **argv);
int win_cmd_worker(int argc, char **argv);

/*
 * Start this program again as `fdpass.exe ARGS...` (args NULL-ended), suspended when
 * suspended is set, inheriting no handle but the standard ones. Returns 0 and fills *pi, or a
 * negative errno.
 */
int win_spawn_self(char *const *args, int suspended, PROCESS_INFORMATION *pi);

/* A pipe name no other process of this machine is using: fdpass-WHAT-PID-COUNTER. */
void win_pipe_name(char *buf, size_t size, const char *what);

/* Text for a negative errno of fdpass_win.h. */
const char *win_strerror(int err);

#endif
