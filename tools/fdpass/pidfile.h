/*
 * `fdpass serve --pid-file PATH` (pidfile.c): the master's pid in a file, "PID\n", written
 * whole or not at all (a temporary file in the same directory, renamed over PATH), so a reader
 * never sees half a number. At a hot upgrade the old master rewrites it with the new one's pid.
 */
#ifndef FDPASS_PIDFILE_H
#define FDPASS_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * May a server that writes path start? 0 when path is missing, or names no live process, or a
 * live one that is not fdpass (a stale file, whose pid was reused), or this process; -EEXIST
 * when it names a live fdpass (why says which pid); another negative errno when path cannot be
 * read (why says so). A hot upgrade's new master does not ask (the file names the old master,
 * alive) and does not write: the old master writes the new one's pid once it is ready
 * (fdp_master_config.upgrade_ready), so a new master that fails leaves the file as it was.
 */
int fdpass_pidfile_check(const char *path, char *why, size_t why_size);

/* Is pid a live process of this program's name (fdpass)? 1 or 0. */
int fdpass_pid_is_fdpass(pid_t pid);

/* Write pid into path atomically (mode 0644). 0, or a negative errno with the reason in why. */
int fdpass_pidfile_write(const char *path, pid_t pid, char *why, size_t why_size);

/*
 * Remove path if it still holds pid (a new master that took over has written its own: the
 * file is then its to remove). 1 removed, 0 not ours or missing, or a negative errno.
 */
int fdpass_pidfile_remove(const char *path, pid_t pid);

#endif
