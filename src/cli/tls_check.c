#include "cli/tls_check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/err.h"

#define READ_CHUNK 65536

static void err_printf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void err_printf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Encrypted PEM blocks must fail instead of prompting on the terminal: there is no
 * passphrase option. */
static int pem_no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* ---- Reading ------------------------------------------------------------------------- */

/* Reads the whole file into a NUL-terminated heap buffer. Returns 0, or an errno value. */
static int file_slurp(const char *path, char **data_out, size_t *len_out)
{
	/* O_NONBLOCK keeps a FIFO given by mistake from hanging startup. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno;
	size_t cap = READ_CHUNK, len = 0;
	char *data = malloc(cap + 1);
	if (!data) {
		close(fd);
		return ENOMEM;
	}
	int rc = 0;
	for (;;) {
		if (len == cap) {
			if (cap >= TLS_FILE_MAX) {
				rc = EFBIG;
				break;
			}
			cap *= 2;
			char *bigger = realloc(data, cap + 1);
			if (!bigger) {
				rc = ENOMEM;
				break;
			}
			data = bigger;
		}
		ssize_t n = read(fd, data + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (rc == 0 && len > TLS_FILE_MAX)
		rc = EFBIG;
	if (rc != 0) {
		OPENSSL_cleanse(data, len);
		free(data);
		return rc;
	}
	data[len] = '\0';
	*data_out = data;
	*len_out = len;
	return 0;
}

static const char *errno_text(int errnum, char *buf, size_t buflen)
{
	/* GNU strerror_r (the build defines _GNU_SOURCE) returns the text, not an int. */
	return strerror_r(errnum, buf, buflen);
}

/* Reads one configured file; label names it in the §4.9 message. */
static int read_part(const char *path, const char *label, char **data, size_t *len,
		     char *err, size_t errlen)
{
	int errnum = file_slurp(path, data, len);
	if (errnum == 0)
		return 0;
	if (errnum == ENOMEM) {
		err_printf(err, errlen, "%s", ila_strerror(ILA_ERR_NOMEM));
		return ILA_ERR_NOMEM;
	}
	char buf[256];
	err_printf(err, errlen, "Failed to read MQTT %s file %s: %s", label, path,
		   errno_text(errnum, buf, sizeof(buf)));
	return ILA_ERR_IO;
}

static int read_ca(const struct tls_paths *p, struct tls_material *m, char *err, size_t errlen)
{
	if (!p->ca)
		return 0;
	return read_part(p->ca, "CA certificate", &m->ca, &m->ca_len, err, errlen);
}

static int read_cert(const struct tls_paths *p, struct tls_material *m, char *err,
		     size_t errlen)
{
	if (!p->cert)
		return 0;
	return read_part(p->cert, "client certificate", &m->cert, &m->cert_len, err, errlen);
}

static int read_key(const struct tls_paths *p, struct tls_material *m, char *err, size_t errlen)
{
	if (!p->key)
		return 0;
	return read_part(p->key, "client key", &m->key, &m->key_len, err, errlen);
}

/* ---- Contents ------------------------------------------------------------------------ */

static BIO *bio_for(const char *data, size_t len)
{
	/* file_slurp caps files far below INT_MAX. */
	return BIO_new_mem_buf(data ? data : "", (int)len);
}

/* Parsed like a TLS library loads a CA file (every PEM object must parse) so that a file
 * accepted here also loads when a connection is made. */
static int check_ca(const char *data, size_t len, char *err, size_t errlen)
{
	BIO *bio = bio_for(data, len);
	if (!bio) {
		err_printf(err, errlen, "%s", ila_strerror(ILA_ERR_NOMEM));
		return ILA_ERR_NOMEM;
	}
	STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(bio, NULL, pem_no_password, NULL);
	BIO_free(bio);
	int certs = 0;
	for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++)
		if (sk_X509_INFO_value(infos, i)->x509)
			certs++;
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	ERR_clear_error();
	if (certs == 0) {
		err_printf(err, errlen, "CA certificate file contains no certificates");
		return ILA_ERR_INVALID;
	}
	return 0;
}

static bool pem_error_is_eof(void)
{
	unsigned long e = ERR_peek_last_error();
	return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/* The first certificate is the client's own, the rest its chain: the same reading as a TLS
 * library's "use certificate chain file", including failing on a broken chain entry. */
static X509 *parse_cert_chain(const char *data, size_t len)
{
	BIO *bio = bio_for(data, len);
	if (!bio)
		return NULL;
	X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, pem_no_password, NULL);
	if (leaf) {
		X509 *extra;
		while ((extra = PEM_read_bio_X509(bio, NULL, pem_no_password, NULL)) != NULL)
			X509_free(extra);
		if (!pem_error_is_eof()) {
			X509_free(leaf);
			leaf = NULL;
		}
	}
	BIO_free(bio);
	ERR_clear_error();
	return leaf;
}

static int check_cert(const char *data, size_t len, char *err, size_t errlen)
{
	X509 *leaf = parse_cert_chain(data, len);
	if (!leaf) {
		err_printf(err, errlen, "Client certificate file contains no certificates");
		return ILA_ERR_INVALID;
	}
	X509_free(leaf);
	return 0;
}

/* Decodes one PEM block if it is an unencrypted PKCS#1 RSA, PKCS#8 or SEC1 EC key. */
static EVP_PKEY *decode_key_block(const char *name, const unsigned char *der, long der_len)
{
	const unsigned char *p = der;
	if (strcmp(name, PEM_STRING_PKCS8INF) == 0) {
		PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, der_len);
		if (!p8)
			return NULL;
		EVP_PKEY *pkey = EVP_PKCS82PKEY(p8);
		PKCS8_PRIV_KEY_INFO_free(p8);
		return pkey;
	}
	if (strcmp(name, PEM_STRING_RSA) == 0)
		return d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, der_len);
	if (strcmp(name, PEM_STRING_ECPRIVATEKEY) == 0)
		return d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, der_len);
	return NULL;
}

/* The first PEM block holding a usable private key; other blocks (certificates, EC
 * parameters, encrypted keys) are skipped. */
static EVP_PKEY *parse_private_key(const char *data, size_t len)
{
	BIO *bio = bio_for(data, len);
	if (!bio)
		return NULL;
	EVP_PKEY *pkey = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long der_len = 0;
	while (!pkey && PEM_read_bio(bio, &name, &header, &der, &der_len)) {
		EVP_CIPHER_INFO cipher;
		bool plain = PEM_get_EVP_CIPHER_INFO(header, &cipher) && cipher.cipher == NULL;
		if (plain)
			pkey = decode_key_block(name, der, der_len);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(der, (size_t)der_len);
		name = header = NULL;
		der = NULL;
	}
	BIO_free(bio);
	ERR_clear_error();
	return pkey;
}

static int check_key(const char *data, size_t len, char *err, size_t errlen)
{
	EVP_PKEY *pkey = parse_private_key(data, len);
	if (!pkey) {
		err_printf(err, errlen, "Client key file contains no private key");
		return ILA_ERR_INVALID;
	}
	EVP_PKEY_free(pkey);
	return 0;
}

static int check_pair(const struct tls_material *m, char *err, size_t errlen)
{
	X509 *leaf = parse_cert_chain(m->cert, m->cert_len);
	EVP_PKEY *pkey = parse_private_key(m->key, m->key_len);
	int rc = 0;
	if (!leaf || !pkey) {
		/* Only reachable when the parts were not validated one by one first. */
		err_printf(err, errlen, "%s",
			   !leaf ? "Client certificate file contains no certificates"
				 : "Client key file contains no private key");
		rc = ILA_ERR_INVALID;
	} else if (X509_check_private_key(leaf, pkey) != 1) {
		const char *reason = ERR_reason_error_string(ERR_peek_last_error());
		err_printf(err, errlen, "Client certificate and key are incompatible: %s",
			   reason ? reason : "key does not match certificate");
		rc = ILA_ERR_INVALID;
	}
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	X509_free(leaf);
	return rc;
}

/* ---- Material ------------------------------------------------------------------------ */

static int paths_check(const struct tls_paths *p, char *err, size_t errlen)
{
	if (!p) {
		err_printf(err, errlen, "%s", ila_strerror(ILA_ERR_INVALID));
		return ILA_ERR_INVALID;
	}
	if (!p->cert != !p->key) {
		err_printf(err, errlen,
			   "--mqtt_client_cert and --mqtt_client_key must be given together");
		return ILA_ERR_INVALID;
	}
	return 0;
}

static void part_free(char *data, size_t len)
{
	if (!data)
		return;
	OPENSSL_cleanse(data, len);
	free(data);
}

void tls_material_destroy(struct tls_material *m)
{
	if (!m)
		return;
	part_free(m->key, m->key_len);
	part_free(m->cert, m->cert_len);
	part_free(m->ca, m->ca_len);
	OPENSSL_cleanse(m, sizeof(*m));
	free(m);
}

static int material_fingerprint(struct tls_material *m, char *err, size_t errlen)
{
	int rc = tls_fingerprint(m->ca, m->ca_len, m->cert, m->cert_len, m->key, m->key_len,
				 m->fingerprint);
	if (rc != 0)
		err_printf(err, errlen, "%s", ila_strerror(rc));
	return rc;
}

static struct tls_material *material_new(char *err, size_t errlen)
{
	struct tls_material *m = calloc(1, sizeof(*m));
	if (!m)
		err_printf(err, errlen, "%s", ila_strerror(ILA_ERR_NOMEM));
	return m;
}

int tls_material_load(const struct tls_paths *paths, struct tls_material **out, char *err,
		      size_t errlen)
{
	*out = NULL;
	int rc = paths_check(paths, err, errlen);
	if (rc != 0)
		return rc;
	struct tls_material *m = material_new(err, errlen);
	if (!m)
		return ILA_ERR_NOMEM;
	if ((rc = read_ca(paths, m, err, errlen)) != 0 ||
	    (m->ca && (rc = check_ca(m->ca, m->ca_len, err, errlen)) != 0) ||
	    (rc = read_cert(paths, m, err, errlen)) != 0 ||
	    (m->cert && (rc = check_cert(m->cert, m->cert_len, err, errlen)) != 0) ||
	    (rc = read_key(paths, m, err, errlen)) != 0 ||
	    (m->key && (rc = check_key(m->key, m->key_len, err, errlen)) != 0) ||
	    (m->cert && (rc = check_pair(m, err, errlen)) != 0) ||
	    (rc = material_fingerprint(m, err, errlen)) != 0) {
		tls_material_destroy(m);
		return rc;
	}
	*out = m;
	return 0;
}

int tls_check_files(const struct tls_paths *paths, char *err, size_t errlen)
{
	struct tls_material *m = NULL;
	int rc = tls_material_load(paths, &m, err, errlen);
	tls_material_destroy(m);
	return rc;
}

int tls_material_read(const struct tls_paths *paths, struct tls_material **out, char *err,
		      size_t errlen)
{
	*out = NULL;
	int rc = paths_check(paths, err, errlen);
	if (rc != 0)
		return rc;
	struct tls_material *m = material_new(err, errlen);
	if (!m)
		return ILA_ERR_NOMEM;
	if ((rc = read_ca(paths, m, err, errlen)) != 0 ||
	    (rc = read_cert(paths, m, err, errlen)) != 0 ||
	    (rc = read_key(paths, m, err, errlen)) != 0 ||
	    (rc = material_fingerprint(m, err, errlen)) != 0) {
		tls_material_destroy(m);
		return rc;
	}
	*out = m;
	return 0;
}

int tls_material_validate(const struct tls_material *m, char *err, size_t errlen)
{
	if (!m) {
		err_printf(err, errlen, "%s", ila_strerror(ILA_ERR_INVALID));
		return ILA_ERR_INVALID;
	}
	if (!m->cert != !m->key) {
		err_printf(err, errlen,
			   "--mqtt_client_cert and --mqtt_client_key must be given together");
		return ILA_ERR_INVALID;
	}
	int rc;
	if ((m->ca && (rc = check_ca(m->ca, m->ca_len, err, errlen)) != 0) ||
	    (m->cert && (rc = check_cert(m->cert, m->cert_len, err, errlen)) != 0) ||
	    (m->key && (rc = check_key(m->key, m->key_len, err, errlen)) != 0) ||
	    (m->cert && (rc = check_pair(m, err, errlen)) != 0))
		return rc;
	return 0;
}

bool tls_material_same(const struct tls_material *a, const struct tls_material *b)
{
	if (!a || !b)
		return a == b;
	return CRYPTO_memcmp(a->fingerprint, b->fingerprint, TLS_FINGERPRINT_LEN) == 0;
}

static bool digest_part(EVP_MD_CTX *ctx, const void *data, size_t len)
{
	unsigned char prefix[8];
	uint64_t n = len;
	for (int i = 7; i >= 0; i--) {
		prefix[i] = (unsigned char)(n & 0xff);
		n >>= 8;
	}
	return EVP_DigestUpdate(ctx, prefix, sizeof(prefix)) == 1 &&
	       (len == 0 || EVP_DigestUpdate(ctx, data, len) == 1);
}

int tls_fingerprint(const void *ca, size_t ca_len, const void *cert, size_t cert_len,
		    const void *key, size_t key_len, unsigned char out[TLS_FINGERPRINT_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int out_len = 0;
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
		  digest_part(ctx, ca, ca ? ca_len : 0) &&
		  digest_part(ctx, cert, cert ? cert_len : 0) &&
		  digest_part(ctx, key, key ? key_len : 0) &&
		  EVP_DigestFinal_ex(ctx, out, &out_len) == 1 && out_len == TLS_FINGERPRINT_LEN;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok) {
		memset(out, 0, TLS_FINGERPRINT_LEN);
		return ILA_ERR_NOMEM;
	}
	return 0;
}

enum tls_reload tls_material_reload(const struct tls_paths *paths,
				    const struct tls_material *active,
				    struct tls_material **out, char *err, size_t errlen)
{
	*out = NULL;
	struct tls_material *m = NULL;
	int rc = tls_material_read(paths, &m, err, errlen);
	if (rc == ILA_ERR_NOMEM)
		return TLS_RELOAD_NOMEM;
	if (rc != 0)
		return rc == ILA_ERR_IO ? TLS_RELOAD_UNREADABLE : TLS_RELOAD_INVALID;
	if (tls_material_same(m, active)) {
		tls_material_destroy(m);
		return TLS_RELOAD_UNCHANGED;
	}
	rc = tls_material_validate(m, err, errlen);
	if (rc != 0) {
		tls_material_destroy(m);
		return rc == ILA_ERR_NOMEM ? TLS_RELOAD_NOMEM : TLS_RELOAD_INVALID;
	}
	*out = m;
	return TLS_RELOAD_CHANGED;
}

/* ---- Saving -------------------------------------------------------------------------- */

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes data to dir/name through a temporary file and rename, so a reader sees either
 * the old or the new contents. Returns the final path in *path_out. */
static int save_part(const char *dir, const char *name, const char *data, size_t len,
		     char **path_out, char *err, size_t errlen)
{
	char *path = NULL, *tmp = NULL;
	if (asprintf(&path, "%s/%s", dir, name) < 0) {
		path = NULL;
		goto oom;
	}
	if (asprintf(&tmp, "%s/.%s.tmp", dir, name) < 0) {
		tmp = NULL;
		goto oom;
	}
	int errnum = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		errnum = errno;
	} else {
		errnum = write_all(fd, data, len);
		if (close(fd) != 0 && errnum == 0)
			errnum = errno;
		if (errnum == 0 && rename(tmp, path) != 0)
			errnum = errno;
		if (errnum != 0)
			unlink(tmp);
	}
	if (errnum != 0) {
		char buf[256];
		err_printf(err, errlen, "cannot write %s: %s", path,
			   errno_text(errnum, buf, sizeof(buf)));
		free(tmp);
		free(path);
		return ILA_ERR_IO;
	}
	free(tmp);
	*path_out = path;
	return 0;

oom:
	free(tmp);
	free(path);
	err_printf(err, errlen, "%s", ila_strerror(ILA_ERR_NOMEM));
	return ILA_ERR_NOMEM;
}

int tls_material_save(const struct tls_material *m, const char *dir,
		      struct tls_saved_paths *paths_out, char *err, size_t errlen)
{
	memset(paths_out, 0, sizeof(*paths_out));
	if (!m || !dir) {
		err_printf(err, errlen, "%s", ila_strerror(ILA_ERR_INVALID));
		return ILA_ERR_INVALID;
	}
	int rc = 0;
	if ((m->ca && (rc = save_part(dir, "ca.pem", m->ca, m->ca_len, &paths_out->ca, err,
				      errlen)) != 0) ||
	    (m->cert && (rc = save_part(dir, "cert.pem", m->cert, m->cert_len,
					&paths_out->cert, err, errlen)) != 0) ||
	    (m->key && (rc = save_part(dir, "key.pem", m->key, m->key_len, &paths_out->key,
				       err, errlen)) != 0)) {
		tls_saved_paths_free(paths_out);
		return rc;
	}
	return 0;
}

void tls_saved_paths_free(struct tls_saved_paths *p)
{
	if (!p)
		return;
	free(p->key);
	free(p->cert);
	free(p->ca);
	p->key = p->cert = p->ca = NULL;
}
