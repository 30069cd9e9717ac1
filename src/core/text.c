#include "core/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tbuf_init(struct tbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void tbuf_free(struct tbuf *b)
{
	free(b->data);
	tbuf_init(b);
}

static bool tbuf_reserve(struct tbuf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void tbuf_append(struct tbuf *b, const void *data, size_t len)
{
	if (!tbuf_reserve(b, len))
		return;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void tbuf_puts(struct tbuf *b, const char *s)
{
	tbuf_append(b, s, strlen(s));
}

void tbuf_putc(struct tbuf *b, char c)
{
	tbuf_append(b, &c, 1);
}

void tbuf_printf(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !tbuf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

const char *tbuf_cstr(struct tbuf *b)
{
	return b->data ? b->data : "";
}

char *tbuf_take(struct tbuf *b)
{
	char *s = b->data ? b->data : strdup("");
	if (b->oom) {
		free(s);
		s = NULL;
	}
	tbuf_init(b);
	return s;
}

bool text_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

char *text_trim_dup(const char *s)
{
	const char *end = s + strlen(s);
	while (s < end && text_is_space(*s))
		s++;
	while (end > s && text_is_space(end[-1]))
		end--;
	return strndup(s, (size_t)(end - s));
}

void text_casefold(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

char *text_mask(const char *secret, char *out, size_t out_size)
{
	/* Characters, not bytes: count UTF-8 lead bytes so a multi-byte secret is not cut
	 * in the middle of a character. */
	const char *s = secret ? secret : "";
	size_t chars = 0, prefix_bytes = 0;
	for (const char *p = s; *p; p++) {
		if (((unsigned char)*p & 0xC0) == 0x80)
			continue;
		if (chars == 4)
			prefix_bytes = (size_t)(p - s);
		chars++;
	}
	if (chars >= 12)
		snprintf(out, out_size, "%.*s\xe2\x80\xa6", (int)prefix_bytes, s);
	else
		snprintf(out, out_size, "\xe2\x80\xa6");
	return out;
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

char *text_percent_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_unreserved(*p)) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *text_percent_decode(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = s; *p; p++) {
		if (*p != '%') {
			*o++ = *p;
			continue;
		}
		int hi = hex_value(p[1]), lo = hi < 0 ? -1 : hex_value(p[2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hi * 16 + lo);
		p += 2;
	}
	*o = '\0';
	return out;
}

/* Length of the well-formed UTF-8 sequence at s (at most len bytes), 0 when malformed. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t need;
	unsigned int min;
	unsigned int cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
		cp = c & 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		cp = c & 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return need;
}

bool text_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	while (len > 0) {
		size_t n = utf8_seq_len(p, len);
		if (n == 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}

char *text_utf8_sanitize(const char *s, size_t len, size_t max)
{
	struct tbuf b;
	tbuf_init(&b);
	const unsigned char *p = (const unsigned char *)s;
	while (len > 0) {
		size_t n = utf8_seq_len(p, len);
		const char *piece = (const char *)p;
		size_t piece_len = n;
		if (n == 0) {
			piece = "\xef\xbf\xbd";
			piece_len = 3;
			n = 1;
		}
		if (b.len + piece_len > max)
			break;
		tbuf_append(&b, piece, piece_len);
		p += n;
		len -= n;
	}
	return tbuf_take(&b);
}

bool text_starts_with_nocase(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++) {
		char a = *s, b = *prefix;
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b || !*s)
			return false;
	}
	return true;
}

void text_replace_chars(char *s, const char *from, char to)
{
	for (; *s; s++)
		if (strchr(from, *s))
			*s = to;
}
