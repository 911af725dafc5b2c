/* (being written) */
#include <criterion/criterion.h>

Test(http_client, placeholder_until_written)
{
    cr_assert(1);
}
