// imgjudge: symbol visibility. The library is built with hidden visibility;
// only what is marked IMGJUDGE_API is exported.
#pragma once

#if defined(_WIN32)
#define IMGJUDGE_API
#else
#define IMGJUDGE_API __attribute__((visibility("default")))
#endif
