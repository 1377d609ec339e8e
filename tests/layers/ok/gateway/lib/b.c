#include "lib/b.h"
