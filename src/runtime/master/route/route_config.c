/*
 * Checking a struct fdp_route_config before a master is made from it, so that a program can
 * tell its user exactly what is wrong (fdp_master_open() can only return -EINVAL).
 */
#include "route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int fdp__route_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int fdp_route_config_check(const struct fdp_route_config *given, unsigned workers, char *err,
                           size_t errlen)
{
	struct fdp_route_config c, *rc = &c;
	struct fdp__route_key k;
	struct fdp__route_map map;
	size_t max;
	int r;

	if (errlen)
		err[0] = '\0';
	if (fdp__config_copy(&c, sizeof(c), given, FDP__ROUTE_CONFIG_SIZE_MIN) < 0)
		return fdp__route_error(err, errlen, "route: a config of %zu bytes, which this library does not know",
		           given->size);
	max = rc->max_bytes ? rc->max_bytes : FDP_ROUTE_MAX_BYTES;
	if (rc->key) {
		r = fdp__route_key_parse(&k, rc->key, err, errlen);
		if (r < 0)
			return r;
	} else if (!rc->key_fn) {
		return fdp__route_error(err, errlen, "route: neither a key spec nor a key callback");
	} else {
		fdp__route_key_callback(&k, rc->key_fn, rc->key_arg);
	}
	if (max > (1u << 24))
		return fdp__route_error(err, errlen, "route: max bytes %zu above the limit of 16 MiB", max);
	if ((k.kind == ROUTE_PREFIX && k.n > max) ||
	    (k.kind == ROUTE_LENGTH_PREFIXED && k.n >= max))
		return fdp__route_error(err, errlen, "route key \"%s\": needs more than the %zu bytes allowed",
		           rc->key, max);
	if (rc->max_pending > 1000000)
		return fdp__route_error(err, errlen, "route: max pending %u above the limit of 1000000",
		           rc->max_pending);
	if (rc->on_fail != FDP_ROUTE_FAIL_CLOSE && rc->on_fail != FDP_ROUTE_FAIL_DEFAULT)
		return fdp__route_error(err, errlen, "route: unknown failure action %d", (int)rc->on_fail);
	if (rc->on_fail == FDP_ROUTE_FAIL_DEFAULT && rc->default_worker >= workers)
		return fdp__route_error(err, errlen, "route: default worker %u out of range (%u workers)",
		           rc->default_worker, workers);
	if (rc->map_path) {
		r = fdp__route_map_load(&map, rc->map_path, workers, k.fold_case, err, errlen);
		if (r < 0)
			return r;
		fdp__route_map_free(&map);
	}
	return 0;
}
