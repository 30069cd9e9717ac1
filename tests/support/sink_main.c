/* ilagent-sink: a fast local stand-in for the ilert API, the receiving end of load tests.
 * Argument parsing and printing only; the server is sink.c. */
#include "sink.h"

#include "core/clock.h"
#include "core/err.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
	"Usage: ilagent-sink [OPTIONS]\n"
	"\n"
	"A local stand-in for the ilert API that answers every request at once, for load\n"
	"tests. Counts requests per ilert path; GET " SINK_STATS_PATH " answers the counters\n"
	"as JSON. Stops on SIGINT or SIGTERM and prints the final counts.\n"
	"\n"
	"Options:\n"
	"  --port N        port to listen on (default 8080; 0 = any free port)\n"
	"  --bind ADDR     address to listen on (default 127.0.0.1)\n"
	"  --status CODE   HTTP status of every answer (default 202)\n"
	"  --threads N     server threads (default 2)\n"
	"  --record FILE   append one JSON line per request: method, path, body\n"
	"  --quiet         print only the listening line\n"
	"  --help          show this text\n";

struct sink_args {
	struct sink_options opts;
	bool quiet;
};

static int usage_error(const char *fmt, const char *arg)
{
	fputs("ilagent-sink: error: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'ilagent-sink --help'.\n", stderr);
	return 2;
}

static bool parse_int(const char *text, int min, int max, int *out)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return false;
	*out = (int)v;
	return true;
}

/* Returns -1 to continue, otherwise the exit code. */
static int parse_args(int argc, char **argv, struct sink_args *a)
{
	enum { OPT_PORT = 1, OPT_BIND, OPT_STATUS, OPT_THREADS, OPT_RECORD, OPT_QUIET, OPT_HELP };
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, OPT_PORT },
		{ "bind", required_argument, NULL, OPT_BIND },
		{ "status", required_argument, NULL, OPT_STATUS },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "record", required_argument, NULL, OPT_RECORD },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	memset(a, 0, sizeof(*a));
	a->opts.port = 8080;
	a->opts.bind = "127.0.0.1";
	a->opts.status = 202;
	a->opts.threads = 2;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PORT:
			if (!parse_int(optarg, 0, 65535, &a->opts.port))
				return usage_error("invalid --port '%s' (0-65535)", optarg);
			break;
		case OPT_BIND:
			a->opts.bind = optarg;
			break;
		case OPT_STATUS:
			if (!parse_int(optarg, 100, 599, &a->opts.status))
				return usage_error("invalid --status '%s' (100-599)", optarg);
			break;
		case OPT_THREADS:
			if (!parse_int(optarg, 1, 256, &a->opts.threads))
				return usage_error("invalid --threads '%s' (1-256)", optarg);
			break;
		case OPT_RECORD:
			a->opts.record = optarg;
			break;
		case OPT_QUIET:
			a->quiet = true;
			break;
		case OPT_HELP:
			fputs(usage_text, stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return -1;
}

static void print_live(const struct sink_stats *st, double rate)
{
	printf("\rrequests %llu  %.0f req/s\033[K", (unsigned long long)st->requests, rate);
	fflush(stdout);
}

static void print_final(const struct sink_stats *st, double elapsed_s)
{
	printf("requests %llu\n", (unsigned long long)st->requests);
	printf("elapsed %.1f s\n", elapsed_s);
	printf("average %.0f req/s\n", elapsed_s > 0 ? (double)st->requests / elapsed_s : 0.0);
	printf("by path\n");
	for (int fam = 0; fam < SINK_FAMILY_COUNT; fam++)
		printf("  %s %llu\n", sink_family_path((enum sink_family)fam),
		       (unsigned long long)st->by_family[fam]);
	fflush(stdout);
}

/* Waits for SIGINT/SIGTERM, refreshing the live line each second on a terminal. */
static void run_until_signal(struct sink *s, const sigset_t *stop_set, bool live)
{
	uint64_t last_count = 0;
	int64_t last_ms = clock_mono_ms();
	bool printed = false;
	for (;;) {
		struct timespec one_second = { 1, 0 };
		int sig = sigtimedwait(stop_set, NULL, &one_second);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		if (!live)
			continue;
		struct sink_stats st;
		sink_get_stats(s, &st);
		int64_t now = clock_mono_ms();
		double secs = (double)(now - last_ms) / 1000.0;
		print_live(&st, secs > 0 ? (double)(st.requests - last_count) / secs : 0.0);
		printed = true;
		last_count = st.requests;
		last_ms = now;
	}
	if (printed)
		putchar('\n');
}

int main(int argc, char **argv)
{
	struct sink_args args;
	int rc = parse_args(argc, argv, &args);
	if (rc >= 0)
		return rc;

	/* Blocked before the server threads exist so only sigtimedwait here receives them. */
	sigset_t stop_set;
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop_set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct sink *s = NULL;
	int err = sink_start(&args.opts, &s);
	if (err != 0) {
		fprintf(stderr, "ilagent-sink: error: cannot listen on %s:%d%s%s: %s\n",
			args.opts.bind, args.opts.port, args.opts.record ? " or open " : "",
			args.opts.record ? args.opts.record : "", ila_strerror(err));
		return 1;
	}
	bool v6 = strchr(args.opts.bind, ':') != NULL;
	printf("listening on http://%s%s%s:%d\n", v6 ? "[" : "", args.opts.bind, v6 ? "]" : "",
	       sink_port(s));
	fflush(stdout);

	int64_t started = clock_mono_ms();
	run_until_signal(s, &stop_set, !args.quiet && isatty(STDOUT_FILENO));
	double elapsed = (double)(clock_mono_ms() - started) / 1000.0;
	/* Every answered request was counted before its answer went out, so this snapshot
	 * covers everything a client saw. */
	struct sink_stats st;
	sink_get_stats(s, &st);
	sink_stop(s);
	if (!args.quiet)
		print_final(&st, elapsed);
	return 0;
}
