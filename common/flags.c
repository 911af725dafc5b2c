/* Command-line helpers. */
#include "common/flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/errors.h"

int cm_flag_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return CM_E_INVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != 0 || errno != 0 || v < min || v > max)
        return CM_E_INVAL;
    *out = v;
    return 0;
}

int cm_flag_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    uint64_t mult = 1;
    if (s == NULL || *s < '0' || *s > '9')
        return CM_E_INVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return CM_E_INVAL;
    if (*end == 'K' || *end == 'k')
        mult = 1ull << 10;
    else if (*end == 'M' || *end == 'm')
        mult = 1ull << 20;
    else if (*end == 'G' || *end == 'g')
        mult = 1ull << 30;
    if (mult > 1)
        end++;
    if (*end != 0 || v > UINT64_MAX / mult || v * mult < min || v * mult > max)
        return CM_E_INVAL;
    *out = v * mult;
    return 0;
}

int cm_flag_error(const char *prog, const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "%s: %s %s: %s\n", prog, flag, value ? value : "", why);
    fprintf(stderr, "Try '%s --help'.\n", prog);
    return 2;
}
