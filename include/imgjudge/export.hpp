// imgjudge: symbol visibility. The library is built with hidden visibility;
// only what is marked IMGJUDGE_API is exported.
#pragma once

#if defined(_WIN32)
#define IMGJUDGE_API
#define IMGJUDGE_HIDDEN
#else
#define IMGJUDGE_API __attribute__((visibility("default")))
/// For private members of exported classes (e.g. a pimpl), which would
/// otherwise be exported with their class.
#define IMGJUDGE_HIDDEN __attribute__((visibility("hidden")))
#endif
