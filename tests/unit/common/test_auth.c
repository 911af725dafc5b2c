/* (being written) */
#include <criterion/criterion.h>

Test(auth, placeholder_until_written)
{
    cr_assert(1);
}
