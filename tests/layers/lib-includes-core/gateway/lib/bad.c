#include "core/conn.h"
