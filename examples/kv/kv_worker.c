/*
 * A sharded key-value server: one shard per worker. Each worker keeps its own keys in memory
 * and knows nothing of the others; the master's route policy sends every command for a key to
 * the worker that owns it, so every GET finds what its SET stored.
 *
 *   fdpass serve --listen 127.0.0.1:9000 --workers 4 --policy route --route-key line:2 \
 *       --exec ./build/examples/kv/kv_worker
 *   printf 'SET fruit apple\n' | nc -q1 127.0.0.1 9000     # STORED 2
 *   printf 'GET fruit\n' | nc -q1 127.0.0.1 9000           # VALUE 2 apple
 *
 * Protocol: one command per connection, one line ("\n" or "\r\n"); tokens separated by blanks.
 *   SET key value   ->  STORED <shard>        (value: the rest of the line)
 *   GET key         ->  VALUE <shard> <value> or MISSING <shard>
 *   anything else   ->  ERROR <shard> <reason>
 * <shard> is the worker index that answered, so a client can see where its key lives.
 */
#include <fdpass_runtime.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 1024
#define LINE_MAX_   4096
#define NBUCKETS    65536

struct client {
	int fd;
	uint64_t id;
	size_t len;
	char line[LINE_MAX_];
};

struct entry {
	char *key, *value;
	struct entry *next;
};

static struct client *clients[MAX_CLIENTS];
static int nclients;
static struct entry *table[NBUCKETS];
static unsigned shard;

static unsigned bucket(const char *key)
{
	unsigned h = 2166136261u;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % NBUCKETS;
}

static struct entry *find(const char *key)
{
	for (struct entry *e = table[bucket(key)]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static int set(const char *key, const char *value)
{
	struct entry *e = find(key);
	char *v = strdup(value);

	if (!v)
		return -1;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || !(e->key = strdup(key))) {
			free(e);
			free(v);
			return -1;
		}
		e->next = table[bucket(key)];
		table[bucket(key)] = e;
	}
	free(e->value);
	e->value = v;
	return 0;
}

/* Answer one command line (without its line end) into out. */
static void execute(char *line, char *out, size_t size)
{
	char *save = NULL, *cmd = strtok_r(line, " \t", &save);
	char *key = cmd ? strtok_r(NULL, " \t", &save) : NULL;
	char *rest = save ? save + strspn(save, " \t") : NULL;
	struct entry *e;

	if (cmd && key && strcmp(cmd, "SET") == 0 && rest && *rest)
		snprintf(out, size, set(key, rest) == 0 ? "STORED %u\n" : "ERROR %u no memory\n",
		         shard);
	else if (cmd && key && strcmp(cmd, "GET") == 0 && !(rest && *rest) && (e = find(key)))
		snprintf(out, size, "VALUE %u %s\n", shard, e->value);
	else if (cmd && key && strcmp(cmd, "GET") == 0 && !(rest && *rest))
		snprintf(out, size, "MISSING %u\n", shard);
	else
		snprintf(out, size, "ERROR %u expected SET key value or GET key\n", shard);
}

static void finish(struct fdp_worker *w, int i)
{
	fdp_worker_done(w, clients[i]->id);
	fdp_worker_flush(w); /* usually the master learns before the client sees the close */
	shutdown(clients[i]->fd, SHUT_WR);
	close(clients[i]->fd);
	free(clients[i]);
	clients[i] = clients[--nclients];
}

/* Read until the line is whole, answer, and return -1 (one command per connection). */
static int serve(struct client *c)
{
	char out[LINE_MAX_ + 64], *nl;
	ssize_t n = read(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	c->line[c->len] = '\0';
	nl = strchr(c->line, '\n');
	if (!nl && c->len < sizeof(c->line) - 1)
		return 0;
	if (nl) {
		*nl = '\0';
		if (nl > c->line && nl[-1] == '\r')
			nl[-1] = '\0';
		execute(c->line, out, sizeof(out));
	} else {
		snprintf(out, sizeof(out), "ERROR %u line too long\n", shard);
	}
	/* A short answer to a fresh socket: the kernel buffer takes it whole. */
	send(c->fd, out, strlen(out), MSG_NOSIGNAL);
	return -1;
}

/* Take the connections waiting (each returned once its acknowledgement has left). */
static int take(struct fdp_worker *w)
{
	for (;;) {
		struct fdp_conn conn;
		int fd = fdp_worker_accept(w, &conn);

		if (fd == -EAGAIN || fd == -ESHUTDOWN)
			return 0;
		if (fd < 0)
			return -1;
		if (nclients == MAX_CLIENTS ||
		    !(clients[nclients] = calloc(1, sizeof(struct client)))) {
			fdp_worker_done(w, conn.id);
			close(fd);
			continue;
		}
		clients[nclients]->fd = fd;
		clients[nclients++]->id = conn.id;
	}
}

int main(void)
{
	static struct pollfd pfd[MAX_CLIENTS + 1];
	struct fdp_worker *w;
	int err = fdp_worker_open_env(&w, 5000);

	if (err < 0) {
		fprintf(stderr, "kv_worker: not started by fdpass serve? %s\n", fdp_strerror(err));
		return 1;
	}
	shard = fdp_worker_index(w);
	if (take(w) < 0)
		return 1;
	while (!fdp_worker_draining(w) || nclients > 0) {
		pfd[0] = (struct pollfd){fdp_worker_fd(w),
		                         POLLIN | (fdp_worker_wants_write(w) ? POLLOUT : 0), 0};
		for (int i = 0; i < nclients; i++)
			pfd[i + 1] = (struct pollfd){clients[i]->fd, POLLIN, 0};
		if (poll(pfd, (nfds_t)nclients + 1, -1) < 0 && errno != EINTR)
			break;
		for (int i = nclients - 1; i >= 0; i--)
			if (pfd[i + 1].revents && serve(clients[i]) < 0)
				finish(w, i);
		if (pfd[0].revents && take(w) < 0) {
			while (nclients > 0) { /* the master is gone: nobody to serve for */
				close(clients[--nclients]->fd);
				free(clients[nclients]);
			}
			break;
		}
		fdp_worker_flush(w); /* the DONE reports; acknowledgements left in accept */
	}
	while (nclients > 0)
		finish(w, nclients - 1);
	fdp_worker_close(w);
	return 0;
}
