#include "pipeline/normalize.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/event.h"
#include "core/text.h"
#include "core/topic.h"
#include "ops/log.h"

#define JSON_MAX_DEPTH 64
#define BATCH_MAX_EVENTS 1000
#define NOMEM_TEXT "Internal error occurred."
/* Compact, members in received order, scalars allowed (customDetails may be any value). */
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)

/* ---- the wire model (§7.1) --------------------------------------------------------------- */

/* In wire-model order: type errors are reported in this order. */
enum wire_key {
	WK_INTEGRATION_KEY,
	WK_API_KEY,
	WK_EVENT_TYPE,
	WK_SUMMARY,
	WK_DETAILS,
	WK_ALERT_KEY,
	WK_PRIORITY,
	WK_IMAGES,
	WK_LINKS,
	WK_CUSTOM_DETAILS,
	WK_COUNT,
	WK_NONE = -1,
};

static const char *const wire_names[WK_COUNT] = {
	"integrationKey", "apiKey", "eventType", "summary", "details",
	"alertKey",       "priority", "images", "links",  "customDetails",
};
static const unsigned char wire_name_lens[WK_COUNT] = { 14, 6, 9, 7, 7, 8, 8, 6, 5, 13 };

#define WK_BIT(k) ((uint16_t)(1u << (k)))
#define WK_KEY_BITS (WK_BIT(WK_INTEGRATION_KEY) | WK_BIT(WK_API_KEY))

static enum wire_key wire_key_lookup(const char *name, size_t len)
{
	for (int k = 0; k < WK_COUNT; k++)
		if (wire_name_lens[k] == len && memcmp(wire_names[k], name, len) == 0)
			return (enum wire_key)k;
	return WK_NONE;
}

/* ---- small text builders ----------------------------------------------------------------- */

static char *textf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *textf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* Writes s as a JSON string the way jansson's compact dump does (", \ and control characters
 * escaped, UTF-8 kept), so hand-built and dumped JSON compare byte for byte. s is valid
 * UTF-8: it came out of the parser or was checked. */
static void json_put_string(struct tbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	tbuf_putc(b, '"');
	const char *run = s;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		tbuf_append(b, run, (size_t)(p - run));
		run = p + 1;
		switch (c) {
		case '"': tbuf_puts(b, "\\\""); break;
		case '\\': tbuf_puts(b, "\\\\"); break;
		case '\b': tbuf_puts(b, "\\b"); break;
		case '\f': tbuf_puts(b, "\\f"); break;
		case '\n': tbuf_puts(b, "\\n"); break;
		case '\r': tbuf_puts(b, "\\r"); break;
		case '\t': tbuf_puts(b, "\\t"); break;
		default: {
			char esc[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
			tbuf_puts(b, esc);
		}
		}
	}
	tbuf_puts(b, run);
	tbuf_putc(b, '"');
}

static void json_put_string_or_null(struct tbuf *b, const char *s)
{
	if (s)
		json_put_string(b, s);
	else
		tbuf_puts(b, "null");
}

static void json_put_raw_or_null(struct tbuf *b, const char *json)
{
	tbuf_puts(b, json ? json : "null");
}

/* ---- pre-scan: nesting depth and repeated top-level members --------------------------------
 * jansson accepts far deeper documents than §7.2 allows and, without
 * JSON_REJECT_DUPLICATES (which would also forbid repeats inside customDetails), keeps the
 * last of repeated members silently. One pass over the raw text outside strings answers
 * both questions before the parser spends time on a document that is too deep. The results
 * are only used once the parser has accepted the document, so the scan may be naive about
 * invalid input; it only must never read past the end. */

struct event_dups {
	int8_t first;  /* wire_key of the first repeated member, WK_NONE when none */
	uint16_t mask; /* every wire_key repeated */
};

struct scan {
	int max_depth;    /* deepest nesting allowed (containers counted from 1) */
	int event_depth;  /* depth of the event objects: 1 for a single body, 2 for a batch */
	struct event_dups *dups; /* one per event, indexed by array position */
	size_t dup_cap;
	long deep_event; /* batch: first element nesting deeper than max_depth, -1 when none */
};

/* Decodes a member name that contains escapes into out; false when it is not plain ASCII
 * (then it cannot be a wire-model name) or longer than out. */
static bool decode_ascii_name(const char *s, size_t len, char *out, size_t cap, size_t *out_len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\\') {
			if (++i >= len)
				return false;
			switch (s[i]) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case '/': c = '/'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				if (len - i < 5)
					return false;
				unsigned v = 0;
				for (int h = 1; h <= 4; h++) {
					char x = s[i + (size_t)h];
					v <<= 4;
					if (x >= '0' && x <= '9')
						v |= (unsigned)(x - '0');
					else if (x >= 'a' && x <= 'f')
						v |= (unsigned)(x - 'a' + 10);
					else if (x >= 'A' && x <= 'F')
						v |= (unsigned)(x - 'A' + 10);
					else
						return false;
				}
				if (v == 0 || v >= 0x80)
					return false;
				c = (char)v;
				i += 4;
				break;
			}
			default: return false;
			}
		}
		if (n >= cap)
			return false;
		out[n++] = c;
	}
	*out_len = n;
	return true;
}

static void scan_note_key(struct scan *sc, size_t event, uint16_t *seen, const char *name,
			  size_t len, bool escaped)
{
	enum wire_key k;
	if (escaped) {
		char buf[32];
		size_t n;
		if (!decode_ascii_name(name, len, buf, sizeof(buf), &n))
			return;
		k = wire_key_lookup(buf, n);
	} else {
		k = wire_key_lookup(name, len);
	}
	if (k == WK_NONE)
		return;
	uint16_t bit = WK_BIT(k);
	bool repeated = (*seen & bit) || ((bit & WK_KEY_BITS) && (*seen & WK_KEY_BITS));
	*seen |= bit;
	if (!repeated || event >= sc->dup_cap)
		return;
	struct event_dups *d = &sc->dups[event];
	if (d->first == WK_NONE)
		d->first = (int8_t)k;
	d->mask |= bit;
}

/* False when a single document nests deeper than sc->max_depth. In a batch only the element
 * that does is noted (sc->deep_event), so that earlier elements are judged first (§10.6). */
static bool scan_body(const char *s, size_t len, struct scan *sc)
{
	int depth = 0;
	size_t event = 0;
	uint16_t seen = 0;
	bool expect_key = false;
	for (size_t i = 0; i < sc->dup_cap; i++)
		sc->dups[i] = (struct event_dups){ WK_NONE, 0 };
	sc->deep_event = -1;
	size_t i = 0;
	while (i < len) {
		char c = s[i++];
		switch (c) {
		case '{':
		case '[':
			if (++depth > sc->max_depth) {
				if (sc->event_depth == 1)
					return false;
				if (sc->deep_event < 0)
					sc->deep_event = (long)event;
			}
			if (depth == sc->event_depth) {
				seen = 0;
				expect_key = c == '{';
			}
			break;
		case '}':
		case ']':
			if (depth > 0)
				depth--;
			expect_key = false;
			break;
		case ',':
			if (depth == 1 && sc->event_depth == 2)
				event++;
			/* In an array this marks strings as keys too; harmless, because only
			 * objects are ever asked about their repeats. */
			if (depth == sc->event_depth)
				expect_key = true;
			break;
		case '"': {
			size_t start = i;
			bool escaped = false;
			while (i < len && s[i] != '"') {
				if (s[i] == '\\') {
					escaped = true;
					i++;
				}
				i++;
			}
			size_t end = i < len ? i : len;
			i = end + 1;
			if (expect_key && depth == sc->event_depth) {
				expect_key = false;
				scan_note_key(sc, sc->event_depth == 1 ? 0 : event, &seen, s + start,
					      end - start, escaped);
			}
			break;
		}
		default: break;
		}
	}
	return true;
}

/* ---- parsing ----------------------------------------------------------------------------- */

/* Parses a whole document. Integers beyond 64 bits are valid JSON that jansson cannot hold as
 * integers; such a document is read again with every number as a double, which keeps each
 * number's value (§7.2 lets the textual form change). "\u0000" is refused: the string fields
 * are C strings and would be cut silently. */
static json_t *parse_document(const char *body, size_t len, char **error)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
	if (!root && json_error_code(&jerr) == json_error_numeric_overflow)
		root = json_loadb(body, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
	if (root)
		return root;
	/* The detail quotes input near the error; it goes into JSON answers, so it must be
	 * UTF-8 even if the parser ever cut a character in two. */
	char *detail = json_error_code(&jerr) == json_error_null_character
			       ? strdup("\\u0000 is not supported")
			       : text_utf8_sanitize(jerr.text, strlen(jerr.text), 3 * sizeof jerr.text);
	if (detail)
		*error = textf("Invalid JSON: %s at line %d, column %d", detail, jerr.line,
			       jerr.column);
	free(detail);
	return NULL;
}

static char *too_deep_error(int max_depth)
{
	return textf("Invalid JSON: nesting depth exceeds %d", max_depth);
}

/* The wire-model members of one object, borrowed from the parsed document. */
struct wire {
	json_t *v[WK_COUNT]; /* NULL when absent */
};

static void wire_collect(json_t *obj, struct wire *w)
{
	memset(w, 0, sizeof(*w));
	for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
		enum wire_key k =
			wire_key_lookup(json_object_iter_key(it), json_object_iter_key_len(it));
		if (k != WK_NONE)
			w->v[k] = json_object_iter_value(it);
	}
}

/* The member carrying the integration key, by the name the client used. */
static enum wire_key wire_key_member(const struct wire *w)
{
	return w->v[WK_API_KEY] ? WK_API_KEY : WK_INTEGRATION_KEY;
}

static bool present(const json_t *v)
{
	return v && !json_is_null(v);
}

/* An optional string member of an image or link: absent, null or a string. */
static bool optional_string_ok(const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);
	return !v || json_is_null(v) || json_is_string(v);
}

static bool elements_valid(const json_t *array, const char *required, const char *opt1,
			   const char *opt2)
{
	size_t i;
	const json_t *el;
	json_array_foreach (array, i, el) {
		if (!json_is_object(el) || !json_is_string(json_object_get(el, required)) ||
		    !optional_string_ok(el, opt1) || (opt2 && !optional_string_ok(el, opt2)))
			return false;
	}
	return true;
}

/* §7.2 checks of one event object in the order of §10.5: repeated members, missing required
 * members (HTTP only; null counts as missing), wrong types, bad images/links elements.
 * Returns the error text (heap) or NULL when the object is well-formed. Names in the texts are
 * the names the client sent: apiKey when it used the alias (also for `"apiKey":null`, which
 * is missing), integrationKey otherwise; a repeat names the member that repeated (apiKey
 * after integrationKey, or the other way round). The empty-key text of §10.5 always says
 * integrationKey. */
static char *wire_check(const struct wire *w, const struct event_dups *dups, bool http,
			bool *nomem)
{
	char *e = NULL;
	if (dups->first != WK_NONE) {
		e = textf("Duplicate field '%s'.", wire_names[dups->first]);
		goto out;
	}
	enum wire_key ik = wire_key_member(w);
	if (http) {
		static const enum wire_key required[] = { WK_INTEGRATION_KEY, WK_EVENT_TYPE,
							  WK_SUMMARY };
		for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
			enum wire_key k = required[i] == WK_INTEGRATION_KEY ? ik : required[i];
			if (!present(w->v[k])) {
				e = textf("Missing field '%s'.", wire_names[k]);
				goto out;
			}
		}
	}
	for (int k = WK_INTEGRATION_KEY; k < WK_CUSTOM_DETAILS; k++) {
		const json_t *v = w->v[k];
		if (!present(v))
			continue;
		bool ok = (k == WK_IMAGES || k == WK_LINKS) ? json_is_array(v) : json_is_string(v);
		if (!ok) {
			e = textf("Invalid type for field '%s'.", wire_names[k]);
			goto out;
		}
	}
	if (present(w->v[WK_IMAGES]) && !elements_valid(w->v[WK_IMAGES], "src", "href", "alt")) {
		e = strdup("Invalid value for field 'images'.");
		goto out;
	}
	if (present(w->v[WK_LINKS]) && !elements_valid(w->v[WK_LINKS], "href", "text", NULL)) {
		e = strdup("Invalid value for field 'links'.");
		goto out;
	}
	return NULL;
out:
	if (!e)
		*nomem = true;
	return e;
}

static const char *string_or_null(const json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- building items ---------------------------------------------------------------------- */

/* The event being built. Strings are borrowed (from the document or the rules) until
 * draft_finish() copies them into the item. */
struct draft {
	const char *integration_key;
	const char *event_type;
	const char *summary;
	const char *details;
	const char *alert_key;
	const char *priority;
	json_t *images; /* arrays, NULL when absent */
	json_t *links;
	json_t *custom;    /* customDetails value to dump, NULL when absent */
	char *custom_text; /* customDetails already as JSON text (owned); wins over custom */
	json_t *strip_root; /* customDetails is this object minus integrationKey/apiKey */
};

static void draft_from_wire(struct draft *d, const struct wire *w)
{
	memset(d, 0, sizeof(*d));
	d->integration_key = string_or_null(w->v[wire_key_member(w)]);
	d->event_type = string_or_null(w->v[WK_EVENT_TYPE]);
	d->summary = string_or_null(w->v[WK_SUMMARY]);
	d->details = string_or_null(w->v[WK_DETAILS]);
	d->alert_key = string_or_null(w->v[WK_ALERT_KEY]);
	d->priority = string_or_null(w->v[WK_PRIORITY]);
	d->images = present(w->v[WK_IMAGES]) ? w->v[WK_IMAGES] : NULL;
	d->links = present(w->v[WK_LINKS]) ? w->v[WK_LINKS] : NULL;
	d->custom = present(w->v[WK_CUSTOM_DETAILS]) ? w->v[WK_CUSTOM_DETAILS] : NULL;
}

static int dup_opt(char **field, const char *value)
{
	if (!value)
		return 0;
	*field = strdup(value);
	return *field ? 0 : ILA_ERR_NOMEM;
}

static int dump_opt(char **field, json_t *value)
{
	if (!value)
		return 0;
	*field = json_dumps(value, DUMP_FLAGS);
	return *field ? 0 : ILA_ERR_NOMEM;
}

/* §9: the compared content, compact JSON with the members in a fixed order and each value
 * serialized in received member order. */
static char *dedup_content_build(const struct event *ev)
{
	struct tbuf b;
	tbuf_init(&b);
	tbuf_puts(&b, "{\"summary\":");
	json_put_string_or_null(&b, ev->summary);
	tbuf_puts(&b, ",\"details\":");
	json_put_string_or_null(&b, ev->details);
	tbuf_puts(&b, ",\"priority\":");
	json_put_string_or_null(&b, ev->priority);
	tbuf_puts(&b, ",\"images\":");
	json_put_raw_or_null(&b, ev->images);
	tbuf_puts(&b, ",\"links\":");
	json_put_raw_or_null(&b, ev->links);
	tbuf_puts(&b, ",\"customDetails\":");
	json_put_raw_or_null(&b, ev->custom_details);
	tbuf_putc(&b, '}');
	if (b.oom) {
		tbuf_free(&b);
		return NULL;
	}
	return tbuf_take(&b);
}

/* Copies the draft into item->ev and derives the alert key, ordering key and dedup content.
 * Returns 0, ILA_ERR_NOMEM, or ILA_ERR_INVALID with *invalid_field set (§7.3 rules 2-4). */
static int draft_finish(struct draft *d, struct pending_item *item, bool want_dedup,
			const char **invalid_field)
{
	struct event *ev = &item->ev;
	memset(item, 0, sizeof(*item));
	item->kind = STORE_KIND_EVENT;
	*invalid_field = NULL;
	int rc;
	if ((rc = dup_opt(&ev->integration_key, d->integration_key)) ||
	    (rc = dup_opt(&ev->event_type, d->event_type)) ||
	    (rc = dup_opt(&ev->summary, d->summary)) || (rc = dup_opt(&ev->details, d->details)) ||
	    (rc = dup_opt(&ev->priority, d->priority)) ||
	    (rc = event_normalize_alert_key(d->alert_key, &ev->alert_key)))
		goto fail;
	*invalid_field = event_invalid_field(ev);
	if (*invalid_field) {
		rc = ILA_ERR_INVALID;
		goto fail;
	}
	if ((rc = dump_opt(&ev->images, d->images)) || (rc = dump_opt(&ev->links, d->links)))
		goto fail;
	if (d->custom_text) {
		ev->custom_details = d->custom_text;
		d->custom_text = NULL;
	} else if (d->strip_root) {
		/* The borrowed strings above are copied by now, so their members may go. */
		json_object_del(d->strip_root, "integrationKey");
		json_object_del(d->strip_root, "apiKey");
		rc = dump_opt(&ev->custom_details, d->strip_root);
	} else {
		rc = dump_opt(&ev->custom_details, d->custom);
	}
	if (rc || (rc = event_order_key(ev->integration_key, ev->alert_key, &item->order_key)))
		goto fail;
	if (want_dedup && ev->alert_key) {
		item->dedup_content = dedup_content_build(ev);
		if (!item->dedup_content) {
			rc = ILA_ERR_NOMEM;
			goto fail;
		}
	}
	return 0;
fail:
	pending_item_clear(item);
	free(d->custom_text);
	d->custom_text = NULL;
	return rc;
}

static const char *const image_echo_members[] = { "src", "href", "alt", NULL };
static const char *const link_echo_members[] = { "href", "text", NULL };

/* An images/links array echoed as objects with exactly these members in this order (absent
 * ones null), or null when the event has none. */
static void echo_list(struct tbuf *b, const json_t *list, const char *const *members)
{
	if (!list) {
		tbuf_puts(b, "null");
		return;
	}
	size_t i;
	const json_t *el;
	tbuf_putc(b, '[');
	json_array_foreach (list, i, el) {
		tbuf_puts(b, i ? ",{" : "{");
		for (const char *const *m = members; *m; m++) {
			tbuf_printf(b, "%s\"%s\":", m == members ? "" : ",", *m);
			json_put_string_or_null(b, string_or_null(json_object_get(el, *m)));
		}
		tbuf_putc(b, '}');
	}
	tbuf_putc(b, ']');
}

/* §7.4: the nine keys in table order, images and links with their fixed members. */
static char *echo_build(const struct event *ev, const json_t *images, const json_t *links)
{
	struct tbuf b;
	tbuf_init(&b);
	tbuf_puts(&b, "{\"integrationKey\":");
	json_put_string_or_null(&b, ev->integration_key);
	tbuf_puts(&b, ",\"eventType\":");
	json_put_string_or_null(&b, ev->event_type);
	tbuf_puts(&b, ",\"summary\":");
	json_put_string_or_null(&b, ev->summary);
	tbuf_puts(&b, ",\"details\":");
	json_put_string_or_null(&b, ev->details);
	tbuf_puts(&b, ",\"alertKey\":");
	json_put_string_or_null(&b, ev->alert_key);
	tbuf_puts(&b, ",\"priority\":");
	json_put_string_or_null(&b, ev->priority);
	tbuf_puts(&b, ",\"images\":");
	echo_list(&b, images, image_echo_members);
	tbuf_puts(&b, ",\"links\":");
	echo_list(&b, links, link_echo_members);
	tbuf_puts(&b, ",\"customDetails\":");
	json_put_raw_or_null(&b, ev->custom_details);
	tbuf_putc(&b, '}');
	if (b.oom) {
		tbuf_free(&b);
		return NULL;
	}
	return tbuf_take(&b);
}

/* ---- HTTP (§10.5, §10.6) ----------------------------------------------------------------- */

/* One HTTP event object: §7.2 checks, §7.3 validation, item (and echo when asked). */
static int http_event_object(json_t *obj, const struct event_dups *dups, bool want_dedup,
			     struct pending_item *item, char **echo, char **error)
{
	if (!json_is_object(obj)) {
		*error = strdup("Request body must be a JSON object.");
		return *error ? ILA_ERR_INVALID : ILA_ERR_NOMEM;
	}
	struct wire w;
	wire_collect(obj, &w);
	bool nomem = false;
	*error = wire_check(&w, dups, true, &nomem);
	if (nomem)
		return ILA_ERR_NOMEM;
	if (*error)
		return ILA_ERR_INVALID;
	struct draft d;
	draft_from_wire(&d, &w);
	const char *bad;
	int rc = draft_finish(&d, item, want_dedup, &bad);
	if (rc == ILA_ERR_INVALID) {
		*error = textf("Unsupported value for field '%s'.", bad);
		return *error ? ILA_ERR_INVALID : ILA_ERR_NOMEM;
	}
	if (rc)
		return rc;
	if (echo) {
		*echo = echo_build(&item->ev, d.images, d.links);
		if (!*echo) {
			pending_item_clear(item);
			return ILA_ERR_NOMEM;
		}
	}
	return 0;
}

/* Scan and parse one event-shaped document (depth ≤ 64). NULL with *error set on a rejection,
 * NULL with *error NULL when memory ran out. dups may be NULL. */
static json_t *load_single(const char *body, size_t len, struct event_dups *dups, char **error)
{
	struct event_dups unused;
	struct scan sc = { .max_depth = JSON_MAX_DEPTH, .event_depth = 1,
			   .dups = dups ? dups : &unused, .dup_cap = 1 };
	*error = NULL;
	if (!scan_body(body, len, &sc)) {
		*error = too_deep_error(JSON_MAX_DEPTH);
		return NULL;
	}
	return parse_document(body, len, error);
}

static int http_event(const char *body, size_t len, bool want_dedup, struct pending_item *item,
		      char **echo, char **error)
{
	if (echo)
		*echo = NULL;
	memset(item, 0, sizeof(*item));
	struct event_dups dups;
	json_t *root = load_single(body, len, &dups, error);
	if (!root)
		return *error ? ILA_ERR_INVALID : ILA_ERR_NOMEM;
	int rc = http_event_object(root, &dups, want_dedup, item, echo, error);
	json_decref(root);
	return rc;
}

int normalize_http_event(const char *body, size_t len, struct pending_item *item, char **echo,
			 char **error)
{
	return http_event(body, len, true, item, echo, error);
}

static void items_free(struct pending_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pending_item_clear(&items[i]);
	free(items);
}

static int http_batch_elements(json_t *root, const struct scan *sc, bool want_dedup,
			       struct pending_item **items, size_t *count, char **error,
			       int *index)
{
	size_t n = json_array_size(root);
	struct pending_item *out = n ? calloc(n, sizeof(*out)) : NULL;
	if (n && !out)
		return ILA_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		char *why = NULL;
		int rc;
		if ((long)i == sc->deep_event) {
			why = too_deep_error(JSON_MAX_DEPTH);
			rc = why ? ILA_ERR_INVALID : ILA_ERR_NOMEM;
		} else {
			rc = http_event_object(json_array_get(root, i), &sc->dups[i], want_dedup,
					       &out[i], NULL, &why);
		}
		if (rc) {
			items_free(out, i);
			if (rc == ILA_ERR_INVALID) {
				*error = textf("Event at index %zu: %s", i, why);
				*index = (int)i;
				if (!*error)
					rc = ILA_ERR_NOMEM;
			}
			free(why);
			return rc;
		}
	}
	*items = out;
	*count = n;
	return 0;
}

static int http_batch(const char *body, size_t len, bool want_dedup, struct pending_item **items,
		      size_t *count, char **error, int *index)
{
	*items = NULL;
	*count = 0;
	*error = NULL;
	*index = -1;
	/* Each element may nest as deep as a single event, below the array itself. */
	struct event_dups *dups = malloc(BATCH_MAX_EVENTS * sizeof(*dups));
	if (!dups)
		return ILA_ERR_NOMEM;
	struct scan sc = { .max_depth = JSON_MAX_DEPTH + 1, .event_depth = 2, .dups = dups,
			   .dup_cap = BATCH_MAX_EVENTS };
	int rc = ILA_ERR_INVALID;
	(void)scan_body(body, len, &sc); /* a batch is never refused as a whole for depth */
	json_t *root = parse_document(body, len, error);
	if (!root)
		goto out;
	if (!json_is_array(root)) {
		*error = strdup("Request body must be a JSON array.");
		goto out;
	}
	if (json_array_size(root) > BATCH_MAX_EVENTS) {
		*error = textf("Batch must not contain more than %d events.", BATCH_MAX_EVENTS);
		goto out;
	}
	rc = http_batch_elements(root, &sc, want_dedup, items, count, error, index);
out:
	if (rc == ILA_ERR_INVALID && !*error)
		rc = ILA_ERR_NOMEM;
	json_decref(root);
	free(dups);
	return rc;
}

int normalize_http_batch(const char *body, size_t len, struct pending_item **items,
			 size_t *count, char **error, int *index)
{
	return http_batch(body, len, true, items, count, error, index);
}

/* ---- consumer rules ---------------------------------------------------------------------- */

struct normalize_rules {
	enum source protocol;
	bool dedup;
	int64_t max_body;
	struct topic_classifier *classifier; /* NULL for HTTP */
	char *event_key;
	char *map_key_etype;
	char *map_key_alert_key;
	char *map_key_summary;
	char *map_val_etype_alert;
	char *map_val_etype_accept;
	char *map_val_etype_resolve;
	char *filter_key; /* NULL: no filter */
	char *filter_val; /* only with filter_key */
	bool forward_message_payload;
	char **routing_keys; /* trimmed, non-empty names */
	size_t routing_key_count;
	char *map_key_email;
	char *map_key_shift;
	int64_t shift_offset;
};

static int rules_dup(char **field, const char *value, const char *fallback)
{
	return dup_opt(field, value ? value : fallback);
}

static int rules_split_routing_keys(struct normalize_rules *r, const char *list)
{
	if (!list)
		return 0;
	size_t max = 1;
	for (const char *p = list; *p; p++)
		max += *p == ',';
	r->routing_keys = calloc(max, sizeof(*r->routing_keys));
	if (!r->routing_keys)
		return ILA_ERR_NOMEM;
	const char *p = list;
	for (;;) {
		size_t n = strcspn(p, ",");
		char *raw = strndup(p, n);
		char *name = raw ? text_trim_dup(raw) : NULL;
		free(raw);
		if (!name)
			return ILA_ERR_NOMEM;
		if (*name)
			r->routing_keys[r->routing_key_count++] = name;
		else
			free(name);
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

struct normalize_rules *normalize_rules_create(const struct config *cfg, enum source protocol)
{
	struct normalize_rules *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->protocol = protocol;
	r->dedup = cfg->dedup_window > 0;
	r->max_body = cfg->max_body;
	r->forward_message_payload = cfg->forward_message_payload;
	r->shift_offset = cfg->shift_offset;
	if (protocol == SOURCE_MQTT || protocol == SOURCE_KAFKA) {
		char err[256];
		r->classifier = topic_classifier_create(
			protocol == SOURCE_KAFKA ? TOPIC_PROTO_KAFKA : TOPIC_PROTO_MQTT,
			cfg->event_topic, cfg->heartbeat_topic, cfg->policy_topic, err, sizeof(err));
		if (!r->classifier)
			goto fail;
	}
	if (rules_dup(&r->event_key, cfg->event_key, NULL) ||
	    rules_dup(&r->map_key_etype, cfg->map_key_etype, NULL) ||
	    rules_dup(&r->map_key_alert_key, cfg->map_key_alert_key, NULL) ||
	    rules_dup(&r->map_key_summary, cfg->map_key_summary, NULL) ||
	    rules_dup(&r->map_val_etype_alert, cfg->map_val_etype_alert, NULL) ||
	    rules_dup(&r->map_val_etype_accept, cfg->map_val_etype_accept, NULL) ||
	    rules_dup(&r->map_val_etype_resolve, cfg->map_val_etype_resolve, NULL) ||
	    rules_dup(&r->filter_key, cfg->filter_key, NULL) ||
	    rules_dup(&r->filter_val, cfg->filter_key ? cfg->filter_val : NULL, NULL) ||
	    rules_dup(&r->map_key_email, cfg->map_key_email, "data.email") ||
	    rules_dup(&r->map_key_shift, cfg->map_key_shift, "data.shift") ||
	    rules_split_routing_keys(r, cfg->policy_routing_keys))
		goto fail;
	return r;
fail:
	normalize_rules_destroy(r);
	return NULL;
}

void normalize_rules_destroy(struct normalize_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->routing_key_count; i++)
		free(r->routing_keys[i]);
	free(r->routing_keys);
	free(r->map_key_shift);
	free(r->map_key_email);
	free(r->filter_val);
	free(r->filter_key);
	free(r->map_val_etype_resolve);
	free(r->map_val_etype_accept);
	free(r->map_val_etype_alert);
	free(r->map_key_summary);
	free(r->map_key_alert_key);
	free(r->map_key_etype);
	free(r->event_key);
	topic_classifier_destroy(r->classifier);
	free(r);
}

/* ---- consumer mapping (§11.2-§11.5) ------------------------------------------------------ */

/* §11.2 dot path from the root: no array indexing, no escaping; an empty segment or a
 * non-object on the way means not found. */
static json_t *path_lookup(json_t *root, const char *path)
{
	json_t *cur = root;
	const char *p = path;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || !json_is_object(cur))
			return NULL;
		cur = json_object_getn(cur, p, n);
		if (!cur || !dot)
			return cur;
		p = dot + 1;
	}
}

/* §11.2 filter: true when the message passes. */
static bool filter_passes(const struct normalize_rules *r, const json_t *root)
{
	if (!r->filter_key)
		return true;
	if (!json_is_object(root))
		return false;
	const json_t *v = json_object_get(root, r->filter_key);
	if (!v)
		return false;
	if (!r->filter_val)
		return true;
	return json_is_string(v) && strcmp(json_string_value(v), r->filter_val) == 0;
}

static const char *component_of(enum source family)
{
	return family == SOURCE_KAFKA ? "kafka" : "mqtt";
}

/* Steps 4-6 of §11.3: a string at path replaces *field; any other value is ignored with a
 * warning. Returns the string found, NULL otherwise. */
static const char *map_string(json_t *root, const char *path, const char **field,
			      const char *what, enum source family)
{
	if (!path)
		return NULL;
	const json_t *v = path_lookup(root, path);
	if (!v)
		return NULL;
	if (!json_is_string(v)) {
		log_limited(LOG_LVL_WARN, component_of(family),
			    "Value at '%s' is not a string; keeping the previous %s", path, what);
		return NULL;
	}
	*field = json_string_value(v);
	return *field;
}

static void map_event_type(const struct normalize_rules *r, json_t *root, struct draft *d,
			   enum source family)
{
	const char *s = map_string(root, r->map_key_etype, &d->event_type, "event type", family);
	if (!s)
		return;
	if (r->map_val_etype_alert && strcmp(s, r->map_val_etype_alert) == 0)
		d->event_type = "ALERT";
	if (r->map_val_etype_accept && strcmp(s, r->map_val_etype_accept) == 0)
		d->event_type = "ACCEPT";
	if (r->map_val_etype_resolve && strcmp(s, r->map_val_etype_resolve) == 0)
		d->event_type = "RESOLVE";
}

static char *default_details(enum source family, const char *topic, const char *key)
{
	struct tbuf b;
	tbuf_init(&b);
	if (family == SOURCE_KAFKA) {
		tbuf_puts(&b, "{\"messageKey\":");
		json_put_string(&b, key ? key : "");
		tbuf_puts(&b, ",\"topic\":");
	} else {
		tbuf_puts(&b, "{\"topic\":");
	}
	json_put_string(&b, topic);
	tbuf_putc(&b, '}');
	if (b.oom) {
		tbuf_free(&b);
		return NULL;
	}
	return tbuf_take(&b);
}

/* A consumer rejection: why it lands in which counter, and the warning to log (may be NULL). */
struct verdict {
	enum reject_reason reason;
	char *warning;
};

static int verdict_set(struct verdict *v, enum reject_reason reason, char *warning)
{
	v->reason = reason;
	v->warning = warning;
	return ILA_ERR_INVALID;
}

/* An invalid message: the warning is prefix + why. Takes why; NULL why means out of memory. */
static int verdict_invalid(struct verdict *v, const char *prefix, char *why)
{
	if (!why)
		return ILA_ERR_NOMEM;
	char *warning = textf("%s%s", prefix, why);
	free(why);
	if (!warning)
		return ILA_ERR_NOMEM;
	return verdict_set(v, REJECT_INVALID, warning);
}

#define EVENT_PREFIX "Rejected event message: "
#define HEARTBEAT_PREFIX "Rejected heartbeat message: "
#define POLICY_PREFIX "Rejected policy message: "

/* Steps 3-9 of §11.3 on a well-formed payload; the draft borrows from root and rules.
 * *fallback receives the generated summary (owned by the caller). */
static int event_map(const struct normalize_rules *r, enum source family, const char *topic,
		     const char *key, json_t *root, const struct wire *w, struct draft *d,
		     char **fallback)
{
	draft_from_wire(d, w);
	if (r->event_key)
		d->integration_key = r->event_key;
	map_string(root, r->map_key_alert_key, &d->alert_key, "alert key", family);
	map_string(root, r->map_key_summary, &d->summary, "summary", family);
	map_event_type(r, root, d, family);
	if (!d->summary && (!d->event_type || strcmp(d->event_type, "ALERT") == 0)) {
		*fallback = textf("New alert from %s", topic);
		if (!*fallback)
			return ILA_ERR_NOMEM;
		d->summary = *fallback;
	}
	if (!d->integration_key)
		d->integration_key = "";
	if (!d->event_type)
		d->event_type = "ALERT";
	if (!d->summary)
		d->summary = "";
	if (d->custom)
		return 0;
	if (r->forward_message_payload) {
		d->strip_root = root;
		return 0;
	}
	d->custom_text = default_details(family, topic, key);
	return d->custom_text ? 0 : ILA_ERR_NOMEM;
}

static int consumer_event(const struct normalize_rules *r, enum source family,
			  const char *topic, const char *key, const char *payload, size_t len,
			  struct pending_item *item, struct verdict *v)
{
	struct event_dups dups;
	char *why = NULL;
	json_t *root = load_single(payload, len, &dups, &why);
	if (!root)
		return verdict_invalid(v, EVENT_PREFIX, why);
	int rc;
	if (!json_is_object(root)) {
		rc = verdict_invalid(v, EVENT_PREFIX, strdup("Request body must be a JSON object."));
		goto out;
	}
	struct wire w;
	wire_collect(root, &w);
	bool nomem = false;
	why = wire_check(&w, &dups, false, &nomem);
	if (why || nomem) {
		rc = verdict_invalid(v, EVENT_PREFIX, why);
		goto out;
	}
	if (!filter_passes(r, root)) {
		rc = verdict_set(v, REJECT_FILTERED, NULL);
		goto out;
	}
	struct draft d;
	char *fallback = NULL;
	const char *bad = NULL;
	rc = event_map(r, family, topic, key, root, &w, &d, &fallback);
	if (!rc)
		rc = draft_finish(&d, item, r->dedup, &bad);
	else
		free(d.custom_text);
	free(fallback);
	if (rc == ILA_ERR_INVALID) {
		rc = verdict_invalid(v, EVENT_PREFIX,
				     textf("Unsupported value for field '%s'.", bad));
		goto out;
	}
	if (rc)
		goto out;
	item->event_api_path = textf("/v1/events/%s/%s", family == SOURCE_KAFKA ? "kafka" : "mqtt",
				     item->ev.integration_key);
	if (!item->event_api_path) {
		pending_item_clear(item);
		rc = ILA_ERR_NOMEM;
	}
out:
	json_decref(root);
	return rc;
}

/* §11.4: the key of a heartbeat payload, or the reason it has none (heap). */
static char *heartbeat_key_check(json_t *root, const struct event_dups *dups, const char **key)
{
	*key = NULL;
	if (!json_is_object(root))
		return strdup("Request body must be a JSON object.");
	if (dups->mask & WK_KEY_BITS)
		return textf("Duplicate field '%s'.",
			     wire_names[dups->mask & WK_BIT(WK_API_KEY) ? WK_API_KEY
								      : WK_INTEGRATION_KEY]);
	const json_t *alias = json_object_get(root, "apiKey");
	enum wire_key name = alias ? WK_API_KEY : WK_INTEGRATION_KEY;
	const json_t *v = alias ? alias : json_object_get(root, "integrationKey");
	if (!present(v))
		return textf("Missing field '%s'.", wire_names[name]);
	if (!json_is_string(v))
		return textf("Invalid type for field '%s'.", wire_names[name]);
	if (!*json_string_value(v))
		return strdup("Unsupported value for field 'integrationKey'.");
	*key = json_string_value(v);
	return NULL;
}

static int heartbeat_item(const char *key, struct pending_item *item)
{
	memset(item, 0, sizeof(*item));
	item->kind = STORE_KIND_HEARTBEAT;
	struct tbuf b;
	tbuf_init(&b);
	tbuf_puts(&b, "{\"integrationKey\":");
	json_put_string(&b, key);
	tbuf_putc(&b, '}');
	if (b.oom) {
		tbuf_free(&b);
		return ILA_ERR_NOMEM;
	}
	item->payload = tbuf_take(&b);
	if (!item->payload || dup_opt(&item->ev.integration_key, key) ||
	    dup_opt(&item->ev.event_type, "HEARTBEAT") || dup_opt(&item->ev.summary, "")) {
		pending_item_clear(item);
		return ILA_ERR_NOMEM;
	}
	return 0;
}

static int consumer_heartbeat(const char *payload, size_t len, struct pending_item *item,
			      struct verdict *v)
{
	struct event_dups dups;
	char *why = NULL;
	json_t *root = load_single(payload, len, &dups, &why);
	if (!root)
		return verdict_invalid(v, HEARTBEAT_PREFIX, why);
	const char *key;
	why = heartbeat_key_check(root, &dups, &key);
	int rc = key ? heartbeat_item(key, item) : verdict_invalid(v, HEARTBEAT_PREFIX, why);
	json_decref(root);
	return rc;
}

/* §11.5 step 4 before the offset: a string of an optional sign and decimal digits that fits
 * 64 bits, or a number with an integral value (1.0 counts: JSON does not tell 1.0 from 1 by
 * value); anything else is 0. */
static int64_t shift_value(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v)) {
		double x = json_real_value(v);
		if (x >= -9223372036854775808.0 && x < 9223372036854775808.0 &&
		    (double)(int64_t)x == x)
			return (int64_t)x;
		return 0;
	}
	if (!json_is_string(v))
		return 0;
	const char *s = json_string_value(v);
	bool negative = *s == '-';
	if (*s == '+' || *s == '-')
		s++;
	if (!*s)
		return 0;
	/* Accumulate negatively so INT64_MIN parses too. */
	int64_t acc = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		if (__builtin_mul_overflow(acc, 10, &acc) ||
		    __builtin_sub_overflow(acc, (int64_t)(*s - '0'), &acc))
			return 0;
	}
	if (negative)
		return acc;
	return acc == INT64_MIN ? 0 : -acc;
}

static int64_t shift_apply_offset(int64_t shift, int64_t offset)
{
	int64_t sum;
	if (__builtin_add_overflow(shift, offset, &sum))
		sum = offset > 0 ? INT64_MAX : INT64_MIN;
	return sum < 0 ? 0 : sum;
}

/* §11.5 step 5: the configured top-level members, concatenated. Empty when none applies. */
static char *routing_key_build(const struct normalize_rules *r, const json_t *root)
{
	struct tbuf b;
	tbuf_init(&b);
	tbuf_puts(&b, "");
	for (size_t i = 0; json_is_object(root) && i < r->routing_key_count; i++) {
		const json_t *v = json_object_get(root, r->routing_keys[i]);
		if (json_is_string(v))
			tbuf_puts(&b, json_string_value(v));
	}
	if (b.oom) {
		tbuf_free(&b);
		return NULL;
	}
	return tbuf_take(&b);
}

static int policy_item(const char *email, char *routing_key, int64_t shift,
		       struct pending_item *item)
{
	memset(item, 0, sizeof(*item));
	item->kind = STORE_KIND_POLICY;
	struct tbuf b;
	tbuf_init(&b);
	tbuf_puts(&b, "{\"email\":");
	json_put_string(&b, email);
	tbuf_puts(&b, ",\"routingKey\":");
	json_put_string(&b, routing_key);
	tbuf_printf(&b, ",\"shift\":%lld}", (long long)shift);
	if (b.oom) {
		tbuf_free(&b);
		free(routing_key);
		return ILA_ERR_NOMEM;
	}
	item->payload = tbuf_take(&b);
	item->order_key = textf("policy" EVENT_ORDER_KEY_SEP "%s", routing_key);
	free(routing_key);
	if (!item->payload || !item->order_key || dup_opt(&item->ev.integration_key, "") ||
	    dup_opt(&item->ev.event_type, "POLICY") || dup_opt(&item->ev.summary, "")) {
		pending_item_clear(item);
		return ILA_ERR_NOMEM;
	}
	return 0;
}

static int consumer_policy(const struct normalize_rules *r, const char *payload, size_t len,
			   struct pending_item *item, struct verdict *v)
{
	char *why = NULL;
	json_t *root = load_single(payload, len, NULL, &why);
	if (!root)
		return verdict_invalid(v, POLICY_PREFIX, why);
	int rc;
	if (!filter_passes(r, root)) {
		rc = verdict_set(v, REJECT_FILTERED, NULL);
		goto out;
	}
	const json_t *email = path_lookup(root, r->map_key_email);
	if (!json_is_string(email) || !*json_string_value(email)) {
		char *w = textf("Policy message missing email at '%s'", r->map_key_email);
		rc = w ? verdict_set(v, REJECT_INVALID, w) : ILA_ERR_NOMEM;
		goto out;
	}
	int64_t shift = shift_apply_offset(shift_value(path_lookup(root, r->map_key_shift)),
					   r->shift_offset);
	char *rk = routing_key_build(r, root);
	if (!rk) {
		rc = ILA_ERR_NOMEM;
		goto out;
	}
	if (!*rk) {
		free(rk);
		char *w = strdup("No routing key could be extracted from policy message");
		rc = w ? verdict_set(v, REJECT_INVALID, w) : ILA_ERR_NOMEM;
		goto out;
	}
	rc = policy_item(json_string_value(email), rk, shift, item);
out:
	json_decref(root);
	return rc;
}

/* §11.1 input checks, §11.6 classification, then the kind's rules. family decides the
 * default details and the event_api_path (mqtt or kafka). */
static int consumer_run(const struct normalize_rules *r, enum source family, const char *topic,
			const char *key, const char *payload, size_t len,
			struct pending_item *item, struct verdict *v)
{
	memset(item, 0, sizeof(*item));
	v->reason = REJECT_NONE;
	v->warning = NULL;
	if (!payload)
		payload = "";
	if (!topic)
		topic = "";
	if ((uint64_t)len > (uint64_t)r->max_body)
		return verdict_set(v, REJECT_TOO_LARGE,
				   textf("Message payload too large (%zu bytes, limit %lld)", len,
					 (long long)r->max_body));
	if (!text_utf8_valid(payload, len))
		return verdict_set(v, REJECT_INVALID, strdup("Message payload is not valid UTF-8"));
	/* Brokers only deliver UTF-8 topic names; the check keeps the JSON we build valid. */
	if (!text_utf8_valid(topic, strlen(topic)))
		return verdict_set(v, REJECT_INVALID, strdup("Message topic is not valid UTF-8"));
	if (key && !text_utf8_valid(key, strlen(key))) {
		log_limited(LOG_LVL_WARN, component_of(family),
			    "Kafka message key is not valid UTF-8; using an empty key");
		key = "";
	}
	enum topic_kind kind = r->classifier ? topic_classify(r->classifier, topic) : TOPIC_UNMATCHED;
	switch (kind) {
	case TOPIC_EVENT: return consumer_event(r, family, topic, key, payload, len, item, v);
	case TOPIC_HEARTBEAT: return consumer_heartbeat(payload, len, item, v);
	case TOPIC_POLICY: return consumer_policy(r, payload, len, item, v);
	case TOPIC_UNMATCHED: break;
	}
	if (family != SOURCE_KAFKA)
		return verdict_set(v, REJECT_UNMATCHED_TOPIC, NULL);
	return verdict_set(v, REJECT_UNMATCHED_TOPIC,
			   strdup("Received Kafka message from unsubscribed topic"));
}

static enum source family_of(const struct normalize_rules *r, enum source source)
{
	if (source == SOURCE_MQTT || source == SOURCE_KAFKA)
		return source;
	return r && r->protocol == SOURCE_KAFKA ? SOURCE_KAFKA : SOURCE_MQTT;
}

int normalize_consumer(const struct normalize_rules *rules, const char *topic, const char *key,
		       const char *payload, size_t len, struct pending_item *item,
		       enum reject_reason *reason, char **error)
{
	struct verdict v;
	int rc = consumer_run(rules, family_of(rules, rules->protocol), topic, key, payload, len,
			      item, &v);
	*reason = v.reason;
	*error = v.warning;
	return rc;
}

/* ---- the stage entry point --------------------------------------------------------------- */

static int message_http_event(const struct normalize_rules *rules, struct message *msg,
			      char **error)
{
	struct pending_item *item = calloc(1, sizeof(*item));
	if (!item)
		return ILA_ERR_NOMEM;
	char *echo = NULL;
	int rc = http_event(msg->body, msg->body_len, !rules || rules->dedup, item,
			    msg->ticket ? &echo : NULL, error);
	if (rc) {
		free(item);
		return rc;
	}
	msg->items = item;
	msg->item_count = 1;
	if (msg->ticket) {
		free(msg->ticket->echo);
		msg->ticket->echo = echo;
	}
	return 0;
}

static int message_consumer(const struct normalize_rules *rules, struct message *msg,
			    enum reject_reason *reason, char **error)
{
	struct pending_item *item = calloc(1, sizeof(*item));
	if (!item)
		return ILA_ERR_NOMEM;
	enum source family = family_of(rules, msg->source);
	struct verdict v = { REJECT_UNMATCHED_TOPIC, NULL };
	int rc = rules ? consumer_run(rules, family, msg->topic, msg->key, msg->body,
				      msg->body_len, item, &v)
		       : ILA_ERR_INVALID;
	*reason = v.reason;
	*error = v.warning;
	if (rc) {
		free(item);
		/* The rejection is decided here, so this is where it is told. */
		if (rc == ILA_ERR_INVALID && v.warning)
			log_limited(LOG_LVL_WARN, component_of(family), "%s", v.warning);
		return rc;
	}
	msg->items = item;
	msg->item_count = 1;
	return 0;
}

bool normalize_message(const struct normalize_rules *rules, struct message *msg)
{
	char *error = NULL;
	int index = -1;
	enum reject_reason reason = REJECT_INVALID;
	int rc;
	switch (msg->kind) {
	case MSG_HTTP_EVENT: rc = message_http_event(rules, msg, &error); break;
	case MSG_HTTP_BATCH:
		rc = http_batch(msg->body, msg->body_len, !rules || rules->dedup, &msg->items,
				&msg->item_count, &error, &index);
		break;
	case MSG_CONSUMER: rc = message_consumer(rules, msg, &reason, &error); break;
	default: rc = ILA_ERR_INVALID; break;
	}
	if (rc == 0)
		return true;
	if (rc != ILA_ERR_INVALID) {
		free(error);
		error = strdup(NOMEM_TEXT);
		reason = REJECT_INVALID;
		index = -1;
	}
	struct ticket *t = msg->ticket;
	if (!t) {
		free(error);
		return false;
	}
	t->status = TICKET_REJECTED;
	t->reject_reason = reason;
	free(t->error);
	t->error = error;
	t->error_index = index;
	return false;
}
