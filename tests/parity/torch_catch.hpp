// Include this instead of <catch2/catch.hpp> in tests that use libtorch.
// ATen pulls in glog, whose CHECK macro (abort on failure) silently replaces
// Catch's CHECK when catch.hpp comes first. Order: torch, #undef, Catch.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#undef CHECK
#include <catch2/catch.hpp>
