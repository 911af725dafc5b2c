/* (being written) */
#include "common/crc32c.h"
