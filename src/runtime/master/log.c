/*
 * The master's log: the configured callback, at the configured level, never from a forked
 * worker; and a rate limit for warnings that may repeat fast. The program's event callback
 * too, which tells it the same moments in a form it can act on. Every master file logs, so
 * this one calls none of them: it is the bottom of their one-way order (master.h).
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

void fdp__event(struct fdp_master *m, enum fdp_master_event ev)
{
	struct fdp_master_info info = {.size = sizeof(info),
	                               .workers = m->cfg.workers,
	                               .reload_failed = m->reload_failed,
	                               .reloading = m->reloading,
	                               .stopping = m->stopping != 0,
	                               .accepted = m->conns.accepted};

	if (!m->cfg.event || m->in_child)
		return;
	for (unsigned i = 0; i < m->cfg.workers; i++)
		info.ready += m->slots[i].proc && m->slots[i].proc->state == PROC_READY;
	m->cfg.event(m->cfg.event_arg, ev, &info);
}
