/* Heartbeat pings to ilert (SPEC §6.5): an il1hbt key is a GET on the API base, any other
 * key a HEAD on the heartbeat base. Used by the heartbeat subcommand, the pinger, the HTTP
 * proxy and queued heartbeat items. Runs on the client's thread. */
#ifndef ILAGENT_ILERT_HEARTBEAT_H
#define ILAGENT_ILERT_HEARTBEAT_H

#include <stdbool.h>

#include "ilert/client.h"

/* True when key is pinged through the API base (it starts with "il1hbt"). */
bool ilert_heartbeat_uses_api(const char *key);

/* Sends one ping for key, with Authorization when auth is set and the client has a key.
 * Never retries. Returns and fills res like ilert_client_send(). */
int ilert_heartbeat_ping(struct ilert_client *c, const char *key, bool auth,
			 struct ilert_result *res);

/* Logs a failed ping at error for component: "Bad heartbeat http response <code>", or the
 * transport error. */
void ilert_heartbeat_log_failure(const char *component, const struct ilert_result *res);

#endif
