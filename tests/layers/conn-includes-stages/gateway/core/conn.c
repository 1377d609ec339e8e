/* fixture: the connection may not include a stage (cmake/layers.cmake) */
#include "stages/stages.h"
