/*
 * fdp-load: a closed-loop connection-rate client for loopback servers. Each of -c connection
 * slots connects, sends one request, reads the whole response until the server closes, checks
 * it, and starts over, for -d seconds or -n connections in all. Prints connections per second,
 * latency percentiles and errors by kind; exits 0 when every connection succeeded, 1 when any
 * failed, 2 on a bad command line.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

#define LOAD_MAX_CONCURRENCY 60000
#define LOAD_MAX_THREADS     64
#define LOAD_MAX_KEYS        65536

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: fdp-load [options] TARGET\n"
	        "\n"
	        "A closed-loop client: every connection slot connects, sends one request, reads "
	        "the\n"
	        "response until the server closes, checks it, closes, and starts over. With\n"
	        "--rate, an open loop: connections start at a fixed rate instead.\n"
	        "\n"
	        "TARGET is HOST:PORT (127.x.y.z or localhost), [::1]:PORT or unix:PATH; loopback "
	        "only.\n"
	        "\n"
	        "  -c, --concurrency N   connection slots in flight at once (default 16)\n"
	        "  -t, --threads N       client threads, each with its own epoll loop and share "
	        "of\n"
	        "                        the slots (default 1)\n"
	        "  -s, --size BYTES      echo: payload bytes after the 4-byte length (default "
	        "64);\n"
	        "                        http: pad the request to this size with an X-Pad header\n"
	        "  -d, --duration SECS   run this long, then abandon requests in flight (default "
	        "3\n"
	        "                        unless -n is given)\n"
	        "  -n, --count N         run exactly N connections in all, then stop\n"
	        "  -r, --rate N          the open loop: start N connections per second (over\n"
	        "                        every thread) at even intervals, whatever the server\n"
	        "                        does, each timed from when it was due; -c is then the\n"
	        "                        most in flight (one due while none is free waits, and\n"
	        "                        its wait counts in its latency: reported as late)\n"
	        "  -T, --timeout SECS    a connection not answered within this is a timeout error\n"
	        "                        (default 5)\n"
	        "  -m, --max-time SECS   hard limit on the whole run; connections still in flight\n"
	        "                        then count as timeouts (default: duration + 1, or 60 with "
	        "-n)\n"
	        "  -k, --check KIND      echo (default): the response must equal the request, "
	        "which\n"
	        "                        is a 4-byte big-endian length and that many bytes;\n"
	        "                        http: a GET with Connection: close; the response must be "
	        "a\n"
	        "                        complete 2xx HTTP/1.x response with Content-Length (or\n"
	        "                        chunked, to its last chunk). A body\n"
	        "                        containing worker=N is counted per N (the spread shown)\n"
	        "  -P, --path PATH       http: the request target (default /)\n"
	        "  -K, --keys N          http: the requests (but --heavy's) take N targets in\n"
	        "                        turn, PATH followed by 0 .. N-1 (/0, /1, ...), so that a\n"
	        "                        server routing by path (fdpass --route-key http-path)\n"
	        "                        sees N keys\n"
	        "  -H, --heavy PCT:PATH  http: PCT percent of the connections (0 < PCT <= 100,\n"
	        "                        evenly spaced) request PATH instead, such as a large\n"
	        "                        answer (up to 2 MiB); latency is then also reported\n"
	        "                        apart for the light and the heavy requests\n"
	        "  -j, --json            print one JSON object instead of text\n"
	        "  -h, --help            show this help\n"
	        "\n"
	        "Errors by kind: refused (connect refused, or a Unix listen queue full), reset,\n"
	        "timeout, short (EOF before the full response), wrong (response differs or too "
	        "long),\n"
	        "ports (EADDRNOTAVAIL: out of local ports), other.\n");
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || *out <= 0 ? -1 : 0;
}

static int parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || end == s || *end || *s == '-' || *out > max ? -1 : 0;
}

/* --heavy PCT:PATH: a share in percent (to a tenth) and an absolute path with no spaces. */
static int parse_heavy(struct load_config *cfg, char *arg)
{
	char *colon = strchr(arg, ':'), *end;
	double pct;

	if (!colon || colon[1] != '/' || strpbrk(colon + 1, " \r\n"))
		return -1;
	errno = 0;
	pct = strtod(arg, &end);
	if (errno || end != colon || !(pct > 0 && pct <= 100))
		return -1;
	cfg->heavy_permille = (unsigned)(pct * 10 + 0.5);
	if (cfg->heavy_permille == 0)
		return -1;
	cfg->heavy_path = colon + 1;
	return 0;
}

static int bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, "fdp-load: %s: %s\n(try fdp-load --help)\n", what, arg);
	return 2;
}

/* Fills cfg from the command line. Returns -1 to continue, or an exit status. */
static int parse_options(struct load_config *cfg, int argc, char **argv)
{
	static const struct option longs[] = {
	        {"concurrency", 1, NULL, 'c'}, {"threads", 1, NULL, 't'}, {"size", 1, NULL, 's'},
	        {"duration", 1, NULL, 'd'},    {"count", 1, NULL, 'n'},   {"timeout", 1, NULL, 'T'},
	        {"max-time", 1, NULL, 'm'},    {"check", 1, NULL, 'k'},   {"json", 0, NULL, 'j'},
	        {"path", 1, NULL, 'P'},        {"heavy", 1, NULL, 'H'},   {"help", 0, NULL, 'h'},
	        {"rate", 1, NULL, 'r'},        {"keys", 1, NULL, 'K'},
	        {NULL, 0, NULL, 0},
	};
	unsigned long long v;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "c:t:s:d:n:T:m:k:jP:H:hr:K:", longs, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (parse_count(optarg, LOAD_MAX_CONCURRENCY, &v) || v == 0)
				return bad_usage("bad concurrency", optarg);
			cfg->concurrency = (unsigned)v;
			break;
		case 't':
			if (parse_count(optarg, LOAD_MAX_THREADS, &v) || v == 0)
				return bad_usage("bad thread count", optarg);
			cfg->threads = (unsigned)v;
			break;
		case 's':
			if (parse_count(optarg, 1u << 20, &v))
				return bad_usage("bad size (at most 1048576)", optarg);
			cfg->size = (size_t)v;
			break;
		case 'd':
			if (parse_double(optarg, &cfg->duration_s))
				return bad_usage("bad duration", optarg);
			break;
		case 'n':
			if (parse_count(optarg, 1ull << 40, &v) || v == 0)
				return bad_usage("bad count", optarg);
			cfg->count = v;
			break;
		case 'r':
			if (parse_double(optarg, &cfg->rate) || cfg->rate > 1e7)
				return bad_usage("bad rate (connections per second, at most 10000000)",
				                 optarg);
			break;
		case 'T':
			if (parse_double(optarg, &cfg->timeout_s))
				return bad_usage("bad timeout", optarg);
			break;
		case 'm':
			if (parse_double(optarg, &cfg->max_time_s))
				return bad_usage("bad max time", optarg);
			break;
		case 'k':
			if (strcmp(optarg, "echo") == 0)
				cfg->check = LOAD_CHECK_ECHO;
			else if (strcmp(optarg, "http") == 0)
				cfg->check = LOAD_CHECK_HTTP;
			else
				return bad_usage("bad check (echo or http)", optarg);
			break;
		case 'j':
			cfg->json = 1;
			break;
		case 'P':
			if (optarg[0] != '/' || strpbrk(optarg, " \r\n"))
				return bad_usage("bad path (/..., no spaces)", optarg);
			cfg->path = optarg;
			break;
		case 'K':
			if (parse_count(optarg, LOAD_MAX_KEYS, &v) || v == 0)
				return bad_usage("bad key count (1..65536)", optarg);
			cfg->keys = (unsigned)v;
			break;
		case 'H':
			if (parse_heavy(cfg, optarg) < 0)
				return bad_usage("bad heavy share (PCT:PATH, 0 < PCT <= 100)", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "(try fdp-load --help)\n");
			return 2;
		}
	}
	if (cfg->heavy_path && cfg->check != LOAD_CHECK_HTTP)
		return bad_usage("--heavy needs --check http", cfg->heavy_path);
	if (cfg->path && cfg->check != LOAD_CHECK_HTTP)
		return bad_usage("--path needs --check http", cfg->path);
	if (cfg->keys && cfg->check != LOAD_CHECK_HTTP)
		return bad_usage("--keys needs --check http", "");
	if (optind != argc - 1)
		return bad_usage("expected one TARGET", optind < argc ? argv[optind + 1] : "none");
	r = load_target_parse(&cfg->target, argv[optind]);
	if (r == -EADDRNOTAVAIL)
		return bad_usage("not a loopback address", argv[optind]);
	if (r < 0)
		return bad_usage("bad target", argv[optind]);
	return -1;
}

static void finish_config(struct load_config *cfg)
{
	if (cfg->duration_s == 0 && cfg->count == 0)
		cfg->duration_s = 3;
	if (cfg->max_time_s == 0)
		cfg->max_time_s = cfg->duration_s > 0 ? cfg->duration_s + 1 : 60;
	if (cfg->duration_s > 0 && cfg->max_time_s < cfg->duration_s)
		cfg->duration_s = cfg->max_time_s;
	if (cfg->threads > cfg->concurrency)
		cfg->threads = cfg->concurrency;
}

/* Splits slots and count evenly over the threads, runs them, merges into *total. */
static int run_jobs(const struct load_config *cfg, struct load_stats *total, double *elapsed)
{
	struct load_job *jobs = calloc(cfg->threads, sizeof(*jobs));
	pthread_t tids[LOAD_MAX_THREADS];
	uint64_t start = load_now_ns(), end = start;
	int err = 0;

	if (!jobs)
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->threads; i++) {
		jobs[i].cfg = cfg;
		jobs[i].start_ns = start;
		jobs[i].concurrency =
		        cfg->concurrency / cfg->threads + (i < cfg->concurrency % cfg->threads);
		jobs[i].count = cfg->count / cfg->threads + (i < cfg->count % cfg->threads);
		jobs[i].rate = cfg->rate / cfg->threads;
		if (cfg->count && jobs[i].count == 0)
			jobs[i].count = 0, jobs[i].concurrency = 0;
	}
	for (unsigned i = 1; i < cfg->threads; i++)
		if (jobs[i].concurrency && pthread_create(&tids[i], NULL, load_job_run, &jobs[i]))
			jobs[i].concurrency = 0, jobs[i].error = -EAGAIN;
	if (jobs[0].concurrency)
		load_job_run(&jobs[0]);
	for (unsigned i = 0; i < cfg->threads; i++) {
		if (i > 0 && jobs[i].concurrency)
			pthread_join(tids[i], NULL);
		if (jobs[i].error)
			err = jobs[i].error;
		if (jobs[i].end_ns > end)
			end = jobs[i].end_ns;
		total->completed += jobs[i].stats.completed;
		total->late += jobs[i].stats.late;
		total->tagged += jobs[i].stats.tagged;
		for (int k = 0; k < LOAD_ERR_COUNT; k++)
			total->errors[k] += jobs[i].stats.errors[k];
		for (int k = 0; k < LOAD_MAX_TAGS; k++)
			total->tags[k] += jobs[i].stats.tags[k];
		load_hist_merge(&total->lat, &jobs[i].stats.lat);
		total->heavy += jobs[i].stats.heavy;
		load_hist_merge(&total->lat_light, &jobs[i].stats.lat_light);
		load_hist_merge(&total->lat_heavy, &jobs[i].stats.lat_heavy);
	}
	*elapsed = (double)(end - start) / 1e9;
	free(jobs);
	return err;
}

static uint64_t total_errors(const struct load_stats *st)
{
	uint64_t n = 0;

	for (int k = 0; k < LOAD_ERR_COUNT; k++)
		n += st->errors[k];
	return n;
}

/* Tags run from 0 to the highest one seen; a worker that served nothing still counts. */
static int highest_tag(const struct load_stats *st)
{
	int top = -1;

	for (int k = 0; k < LOAD_MAX_TAGS; k++)
		if (st->tags[k])
			top = k;
	return top;
}

static double tag_spread(const struct load_stats *st, int top)
{
	uint64_t lo = UINT64_MAX, hi = 0;

	for (int k = 0; k <= top; k++) {
		if (st->tags[k] < lo)
			lo = st->tags[k];
		if (st->tags[k] > hi)
			hi = st->tags[k];
	}
	return lo ? (double)hi / (double)lo : -1;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void print_text(const struct load_config *cfg, const struct load_stats *st, double secs)
{
	int top = highest_tag(st);

	printf("target %s  check %s  concurrency %u  threads %u  request %zu bytes\n",
	       cfg->target.text, cfg->check == LOAD_CHECK_HTTP ? "http" : "echo", cfg->concurrency,
	       cfg->threads, cfg->request_len);
	printf("completed %llu in %.3f s: %.0f conn/s\n", (unsigned long long)st->completed, secs,
	       secs > 0 ? (double)st->completed / secs : 0.0);
	if (cfg->rate > 0)
		printf("open loop: %.0f conn/s offered, %llu started over 1 ms after due (no slot "
		       "free, or the client behind)\n",
		       cfg->rate, (unsigned long long)st->late);
	printf("latency us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
	       us(load_hist_percentile(&st->lat, 0.50)), us(load_hist_percentile(&st->lat, 0.99)),
	       us(load_hist_percentile(&st->lat, 0.999)), us(st->lat.max));
	if (cfg->heavy_path) {
		printf("light (%s) %llu, latency us: p50 %.1f  p99 %.1f  max %.1f\n",
		       cfg->path ? cfg->path : "/", (unsigned long long)(st->completed - st->heavy),
		       us(load_hist_percentile(&st->lat_light, 0.50)),
		       us(load_hist_percentile(&st->lat_light, 0.99)), us(st->lat_light.max));
		printf("heavy (%s, %.1f%%) %llu, latency us: p50 %.1f  p99 %.1f  max %.1f\n",
		       cfg->heavy_path, cfg->heavy_permille / 10.0, (unsigned long long)st->heavy,
		       us(load_hist_percentile(&st->lat_heavy, 0.50)),
		       us(load_hist_percentile(&st->lat_heavy, 0.99)), us(st->lat_heavy.max));
	}
	printf("errors %llu:", (unsigned long long)total_errors(st));
	for (int k = 0; k < LOAD_ERR_COUNT; k++)
		printf(" %s %llu", load_err_name(k), (unsigned long long)st->errors[k]);
	printf("\n");
	if (top < 0)
		return;
	printf("workers (%llu tagged):", (unsigned long long)st->tagged);
	for (int k = 0; k <= top; k++)
		printf(" %d=%llu", k, (unsigned long long)st->tags[k]);
	if (tag_spread(st, top) < 0)
		printf("  max/min inf (a worker served none)\n");
	else
		printf("  max/min %.2f\n", tag_spread(st, top));
}

static void print_json(const struct load_config *cfg, const struct load_stats *st, double secs)
{
	int top = highest_tag(st);

	printf("{\"target\":\"%s\",\"check\":\"%s\",\"concurrency\":%u,\"threads\":%u,"
	       "\"size\":%zu,",
	       cfg->target.text, cfg->check == LOAD_CHECK_HTTP ? "http" : "echo", cfg->concurrency,
	       cfg->threads, cfg->size);
	printf("\"seconds\":%.6f,\"completed\":%llu,\"cps\":%.1f,", secs,
	       (unsigned long long)st->completed, secs > 0 ? (double)st->completed / secs : 0.0);
	if (cfg->rate > 0)
		printf("\"rate\":%.1f,\"late\":%llu,", cfg->rate, (unsigned long long)st->late);
	printf("\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f},",
	       us(load_hist_percentile(&st->lat, 0.50)), us(load_hist_percentile(&st->lat, 0.99)),
	       us(load_hist_percentile(&st->lat, 0.999)), us(st->lat.max));
	/* With --heavy: each kind's count and latency apart (µs; flat keys, each name once). */
	if (cfg->heavy_path)
		printf("\"heavy_path\":\"%s\",\"heavy_share\":%.1f,\"heavy\":%llu,"
		       "\"light_p50\":%.1f,\"light_p99\":%.1f,\"light_max\":%.1f,"
		       "\"heavy_p50\":%.1f,\"heavy_p99\":%.1f,\"heavy_max\":%.1f,",
		       cfg->heavy_path, cfg->heavy_permille / 10.0, (unsigned long long)st->heavy,
		       us(load_hist_percentile(&st->lat_light, 0.50)),
		       us(load_hist_percentile(&st->lat_light, 0.99)), us(st->lat_light.max),
		       us(load_hist_percentile(&st->lat_heavy, 0.50)),
		       us(load_hist_percentile(&st->lat_heavy, 0.99)), us(st->lat_heavy.max));
	printf("\"errors\":%llu,\"error_kinds\":{", (unsigned long long)total_errors(st));
	for (int k = 0; k < LOAD_ERR_COUNT; k++)
		printf("%s\"%s\":%llu", k ? "," : "", load_err_name(k),
		       (unsigned long long)st->errors[k]);
	printf("},\"tagged\":%llu,\"workers\":[", (unsigned long long)st->tagged);
	for (int k = 0; k <= top; k++)
		printf("%s%llu", k ? "," : "", (unsigned long long)st->tags[k]);
	/* spread: max/min of the per-worker counts; null when no response was tagged or a
	 * worker served none. */
	if (top < 0 || tag_spread(st, top) < 0)
		printf("],\"spread\":null}\n");
	else
		printf("],\"spread\":%.3f}\n", tag_spread(st, top));
}

int main(int argc, char **argv)
{
	static struct load_stats total; /* the histograms are large: keep them off the stack */
	struct load_config cfg = {
	        .check = LOAD_CHECK_ECHO,
	        .concurrency = 16,
	        .threads = 1,
	        .size = 64,
	        .timeout_s = 5,
	};
	double secs = 0;
	int r;

	r = parse_options(&cfg, argc, argv);
	if (r >= 0)
		return r;
	finish_config(&cfg);
	if (load_request_build(&cfg) < 0) {
		fprintf(stderr, "fdp-load: cannot build the request\n");
		load_request_free(&cfg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	r = run_jobs(&cfg, &total, &secs);
	if (r < 0) {
		fprintf(stderr, "fdp-load: setting up: %s\n", strerror(-r));
		return 1;
	}
	if (cfg.json)
		print_json(&cfg, &total, secs);
	else
		print_text(&cfg, &total, secs);
	load_request_free(&cfg);
	return total_errors(&total) || total.completed == 0 ? 1 : 0;
}
