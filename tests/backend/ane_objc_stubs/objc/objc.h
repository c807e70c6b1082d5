// Stub of <objc/objc.h> (macOS SDK): the types the .mm uses. id, Class and SEL are built in.
#pragma once
typedef signed char BOOL;
#define YES ((BOOL)1)
#define NO ((BOOL)0)
#ifndef nil
#define nil nullptr  // as the SDK defines it for C++11
#endif
#ifndef Nil
#define Nil nullptr
#endif
