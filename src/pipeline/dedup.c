#include "pipeline/dedup.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Entries are identified by a 128-bit digest of the ordering key and compared by a 128-bit
 * digest of (event type, content): 100,000 keys stay within a few MiB whatever the event
 * size, and an accidental collision (2^-128) is far less likely than a lost packet. */
struct digest {
	uint64_t a, b;
};

struct dedup_entry {
	struct digest key;
	struct digest content;
	int64_t accepted_ms;
	bool used;
	/* LRU list (indices into the table; -1 = none). */
	int32_t prev, next;
};

struct staged {
	struct digest key;
	struct digest content;
	int64_t accepted_ms;
};

struct dedup {
	int64_t window_ms;
	size_t max_keys;
	struct dedup_entry *table; /* open addressing, capacity = 2 × max_keys rounded up */
	size_t cap;
	size_t count;
	int32_t lru_head, lru_tail; /* head = most recently used */
	struct staged *staged;
	size_t staged_count, staged_cap;
	EVP_MD_CTX *md;
};

static struct digest digest_of(EVP_MD_CTX *ctx, const char *a, const char *b)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	memset(out, 0, sizeof(out));
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, a, strlen(a) + 1); /* the NUL separates the two parts */
	if (b)
		EVP_DigestUpdate(ctx, b, strlen(b));
	EVP_DigestFinal_ex(ctx, out, &len);
	struct digest d;
	memcpy(&d.a, out, 8);
	memcpy(&d.b, out + 8, 8);
	return d;
}

static bool digest_eq(struct digest x, struct digest y)
{
	return x.a == y.a && x.b == y.b;
}

struct dedup *dedup_create(int window_s, size_t max_keys)
{
	struct dedup *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->window_ms = (int64_t)window_s * 1000;
	d->max_keys = max_keys ? max_keys : 1;
	d->cap = 16;
	while (d->cap < d->max_keys * 2)
		d->cap *= 2;
	d->lru_head = d->lru_tail = -1;
	if (window_s > 0) {
		d->table = calloc(d->cap, sizeof(*d->table));
		d->md = EVP_MD_CTX_new();
		if (!d->table || !d->md) {
			dedup_destroy(d);
			return NULL;
		}
	}
	return d;
}

void dedup_destroy(struct dedup *d)
{
	if (!d)
		return;
	free(d->table);
	free(d->staged);
	EVP_MD_CTX_free(d->md);
	free(d);
}

static size_t slot_of(const struct dedup *d, struct digest key)
{
	size_t i = (size_t)key.a & (d->cap - 1);
	while (d->table[i].used && !digest_eq(d->table[i].key, key))
		i = (i + 1) & (d->cap - 1);
	return i;
}

static void lru_unlink(struct dedup *d, int32_t i)
{
	struct dedup_entry *e = &d->table[i];
	if (e->prev >= 0)
		d->table[e->prev].next = e->next;
	else
		d->lru_head = e->next;
	if (e->next >= 0)
		d->table[e->next].prev = e->prev;
	else
		d->lru_tail = e->prev;
	e->prev = e->next = -1;
}

static void lru_push_front(struct dedup *d, int32_t i)
{
	struct dedup_entry *e = &d->table[i];
	e->prev = -1;
	e->next = d->lru_head;
	if (d->lru_head >= 0)
		d->table[d->lru_head].prev = i;
	d->lru_head = i;
	if (d->lru_tail < 0)
		d->lru_tail = i;
}

/* Removes slot i, shifting later members of its probe run back (no tombstones). The LRU
 * links of moved entries are rewired to their new index. */
static void table_remove(struct dedup *d, size_t i)
{
	lru_unlink(d, (int32_t)i);
	d->table[i].used = false;
	d->count--;
	size_t j = i;
	for (;;) {
		j = (j + 1) & (d->cap - 1);
		if (!d->table[j].used)
			return;
		size_t home = (size_t)d->table[j].key.a & (d->cap - 1);
		bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
		if (!movable)
			continue;
		d->table[i] = d->table[j];
		struct dedup_entry *e = &d->table[i];
		if (e->prev >= 0)
			d->table[e->prev].next = (int32_t)i;
		else
			d->lru_head = (int32_t)i;
		if (e->next >= 0)
			d->table[e->next].prev = (int32_t)i;
		else
			d->lru_tail = (int32_t)i;
		d->table[j].used = false;
		i = j;
	}
}

static void state_put(struct dedup *d, struct digest key, struct digest content, int64_t at)
{
	size_t i = slot_of(d, key);
	if (d->table[i].used) {
		lru_unlink(d, (int32_t)i);
	} else {
		if (d->count >= d->max_keys) {
			table_remove(d, (size_t)d->lru_tail);
			i = slot_of(d, key);
		}
		d->table[i].used = true;
		d->table[i].key = key;
		d->count++;
	}
	d->table[i].content = content;
	d->table[i].accepted_ms = at;
	lru_push_front(d, (int32_t)i);
}

static bool applies(const struct dedup *d, const struct pending_item *item)
{
	return d->window_ms > 0 && item->kind == STORE_KIND_EVENT && item->order_key &&
	       item->dedup_content;
}

static bool within_window(const struct dedup *d, int64_t last_ms, int64_t now_ms)
{
	return now_ms - last_ms < d->window_ms;
}

bool dedup_check(struct dedup *d, const struct pending_item *item, int64_t now_ms)
{
	if (!applies(d, item))
		return false;
	struct digest key = digest_of(d->md, item->order_key, NULL);
	struct digest content = digest_of(d->md, item->ev.event_type ? item->ev.event_type : "",
					  item->dedup_content);
	/* The latest staged entry of this key is the most recently accepted one. */
	for (size_t k = d->staged_count; k-- > 0;) {
		if (digest_eq(d->staged[k].key, key))
			return digest_eq(d->staged[k].content, content) &&
			       within_window(d, d->staged[k].accepted_ms, now_ms);
	}
	size_t i = slot_of(d, key);
	if (!d->table[i].used)
		return false;
	return digest_eq(d->table[i].content, content) &&
	       within_window(d, d->table[i].accepted_ms, now_ms);
}

void dedup_stage(struct dedup *d, const struct pending_item *item, int64_t now_ms)
{
	if (!applies(d, item))
		return;
	if (d->staged_count == d->staged_cap) {
		size_t n = d->staged_cap ? d->staged_cap * 2 : 64;
		struct staged *s = realloc(d->staged, n * sizeof(*s));
		if (!s)
			return; /* forgetting an entry can only let a duplicate through */
		d->staged = s;
		d->staged_cap = n;
	}
	struct staged *s = &d->staged[d->staged_count++];
	s->key = digest_of(d->md, item->order_key, NULL);
	s->content = digest_of(d->md, item->ev.event_type ? item->ev.event_type : "", item->dedup_content);
	s->accepted_ms = now_ms;
}

void dedup_commit(struct dedup *d)
{
	for (size_t k = 0; k < d->staged_count; k++)
		state_put(d, d->staged[k].key, d->staged[k].content, d->staged[k].accepted_ms);
	d->staged_count = 0;
}

void dedup_abort(struct dedup *d)
{
	d->staged_count = 0;
}
