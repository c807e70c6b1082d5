// Stub of <sys/sysctl.h> (macOS SDK): sysctlbyname only (glibc no longer ships this header).
#pragma once
#include <stddef.h>
extern "C" int sysctlbyname(const char* name, void* oldp, size_t* oldlenp, void* newp,
                            size_t newlen);
