/* The SQLite queue file (SPEC §16): the daemon's lock file, opening one connection with the
 * pragmas of §16.1, refusing foreign or corrupt files, migrations mig_1…mig_9 and the §16.5
 * backfill. A struct store is one connection: one thread at a time uses it. */
#ifndef ILAGENT_STORE_DB_H
#define ILAGENT_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>

/* Size of a message buffer large enough for every message store_open() writes. */
#define STORE_MSG_SIZE 1024

enum store_mode {
	STORE_MODE_DAEMON = 0, /* creates a missing file (mode 0600) */
	STORE_MODE_QUEUE,      /* the file must exist */
	STORE_MODE_ATTACH,     /* another connection of this process opened, checked and
				* migrated the file already: only the connection settings */
};

struct store_options {
	const char *path;
	enum store_mode mode;
	bool sync_normal; /* synchronous=NORMAL instead of FULL (--db_sync normal) */
};

struct store;
struct store_lock;

/* Takes an exclusive flock on "<db_path>.lock" (created 0600) for the daemon's lifetime.
 * ILA_ERR_BUSY with "Failed to setup SQLite connection: <path> is in use by another ilagent
 * daemon" in msg when another holder has it; ILA_ERR_IO for other failures. */
int store_lock_acquire(const char *db_path, struct store_lock **out, char *msg, size_t msg_size);
/* Releases the lock and closes the lock file (which stays on disk). Accepts NULL. */
void store_lock_release(struct store_lock *lock);

/* Opens the queue file, checks it, applies pending migrations and the backfill, then
 * enables WAL. On failure *out is NULL, the file is as before, and msg holds the complete
 * user message without the "ilagent: error: " prefix:
 *   ILA_ERR_NOTFOUND  "database file not found: <path>" (queue mode)
 *   ILA_ERR_CORRUPT   "Failed to setup SQLite connection: <path>: <reason>" (corrupt, not a
 *                     database)
 *   ILA_ERR_INVALID   same prefix: foreign database, SQLite too old
 *   ILA_ERR_STORE     same prefix, or "Database migration failed (mig_<N>): <reason>" */
int store_open(const struct store_options *opts, struct store **out, char *msg, size_t msg_size);
/* Switches the connection between synchronous=FULL and NORMAL for the next transactions
 * (outside a transaction). Used for commits that acknowledge nothing. 0 or an ila_err. */
int store_set_sync(struct store *st, bool full);

/* Finalizes the statements and closes the connection (rolling back an open transaction).
 * Accepts NULL. */
void store_close(struct store *st);

/* The path the store was opened with. */
const char *store_path(const struct store *st);
/* True when the connection runs in WAL mode (false: the file system refused it). */
bool store_is_wal(const struct store *st);
/* The message of the last failed operation on st ("" if none). Valid until the next call. */
const char *store_errmsg(const struct store *st);

#endif
