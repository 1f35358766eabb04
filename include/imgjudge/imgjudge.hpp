// imgjudge: zero-shot image-safety judging with multimodal LLMs (the CLUE method).
// Umbrella header of the C++ API. The C API is <imgjudge/imgjudge.h>.
#pragma once

#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "imgjudge/judge.hpp"
#include "imgjudge/verdict.hpp"
#include "imgjudge/version.hpp"
