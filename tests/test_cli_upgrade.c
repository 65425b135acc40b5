/*
 * fdpass upgrade against a real server, and what a hot upgrade does to --pid-file: the old
 * master writes the new one's pid once it is ready; a rolled back upgrade leaves the file
 * alone. The new master is the old one's child, not this test's: the test is a child
 * subreaper, so once the old master has exited the new one is this process's child.
 */
#include "test_serve_util.h"

#include <sys/stat.h>

/* The pid a pid file holds, or 0 when it is missing. */
static pid_t pid_in(const char *path)
{
	FILE *f = fopen(path, "re");
	int pid = 0;

	if (!f)
		return 0;
	CHECK_INT(fscanf(f, "%d", &pid), ==, 1);
	fclose(f);
	return (pid_t)pid;
}

TEST(upgrade_exits_0_and_the_pid_file_names_the_new_master_from_then_on)
{
	char pidfile[300], want[200], *out, *err;
	const char *args[] = {"--workers", "1", "--pid-file", pidfile, NULL};
	const char *upgrade[] = {"upgrade", "--control", NULL, NULL};
	const char *stop[] = {"stop", "--wait", "--control", NULL, NULL};
	struct server s;
	int newpid = 0;

	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	snprintf(pidfile, sizeof(pidfile), "%s/fdpass.pid", fdp_test_tmpdir());
	server_start_argv(&s, args, 0);
	CHECK_INT(pid_in(pidfile), ==, s.pid);
	upgrade[2] = s.control;
	CHECK_INT(run_tool(upgrade, &out, &err), ==, 0);
	CHECK(sscanf(out, "upgraded: new master pid %d;", &newpid) == 1 && newpid != s.pid);
	snprintf(want, sizeof(want), "upgraded: new master pid %d; this one (pid %d) drains",
	         newpid, (int)s.pid);
	CHECK(strncmp(out, want, strlen(want)) == 0);
	CHECK_INT(strlen(err), ==, 0);
	free(out);
	free(err);
	/* Written by the old master before it answered, and left by it at its exit. */
	CHECK_INT(pid_in(pidfile), ==, newpid);
	CHECK_INT(fdp_test_wait(s.pid), ==, 0);
	CHECK_INT(pid_in(pidfile), ==, newpid);
	/* The new master (not fdpass stop's child) stops, and removes the file it holds. */
	stop[3] = s.control;
	CHECK_INT(run_tool(stop, &out, &err), ==, 0);
	CHECK(strcmp(out, "stopped\n") == 0);
	free(out);
	free(err);
	CHECK_INT(access(pidfile, F_OK), ==, -1);
	CHECK_INT(fdp_test_wait(newpid), ==, 0);
	while (server_read_log(&s, 10000) > 0)
		;
	close(s.err);
	server_free(&s);
}

TEST(a_rolled_back_upgrade_exits_1_and_leaves_the_pid_file_naming_the_old_master)
{
	char pidfile[300], script[300], *out, *err;
	const char *args[] = {"--workers",        "1",    "--pid-file", pidfile,
	                      "--upgrade-binary", script, NULL};
	const char *upgrade[] = {"upgrade", "--control", NULL, NULL};
	struct server s;
	FILE *f;

	snprintf(pidfile, sizeof(pidfile), "%s/fdpass.pid", fdp_test_tmpdir());
	snprintf(script, sizeof(script), "%s/new-master", fdp_test_tmpdir());
	CHECK((f = fopen(script, "we")) != NULL);
	fputs("#!/bin/sh\nexit 3\n", f); /* a new master that exits before it is ready */
	CHECK_OK(fclose(f));
	CHECK_OK(chmod(script, 0755));
	server_start_argv(&s, args, 0);
	upgrade[2] = s.control;
	CHECK_INT(run_tool(upgrade, &out, &err), ==, 1);
	CHECK_INT(strlen(out), ==, 0);
	CHECK(strcmp(err, "fdpass upgrade: upgrade: the new master exited before it was ready; "
	                  "this master serves on (see the server's log)\n") == 0);
	free(out);
	free(err);
	CHECK_INT(pid_in(pidfile), ==, s.pid);
	CHECK_INT(server_stop(&s), ==, 0);
	CHECK_INT(access(pidfile, F_OK), ==, -1);
	server_free(&s);
}
