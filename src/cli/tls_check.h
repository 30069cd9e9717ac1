/* MQTT TLS files: reading, validation with the exact SPEC §4.9 messages, the fingerprint of
 * the §12.4 hot reload, and the validated PEM bytes ("material") that connections use.
 * Any thread may call these; a material is immutable once built and owned by its holder. */
#ifndef ILAGENT_CLI_TLS_CHECK_H
#define ILAGENT_CLI_TLS_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#define TLS_FINGERPRINT_LEN 32 /* SHA-256 */
/* Largest TLS file read; anything bigger is refused as "File too large". */
#define TLS_FILE_MAX (16u * 1024u * 1024u)

/* The configured files; NULL when not given. cert and key are given together or not at all. */
struct tls_paths {
	const char *ca;
	const char *cert;
	const char *key;
};

/* The bytes of the configured files (NULL/0 for a file not configured) and their
 * fingerprint. Built only by the functions below. */
struct tls_material {
	char *ca;
	size_t ca_len;
	char *cert;
	size_t cert_len;
	char *key;
	size_t key_len;
	unsigned char fingerprint[TLS_FINGERPRINT_LEN];
};

/* Startup check (§4.9): reads and validates the files in the order CA read, CA contents,
 * certificate read, certificate contents, key read, key contents, certificate/key pair.
 * Returns 0 and a new material in *out, or a negative ila_err with the first failure's
 * message (without "ilagent: error: ") in err: ILA_ERR_IO for an unreadable file,
 * ILA_ERR_INVALID for bad contents, ILA_ERR_NOMEM. */
int tls_material_load(const struct tls_paths *paths, struct tls_material **out, char *err,
		      size_t errlen);

/* tls_material_load without keeping the material. */
int tls_check_files(const struct tls_paths *paths, char *err, size_t errlen);

/* Reads the files and fingerprints them without judging the contents. Returns 0 and a new
 * material, or ILA_ERR_IO / ILA_ERR_NOMEM with the "Failed to read MQTT ..." message. */
int tls_material_read(const struct tls_paths *paths, struct tls_material **out, char *err,
		      size_t errlen);

/* Validates the contents of a material built by tls_material_read (CA, certificate, key,
 * pair). Returns 0 or ILA_ERR_INVALID / ILA_ERR_NOMEM with the §4.9 message in err. */
int tls_material_validate(const struct tls_material *m, char *err, size_t errlen);

void tls_material_destroy(struct tls_material *m);

/* True when both materials have the same fingerprint (NULL equals only NULL). */
bool tls_material_same(const struct tls_material *a, const struct tls_material *b);

/* SHA-256 over the CA, certificate and key bytes in this order. Each part is preceded by
 * its length as 8 big-endian bytes, so that bytes moving from one file into the next still
 * count as a change. NULL parts count as empty. Returns 0 or ILA_ERR_NOMEM. */
int tls_fingerprint(const void *ca, size_t ca_len, const void *cert, size_t cert_len,
		     const void *key, size_t key_len, unsigned char out[TLS_FINGERPRINT_LEN]);

/* Outcome of one hot-reload check (§12.4). */
enum tls_reload {
	TLS_RELOAD_UNCHANGED = 0, /* same fingerprint as the active material */
	TLS_RELOAD_CHANGED,       /* *out holds new, validated material */
	TLS_RELOAD_UNREADABLE,    /* a file could not be read; err says which */
	TLS_RELOAD_INVALID,       /* the files changed but do not validate; err says why */
	TLS_RELOAD_NOMEM,
};

/* Re-reads the files, compares with active (may be NULL) and validates only when they
 * changed. On TLS_RELOAD_CHANGED the caller owns *out; otherwise *out is NULL. */
enum tls_reload tls_material_reload(const struct tls_paths *paths,
				    const struct tls_material *active,
				    struct tls_material **out, char *err, size_t errlen);

/* Paths of material written by tls_material_save(); NULL for a part not configured. */
struct tls_saved_paths {
	char *ca;
	char *cert;
	char *key;
};
/* Writes the material into the existing directory dir as ca.pem, cert.pem and key.pem
 * (mode 0600, each replaced atomically by rename), for TLS clients that load files by path,
 * so that they load exactly the validated bytes. Fills paths_out (free it with
 * tls_saved_paths_free()). Returns 0 or a negative ila_err with a message in err. */
int tls_material_save(const struct tls_material *m, const char *dir,
		      struct tls_saved_paths *paths_out, char *err, size_t errlen);
/* Frees the strings and resets them to NULL; accepts NULL. */
void tls_saved_paths_free(struct tls_saved_paths *p);

#endif
