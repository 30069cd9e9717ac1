#include "ilert/heartbeat.h"

#include <string.h>

#include "ops/log.h"

#define API_KEY_PREFIX "il1hbt"

bool ilert_heartbeat_uses_api(const char *key)
{
	return !strncmp(key, API_KEY_PREFIX, strlen(API_KEY_PREFIX));
}

int ilert_heartbeat_ping(struct ilert_client *c, const char *key, bool auth,
			 struct ilert_result *res)
{
	bool api = ilert_heartbeat_uses_api(key);
	struct ilert_request req = {
		.method = api ? ILERT_GET : ILERT_HEAD,
		.base = api ? ILERT_BASE_API : ILERT_BASE_BEAT,
		.endpoint = api ? ILERT_EP_HEARTBEATS : ILERT_EP_PINGS,
		.path = api ? "/heartbeats/" : "/pings/",
		.key = key,
		.auth = auth,
	};
	return ilert_client_send(c, &req, res);
}

void ilert_heartbeat_log_failure(const char *component, const struct ilert_result *res)
{
	if (res->status)
		log_error(component, "Bad heartbeat http response %ld", res->status);
	else
		log_error(component, "Heartbeat ping failed: %s", res->error);
}
