#include "lib/util.h"
#include <stdio.h>
