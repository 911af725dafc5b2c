/* (being written) */
#include "common/json.h"
