// Stub of <objc/message.h> as the macOS SDK declares it (OBJC_OLD_DISPATCH_PROTOTYPES=0):
// objc_msgSend has no usable prototype, so every call must cast it to the exact function type
// (docs/ANE_NOTES.md §1.1). The rest of the header comes from the GNU runtime's own.
#pragma once
#include_next <objc/message.h>
extern "C" void objc_msgSend(void);
