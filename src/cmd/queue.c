/* `ilagent queue` (SPEC §17): statistics, listing, re-queueing and purging of dead letters on
 * the queue file, without the daemon lock. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/text.h"
#include "ops/log.h"
#include "store/db.h"
#include "store/queue.h"

/* Rows fetched per database round trip while listing. */
#define LIST_PAGE 500
/* `detail` is cut to this many characters in the text listing. */
#define DETAIL_MAX_CHARS 80
#define MAX_CELLS 12

/* ---- one listed row, rendered as TAB text or as a JSON object ---------------------------- */

struct cell {
	const char *name;
	bool present; /* false: "-" / null */
	bool is_int;
	int64_t num;
	const char *text;
	bool is_detail; /* cut in the text listing */
	bool json_only; /* not a column of the text listing */
};

struct row_view {
	struct cell cells[MAX_CELLS];
	int count;
	char times[2][32];
	int times_used;
	char masked[64];
	char *owned[3];
	int owned_count;
};

static void view_reset(struct row_view *v)
{
	for (int i = 0; i < v->owned_count; i++)
		free(v->owned[i]);
	memset(v, 0, sizeof(*v));
}

static struct cell *view_add(struct row_view *v, const char *name)
{
	struct cell *c = &v->cells[v->count++];
	memset(c, 0, sizeof(*c));
	c->name = name;
	return c;
}

static void view_text(struct row_view *v, const char *name, const char *text)
{
	struct cell *c = view_add(v, name);
	c->present = text != NULL;
	c->text = text;
}

/* Keeps a heap string alive until view_reset(). */
static void view_text_owned(struct row_view *v, const char *name, char *text)
{
	if (text && v->owned_count < (int)(sizeof(v->owned) / sizeof(v->owned[0])))
		v->owned[v->owned_count++] = text;
	else if (text) {
		free(text);
		text = NULL;
	}
	view_text(v, name, text);
}

static void view_int(struct row_view *v, const char *name, bool present, int64_t num)
{
	struct cell *c = view_add(v, name);
	c->present = present;
	c->is_int = true;
	c->num = num;
}

static void view_time(struct row_view *v, const char *name, bool present, int64_t unix_ms)
{
	const char *text = NULL;
	if (present) {
		char *buf = v->times[v->times_used++];
		text = clock_rfc3339(unix_ms, buf, sizeof(v->times[0]));
	}
	view_text(v, name, text);
}

/* Bytes of s holding at most max_chars UTF-8 characters. */
static size_t utf8_prefix(const char *s, size_t max_chars)
{
	size_t chars = 0, i = 0;
	for (; s[i]; i++) {
		if (((unsigned char)s[i] & 0xC0) == 0x80)
			continue;
		if (chars == max_chars)
			break;
		chars++;
	}
	return i;
}

static void text_cell(struct tbuf *line, const struct cell *c)
{
	if (!c->present) {
		tbuf_putc(line, '-');
		return;
	}
	if (c->is_int) {
		tbuf_printf(line, "%lld", (long long)c->num);
		return;
	}
	size_t len = c->is_detail ? utf8_prefix(c->text, DETAIL_MAX_CHARS) : strlen(c->text);
	for (size_t i = 0; i < len; i++) {
		char ch = c->text[i];
		tbuf_putc(line, ch == '\t' || ch == '\n' || ch == '\r' ? ' ' : ch);
	}
}

static int print_text_row(const struct row_view *v, FILE *out)
{
	struct tbuf line;
	tbuf_init(&line);
	bool first = true;
	for (int i = 0; i < v->count; i++) {
		if (v->cells[i].json_only)
			continue;
		if (!first)
			tbuf_putc(&line, '\t');
		first = false;
		text_cell(&line, &v->cells[i]);
	}
	tbuf_putc(&line, '\n');
	int err = line.oom ? ILA_ERR_NOMEM : 0;
	if (!err && fwrite(line.data, 1, line.len, out) != line.len)
		err = ILA_ERR_IO;
	tbuf_free(&line);
	return err;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD (jansson refuses them). */
static json_t *json_text(const char *s)
{
	size_t len = strlen(s);
	if (text_utf8_valid(s, len))
		return json_string(s);
	char *clean = text_utf8_sanitize(s, len, len * 3 + 1);
	json_t *v = clean ? json_string(clean) : NULL;
	free(clean);
	return v;
}

static json_t *json_row(const struct row_view *v)
{
	json_t *obj = json_object();
	for (int i = 0; obj && i < v->count; i++) {
		const struct cell *c = &v->cells[i];
		json_t *val = !c->present ? json_null()
			      : c->is_int ? json_integer((json_int_t)c->num)
					  : json_text(c->text);
		if (!val || json_object_set_new(obj, c->name, val) != 0) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

static int print_json_row(const struct row_view *v, bool first, FILE *out)
{
	json_t *obj = json_row(v);
	char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(obj);
	if (!text)
		return ILA_ERR_NOMEM;
	int err = 0;
	if ((!first && fputc(',', out) == EOF) || fputs(text, out) == EOF)
		err = ILA_ERR_IO;
	free(text);
	return err;
}

/* ---- target and detail (§17.1) ------------------------------------------------------------ */

/* Routing key, email and shift of a policy item's payload (any may be missing). */
struct policy_fields {
	char *routing_key;
	char *email;
	char *shift;
};

static char *json_member_text(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	char buf[32];
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		return strdup(buf);
	}
	if (json_is_real(v)) {
		snprintf(buf, sizeof(buf), "%g", json_real_value(v));
		return strdup(buf);
	}
	return NULL;
}

static void policy_fields_read(const char *payload, struct policy_fields *pf)
{
	memset(pf, 0, sizeof(*pf));
	json_t *root = payload ? json_loads(payload, 0, NULL) : NULL;
	if (!json_is_object(root)) {
		json_decref(root);
		return;
	}
	pf->routing_key = json_member_text(root, "routingKey");
	pf->email = json_member_text(root, "email");
	pf->shift = json_member_text(root, "shift");
	json_decref(root);
}

static void policy_fields_free(struct policy_fields *pf)
{
	free(pf->routing_key);
	free(pf->email);
	free(pf->shift);
}

/* Adds the target and detail cells of one item. */
static void view_target_detail(struct row_view *v, enum store_kind kind,
			       const char *integration_key, const char *event_type,
			       const char *summary, const char *payload)
{
	char *detail = NULL;
	if (kind == STORE_KIND_POLICY) {
		struct policy_fields pf;
		policy_fields_read(payload, &pf);
		struct tbuf b;
		tbuf_init(&b);
		tbuf_printf(&b, "level %s for %s", pf.shift ? pf.shift : "-",
			    pf.email ? pf.email : "-");
		view_text_owned(v, "target", pf.routing_key);
		pf.routing_key = NULL;
		detail = tbuf_take(&b);
		policy_fields_free(&pf);
	} else {
		view_text(v, "target",
			  text_mask(integration_key ? integration_key : "", v->masked,
				    sizeof(v->masked)));
		if (kind == STORE_KIND_EVENT) {
			struct tbuf b;
			tbuf_init(&b);
			tbuf_printf(&b, "%s %s", event_type ? event_type : "",
				    summary ? summary : "");
			detail = tbuf_take(&b);
		}
	}
	view_text_owned(v, "detail", detail);
	v->cells[v->count - 1].is_detail = true;
}

static void view_queued(struct row_view *v, const struct store_item *it)
{
	view_int(v, "seq", true, it->seq);
	view_text(v, "id", it->id);
	view_text(v, "kind", store_kind_name(it->kind));
	view_text(v, "source", it->source ? it->source : "legacy");
	view_time(v, "accepted_at", true, it->accepted_at);
	view_int(v, "attempts", true, it->attempts);
	/* 0 means "due at once": there is no scheduled time to show. */
	view_time(v, "next_attempt_at", it->next_attempt_at != 0, it->next_attempt_at);
	view_target_detail(v, it->kind, it->integration_key, it->event_type, it->summary,
			   it->payload);
	view_text(v, "last_error", it->last_error);
}

static void view_dead(struct row_view *v, const struct store_dead *d)
{
	view_int(v, "id", true, d->id);
	view_text(v, "item_id", d->item_id);
	view_text(v, "kind", store_kind_name(d->kind));
	view_text(v, "source", d->source ? d->source : "legacy");
	view_time(v, "dead_at", true, d->dead_at);
	view_text(v, "reason", d->reason);
	view_int(v, "status", d->last_status != 0, d->last_status);
	view_int(v, "attempts", true, d->attempts);
	view_target_detail(v, d->kind, d->integration_key, d->event_type, d->summary,
			   d->payload);
	view_text(v, "last_error", d->last_error);
	view_text(v, "body_excerpt", d->body_excerpt);
	v->cells[v->count - 1].json_only = true;
}

/* ---- listing ------------------------------------------------------------------------------ */

static const char queued_header[] = "seq\tid\tkind\tsource\taccepted_at\tattempts\t"
				    "next_attempt_at\ttarget\tdetail\tlast_error\n";
static const char dead_header[] = "id\titem_id\tkind\tsource\tdead_at\treason\tstatus\t"
				  "attempts\ttarget\tdetail\tlast_error\n";

struct lister {
	struct store *st;
	bool json;
	bool dead;
	int64_t remaining; /* rows still to print; < 0 = no limit */
	int64_t cursor;    /* seq (queued) or dead-letter id of the last row printed */
	bool first;
	FILE *out;
};

static size_t lister_page_size(const struct lister *l)
{
	if (l->remaining >= 0 && l->remaining < LIST_PAGE)
		return (size_t)l->remaining;
	return LIST_PAGE;
}

static int lister_emit(struct lister *l, const struct row_view *v)
{
	int err = l->json ? print_json_row(v, l->first, l->out) : print_text_row(v, l->out);
	l->first = false;
	if (l->remaining > 0)
		l->remaining--;
	return err;
}

/* Prints one page; *more is false once the table or the limit is exhausted. */
static int lister_page_queued(struct lister *l, bool *more)
{
	struct store_item_list page;
	size_t want = lister_page_size(l);
	int err = store_items_page(l->st, l->cursor, want, &page);
	if (err)
		return err;
	for (size_t i = 0; i < page.count && !err; i++) {
		struct row_view v = { 0 };
		view_queued(&v, &page.items[i]);
		err = lister_emit(l, &v);
		view_reset(&v);
		l->cursor = page.items[i].seq;
	}
	*more = page.count == want && l->remaining != 0;
	store_item_list_free(&page);
	return err;
}

static int lister_page_dead(struct lister *l, bool *more)
{
	struct store_dead_list page;
	size_t want = lister_page_size(l);
	int err = store_dead_page(l->st, l->cursor, want, &page);
	if (err)
		return err;
	for (size_t i = 0; i < page.count && !err; i++) {
		struct row_view v = { 0 };
		view_dead(&v, &page.rows[i]);
		err = lister_emit(l, &v);
		view_reset(&v);
		l->cursor = page.rows[i].id;
	}
	*more = page.count == want && l->remaining != 0;
	store_dead_list_free(&page);
	return err;
}

static int queue_list(struct store *st, const struct config *cfg, FILE *out)
{
	struct lister l = {
		.st = st, .json = cfg->queue_json, .dead = cfg->queue_dead,
		.remaining = cfg->queue_limit > 0 ? cfg->queue_limit : -1,
		.cursor = 0, .first = true, .out = out,
	};
	if (fputs(l.json ? "[" : l.dead ? dead_header : queued_header, out) == EOF)
		return ILA_ERR_IO;
	bool more = l.remaining != 0;
	int err = 0;
	while (more && !err)
		err = l.dead ? lister_page_dead(&l, &more) : lister_page_queued(&l, &more);
	if (!err && l.json && fputs("]\n", out) == EOF)
		err = ILA_ERR_IO;
	return err;
}

/* ---- stats, retry, purge ------------------------------------------------------------------ */

static int queue_stats(struct store *st, bool json, FILE *out)
{
	struct store_stats s;
	int err = store_stats_read(st, &s);
	if (err)
		return err;
	int64_t age = 0;
	if (s.has_oldest) {
		age = (clock_now_ms() - s.oldest_accepted_at) / 1000;
		if (age < 0)
			age = 0;
	}
	const char *names[] = { "queued",   "queued_event",       "queued_heartbeat",
				"queued_policy", "retrying", "oldest_age_seconds",
				"dead",     "legacy_mqtt_queue" };
	const int64_t values[] = { s.queued,        s.queued_event, s.queued_heartbeat,
				   s.queued_policy, s.retrying,     age,
				   s.dead,          s.legacy_mqtt_queue };
	const size_t n = sizeof(names) / sizeof(names[0]);
	if (!json) {
		for (size_t i = 0; i < n; i++)
			if (fprintf(out, "%s\t%lld\n", names[i], (long long)values[i]) < 0)
				return ILA_ERR_IO;
		return 0;
	}
	json_t *obj = json_object();
	for (size_t i = 0; obj && i < n; i++) {
		if (json_object_set_new(obj, names[i], json_integer((json_int_t)values[i])) != 0) {
			json_decref(obj);
			obj = NULL;
		}
	}
	char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(obj);
	if (!text)
		return ILA_ERR_NOMEM;
	err = fprintf(out, "%s\n", text) < 0 ? ILA_ERR_IO : 0;
	free(text);
	return err;
}

static int queue_retry(struct store *st, const struct config *cfg, FILE *out)
{
	int64_t count = 0;
	int err;
	if (cfg->queue_all) {
		err = store_dead_requeue_all(st, clock_now_ms(), &count);
	} else {
		err = store_dead_requeue(st, cfg->queue_retry_id, clock_now_ms(), NULL);
		count = 1;
	}
	if (err)
		return err;
	return fprintf(out, "requeued %lld\n", (long long)count) < 0 ? ILA_ERR_IO : 0;
}

static int queue_purge(struct store *st, FILE *out)
{
	int64_t count = 0;
	int err = store_dead_purge(st, &count);
	if (err)
		return err;
	return fprintf(out, "purged %lld\n", (long long)count) < 0 ? ILA_ERR_IO : 0;
}

static int queue_dispatch(struct store *st, const struct config *cfg, FILE *out)
{
	switch (cfg->queue_action) {
	case QUEUE_STATS: return queue_stats(st, cfg->queue_json, out);
	case QUEUE_LIST: return queue_list(st, cfg, out);
	case QUEUE_RETRY: return queue_retry(st, cfg, out);
	case QUEUE_PURGE: return queue_purge(st, out);
	default: return ILA_ERR_INVALID;
	}
}

static void report_failure(struct store *st, const struct config *cfg, int err)
{
	switch (err) {
	case ILA_ERR_NOTFOUND:
		log_fatal_line("no dead letter with id %lld", (long long)cfg->queue_retry_id);
		break;
	case ILA_ERR_CORRUPT: log_fatal_line("database corrupted: %s", store_errmsg(st)); break;
	case ILA_ERR_IO: log_fatal_line("cannot write the output"); break;
	case ILA_ERR_NOMEM: log_fatal_line("out of memory"); break;
	case ILA_ERR_INVALID: log_fatal_line("no queue command given"); break;
	default: log_fatal_line("database error: %s", store_errmsg(st)); break;
	}
}

int cmd_queue_run(const struct config *cfg)
{
	struct store_options opts = {
		.path = cfg->file,
		.mode = STORE_MODE_QUEUE,
		.sync_normal = cfg->db_sync == DB_SYNC_NORMAL,
	};
	char msg[STORE_MSG_SIZE];
	struct store *st = NULL;
	if (store_open(&opts, &st, msg, sizeof(msg)) != 0) {
		log_fatal_line("%s", msg);
		return 1;
	}
	int err = queue_dispatch(st, cfg, stdout);
	if (!err && fflush(stdout) != 0)
		err = ILA_ERR_IO;
	if (err)
		report_failure(st, cfg, err);
	store_close(st);
	return err ? 1 : 0;
}
