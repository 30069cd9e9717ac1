#include "core/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Linear probing with backward-shift deletion, so there are no tombstones to clean up. */
struct strmap_entry {
	const char *key; /* NULL = empty */
	uint64_t hash;
	void *value;
};

struct strmap {
	struct strmap_entry *slots;
	size_t cap; /* power of two */
	size_t count;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

struct strmap *strmap_create(void)
{
	struct strmap *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->cap = 64;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void strmap_destroy(struct strmap *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m);
}

static size_t find_slot(const struct strmap *m, const char *key, uint64_t h)
{
	size_t i = h & (m->cap - 1);
	while (m->slots[i].key &&
	       (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int grow(struct strmap *m)
{
	struct strmap_entry *old = m->slots;
	size_t old_cap = m->cap;
	struct strmap_entry *slots = calloc(old_cap * 2, sizeof(*slots));
	if (!slots)
		return ILA_ERR_NOMEM;
	m->slots = slots;
	m->cap = old_cap * 2;
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i].key)
			continue;
		size_t j = old[i].hash & (m->cap - 1);
		while (m->slots[j].key)
			j = (j + 1) & (m->cap - 1);
		m->slots[j] = old[i];
	}
	free(old);
	return 0;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
	if ((m->count + 1) * 4 > m->cap * 3 && grow(m) != 0)
		return ILA_ERR_NOMEM;
	uint64_t h = hash_str(key);
	size_t i = find_slot(m, key, h);
	if (!m->slots[i].key)
		m->count++;
	m->slots[i].key = key;
	m->slots[i].hash = h;
	m->slots[i].value = value;
	return 0;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	size_t i = find_slot(m, key, hash_str(key));
	return m->slots[i].key ? m->slots[i].value : NULL;
}

bool strmap_contains(const struct strmap *m, const char *key)
{
	return m->slots[find_slot(m, key, hash_str(key))].key != NULL;
}

void *strmap_remove(struct strmap *m, const char *key)
{
	size_t i = find_slot(m, key, hash_str(key));
	if (!m->slots[i].key)
		return NULL;
	void *value = m->slots[i].value;
	m->slots[i].key = NULL;
	m->count--;
	/* Shift later members of the probe run back so lookups never stop early. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & (m->cap - 1);
		if (!m->slots[j].key)
			break;
		size_t home = m->slots[j].hash & (m->cap - 1);
		bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
	return value;
}

size_t strmap_count(const struct strmap *m)
{
	return m->count;
}

void strmap_free_all(struct strmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			free(m->slots[i].value);
	strmap_destroy(m);
}
