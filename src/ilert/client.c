#include "ilert/client.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/text.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "version.h"

#define LOG_COMP "forward"

struct ilert_client {
	CURL *curl;
	char *api_url;
	char *beat_url;
	long timeout_ms;
	/* Header lists built once: every request carries the same headers, only the
	 * Authorization line differs. */
	struct curl_slist *headers_plain;
	struct curl_slist *headers_auth; /* NULL when no API key is configured */
	atomic_int *abort_flag; /* may be NULL */
};

/* What the libcurl callbacks of one transfer write into. */
struct transfer {
	struct tbuf body;
	bool truncated;
	char *retry_after;
	char *correlation_id;
};

static bool global_ready;

int ilert_global_init(void)
{
	if (global_ready)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return ILA_ERR_IO;
	global_ready = true;
	return 0;
}

void ilert_global_cleanup(void)
{
	if (!global_ready)
		return;
	curl_global_cleanup();
	global_ready = false;
}

const char *ilert_endpoint_label(enum ilert_endpoint ep)
{
	static const char *const labels[ILERT_EP_COUNT] = {
		[ILERT_EP_EVENTS] = "events",
		[ILERT_EP_EVENTS_MQTT] = "events_mqtt",
		[ILERT_EP_EVENTS_KAFKA] = "events_kafka",
		[ILERT_EP_HEARTBEATS] = "heartbeats",
		[ILERT_EP_PINGS] = "pings",
		[ILERT_EP_USERS_SEARCH_EMAIL] = "users_search_email",
		[ILERT_EP_ESCALATION_POLICIES_RESOLVE] = "escalation_policies_resolve",
		[ILERT_EP_ESCALATION_POLICY_LEVELS] = "escalation_policy_levels",
	};
	if ((unsigned)ep >= ILERT_EP_COUNT)
		return "other";
	return labels[ep];
}

void ilert_result_init(struct ilert_result *res)
{
	memset(res, 0, sizeof(*res));
	res->retry_after_ms = -1;
}

void ilert_result_free(struct ilert_result *res)
{
	free(res->body);
	free(res->correlation_id);
	ilert_result_init(res);
}

/* ---- outcome classes (§6.3) ---- */

enum ilert_outcome ilert_classify_status(long status)
{
	if (status == 0)
		return ILERT_OUTCOME_RETRYABLE;
	if (status >= 200 && status <= 299)
		return ILERT_OUTCOME_SUCCESS;
	if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599))
		return ILERT_OUTCOME_RETRYABLE;
	return ILERT_OUTCOME_PERMANENT;
}

enum ilert_outcome ilert_result_outcome(const struct ilert_result *res)
{
	return ilert_classify_status(res->status);
}

const char *ilert_retry_cause(const struct ilert_result *res)
{
	if (ilert_result_outcome(res) != ILERT_OUTCOME_RETRYABLE)
		return NULL;
	switch (res->status) {
	case 0: return res->timed_out ? "timeout" : "network";
	case 408: return "http_408";
	case 425: return "http_425";
	case 429: return "http_429";
	default: return "http_5xx";
	}
}

char *ilert_code_label(const struct ilert_result *res, char *out, size_t out_size)
{
	if (res->status != 0)
		snprintf(out, out_size, "%ld", res->status);
	else
		snprintf(out, out_size, "%s", res->timed_out ? "timeout" : "network");
	return out;
}

char *ilert_body_excerpt(const char *body, size_t len, size_t max_chars)
{
	/* A character takes at most 4 bytes, so this much sanitized text holds max_chars. */
	size_t max_bytes = max_chars * 4;
	char *text = text_utf8_sanitize(body ? body : "", body ? len : 0, max_bytes);
	if (!text)
		return NULL;
	size_t chars = 0;
	char *p = text;
	for (; *p; p++) {
		if (((unsigned char)*p & 0xC0) == 0x80)
			continue;
		if (chars == max_chars)
			break;
		chars++;
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	}
	*p = '\0';
	return text;
}

/* ---- Retry-After (RFC 9110 §10.2.3) ---- */

static const char *const month_names[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
static const char *const day_short[7] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char *const day_long[7] = { "Monday", "Tuesday", "Wednesday", "Thursday",
					 "Friday", "Saturday", "Sunday" };

/* Consumes literal text at *p. */
static bool scan_lit(const char **p, const char *lit)
{
	size_t n = strlen(lit);
	if (strncmp(*p, lit, n))
		return false;
	*p += n;
	return true;
}

/* Consumes exactly ndigits decimal digits at *p. */
static bool scan_digits(const char **p, int ndigits, int *value)
{
	int v = 0;
	for (int i = 0; i < ndigits; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += ndigits;
	*value = v;
	return true;
}

static bool scan_one_of(const char **p, const char *const *names, int count, int *index)
{
	for (int i = 0; i < count; i++) {
		if (scan_lit(p, names[i])) {
			*index = i;
			return true;
		}
	}
	return false;
}

static bool scan_month(const char **p, int *month)
{
	return scan_one_of(p, month_names, 12, month);
}

/* "HH:MM:SS" */
static bool scan_time(const char **p, struct tm *tm)
{
	return scan_digits(p, 2, &tm->tm_hour) && scan_lit(p, ":") &&
	       scan_digits(p, 2, &tm->tm_min) && scan_lit(p, ":") &&
	       scan_digits(p, 2, &tm->tm_sec);
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf_fixdate(const char *p, struct tm *tm)
{
	int day;
	return scan_one_of(&p, day_short, 7, &day) && scan_lit(&p, ", ") &&
	       scan_digits(&p, 2, &tm->tm_mday) && scan_lit(&p, " ") &&
	       scan_month(&p, &tm->tm_mon) && scan_lit(&p, " ") &&
	       scan_digits(&p, 4, &tm->tm_year) && scan_lit(&p, " ") && scan_time(&p, tm) &&
	       scan_lit(&p, " GMT") && !*p;
}

/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
static bool parse_rfc850(const char *p, struct tm *tm)
{
	int day, yy;
	if (!(scan_one_of(&p, day_long, 7, &day) && scan_lit(&p, ", ") &&
	      scan_digits(&p, 2, &tm->tm_mday) && scan_lit(&p, "-") &&
	      scan_month(&p, &tm->tm_mon) && scan_lit(&p, "-") && scan_digits(&p, 2, &yy) &&
	      scan_lit(&p, " ") && scan_time(&p, tm) && scan_lit(&p, " GMT") && !*p))
		return false;
	/* Two-digit years: 70-99 are the 1900s, the rest this century (RFC 9110 asks for
	 * the nearest year not more than 50 years ahead; no ilert date is near that edge). */
	tm->tm_year = yy >= 70 ? 1900 + yy : 2000 + yy;
	return true;
}

/* asctime: "Sun Nov  6 08:49:37 1994" */
static bool parse_asctime(const char *p, struct tm *tm)
{
	int day;
	if (!(scan_one_of(&p, day_short, 7, &day) && scan_lit(&p, " ") &&
	      scan_month(&p, &tm->tm_mon) && scan_lit(&p, " ")))
		return false;
	if (*p == ' ') {
		p++;
		if (!scan_digits(&p, 1, &tm->tm_mday))
			return false;
	} else if (!scan_digits(&p, 2, &tm->tm_mday)) {
		return false;
	}
	return scan_lit(&p, " ") && scan_time(&p, tm) && scan_lit(&p, " ") &&
	       scan_digits(&p, 4, &tm->tm_year) && !*p;
}

static bool parse_http_date(const char *text, int64_t *unix_s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!parse_imf_fixdate(text, &tm) && !parse_rfc850(text, &tm) && !parse_asctime(text, &tm))
		return false;
	if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return false;
	tm.tm_year -= 1900;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*unix_s = (int64_t)t;
	return true;
}

/* 1*DIGIT; values beyond the cap are clamped while scanning so nothing overflows. */
static bool parse_delta_seconds(const char *text, int64_t *seconds)
{
	if (!*text)
		return false;
	int64_t v = 0;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		if (v <= ILERT_RETRY_AFTER_CAP_S)
			v = v * 10 + (*p - '0');
	}
	*seconds = v;
	return true;
}

int ilert_parse_retry_after(const char *value, int64_t now_ms, int64_t *delay_ms)
{
	if (!value)
		return ILA_ERR_INVALID;
	const char *start = value, *end = value + strlen(value);
	while (start < end && (*start == ' ' || *start == '\t'))
		start++;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	char text[64];
	size_t len = (size_t)(end - start);
	if (len == 0 || len >= sizeof(text))
		return ILA_ERR_INVALID;
	memcpy(text, start, len);
	text[len] = '\0';

	const int64_t cap_ms = (int64_t)ILERT_RETRY_AFTER_CAP_S * 1000;
	int64_t seconds, when_s;
	int64_t delay;
	if (parse_delta_seconds(text, &seconds))
		delay = seconds * 1000;
	else if (parse_http_date(text, &when_s))
		delay = when_s * 1000 - now_ms;
	else
		return ILA_ERR_INVALID;
	if (delay < 0)
		delay = 0;
	if (delay > cap_ms)
		delay = cap_ms;
	*delay_ms = delay;
	return 0;
}

/* ---- client ---- */

static struct curl_slist *headers_build(const char *api_key)
{
	struct curl_slist *list = NULL, *next;
	static const char user_agent[] = "User-Agent: ilagent/" ILAGENT_VERSION;
	const char *fixed[] = {
		user_agent,
		"Accept: application/json",
		"Content-Type: application/json",
		/* An empty Expect suppresses "100-continue": a body is always small and the
		 * extra round trip (or a 1 s stall with servers that ignore it) buys nothing. */
		"Expect:",
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		next = curl_slist_append(list, fixed[i]);
		if (!next)
			goto fail;
		list = next;
	}
	if (api_key) {
		struct tbuf auth;
		tbuf_init(&auth);
		tbuf_printf(&auth, "Authorization: Bearer %s", api_key);
		next = auth.oom ? NULL : curl_slist_append(list, tbuf_cstr(&auth));
		/* The header holds the API key: wipe the scratch copy. */
		if (auth.data)
			memset(auth.data, 0, auth.len);
		tbuf_free(&auth);
		if (!next)
			goto fail;
		list = next;
	}
	return list;
fail:
	curl_slist_free_all(list);
	return NULL;
}

struct ilert_client *ilert_client_create(const struct config *cfg)
{
	struct ilert_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->timeout_ms = (long)cfg->api_timeout * 1000L;
	c->api_url = strdup(cfg->api_url ? cfg->api_url : "https://api.ilert.com");
	c->beat_url = strdup(cfg->beat_url ? cfg->beat_url : "https://beat.ilert.com");
	if (!c->api_url || !c->beat_url)
		goto fail;
	c->headers_plain = headers_build(NULL);
	if (!c->headers_plain)
		goto fail;
	if (cfg->api_key && *cfg->api_key) {
		c->headers_auth = headers_build(cfg->api_key);
		if (!c->headers_auth)
			goto fail;
	}
	c->curl = curl_easy_init();
	if (!c->curl)
		goto fail;
	return c;
fail:
	ilert_client_destroy(c);
	return NULL;
}

void ilert_client_destroy(struct ilert_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers_auth);
	curl_slist_free_all(c->headers_plain);
	free(c->beat_url);
	free(c->api_url);
	free(c);
}

void ilert_client_set_abort(struct ilert_client *c, atomic_int *flag)
{
	c->abort_flag = flag;
}

static bool abort_requested(const struct ilert_client *c)
{
	return c->abort_flag && atomic_load(c->abort_flag) != 0;
}

/* libcurl calls this often during a transfer and about once a second while it waits. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	return abort_requested(ud) ? 1 : 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct transfer *t = ud;
	size_t n = size * nmemb;
	size_t room = ILERT_BODY_LIMIT - t->body.len;
	if (n > room) {
		t->truncated = true;
		tbuf_append(&t->body, data, room);
	} else {
		tbuf_append(&t->body, data, n);
	}
	/* Keep reading what does not fit: the connection stays usable for the next request. */
	return n;
}

/* Copy of a header's value if the line is "<name>: value" (name case-insensitive). */
static char *header_value(const char *line, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	if (len <= nlen || line[nlen] != ':' || !text_starts_with_nocase(line, name))
		return NULL;
	const char *v = line + nlen + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
			   end[-1] == '\t'))
		end--;
	return strndup(v, (size_t)(end - v));
}

static void replace_str(char **slot, char *value)
{
	free(*slot);
	*slot = value;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct transfer *t = ud;
	size_t n = size * nmemb;
	char *v;
	/* A status line starts a new response (after a 1xx or a proxy CONNECT): only the
	 * final response's headers count. */
	if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
		replace_str(&t->retry_after, NULL);
		replace_str(&t->correlation_id, NULL);
		return n;
	}
	if ((v = header_value(data, n, "retry-after")))
		replace_str(&t->retry_after, v);
	else if ((v = header_value(data, n, "correlation-id")))
		replace_str(&t->correlation_id, v);
	return n;
}

char *ilert_client_url(const struct ilert_client *c, const struct ilert_request *req,
		       bool masked)
{
	struct tbuf url;
	tbuf_init(&url);
	tbuf_puts(&url, req->base == ILERT_BASE_BEAT ? c->beat_url : c->api_url);
	tbuf_puts(&url, "/api");
	tbuf_puts(&url, req->path ? req->path : "");
	if (req->key) {
		if (masked) {
			char shown[64];
			tbuf_puts(&url, text_mask(req->key, shown, sizeof(shown)));
		} else {
			char *encoded = text_percent_encode(req->key);
			if (!encoded) {
				tbuf_free(&url);
				return NULL;
			}
			tbuf_puts(&url, encoded);
			free(encoded);
		}
	}
	return tbuf_take(&url);
}

static const char *method_name(enum ilert_method m)
{
	switch (m) {
	case ILERT_HEAD: return "HEAD";
	case ILERT_POST: return "POST";
	case ILERT_PUT: return "PUT";
	default: return "GET";
	}
}

static void setup_method(CURL *curl, const struct ilert_request *req)
{
	const char *body = req->body ? req->body : "";
	size_t body_len = req->body ? req->body_len : 0;
	switch (req->method) {
	case ILERT_HEAD:
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
		break;
	case ILERT_POST:
	case ILERT_PUT:
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		if (req->method == ILERT_PUT)
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
		break;
	default:
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
		break;
	}
}

/* Options for one transfer. curl_easy_reset() keeps live connections, so every request
 * starts from a clean handle without losing keep-alive. Proxy settings are deliberately
 * left alone: libcurl then honours http_proxy, https_proxy and no_proxy (§4.8). */
static void setup_transfer(struct ilert_client *c, const struct ilert_request *req,
			   const char *url, struct transfer *t, char *errbuf)
{
	CURL *curl = c->curl;
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER,
			 req->auth && c->headers_auth ? c->headers_auth : c->headers_plain);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, t);
	if (c->abort_flag) {
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, c);
	}
	setup_method(curl, req);
}

static void transfer_free(struct transfer *t)
{
	tbuf_free(&t->body);
	free(t->retry_after);
	free(t->correlation_id);
}

/* Moves what the transfer captured into res. */
static int result_fill(struct ilert_result *res, struct transfer *t, CURLcode code,
		       long status, const char *errbuf)
{
	if (code != CURLE_OK) {
		res->status = 0;
		res->timed_out = code == CURLE_OPERATION_TIMEDOUT;
		res->aborted = code == CURLE_ABORTED_BY_CALLBACK;
		snprintf(res->error, sizeof(res->error), "%s",
			 res->aborted ? "request aborted"
			 : *errbuf    ? errbuf
				      : curl_easy_strerror(code));
		return res->timed_out ? ILA_ERR_TIMEOUT : ILA_ERR_NET;
	}
	if (t->body.oom) {
		snprintf(res->error, sizeof(res->error), "out of memory reading the response");
		return ILA_ERR_NOMEM;
	}
	res->status = status;
	res->body_len = t->body.len;
	res->body_truncated = t->truncated;
	res->body = tbuf_take(&t->body);
	if (!res->body) {
		res->status = 0;
		snprintf(res->error, sizeof(res->error), "out of memory reading the response");
		return ILA_ERR_NOMEM;
	}
	res->correlation_id = t->correlation_id;
	t->correlation_id = NULL;
	int64_t delay;
	if (t->retry_after && !ilert_parse_retry_after(t->retry_after, clock_now_ms(), &delay))
		res->retry_after_ms = delay;
	return 0;
}

static void log_request(const struct ilert_client *c, const struct ilert_request *req,
			const struct ilert_result *res)
{
	if (!log_enabled(LOG_LVL_DEBUG))
		return;
	char *shown = ilert_client_url(c, req, true);
	if (res->status)
		log_debug(LOG_COMP, "%s %s -> HTTP %ld in %.1f ms", method_name(req->method),
			  shown ? shown : "?", res->status, res->duration_s * 1000.0);
	else
		log_debug(LOG_COMP, "%s %s -> %s", method_name(req->method), shown ? shown : "?",
			  res->error);
	free(shown);
}

static enum metric_endpoint metric_endpoint_of(enum ilert_endpoint ep)
{
	switch (ep) {
	case ILERT_EP_EVENTS_MQTT: return ME_EVENTS_MQTT;
	case ILERT_EP_EVENTS_KAFKA: return ME_EVENTS_KAFKA;
	case ILERT_EP_HEARTBEATS: return ME_HEARTBEATS;
	case ILERT_EP_PINGS: return ME_PINGS;
	case ILERT_EP_USERS_SEARCH_EMAIL: return ME_USERS_SEARCH_EMAIL;
	case ILERT_EP_ESCALATION_POLICIES_RESOLVE: return ME_ESCALATION_POLICIES_RESOLVE;
	case ILERT_EP_ESCALATION_POLICY_LEVELS: return ME_ESCALATION_POLICY_LEVELS;
	default: return ME_EVENTS;
	}
}

int ilert_client_send(struct ilert_client *c, const struct ilert_request *req,
		      struct ilert_result *res)
{
	ilert_result_init(res);
	if (abort_requested(c)) {
		res->aborted = true;
		snprintf(res->error, sizeof(res->error), "request aborted");
		return ILA_ERR_NET;
	}
	char *url = ilert_client_url(c, req, false);
	if (!url) {
		snprintf(res->error, sizeof(res->error), "out of memory building the request");
		return ILA_ERR_NOMEM;
	}
	struct transfer t;
	memset(&t, 0, sizeof(t));
	tbuf_init(&t.body);
	char errbuf[CURL_ERROR_SIZE] = "";

	setup_transfer(c, req, url, &t, errbuf);
	int64_t started = clock_mono_ns();
	CURLcode code = curl_easy_perform(c->curl);
	res->duration_s = (double)(clock_mono_ns() - started) / 1e9;
	long status = 0;
	if (code == CURLE_OK)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	int rc = result_fill(res, &t, code, status, errbuf);

	transfer_free(&t);
	free(url);
	log_request(c, req, res);
	if (!res->aborted)
		metrics_ilert_request(metric_endpoint_of(req->endpoint), (int)res->status,
				      res->timed_out);
	return rc;
}
