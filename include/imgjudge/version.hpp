// imgjudge: library version (semantic versioning, see docs/api-stability.md).
#pragma once

#include "imgjudge/export.hpp"

#define IMGJUDGE_VERSION_MAJOR 0
#define IMGJUDGE_VERSION_MINOR 1
#define IMGJUDGE_VERSION_PATCH 0
#define IMGJUDGE_VERSION_STRING "0.1.0"

namespace imgjudge {
/// Version of the library actually loaded at run time ("MAJOR.MINOR.PATCH").
IMGJUDGE_API const char* version() noexcept;
}  // namespace imgjudge
