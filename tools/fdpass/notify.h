/*
 * Telling a service manager what fdpass serve is doing: systemd's notification protocol
 * (sd_notify(3): datagrams of "KEY=VALUE" lines to $NOTIFY_SOCKET), written against the
 * protocol without libsystemd, sent with fdpass's message layer. One per process: the master.
 * Every send is non-blocking; a message the socket cannot take now is retried at the next
 * tick, never waited for. docs/OPERATIONS.md lists what is sent when.
 */
#ifndef FDPASS_NOTIFY_H
#define FDPASS_NOTIFY_H

#include "fdpass_runtime.h"

#include <stddef.h>
#include <sys/types.h>

/*
 * Read NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and FDSTORE and unset them (always: no worker
 * sees them), and open the socket (non-blocking, close-on-exec; the master's own, closed in
 * every worker). log (may be NULL) gets what went wrong, at FDP_LOG_WARN. Returns 1 when
 * notifications are on, 0 when NOTIFY_SOCKET is not set.
 */
int fdpass_notify_open(void (*log)(void *arg, enum fdp_log_level level, const char *msg),
                       void *log_arg);

/* How often the master must tick for fdpass_notify_event(): half the watchdog period, else 1 s. */
unsigned fdpass_notify_tick_ms(void);

/* The master's event callback (struct fdp_master_config event): READY, RELOADING, ... */
void fdpass_notify_event(void *arg, enum fdp_master_event ev, const struct fdp_master_info *info);

/*
 * Send each listener to the service manager's descriptor store (FDSTORE=1, FDNAME=names[i]),
 * so that a restart after a crash gets them back in LISTEN_FDS with those names. names[i] are
 * made valid (printable ASCII, no ':', at most 255 bytes) here. Returns non-zero when the
 * store is known to be enabled ($FDSTORE, systemd 254 and later), so systemd keeps the
 * sockets after this process: the master should treat them as shared.
 */
int fdpass_notify_fdstore(const int *fds, const char *const *names, size_t n);

/*
 * MAINPID=pid: the service's main process is now pid (a hot upgrade's new master, told by the
 * old one before it exits). Returns 0 or a negative errno (-ENOTCONN: notifications are off).
 */
int fdpass_notify_mainpid(pid_t pid);

/*
 * What NOTIFY_SOCKET and WATCHDOG_USEC were (NULL when unset): a successor master started by
 * this one (a hot upgrade) needs them in its environment, with its own WATCHDOG_PID.
 */
const char *fdpass_notify_saved(const char *name);

/*
 * The same as environment entries, NULL-ended: "NOTIFY_SOCKET=...", and "WATCHDOG_USEC=..."
 * when set (no WATCHDOG_PID: the watchdog is the successor's to feed once it is the main
 * process). For the upgrade's new master (struct fdp_master_config upgrade_env).
 */
char *const *fdpass_notify_env(void);

/* Close the socket (at exit). */
void fdpass_notify_close(void);

#endif
