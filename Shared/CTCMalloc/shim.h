#ifndef TWINFLOW_CTCMALLOC_SHIM_H
#define TWINFLOW_CTCMALLOC_SHIM_H
// gperftools' tcmalloc (Debian: libtcmalloc-minimal4) replaces malloc and free for the whole
// process once linked; its only declaration needed here is the version query (gperftools/tcmalloc.h,
// which ships in a development package of its own).
const char *tc_version(int *major, int *minor, const char **patch);
#endif
