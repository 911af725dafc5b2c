/* (being written) */
#include "common/resolver.h"
