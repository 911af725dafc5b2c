/* (being written) */
#include "common/auth.h"
