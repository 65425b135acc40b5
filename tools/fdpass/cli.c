/*
 * The command-line conventions every fdpass command shares: a bad command line is one line
 * naming what is wrong, then one line pointing at --help (see commands.h).
 */
#include "commands.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int fdpass_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fdpass %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return FDPASS_EXIT_USAGE;
}

/* The long name of the option whose getopt value is val, or NULL. */
static const char *long_name(const struct option *longopts, int val)
{
	for (; longopts && longopts->name; longopts++)
		if (longopts->val == val && !longopts->flag)
			return longopts->name;
	return NULL;
}

int fdpass_getopt_error(const char *verb, int c, char **argv, const struct option *longopts)
{
	const char *word = optind > 0 ? argv[optind - 1] : "";
	const char *name = optopt ? long_name(longopts, optopt) : NULL;
	int len = (int)strcspn(word, "=");

	/*
	 * getopt sets optopt to the option's value when it knows the option (a missing value, a
	 * value given to one that takes none) and to the character of an unknown short option;
	 * an unknown long option leaves it 0.
	 */
	if (strncmp(word, "--", 2) == 0) {
		if (c == ':')
			return fdpass_usage_error(verb, "option '--%s' needs a value",
			                          name ? name : word + 2);
		if (optopt && name && word[len] == '=')
			return fdpass_usage_error(verb, "option '--%s' takes no value", name);
		return fdpass_usage_error(verb, "unknown option '%.*s'", len, word);
	}
	if (c == ':')
		return fdpass_usage_error(verb, "option '-%c' needs a value", optopt);
	return fdpass_usage_error(verb, "unknown option '-%c'", optopt);
}

void fdpass_try_help(const char *verb)
{
	fprintf(stderr, "Try 'fdpass %s%s--help' for more information.\n", verb ? verb : "",
	        verb ? " " : "");
}
