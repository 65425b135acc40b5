/*
 * Where `fdpass serve` and `fdpass status` meet when not told: a control socket path that no
 * other user can take first. /tmp is shared, so a fixed name in it can be bound by anyone, and
 * a status reader would then print that user's invented counters. $XDG_RUNTIME_DIR is the
 * user's own (mode 0700, made by the login manager); without it, a directory fdpass-$UID in
 * $TMPDIR (else /tmp) that this user owns, with mode 0700, made if missing and checked either
 * way.
 */
#include "serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is path a directory (not a link to one) owned by this user that only this user can enter? */
static int private_dir(const char *path, char *why, size_t size)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
		snprintf(why, size,
		         "%s is not a directory of yours with mode 0700: another user may have made it;"
		         " refusing to use it (give --control PATH)",
		         path);
		return -EPERM;
	}
	return 0;
}

int fdpass_default_control_path(char *buf, size_t size, int create, char *why, size_t why_size)
{
	const char *dir = getenv("XDG_RUNTIME_DIR"), *tmp = getenv("TMPDIR");
	char own[512];

	if (dir && dir[0] == '/') {
		snprintf(buf, size, "%s/fdpass.sock", dir);
		return 0;
	}
	snprintf(own, sizeof(own), "%s/fdpass-%u", tmp && tmp[0] == '/' ? tmp : "/tmp",
	         (unsigned)getuid());
	if (create && mkdir(own, 0700) < 0 && errno != EEXIST) {
		snprintf(why, why_size, "cannot make %s: %s", own, strerror(errno));
		return -errno;
	}
	snprintf(buf, size, "%s/control.sock", own);
	return private_dir(own, why, why_size);
}
