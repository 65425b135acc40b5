/*
 * The master's log: the configured callback, at the configured level, never from a forked
 * worker; and a rate limit for warnings that may repeat fast. Every master file logs, so this
 * one calls none of them: it is the bottom of their one-way order (master.h).
 */
#include "master.h"

#include <stdarg.h>
#include <stdio.h>

void fdp__log(struct fdp_master *m, enum fdp_log_level level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!m->cfg.log || level > m->cfg.log_level || m->in_child)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	m->cfg.log(m->cfg.log_arg, level, buf);
}

void fdp__log_limited(struct fdp_master *m, struct fdp__ratelimit *rl, enum fdp_log_level level,
                      const char *fmt, ...)
{
	long long now = fdp__now_ms();
	char buf[400];
	va_list ap;

	if (now < rl->next_ms) {
		rl->held++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (rl->held)
		fdp__log(m, level, "%s (and %u more like it in the last %d s)", buf, rl->held,
		         FDP__LOG_INTERVAL_MS / 1000);
	else
		fdp__log(m, level, "%s", buf);
	rl->held = 0;
	rl->next_ms = now + FDP__LOG_INTERVAL_MS;
}
