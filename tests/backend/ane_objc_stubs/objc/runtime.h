// Stub of <objc/runtime.h> (macOS SDK).
#pragma once
#include <objc/objc.h>
extern "C" const char* class_getName(Class cls);
