/*
 * The master's log: the configured callback, at the configured level, never from a forked
 * worker; a rate limit for warnings that may repeat fast; the workers' output lines (output.c
 * reads them); and the program's event callback, which tells it the same moments in a form
 * it can act on. Every master file logs, so this one calls none of them: it is the bottom of
 * their one-way order (master.h).
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

/*
 * A line of a worker's output: to cfg.log_output with its fields, else to cfg.log as
 * "worker N pid P: LINE" (a NUL byte in it shown as a space: the message is a C string).
 */
void fdp__log_output(struct fdp_master *m, enum fdp_log_level level,
                     const struct fdp_output_line *line)
{
	char buf[FDP_OUTPUT_LINE_MAX + 64];
	int n;

	if (level > m->cfg.log_level || m->in_child)
		return;
	if (m->cfg.log_output) {
		m->cfg.log_output(m->cfg.log_arg, level, line);
		return;
	}
	if (!m->cfg.log)
		return;
	n = snprintf(buf, sizeof(buf), "worker %u pid %d: ", line->worker, (int)line->pid);
	for (size_t i = 0; i < line->len && (size_t)n + 1 < sizeof(buf); i++)
		buf[n++] = line->data[i] ? line->data[i] : ' ';
	buf[n] = '\0';
	m->cfg.log(m->cfg.log_arg, level, buf);
}

void fdp__event(struct fdp_master *m, enum fdp_master_event ev)
{
	struct fdp_master_info info = {.size = sizeof(info),
	                               .workers = m->cfg.workers,
	                               .reload_failed = m->reload_failed,
	                               .reloading = m->reloading,
	                               .stopping = fdp__stop_begun(m),
	                               .accepted = m->conns.accepted};

	if (!m->cfg.event || m->in_child)
		return;
	for (unsigned i = 0; i < m->cfg.workers; i++)
		info.ready += m->slots[i].proc && m->slots[i].proc->state == PROC_READY;
	m->cfg.event(m->cfg.event_arg, ev, &info);
}
