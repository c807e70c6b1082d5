// Stub of <objc/message.h> (macOS SDK with OBJC_OLD_DISPATCH_PROTOTYPES=0): objc_msgSend has no
// usable prototype, so every call must cast it to the exact function type (ane-seed-spec 1.1).
#pragma once
#include <objc/objc.h>
extern "C" void objc_msgSend(void);
