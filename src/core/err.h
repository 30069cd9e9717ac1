/* Error codes shared by every module.
 * Functions return 0 on success or a negative enum ila_err; no bare -1.
 * Pure data: safe from any thread. */
#ifndef ILAGENT_CORE_ERR_H
#define ILAGENT_CORE_ERR_H

enum ila_err {
	ILA_OK = 0,
	ILA_ERR_NOMEM = -1,    /* allocation failed */
	ILA_ERR_INVALID = -2,  /* bad input or argument */
	ILA_ERR_IO = -3,       /* file or socket error */
	ILA_ERR_STORE = -4,    /* SQLite error that may go away (busy, full, I/O) */
	ILA_ERR_CORRUPT = -5,  /* SQLite file corrupt or not a database */
	ILA_ERR_NOTFOUND = -6, /* lookup found nothing */
	ILA_ERR_BUSY = -7,     /* resource held by someone else (lock, ring full) */
	ILA_ERR_TIMEOUT = -8,  /* deadline passed */
	ILA_ERR_NET = -9,      /* transport error talking to a peer */
};

/* Short English description of an error code ("out of memory", ...). */
const char *ila_strerror(int err);

#endif
