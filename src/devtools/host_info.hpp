// What machine a benchmark ran on, for its report (/proc/cpuinfo). Torch-free.
#pragma once

#include <string>

namespace imgjudge::devtools {

/// The CPU's model name ("AMD EPYC ..."), or "unknown".
std::string cpu_model();

/// Whether the CPU reports `flag` (e.g. "avx512_bf16") in /proc/cpuinfo.
bool cpu_flag(const std::string& flag);

}  // namespace imgjudge::devtools
