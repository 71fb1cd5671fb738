#ifndef TWINFLOW_CGLIBCMALLOC_SHIM_H
#define TWINFLOW_CGLIBCMALLOC_SHIM_H
#if defined(__linux__)
#include <malloc.h>
#endif
#endif
