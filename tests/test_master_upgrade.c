/*
 * The master library's side of a hot upgrade, without `fdpass serve`: what an embedder asks
 * for (upgrades off unless configured, SIGUSR2 then required blocked), and the new master's
 * fdp_upgrade_receive() / fdp_upgrade_take_listener() on a handover written here by hand
 * (docs/PROTOCOL.md, the upgrade socketpair).
 */
#include "harness.h"
#include "fdpass_runtime.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int worker_main(struct fdp_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	return 0;
}

static struct fdp_master_config config(void)
{
	return (struct fdp_master_config){
	        .size = sizeof(struct fdp_master_config), .workers = 1, .worker_main = worker_main};
}

TEST(open_refuses_upgrades_whose_program_is_not_an_absolute_path)
{
	struct fdp_master_config cfg = config();
	char *relative[] = {"fdpass", "serve", NULL}, *none[] = {NULL};
	struct fdp_master *m;

	cfg.upgrade = 1;
	CHECK_INT(fdp_master_open(&m, &cfg), ==, -EINVAL); /* no upgrade_argv */
	cfg.upgrade_argv = none;
	CHECK_INT(fdp_master_open(&m, &cfg), ==, -EINVAL);
	cfg.upgrade_argv = relative;
	CHECK_INT(fdp_master_open(&m, &cfg), ==, -EINVAL);
}

static void block(int with_usr2, sigset_t *old)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGHUP);
	sigaddset(&s, SIGCHLD);
	if (with_usr2)
		sigaddset(&s, SIGUSR2);
	CHECK_OK(sigprocmask(SIG_SETMASK, &s, old));
}

TEST(run_with_upgrades_on_refuses_to_start_when_sigusr2_is_not_blocked)
{
	struct fdp_master_config cfg = config();
	char *argv[] = {"/bin/false", NULL};
	struct fdp_master *m;
	sigset_t old;

	cfg.upgrade = 1;
	cfg.upgrade_argv = argv;
	CHECK_OK(fdp_master_open(&m, &cfg));
	block(0, &old); /* the four signals of a master without upgrades */
	CHECK_INT(fdp_master_run(m), ==, -EINVAL);
	CHECK_OK(sigprocmask(SIG_SETMASK, &old, NULL));
	fdp_master_close(m);
}

/* A handover message as an old master writes it: entries of kind, index, name. */
static void send_handover(int sock, const int *fds, const int *kinds, const char *const *names,
                          size_t n)
{
	unsigned char b[1024];
	size_t off = 4;

	b[0] = 1; /* HANDOVER */
	b[1] = 1; /* version */
	b[2] = (unsigned char)n;
	b[3] = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);

		b[off] = (unsigned char)kinds[i];
		b[off + 1] = 0;
		b[off + 2] = (unsigned char)i;
		b[off + 3] = 0;
		b[off + 4] = (unsigned char)len;
		b[off + 5] = 0;
		memcpy(b + off + 6, names[i], len);
		off += 6 + len;
	}
	CHECK(fdp_msg_send(sock,
	                   &(struct fdp_msg){.data = b, .len = off, .fds = (int *)fds, .nfds = n},
	                   0) == (ssize_t)off);
}

TEST(receive_says_0_when_this_process_was_not_started_by_an_upgrade)
{
	struct fdp_upgrade *u = (struct fdp_upgrade *)1;

	unsetenv("FDPASS_UPGRADE_FD");
	CHECK_INT(fdp_upgrade_receive(&u, 1000), ==, 0);
	CHECK(u == NULL);
	setenv("FDPASS_UPGRADE_FD", "x3", 1);
	CHECK_INT(fdp_upgrade_receive(&u, 1000), ==, -EINVAL);
	CHECK(getenv("FDPASS_UPGRADE_FD") == NULL); /* read once, never left for the workers */
}

TEST(take_listener_finds_a_handed_listener_by_its_name_or_its_address_once)
{
	int sv[2], fds[3], kinds[3] = {1, 1, 2};
	const char *names[3] = {"127.0.0.1:0", "", "/run/x.sock"};
	char env[32], addr[FDP_ADDR_STRLEN];
	struct fdp_upgrade *u;
	int a, b;

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	fds[0] = fdp_listen("127.0.0.1:0", 4);
	fds[1] = fdp_listen("127.0.0.1:0", 4);
	fds[2] = fdp_listen("127.0.0.1:0", 4); /* stands for the control socket */
	CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0);
	CHECK(fdp_addr_local(fds[1], addr, sizeof(addr)) > 0);
	send_handover(sv[0], fds, kinds, names, 3);
	fdp_close_fds(fds, 3); /* the message holds them now */
	snprintf(env, sizeof(env), "%d", sv[1]);
	setenv("FDPASS_UPGRADE_FD", env, 1);
	CHECK_INT(fdp_upgrade_receive(&u, 1000), ==, 1);
	a = fdp_upgrade_take_listener(u, "127.0.0.1:0"); /* by the name it was opened with */
	CHECK(a >= 0);
	CHECK_INT(fdp_upgrade_take_listener(u, "127.0.0.1:0"), ==, -ENOENT); /* taken */
	b = fdp_upgrade_take_listener(u, addr); /* unnamed: by the address it is bound to */
	CHECK(b >= 0);
	CHECK_INT(fdp_upgrade_take_listener(u, "/run/x.sock"), ==, -ENOENT); /* not a listener */
	fdp_upgrade_free(u); /* closes the control socket nobody took, and sv[1] */
	close(a);
	close(b);
	close(sv[0]);
}

TEST(receive_refuses_a_message_that_is_not_a_handover)
{
	int sv[2];
	char env[32];
	struct fdp_upgrade *u;

	CHECK_OK(fdp_socketpair(SOCK_SEQPACKET, sv));
	CHECK_INT(send(sv[0], "\x02\x00\x00\x00", 4, 0), ==, 4);
	snprintf(env, sizeof(env), "%d", sv[1]);
	setenv("FDPASS_UPGRADE_FD", env, 1);
	CHECK_INT(fdp_upgrade_receive(&u, 1000), ==, -EPROTO);
	CHECK(u == NULL); /* sv[1] is closed with it */
	close(sv[0]);
}
