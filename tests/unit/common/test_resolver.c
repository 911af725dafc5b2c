/* (being written) */
#include <criterion/criterion.h>

Test(resolver, placeholder_until_written)
{
    cr_assert(1);
}
