#include "lib/util.h"
