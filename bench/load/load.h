/*
 * fdp-load: a closed-loop connection-rate client. Internal header shared by its files.
 */
#ifndef FDP_LOAD_H
#define FDP_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Latency histogram: 64 linear sub-buckets per power of two, so any value is within 1/64. */
#define LOAD_HIST_SUB_BITS 6
#define LOAD_HIST_SUB      (1u << LOAD_HIST_SUB_BITS)
#define LOAD_HIST_OCTAVES  42 /* 2^41 ns is over half an hour: far past any deadline */
#define LOAD_HIST_BUCKETS  (LOAD_HIST_OCTAVES * LOAD_HIST_SUB)

/* HTTP bodies that say "worker=N" are counted per N, for N below this. */
#define LOAD_MAX_TAGS 256

enum load_check {
	LOAD_CHECK_ECHO, /* response must equal the request, then EOF */
	LOAD_CHECK_HTTP, /* complete HTTP/1.x response with Content-Length, then EOF */
};

enum load_err {
	LOAD_ERR_REFUSED, /* connect refused (or a Unix listen queue full) */
	LOAD_ERR_RESET,   /* connection reset / broken pipe */
	LOAD_ERR_TIMEOUT, /* no complete response within the per-request timeout */
	LOAD_ERR_SHORT,   /* EOF before the full response */
	LOAD_ERR_WRONG,   /* response complete but not what was expected */
	LOAD_ERR_PORTS,   /* EADDRNOTAVAIL: out of local ports (see README) */
	LOAD_ERR_OTHER,   /* any other system error */
	LOAD_ERR_COUNT
};

struct load_target {
	struct sockaddr_storage addr;
	socklen_t len;
	char text[128];
};

struct load_hist {
	uint64_t buckets[LOAD_HIST_BUCKETS];
	uint64_t count;
	uint64_t max;
};

struct load_stats {
	uint64_t completed;
	uint64_t late; /* --rate: connections started after they were due (no slot free) */
	uint64_t errors[LOAD_ERR_COUNT];
	uint64_t tags[LOAD_MAX_TAGS];
	uint64_t tagged;
	struct load_hist lat; /* nanoseconds, connect start to EOF */
	/* With --heavy: the same, split by kind of request (lat holds both). */
	uint64_t heavy;             /* completed heavy requests */
	struct load_hist lat_light; /* the requests for --path */
	struct load_hist lat_heavy; /* the requests for --heavy's path */
};

/* What every thread needs; read-only once the run starts. */
struct load_config {
	struct load_target target;
	enum load_check check;
	unsigned concurrency;
	unsigned threads;
	size_t size;
	double duration_s; /* 0: run by count */
	uint64_t count;    /* 0: run by duration */
	double timeout_s;
	double max_time_s;
	/* --rate: open loop, this many new connections per second over every thread, each
	 * timed from when it was due (not when a slot came free); 0: the closed loop. */
	double rate;
	int json;
	unsigned char *request;
	size_t request_len;
	size_t response_cap; /* the largest valid response; one byte more is a wrong one */
	/* http: the request target (NULL: "/"), and --heavy PCT:PATH: that share of the
	 * connections, spread evenly, requests heavy_path instead. */
	const char *path;
	const char *heavy_path;  /* NULL: no heavy requests */
	unsigned heavy_permille; /* heavy requests per thousand connections, 1..1000 */
	unsigned char *heavy_request;
	size_t heavy_request_len;
	/* --keys N: the light requests take N targets in turn, path followed by 0 .. N-1, each
	 * built once (keyed[i], keyed_len[i]); 0: the one request above. */
	unsigned keys;
	unsigned char **keyed;
	size_t *keyed_len;
};

/* One thread's share of the work. */
struct load_job {
	const struct load_config *cfg;
	unsigned concurrency;
	uint64_t count;
	double rate;       /* this thread's share of cfg->rate */
	uint64_t start_ns; /* set by the caller: every thread measures from one instant */
	uint64_t end_ns;   /* set by the job: when its last connection ended */
	struct load_stats stats;
	int error; /* a setup failure (-errno), not a per-connection error */
};

uint64_t load_now_ns(void);

void load_hist_add(struct load_hist *h, uint64_t v);
void load_hist_merge(struct load_hist *into, const struct load_hist *from);
uint64_t load_hist_percentile(const struct load_hist *h, double p);

int load_target_parse(struct load_target *t, const char *text);

int load_request_build(struct load_config *cfg);
void load_request_free(struct load_config *cfg);
int load_response_check(const struct load_config *cfg, const unsigned char *buf, size_t len,
                        int *tag);

void *load_job_run(void *arg);

const char *load_err_name(enum load_err e);

#endif
