/* Random UUID v4 in lowercase hyphenated form (row ids, SPEC §16.6).
 * Uses getrandom(); safe from any thread. */
#ifndef ILAGENT_CORE_UUID_H
#define ILAGENT_CORE_UUID_H

#define UUID_STR_LEN 37 /* 36 characters + NUL */

/* Writes a fresh UUID v4 into out (UUID_STR_LEN bytes). */
void uuid_v4(char out[UUID_STR_LEN]);

#endif
