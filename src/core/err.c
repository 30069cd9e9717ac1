#include "core/err.h"

const char *ila_strerror(int err)
{
	switch (err) {
	case ILA_OK: return "success";
	case ILA_ERR_NOMEM: return "out of memory";
	case ILA_ERR_INVALID: return "invalid argument";
	case ILA_ERR_IO: return "input/output error";
	case ILA_ERR_STORE: return "database error";
	case ILA_ERR_CORRUPT: return "database corrupted";
	case ILA_ERR_NOTFOUND: return "not found";
	case ILA_ERR_BUSY: return "busy";
	case ILA_ERR_TIMEOUT: return "timed out";
	case ILA_ERR_NET: return "network error";
	default: return "unknown error";
	}
}
