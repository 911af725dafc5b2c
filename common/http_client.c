/* (being written) */
#include "common/http_client.h"
