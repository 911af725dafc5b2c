/* (being written) */
#include <criterion/criterion.h>

Test(http_server, placeholder_until_written)
{
    cr_assert(1);
}
