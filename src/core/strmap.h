/* A small open-addressing hash map from C strings to pointers. Keys are borrowed: the
 * caller keeps each key alive while it is in the map. Single-threaded (its owner's thread). */
#ifndef ILAGENT_CORE_STRMAP_H
#define ILAGENT_CORE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap;

struct strmap *strmap_create(void);
void strmap_destroy(struct strmap *m); /* accepts NULL; does not free keys or values */

/* Inserts or replaces. 0 or ILA_ERR_NOMEM. */
int strmap_put(struct strmap *m, const char *key, void *value);
/* The value, or NULL when absent. */
void *strmap_get(const struct strmap *m, const char *key);
bool strmap_contains(const struct strmap *m, const char *key);
/* Removes the key; returns its value (NULL when absent). */
void *strmap_remove(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* Frees every value (free()) and then the map: for maps whose values are their own heap key
 * copies. Accepts NULL. */
void strmap_free_all(struct strmap *m);

#endif
