/* bench-bare-client: the delivery baseline. Posts N distinct events shaped like ilagent's
 * ilert requests (SPEC §6.4) to one URL as fast as possible over P concurrent keep-alive
 * transfers of one libcurl multi loop, with no queue behind it. ilagent draining the same
 * number of queued rows into the same sink is reported as a ratio to this. */
#include "args.h"
#include "body.h"

#include "core/clock.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
	"Usage: bench-bare-client --url URL [--bodies N] [--parallel P] [--size BYTES] [--json]\n"
	"\n"
	"Posts N distinct events (the body ilagent sends to ilert) to URL as fast as possible\n"
	"with P concurrent keep-alive transfers and prints the rows per second.\n"
	"\n"
	"  --url URL       full URL, e.g. http://127.0.0.1:8080/api/events\n"
	"  --bodies N      events to post (default 200000)\n"
	"  --parallel P    concurrent transfers (default 8, ilagent's default --forwarders)\n"
	"  --size BYTES    approximate event size (default 400)\n"
	"  --json          one JSON object instead of text\n";

struct xfer {
	CURL *easy;
	char *body;
	bool busy;
};

static size_t discard_body(char *data, size_t size, size_t nmemb, void *user)
{
	(void)data;
	(void)user;
	return size * nmemb;
}

struct client {
	const char *url;
	uint64_t bodies;
	int parallel;
	struct body_gen gen;
	struct curl_slist *headers;
	CURLM *multi;
	struct xfer *xfers;
	uint64_t next;
	uint64_t done;
	uint64_t ok;
	uint64_t failed;
	char first_error[CURL_ERROR_SIZE];
};

static void xfer_start(struct client *c, struct xfer *x)
{
	size_t len = body_event_write(&c->gen, c->next++, x->body);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	x->busy = true;
	curl_multi_add_handle(c->multi, x->easy);
}

static void xfer_done(struct client *c, CURLMsg *msg)
{
	char *priv = NULL;
	curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
	struct xfer *x = (struct xfer *)(void *)priv;
	long code = 0;
	if (msg->data.result == CURLE_OK)
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
	else if (!c->first_error[0])
		snprintf(c->first_error, sizeof(c->first_error), "%s",
			 curl_easy_strerror(msg->data.result));
	if (code >= 200 && code < 300)
		c->ok++;
	else
		c->failed++;
	c->done++;
	curl_multi_remove_handle(c->multi, x->easy);
	x->busy = false;
	if (c->next < c->bodies)
		xfer_start(c, x);
}

static int client_setup(struct client *c, size_t size)
{
	if (body_gen_init(&c->gen, "bench-integration-key", BODY_KEYS_DISTINCT, 0, size, NULL,
			  true) != 0)
		return -1;
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	c->headers = curl_slist_append(c->headers, "Accept: application/json");
	c->headers = curl_slist_append(c->headers, "User-Agent: ilagent-bench");
	c->headers = curl_slist_append(c->headers, "Expect:");
	c->multi = curl_multi_init();
	c->xfers = calloc((size_t)c->parallel, sizeof(*c->xfers));
	if (!c->headers || !c->multi || !c->xfers)
		return -1;
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c->parallel);
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->parallel);
	for (int i = 0; i < c->parallel; i++) {
		struct xfer *x = &c->xfers[i];
		x->body = malloc(c->gen.event_len + 1);
		x->easy = curl_easy_init();
		if (!x->body || !x->easy)
			return -1;
		curl_easy_setopt(x->easy, CURLOPT_URL, c->url);
		curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, c->headers);
		curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, discard_body);
		curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, 30000L);
		curl_easy_setopt(x->easy, CURLOPT_PROXY, "");
		curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	}
	return 0;
}

static void client_teardown(struct client *c)
{
	if (c->xfers) {
		for (int i = 0; i < c->parallel; i++) {
			if (c->xfers[i].easy) {
				if (c->xfers[i].busy)
					curl_multi_remove_handle(c->multi, c->xfers[i].easy);
				curl_easy_cleanup(c->xfers[i].easy);
			}
			free(c->xfers[i].body);
		}
		free(c->xfers);
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->headers);
	body_gen_free(&c->gen);
}

static void client_run(struct client *c)
{
	for (int i = 0; i < c->parallel && c->next < c->bodies; i++)
		xfer_start(c, &c->xfers[i]);
	while (c->done < c->bodies) {
		int running = 0;
		curl_multi_perform(c->multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(c->multi, &left)))
			if (msg->msg == CURLMSG_DONE)
				xfer_done(c, msg);
		if (c->done < c->bodies)
			curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
	}
}

int main(int argc, char **argv)
{
	enum { OPT_URL = 1, OPT_BODIES, OPT_PARALLEL, OPT_SIZE, OPT_JSON, OPT_HELP };
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, OPT_URL },
		{ "bodies", required_argument, NULL, OPT_BODIES },
		{ "parallel", required_argument, NULL, OPT_PARALLEL },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct client c;
	memset(&c, 0, sizeof(c));
	c.bodies = 200000;
	c.parallel = 8;
	uint64_t size = 400, v;
	bool json = false;
	opterr = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if (opt == OPT_URL) {
			c.url = optarg;
		} else if (opt == OPT_BODIES && bench_parse_u64(optarg, 1, UINT64_MAX / 2, &v)) {
			c.bodies = v;
		} else if (opt == OPT_PARALLEL && bench_parse_u64(optarg, 1, 1024, &v)) {
			c.parallel = (int)v;
		} else if (opt == OPT_SIZE && bench_parse_u64(optarg, 1, 1 << 24, &v)) {
			size = v;
		} else if (opt == OPT_JSON) {
			json = true;
		} else if (opt == OPT_HELP) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			fprintf(stderr, "bench-bare-client: error: bad arguments\n%s", usage_text);
			return 2;
		}
	}
	if (!c.url || optind < argc) {
		fprintf(stderr, "bench-bare-client: error: --url is required\n%s", usage_text);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	int rc = 1;
	if (client_setup(&c, (size_t)size) == 0) {
		int64_t t0 = clock_mono_ns();
		client_run(&c);
		double secs = (double)(clock_mono_ns() - t0) / 1e9;
		double rows_per_s = secs > 0 ? (double)c.ok / secs : 0.0;
		if (json)
			printf("{\"rows\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64
			       ",\"parallel\":%d,\"event_bytes\":%zu,\"elapsed_s\":%.3f,"
			       "\"rows_per_s\":%.1f}\n",
			       c.done, c.ok, c.failed, c.parallel, c.gen.event_len, secs, rows_per_s);
		else
			printf("rows %" PRIu64 "  ok %" PRIu64 "  failed %" PRIu64
			       "  elapsed %.3f s  rows/s %.1f\n",
			       c.done, c.ok, c.failed, secs, rows_per_s);
		if (c.failed)
			fprintf(stderr, "bench-bare-client: %" PRIu64 " requests failed (first: %s)\n",
				c.failed, c.first_error[0] ? c.first_error : "non-2xx status");
		rc = c.failed ? 1 : 0;
	} else {
		fprintf(stderr, "bench-bare-client: error: setup failed\n");
	}
	client_teardown(&c);
	curl_global_cleanup();
	return rc;
}
