/* Small string helpers used across modules: trimming, ASCII case folding, secret masking,
 * percent-encoding, UTF-8 validation and a growable buffer.
 * All functions are pure or operate on caller-owned memory: safe from any thread. */
#ifndef ILAGENT_CORE_TEXT_H
#define ILAGENT_CORE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* A growable byte buffer, always NUL-terminated when len > 0 or after tbuf_cstr(). */
struct tbuf {
	char *data;
	size_t len;
	size_t cap;
	bool oom; /* set once an append failed; later appends are ignored */
};

void tbuf_init(struct tbuf *b);
void tbuf_free(struct tbuf *b);
void tbuf_append(struct tbuf *b, const void *data, size_t len);
void tbuf_puts(struct tbuf *b, const char *s);
void tbuf_putc(struct tbuf *b, char c);
void tbuf_printf(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a C string ("" when empty); valid until the next append. */
const char *tbuf_cstr(struct tbuf *b);
/* Hands the heap string to the caller (never NULL unless out of memory) and resets b. */
char *tbuf_take(struct tbuf *b);

/* True for the ASCII whitespace set of SPEC §7.3: space, tab, CR, LF, VT, FF. */
bool text_is_space(char c);
/* Copy of s without surrounding ASCII whitespace (§7.3). Caller frees. NULL on OOM. */
char *text_trim_dup(const char *s);
/* In place: ASCII A-Z → a-z, all other bytes unchanged (SPEC §2 "case-folded"). */
void text_casefold(char *s);
/* Masked form of a secret (SPEC §2): first 4 characters + "…" when at least 12 characters
 * long, otherwise "…". Writes into out (size ≥ 8 recommended); returns out. */
char *text_mask(const char *secret, char *out, size_t out_size);
/* Percent-encodes every byte outside A-Z a-z 0-9 - . _ ~ (SPEC §6.1). Caller frees. */
char *text_percent_encode(const char *s);
/* Decodes %XX sequences; returns NULL for a malformed escape or an encoded NUL. Caller frees. */
char *text_percent_decode(const char *s);
/* True when the len bytes at s are well-formed UTF-8. */
bool text_utf8_valid(const char *s, size_t len);
/* Copy of at most max bytes of s with invalid UTF-8 replaced by U+FFFD, never splitting a
 * sequence (used for dead-letter body excerpts). Caller frees. */
char *text_utf8_sanitize(const char *s, size_t len, size_t max);
/* Case-insensitive ASCII comparison of equal-length prefixes; like strncasecmp but locale-free. */
bool text_starts_with_nocase(const char *s, const char *prefix);
/* Replaces every occurrence of c1 in s with c2, in place. */
void text_replace_chars(char *s, const char *from, char to);

#endif
