/* bench-bare-httpd: the ingest baseline. The same libmicrohttpd setup the daemon can use at
 * best (epoll internal thread, a pool of 2) that reads each POST body completely and answers
 * 202 "{}" without parsing or storing anything. ilagent's intake throughput is reported as
 * a ratio to this server's, measured in the same run. With --suspend each request is
 * suspended and answered after another thread resumed it, in batches, as the daemon does
 * after its commit: the difference to the plain mode is the price of that hand-off alone. */
#include "args.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
	"Usage: bench-bare-httpd [--port N] [--threads N] [--suspend]\n"
	"\n"
	"Answers every request with 202 {} after reading its body; nothing is parsed or\n"
	"stored. Prints 'listening on http://127.0.0.1:PORT' and serves until SIGINT/SIGTERM.\n"
	"\n"
	"  --port N      port on 127.0.0.1 (default 0: any free port)\n"
	"  --bind ADDR   IPv4 address (default 127.0.0.1)\n"
	"  --threads N   server threads (default 2)\n"
	"  --suspend     suspend every request and answer it after a second thread resumed\n"
	"                it (in batches), like the daemon after its commit\n";

static const char reply_body[] = "{}";

/* A non-NULL per-request marker so the body chunks of a request can be told from its
 * header callback (plain mode). */
static int request_seen;

/* --suspend: requests whose body is complete wait here for the resumer thread. */
struct waiting {
	struct MHD_Connection *conn;
	bool resumed;
	struct waiting *next;
};
static bool suspend_mode;
static pthread_mutex_t waiting_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t waiting_cond = PTHREAD_COND_INITIALIZER;
static struct waiting *waiting_head;

static void *resumer_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&waiting_lock);
		while (!waiting_head)
			pthread_cond_wait(&waiting_cond, &waiting_lock);
		struct waiting *batch = waiting_head;
		waiting_head = NULL;
		pthread_mutex_unlock(&waiting_lock);
		while (batch) {
			struct waiting *w = batch;
			batch = w->next;
			w->resumed = true;
			MHD_resume_connection(w->conn);
		}
	}
	return NULL;
}

static enum MHD_Result handle_suspended(struct MHD_Connection *conn, struct MHD_Response *reply,
					size_t *upload_data_size, void **req_cls)
{
	struct waiting *w = *req_cls;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return MHD_NO;
		w->conn = conn;
		*req_cls = w;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (w->resumed) {
		free(w);
		*req_cls = NULL;
		return MHD_queue_response(conn, MHD_HTTP_ACCEPTED, reply);
	}
	MHD_suspend_connection(conn);
	pthread_mutex_lock(&waiting_lock);
	w->next = waiting_head;
	waiting_head = w;
	pthread_cond_signal(&waiting_cond);
	pthread_mutex_unlock(&waiting_lock);
	return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	struct MHD_Response *reply = cls;
	(void)url;
	(void)method;
	(void)version;
	(void)upload_data;
	if (suspend_mode)
		return handle_suspended(conn, reply, upload_data_size, req_cls);
	if (*req_cls == NULL) {
		*req_cls = &request_seen;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_queue_response(conn, MHD_HTTP_ACCEPTED, reply);
}

int main(int argc, char **argv)
{
	enum { OPT_PORT = 1, OPT_BIND, OPT_THREADS, OPT_SUSPEND, OPT_HELP };
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, OPT_PORT },
		{ "bind", required_argument, NULL, OPT_BIND },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "suspend", no_argument, NULL, OPT_SUSPEND },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int port = 0, threads = 2;
	uint64_t v;
	const char *bind = "127.0.0.1";
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if (c == OPT_PORT && bench_parse_u64(optarg, 0, 65535, &v)) {
			port = (int)v;
			continue;
		}
		if (c == OPT_THREADS && bench_parse_u64(optarg, 1, 64, &v)) {
			threads = (int)v;
			continue;
		}
		if (c == OPT_SUSPEND) {
			suspend_mode = true;
			continue;
		}
		if (c == OPT_BIND) {
			bind = optarg;
			continue;
		}
		if (c == OPT_HELP) {
			fputs(usage_text, stdout);
			return 0;
		}
		fprintf(stderr, "bench-bare-httpd: error: bad arguments\n%s", usage_text);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "bench-bare-httpd: error: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	struct sockaddr_in addr;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, bind, &addr.sin_addr) != 1) {
		fprintf(stderr, "bench-bare-httpd: error: --bind '%s' is not an IPv4 address\n", bind);
		return 2;
	}

	sigset_t stop_set;
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop_set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct MHD_Response *reply = MHD_create_response_from_buffer(
		sizeof(reply_body) - 1, (void *)reply_body, MHD_RESPMEM_PERSISTENT);
	if (!reply)
		return 1;
	MHD_add_response_header(reply, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	/* The daemon's limits (SPEC §23): 512 connections, 15 s idle timeout. */
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO;
	if (suspend_mode) {
		flags |= MHD_ALLOW_SUSPEND_RESUME;
		pthread_t resumer;
		if (pthread_create(&resumer, NULL, resumer_main, NULL) != 0)
			return 1;
		pthread_detach(resumer);
	}
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, (uint16_t)port, NULL, NULL, handle,
		reply, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
		(unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)512,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)15, MHD_OPTION_LISTEN_BACKLOG_SIZE,
		(unsigned int)1024, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "bench-bare-httpd: error: cannot listen on %s:%d\n", bind, port);
		MHD_destroy_response(reply);
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("listening on http://%s:%u\n", bind, info ? (unsigned)info->port : (unsigned)port);
	fflush(stdout);

	int sig = 0;
	while (sig != SIGINT && sig != SIGTERM)
		sigwait(&stop_set, &sig);
	MHD_stop_daemon(d);
	MHD_destroy_response(reply);
	return 0;
}
