/* LD_PRELOAD library for tests: makes SQLite's default VFS one whose files offer no shared
 * memory, as on file systems that cannot map the -shm file. WAL mode then cannot be enabled,
 * so a program run with it exercises the rollback-journal fallback (SPEC §16.1). */
#include <sqlite3.h>
#include <string.h>

static sqlite3_vfs *unix_vfs;
static sqlite3_vfs no_shm_vfs;

/* One copy per distinct set of io methods the unix VFS hands out (files of different kinds
 * get different sets), each without the shared-memory entries. */
#define METHOD_SETS 8
static const sqlite3_io_methods *originals[METHOD_SETS];
static sqlite3_io_methods copies[METHOD_SETS];
static sqlite3_mutex *copies_lock;

static const sqlite3_io_methods *without_shm(const sqlite3_io_methods *m)
{
	const sqlite3_io_methods *found = m;
	sqlite3_mutex_enter(copies_lock);
	for (int i = 0; i < METHOD_SETS; i++) {
		if (originals[i] == m) {
			found = &copies[i];
			break;
		}
		if (!originals[i]) {
			originals[i] = m;
			copies[i] = *m;
			copies[i].iVersion = 1; /* version 1 has no xShm* entries: no WAL */
			found = &copies[i];
			break;
		}
	}
	sqlite3_mutex_leave(copies_lock);
	return found;
}

static int no_shm_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
		       int *out_flags)
{
	(void)vfs;
	int rc = unix_vfs->xOpen(unix_vfs, name, file, flags, out_flags);
	if (rc == SQLITE_OK && file->pMethods)
		file->pMethods = without_shm(file->pMethods);
	return rc;
}

__attribute__((constructor)) static void install_no_shm_vfs(void)
{
	if (sqlite3_initialize() != SQLITE_OK)
		return;
	unix_vfs = sqlite3_vfs_find(NULL);
	copies_lock = sqlite3_mutex_alloc(SQLITE_MUTEX_FAST);
	if (!unix_vfs || !copies_lock)
		return;
	no_shm_vfs = *unix_vfs;
	no_shm_vfs.zName = "unix-no-shm";
	no_shm_vfs.xOpen = no_shm_open;
	sqlite3_vfs_register(&no_shm_vfs, 1);
}
