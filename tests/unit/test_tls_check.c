#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli/tls_check.h"
#include "core/err.h"
#include "proc.h"

/* Throwaway PKI generated once per run: a CA, an RSA and an EC client with certificates
 * signed by that CA, and a spare key of each type for mismatches. */
struct pki {
	char *ca_cert;
	char *ca2_cert;
	char *rsa_cert;
	char *ec_cert;
	char *rsa_pkcs1;
	char *rsa_pkcs8;
	char *rsa_pkcs1_encrypted;
	char *rsa_pkcs8_encrypted;
	char *rsa2_pkcs8;
	char *ec_sec1;
	char *ec_sec1_with_params;
	char *ec_pkcs8;
	char *ec2_sec1;
};

static struct pki pki;

/* Per test: a private directory. */
struct fixture {
	char *dir;
};

/* ---- Generating PEM with OpenSSL ----------------------------------------------------- */

static char *bio_to_string(BIO *bio)
{
	char *mem = NULL;
	long len = BIO_get_mem_data(bio, &mem);
	assert_true(len >= 0);
	char *s = malloc((size_t)len + 1);
	assert_non_null(s);
	memcpy(s, mem, (size_t)len);
	s[len] = '\0';
	BIO_free(bio);
	return s;
}

static char *cert_pem(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	return bio_to_string(bio);
}

enum key_format { KEY_TRADITIONAL, KEY_PKCS8 };

static char *key_pem(EVP_PKEY *pkey, enum key_format format, const char *password)
{
	BIO *bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	const EVP_CIPHER *cipher = password ? EVP_aes_128_cbc() : NULL;
	unsigned char *pass = (unsigned char *)(uintptr_t)password;
	int passlen = password ? (int)strlen(password) : 0;
	int ok;
	if (format == KEY_TRADITIONAL)
		ok = PEM_write_bio_PrivateKey_traditional(bio, pkey, cipher, pass, passlen, NULL,
							  NULL);
	else if (password)
		ok = PEM_write_bio_PKCS8PrivateKey(bio, pkey, cipher, (char *)pass, passlen, NULL,
						   NULL);
	else
		ok = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
	assert_int_equal(ok, 1);
	return bio_to_string(bio);
}

static char *ec_params_and_key_pem(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_Parameters(bio, pkey), 1);
	assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL,
							      NULL),
			 1);
	return bio_to_string(bio);
}

static void add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* Issued by issuer (self-signed when issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
	static long serial = 1;
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	X509_NAME *name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name),
			 1);
	add_ext(x, NID_basic_constraints, issuer ? "CA:FALSE" : "critical,CA:TRUE");
	assert_true(X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static int pki_setup(void **state)
{
	(void)state;
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	EVP_PKEY *ca2_key = EVP_EC_gen("P-256");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	EVP_PKEY *rsa2 = EVP_RSA_gen(2048);
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	EVP_PKEY *ec2 = EVP_EC_gen("P-256");
	assert_true(ca_key && ca2_key && rsa && rsa2 && ec && ec2);

	X509 *ca = make_cert(ca_key, "ilagent test CA", NULL, NULL);
	X509 *ca2 = make_cert(ca2_key, "ilagent second test CA", NULL, NULL);
	X509 *rsa_cert = make_cert(rsa, "rsa client", ca, ca_key);
	X509 *ec_cert = make_cert(ec, "ec client", ca, ca_key);

	pki.ca_cert = cert_pem(ca);
	pki.ca2_cert = cert_pem(ca2);
	pki.rsa_cert = cert_pem(rsa_cert);
	pki.ec_cert = cert_pem(ec_cert);
	pki.rsa_pkcs1 = key_pem(rsa, KEY_TRADITIONAL, NULL);
	pki.rsa_pkcs8 = key_pem(rsa, KEY_PKCS8, NULL);
	pki.rsa_pkcs1_encrypted = key_pem(rsa, KEY_TRADITIONAL, "secret-pass");
	pki.rsa_pkcs8_encrypted = key_pem(rsa, KEY_PKCS8, "secret-pass");
	pki.rsa2_pkcs8 = key_pem(rsa2, KEY_PKCS8, NULL);
	pki.ec_sec1 = key_pem(ec, KEY_TRADITIONAL, NULL);
	pki.ec_sec1_with_params = ec_params_and_key_pem(ec);
	pki.ec_pkcs8 = key_pem(ec, KEY_PKCS8, NULL);
	pki.ec2_sec1 = key_pem(ec2, KEY_TRADITIONAL, NULL);

	X509_free(ec_cert);
	X509_free(rsa_cert);
	X509_free(ca2);
	X509_free(ca);
	EVP_PKEY_free(ec2);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa2);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ca2_key);
	EVP_PKEY_free(ca_key);
	return 0;
}

static int pki_teardown(void **state)
{
	(void)state;
	free(pki.ec2_sec1);
	free(pki.ec_pkcs8);
	free(pki.ec_sec1_with_params);
	free(pki.ec_sec1);
	free(pki.rsa2_pkcs8);
	free(pki.rsa_pkcs8_encrypted);
	free(pki.rsa_pkcs1_encrypted);
	free(pki.rsa_pkcs8);
	free(pki.rsa_pkcs1);
	free(pki.ec_cert);
	free(pki.rsa_cert);
	free(pki.ca2_cert);
	free(pki.ca_cert);
	memset(&pki, 0, sizeof(pki));
	return 0;
}

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = test_mkdtemp();
	assert_non_null(f->dir);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- Files and loading --------------------------------------------------------------- */

/* Path of name inside the test directory; kept in a small ring so a test can hold several. */
static const char *path_in(struct fixture *f, const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next];
	next = (next + 1) % 8;
	snprintf(p, sizeof(paths[0]), "%s/%s", f->dir, name);
	return p;
}

static const char *put(struct fixture *f, const char *name, const char *contents)
{
	const char *p = path_in(f, name);
	assert_int_equal(test_write_file(p, contents, strlen(contents)), 0);
	return p;
}

/* Concatenation of up to three PEM strings (NULLs skipped); caller frees. */
static char *concat3(const char *a, const char *b, const char *c)
{
	size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
	char *s = malloc(la + lb + lc + 1);
	assert_non_null(s);
	memcpy(s, a ? a : "", la);
	memcpy(s + la, b ? b : "", lb);
	memcpy(s + la + lb, c ? c : "", lc);
	s[la + lb + lc] = '\0';
	return s;
}

/* Loads and expects success; returns the material for further checks. */
static struct tls_material *load_ok(const char *ca, const char *cert, const char *key)
{
	struct tls_paths paths = {ca, cert, key};
	struct tls_material *m = NULL;
	char err[512] = "";
	int rc = tls_material_load(&paths, &m, err, sizeof(err));
	if (rc != 0)
		fail_msg("load failed (%d): %s", rc, err);
	assert_non_null(m);
	return m;
}

/* Loads and expects the failure rc with exactly the message want. */
static void load_fails(const char *ca, const char *cert, const char *key, int want_rc,
		       const char *want)
{
	struct tls_paths paths = {ca, cert, key};
	struct tls_material *m = (struct tls_material *)&paths; /* must be reset to NULL */
	char err[512] = "";
	int rc = tls_material_load(&paths, &m, err, sizeof(err));
	assert_null(m);
	assert_string_equal(err, want);
	assert_int_equal(rc, want_rc);
	/* The convenience check reports the same. */
	char err2[512] = "";
	assert_int_equal(tls_check_files(&paths, err2, sizeof(err2)), want_rc);
	assert_string_equal(err2, want);
}

static char *fmt(const char *format, const char *arg)
{
	char *s = NULL;
	assert_true(asprintf(&s, format, arg) > 0);
	return s;
}

/* ---- The generated PEM has the formats the tests claim ------------------------------- */

static void test_generated_formats(void **state)
{
	(void)state;
	assert_non_null(strstr(pki.rsa_pkcs1, "-----BEGIN RSA PRIVATE KEY-----"));
	assert_non_null(strstr(pki.rsa_pkcs8, "-----BEGIN PRIVATE KEY-----"));
	assert_non_null(strstr(pki.ec_sec1, "-----BEGIN EC PRIVATE KEY-----"));
	assert_non_null(strstr(pki.ec_pkcs8, "-----BEGIN PRIVATE KEY-----"));
	assert_non_null(strstr(pki.ec_sec1_with_params, "-----BEGIN EC PARAMETERS-----"));
	assert_non_null(strstr(pki.rsa_pkcs1_encrypted, "Proc-Type: 4,ENCRYPTED"));
	assert_non_null(strstr(pki.rsa_pkcs8_encrypted, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
	assert_non_null(strstr(pki.ca_cert, "-----BEGIN CERTIFICATE-----"));
}

/* ---- Valid material ------------------------------------------------------------------ */

static void test_rsa_pkcs1_with_ca(void **state)
{
	struct fixture *f = *state;
	const char *ca = put(f, "ca.pem", pki.ca_cert);
	const char *cert = put(f, "cert.pem", pki.rsa_cert);
	const char *key = put(f, "key.pem", pki.rsa_pkcs1);
	struct tls_material *m = load_ok(ca, cert, key);
	/* The material holds exactly the bytes that were validated. */
	assert_int_equal(m->ca_len, strlen(pki.ca_cert));
	assert_memory_equal(m->ca, pki.ca_cert, m->ca_len);
	assert_int_equal(m->cert_len, strlen(pki.rsa_cert));
	assert_memory_equal(m->cert, pki.rsa_cert, m->cert_len);
	assert_int_equal(m->key_len, strlen(pki.rsa_pkcs1));
	assert_memory_equal(m->key, pki.rsa_pkcs1, m->key_len);
	tls_material_destroy(m);
}

static void test_rsa_pkcs8(void **state)
{
	struct fixture *f = *state;
	tls_material_destroy(load_ok(put(f, "ca.pem", pki.ca_cert),
				     put(f, "cert.pem", pki.rsa_cert),
				     put(f, "key.pem", pki.rsa_pkcs8)));
}

static void test_ec_sec1(void **state)
{
	struct fixture *f = *state;
	tls_material_destroy(load_ok(put(f, "ca.pem", pki.ca_cert),
				     put(f, "cert.pem", pki.ec_cert),
				     put(f, "key.pem", pki.ec_sec1)));
}

static void test_ec_sec1_with_parameters(void **state)
{
	struct fixture *f = *state;
	tls_material_destroy(load_ok(put(f, "ca.pem", pki.ca_cert),
				     put(f, "cert.pem", pki.ec_cert),
				     put(f, "key.pem", pki.ec_sec1_with_params)));
}

static void test_ec_pkcs8(void **state)
{
	struct fixture *f = *state;
	tls_material_destroy(load_ok(put(f, "ca.pem", pki.ca_cert),
				     put(f, "cert.pem", pki.ec_cert),
				     put(f, "key.pem", pki.ec_pkcs8)));
}

static void test_ca_only(void **state)
{
	struct fixture *f = *state;
	struct tls_material *m = load_ok(put(f, "ca.pem", pki.ca_cert), NULL, NULL);
	assert_non_null(m->ca);
	assert_null(m->cert);
	assert_null(m->key);
	tls_material_destroy(m);
}

static void test_ca_bundle(void **state)
{
	struct fixture *f = *state;
	char *bundle = concat3("# comment before\n", pki.ca_cert, pki.ca2_cert);
	tls_material_destroy(load_ok(put(f, "bundle.pem", bundle), NULL, NULL));
	free(bundle);
}

static void test_client_without_ca(void **state)
{
	struct fixture *f = *state;
	struct tls_material *m =
		load_ok(NULL, put(f, "cert.pem", pki.ec_cert), put(f, "key.pem", pki.ec_sec1));
	assert_null(m->ca);
	assert_int_equal(m->ca_len, 0);
	assert_non_null(m->cert);
	assert_non_null(m->key);
	tls_material_destroy(m);
}

static void test_nothing_configured(void **state)
{
	(void)state;
	struct tls_material *m = load_ok(NULL, NULL, NULL);
	assert_null(m->ca);
	assert_null(m->cert);
	assert_null(m->key);
	tls_material_destroy(m);
}

static void test_cert_file_with_chain_and_key(void **state)
{
	struct fixture *f = *state;
	/* A combined file: leaf, its CA as chain, and the key; the leaf is the first one. */
	char *combined = concat3(pki.rsa_cert, pki.ca_cert, pki.rsa_pkcs8);
	const char *cert = put(f, "combined.pem", combined);
	tls_material_destroy(load_ok(NULL, cert, cert));
	free(combined);
}

/* ---- Unreadable files ---------------------------------------------------------------- */

static void test_missing_ca_file(void **state)
{
	struct fixture *f = *state;
	const char *ca = path_in(f, "nope-ca.pem");
	char *want = fmt("Failed to read MQTT CA certificate file %s: No such file or directory",
			 ca);
	load_fails(ca, NULL, NULL, ILA_ERR_IO, want);
	free(want);
}

static void test_missing_cert_file(void **state)
{
	struct fixture *f = *state;
	const char *cert = path_in(f, "nope-cert.pem");
	char *want = fmt(
		"Failed to read MQTT client certificate file %s: No such file or directory", cert);
	load_fails(put(f, "ca.pem", pki.ca_cert), cert, put(f, "key.pem", pki.rsa_pkcs8),
		   ILA_ERR_IO, want);
	free(want);
}

static void test_missing_key_file(void **state)
{
	struct fixture *f = *state;
	const char *key = path_in(f, "nope-key.pem");
	char *want =
		fmt("Failed to read MQTT client key file %s: No such file or directory", key);
	load_fails(put(f, "ca.pem", pki.ca_cert), put(f, "cert.pem", pki.rsa_cert), key,
		   ILA_ERR_IO, want);
	free(want);
}

static void test_directory_as_file(void **state)
{
	struct fixture *f = *state;
	char *want = fmt("Failed to read MQTT CA certificate file %s: Is a directory", f->dir);
	load_fails(f->dir, NULL, NULL, ILA_ERR_IO, want);
	free(want);
}

static void test_missing_parent_directory(void **state)
{
	struct fixture *f = *state;
	const char *key = path_in(f, "no-such-dir/key.pem");
	char *want =
		fmt("Failed to read MQTT client key file %s: No such file or directory", key);
	load_fails(NULL, put(f, "cert.pem", pki.rsa_cert), key, ILA_ERR_IO, want);
	free(want);
}

/* ---- Bad contents -------------------------------------------------------------------- */

static void test_ca_without_certificates(void **state)
{
	struct fixture *f = *state;
	static const char *const bodies[] = {
		"",
		"not a certificate\n",
		"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
	};
	const char *want = "CA certificate file contains no certificates";
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		load_fails(put(f, "ca.pem", bodies[i]), NULL, NULL, ILA_ERR_INVALID, want);
	load_fails(put(f, "ca.pem", pki.rsa_pkcs8), NULL, NULL, ILA_ERR_INVALID, want);
	load_fails(put(f, "ca.pem", pki.ec_sec1), NULL, NULL, ILA_ERR_INVALID, want);
}

static void test_ca_with_broken_entry(void **state)
{
	struct fixture *f = *state;
	/* A TLS library refuses the whole bundle, so the check does too. */
	char *bundle = concat3(pki.ca_cert,
			       "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
			       NULL);
	load_fails(put(f, "ca.pem", bundle), NULL, NULL, ILA_ERR_INVALID,
		   "CA certificate file contains no certificates");
	free(bundle);
}

static void test_cert_without_certificates(void **state)
{
	struct fixture *f = *state;
	const char *want = "Client certificate file contains no certificates";
	const char *key = put(f, "key.pem", pki.rsa_pkcs8);
	load_fails(NULL, put(f, "cert.pem", ""), key, ILA_ERR_INVALID, want);
	load_fails(NULL, put(f, "cert.pem", "hello\n"), key, ILA_ERR_INVALID, want);
	load_fails(NULL, put(f, "cert.pem", pki.rsa_pkcs8), key, ILA_ERR_INVALID, want);
}

static void test_cert_with_broken_chain(void **state)
{
	struct fixture *f = *state;
	char *chain = concat3(pki.rsa_cert,
			      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
			      NULL);
	load_fails(NULL, put(f, "cert.pem", chain), put(f, "key.pem", pki.rsa_pkcs8),
		   ILA_ERR_INVALID, "Client certificate file contains no certificates");
	free(chain);
}

static void test_key_without_private_key(void **state)
{
	struct fixture *f = *state;
	const char *want = "Client key file contains no private key";
	const char *cert = put(f, "cert.pem", pki.rsa_cert);
	load_fails(NULL, cert, put(f, "key.pem", ""), ILA_ERR_INVALID, want);
	load_fails(NULL, cert, put(f, "key.pem", "garbage\n"), ILA_ERR_INVALID, want);
	load_fails(NULL, cert, put(f, "key.pem", pki.rsa_cert), ILA_ERR_INVALID, want);
	load_fails(NULL, cert,
		   put(f, "key.pem",
		       "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"),
		   ILA_ERR_INVALID, want);
	load_fails(NULL, cert,
		   put(f, "key.pem",
		       "-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n"
		       "-----END RSA PRIVATE KEY-----\n"),
		   ILA_ERR_INVALID, want);
}

static void test_encrypted_keys_are_not_usable(void **state)
{
	struct fixture *f = *state;
	/* There is no passphrase option: encrypted keys must fail, never prompt. */
	const char *want = "Client key file contains no private key";
	const char *cert = put(f, "cert.pem", pki.rsa_cert);
	load_fails(NULL, cert, put(f, "key.pem", pki.rsa_pkcs8_encrypted), ILA_ERR_INVALID,
		   want);
	load_fails(NULL, cert, put(f, "key.pem", pki.rsa_pkcs1_encrypted), ILA_ERR_INVALID,
		   want);
}

static void test_pair_mismatch_same_type(void **state)
{
	struct fixture *f = *state;
	load_fails(NULL, put(f, "cert.pem", pki.rsa_cert), put(f, "key.pem", pki.rsa2_pkcs8),
		   ILA_ERR_INVALID, "Client certificate and key are incompatible: key values mismatch");
	load_fails(NULL, put(f, "cert.pem", pki.ec_cert), put(f, "key.pem", pki.ec2_sec1),
		   ILA_ERR_INVALID, "Client certificate and key are incompatible: key values mismatch");
}

static void test_pair_mismatch_type(void **state)
{
	struct fixture *f = *state;
	load_fails(put(f, "ca.pem", pki.ca_cert), put(f, "cert.pem", pki.rsa_cert),
		   put(f, "key.pem", pki.ec_sec1), ILA_ERR_INVALID,
		   "Client certificate and key are incompatible: key type mismatch");
}

static void test_cert_without_key_is_rejected(void **state)
{
	struct fixture *f = *state;
	const char *want = "--mqtt_client_cert and --mqtt_client_key must be given together";
	load_fails(NULL, put(f, "cert.pem", pki.rsa_cert), NULL, ILA_ERR_INVALID, want);
	load_fails(NULL, NULL, put(f, "key.pem", pki.rsa_pkcs8), ILA_ERR_INVALID, want);
}

/* ---- Order of the checks ------------------------------------------------------------- */

static void test_check_order(void **state)
{
	struct fixture *f = *state;
	const char *missing_ca = path_in(f, "missing-ca.pem");
	const char *missing_cert = path_in(f, "missing-cert.pem");
	const char *missing_key = path_in(f, "missing-key.pem");
	const char *bad = put(f, "bad.pem", "junk\n");
	const char *ca = put(f, "ca.pem", pki.ca_cert);
	const char *cert = put(f, "cert.pem", pki.rsa_cert);
	const char *wrong_key = put(f, "wrong-key.pem", pki.rsa2_pkcs8);

	/* 1. CA read before anything else. */
	char *want = fmt("Failed to read MQTT CA certificate file %s: No such file or directory",
			 missing_ca);
	load_fails(missing_ca, missing_cert, missing_key, ILA_ERR_IO, want);
	free(want);
	/* 2. CA contents before reading the certificate. */
	load_fails(bad, missing_cert, missing_key, ILA_ERR_INVALID,
		   "CA certificate file contains no certificates");
	/* 3. certificate read before its contents and the key. */
	want = fmt("Failed to read MQTT client certificate file %s: No such file or directory",
		   missing_cert);
	load_fails(ca, missing_cert, missing_key, ILA_ERR_IO, want);
	free(want);
	/* 4. certificate contents before reading the key. */
	load_fails(ca, bad, missing_key, ILA_ERR_INVALID,
		   "Client certificate file contains no certificates");
	/* 5. key read before its contents. */
	want = fmt("Failed to read MQTT client key file %s: No such file or directory",
		   missing_key);
	load_fails(ca, cert, missing_key, ILA_ERR_IO, want);
	free(want);
	/* 6. key contents before the pair. */
	load_fails(ca, cert, bad, ILA_ERR_INVALID, "Client key file contains no private key");
	/* 7. the pair last. */
	load_fails(ca, cert, wrong_key, ILA_ERR_INVALID,
		   "Client certificate and key are incompatible: key values mismatch");
}

/* ---- Fingerprint --------------------------------------------------------------------- */

static void test_fingerprint_properties(void **state)
{
	(void)state;
	unsigned char a[TLS_FINGERPRINT_LEN], b[TLS_FINGERPRINT_LEN];
	assert_int_equal(tls_fingerprint("CA", 2, "CERT", 4, "KEY", 3, a), 0);
	assert_int_equal(tls_fingerprint("CA", 2, "CERT", 4, "KEY", 3, b), 0);
	assert_memory_equal(a, b, sizeof(a));

	/* Any changed byte changes it. */
	assert_int_equal(tls_fingerprint("CA", 2, "CERT", 4, "KEX", 3, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(tls_fingerprint("CB", 2, "CERT", 4, "KEY", 3, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	/* The order of the parts matters. */
	assert_int_equal(tls_fingerprint("KEY", 3, "CERT", 4, "CA", 2, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	/* Bytes moving from one file into the next are a change too. */
	assert_int_equal(tls_fingerprint("CAC", 3, "ERT", 3, "KEY", 3, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	/* ...even when the moved bytes look like a part boundary. */
	static const char zeros_then_b[9] = {0, 0, 0, 0, 0, 0, 0, 0, 'B'};
	static const char a_then_zeros[9] = {'A', 0, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(tls_fingerprint("A", 1, zeros_then_b, 9, "", 0, a), 0);
	assert_int_equal(tls_fingerprint(a_then_zeros, 9, "B", 1, "", 0, b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	/* A part that is not configured counts as empty. */
	assert_int_equal(tls_fingerprint(NULL, 0, "CERT", 4, "KEY", 3, a), 0);
	assert_int_equal(tls_fingerprint("", 0, "CERT", 4, "KEY", 3, b), 0);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(tls_fingerprint(NULL, 5, "CERT", 4, "KEY", 3, b), 0);
	assert_memory_equal(a, b, sizeof(a));
}

static void test_fingerprint_follows_files(void **state)
{
	struct fixture *f = *state;
	const char *ca = put(f, "ca.pem", pki.ca_cert);
	const char *cert = put(f, "cert.pem", pki.rsa_cert);
	const char *key = put(f, "key.pem", pki.rsa_pkcs1);
	struct tls_material *m1 = load_ok(ca, cert, key);
	struct tls_material *m2 = load_ok(ca, cert, key);
	assert_true(tls_material_same(m1, m2));
	unsigned char want[TLS_FINGERPRINT_LEN];
	assert_int_equal(tls_fingerprint(pki.ca_cert, strlen(pki.ca_cert), pki.rsa_cert,
					 strlen(pki.rsa_cert), pki.rsa_pkcs1,
					 strlen(pki.rsa_pkcs1), want),
			 0);
	assert_memory_equal(m1->fingerprint, want, sizeof(want));
	tls_material_destroy(m2);

	/* The same key in another encoding is another file content. */
	put(f, "key.pem", pki.rsa_pkcs8);
	m2 = load_ok(ca, cert, key);
	assert_false(tls_material_same(m1, m2));
	tls_material_destroy(m2);

	put(f, "key.pem", pki.rsa_pkcs1);
	put(f, "ca.pem", pki.ca2_cert);
	m2 = load_ok(ca, cert, key);
	assert_false(tls_material_same(m1, m2));
	tls_material_destroy(m2);

	assert_true(tls_material_same(NULL, NULL));
	assert_false(tls_material_same(m1, NULL));
	assert_false(tls_material_same(NULL, m1));
	tls_material_destroy(m1);
}

/* ---- Hot reload ---------------------------------------------------------------------- */

static void test_reload_cycle(void **state)
{
	struct fixture *f = *state;
	const char *ca = put(f, "ca.pem", pki.ca_cert);
	const char *cert = put(f, "cert.pem", pki.ec_cert);
	const char *key = put(f, "key.pem", pki.ec_sec1);
	struct tls_paths paths = {ca, cert, key};
	struct tls_material *active = load_ok(ca, cert, key);
	struct tls_material *next = NULL;
	char err[512];

	/* Unchanged files: nothing to do. */
	err[0] = '\0';
	assert_int_equal(tls_material_reload(&paths, active, &next, err, sizeof(err)),
			 TLS_RELOAD_UNCHANGED);
	assert_null(next);

	/* Changed and valid: new material with the new bytes. */
	put(f, "key.pem", pki.ec_pkcs8);
	assert_int_equal(tls_material_reload(&paths, active, &next, err, sizeof(err)),
			 TLS_RELOAD_CHANGED);
	assert_non_null(next);
	assert_false(tls_material_same(active, next));
	assert_int_equal(next->key_len, strlen(pki.ec_pkcs8));
	assert_memory_equal(next->key, pki.ec_pkcs8, next->key_len);
	tls_material_destroy(active);
	active = next;
	next = NULL;

	/* Changed and invalid: the validation message, no material. */
	put(f, "key.pem", pki.ec2_sec1);
	assert_int_equal(tls_material_reload(&paths, active, &next, err, sizeof(err)),
			 TLS_RELOAD_INVALID);
	assert_null(next);
	assert_string_equal(err, "Client certificate and key are incompatible: key values mismatch");

	put(f, "cert.pem", "");
	assert_int_equal(tls_material_reload(&paths, active, &next, err, sizeof(err)),
			 TLS_RELOAD_INVALID);
	assert_null(next);
	assert_string_equal(err, "Client certificate file contains no certificates");

	/* Unreadable: the read message. */
	assert_int_equal(unlink(cert), 0);
	assert_int_equal(tls_material_reload(&paths, active, &next, err, sizeof(err)),
			 TLS_RELOAD_UNREADABLE);
	assert_null(next);
	char *want = fmt(
		"Failed to read MQTT client certificate file %s: No such file or directory", cert);
	assert_string_equal(err, want);
	free(want);

	/* Back to the active contents: unchanged again. */
	put(f, "cert.pem", pki.ec_cert);
	put(f, "key.pem", pki.ec_pkcs8);
	assert_int_equal(tls_material_reload(&paths, active, &next, err, sizeof(err)),
			 TLS_RELOAD_UNCHANGED);
	assert_null(next);

	/* Without an active material anything valid is a change. */
	assert_int_equal(tls_material_reload(&paths, NULL, &next, err, sizeof(err)),
			 TLS_RELOAD_CHANGED);
	assert_true(tls_material_same(active, next));
	tls_material_destroy(next);
	tls_material_destroy(active);
}

static void test_read_then_validate(void **state)
{
	struct fixture *f = *state;
	struct tls_paths paths = {put(f, "ca.pem", "junk"), put(f, "cert.pem", pki.rsa_cert),
				  put(f, "key.pem", pki.rsa_pkcs8)};
	struct tls_material *m = NULL;
	char err[512] = "";
	/* Reading does not judge contents. */
	assert_int_equal(tls_material_read(&paths, &m, err, sizeof(err)), 0);
	assert_non_null(m);
	assert_int_equal(tls_material_validate(m, err, sizeof(err)), ILA_ERR_INVALID);
	assert_string_equal(err, "CA certificate file contains no certificates");
	tls_material_destroy(m);

	paths.ca = put(f, "ca.pem", pki.ca_cert);
	assert_int_equal(tls_material_read(&paths, &m, err, sizeof(err)), 0);
	assert_int_equal(tls_material_validate(m, err, sizeof(err)), 0);
	tls_material_destroy(m);
	tls_material_destroy(NULL);
}

/* ---- Saving -------------------------------------------------------------------------- */

static void test_save_material(void **state)
{
	struct fixture *f = *state;
	struct tls_material *m = load_ok(put(f, "in-ca.pem", pki.ca_cert),
					 put(f, "in-cert.pem", pki.rsa_cert),
					 put(f, "in-key.pem", pki.rsa_pkcs1));
	const char *out_dir = path_in(f, "active");
	assert_int_equal(mkdir(out_dir, 0700), 0);
	struct tls_saved_paths saved;
	char err[512] = "";
	assert_int_equal(tls_material_save(m, out_dir, &saved, err, sizeof(err)), 0);

	const char *parts[3] = {saved.ca, saved.cert, saved.key};
	const char *want[3] = {pki.ca_cert, pki.rsa_cert, pki.rsa_pkcs1};
	for (int i = 0; i < 3; i++) {
		assert_non_null(parts[i]);
		size_t len = 0;
		char *data = test_read_file(parts[i], &len);
		assert_non_null(data);
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(data, want[i], len);
		free(data);
		struct stat st;
		assert_int_equal(stat(parts[i], &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	/* What was saved validates to the same material. */
	struct tls_material *again = load_ok(saved.ca, saved.cert, saved.key);
	assert_true(tls_material_same(m, again));
	tls_material_destroy(again);
	tls_saved_paths_free(&saved);
	assert_null(saved.ca);
	tls_saved_paths_free(NULL);

	/* A directory that does not exist is an error with a message. */
	assert_int_equal(tls_material_save(m, path_in(f, "missing/dir"), &saved, err,
					   sizeof(err)),
			 ILA_ERR_IO);
	assert_non_null(strstr(err, "No such file or directory"));
	assert_null(saved.ca);
	tls_material_destroy(m);
}

static void test_save_partial_material(void **state)
{
	struct fixture *f = *state;
	struct tls_material *m = load_ok(put(f, "in-ca.pem", pki.ca_cert), NULL, NULL);
	struct tls_saved_paths saved;
	char err[512] = "";
	assert_int_equal(tls_material_save(m, f->dir, &saved, err, sizeof(err)), 0);
	assert_non_null(saved.ca);
	assert_null(saved.cert);
	assert_null(saved.key);
	assert_int_equal(access(path_in(f, "cert.pem"), F_OK), -1);
	tls_saved_paths_free(&saved);
	tls_material_destroy(m);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generated_formats),
		T(test_rsa_pkcs1_with_ca),
		T(test_rsa_pkcs8),
		T(test_ec_sec1),
		T(test_ec_sec1_with_parameters),
		T(test_ec_pkcs8),
		T(test_ca_only),
		T(test_ca_bundle),
		T(test_client_without_ca),
		cmocka_unit_test(test_nothing_configured),
		T(test_cert_file_with_chain_and_key),
		T(test_missing_ca_file),
		T(test_missing_cert_file),
		T(test_missing_key_file),
		T(test_directory_as_file),
		T(test_missing_parent_directory),
		T(test_ca_without_certificates),
		T(test_ca_with_broken_entry),
		T(test_cert_without_certificates),
		T(test_cert_with_broken_chain),
		T(test_key_without_private_key),
		T(test_encrypted_keys_are_not_usable),
		T(test_pair_mismatch_same_type),
		T(test_pair_mismatch_type),
		T(test_cert_without_key_is_rejected),
		T(test_check_order),
		cmocka_unit_test(test_fingerprint_properties),
		T(test_fingerprint_follows_files),
		T(test_reload_cycle),
		T(test_read_then_validate),
		T(test_save_material),
		T(test_save_partial_material),
	};
	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
