/* (being written) */
#include "common/http_server.h"
