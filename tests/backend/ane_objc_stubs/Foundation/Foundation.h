// Stub of <Foundation/Foundation.h> (macOS SDK): exactly the classes and methods
// ane_device_apple.mm sends, with the SDK's signatures.
#pragma once
#include <objc/objc.h>
#include <stddef.h>
typedef long NSInteger;
typedef unsigned long NSUInteger;
@class NSString, NSDictionary, NSError;

@protocol NSObject
- (instancetype)retain;
- (oneway void)release;
- (instancetype)autorelease;
- (NSString*)description;
@end

@interface NSObject <NSObject>
@end

typedef struct {
  unsigned long state;
  id __unsafe_unretained* itemsPtr;
  unsigned long* mutationsPtr;
  unsigned long extra[5];
} NSFastEnumerationState;

@protocol NSFastEnumeration
- (NSUInteger)countByEnumeratingWithState:(NSFastEnumerationState*)state
                                  objects:(id __unsafe_unretained[])buffer
                                    count:(NSUInteger)len;
@end

@interface NSString : NSObject
+ (instancetype)stringWithUTF8String:(const char*)nullTerminatedCString;
- (const char*)UTF8String;
- (NSString*)stringByAppendingPathComponent:(NSString*)str;
- (NSString*)stringByDeletingLastPathComponent;
- (BOOL)hasPrefix:(NSString*)str;
- (NSString*)substringFromIndex:(NSUInteger)from;
@end

@interface NSConstantString : NSString
@end

@interface NSData : NSObject
+ (instancetype)dataWithBytes:(const void*)bytes length:(NSUInteger)length;
- (BOOL)writeToFile:(NSString*)path atomically:(BOOL)useAuxiliaryFile;
@end

@interface NSNumber : NSObject
+ (NSNumber*)numberWithInt:(int)value;
+ (NSNumber*)numberWithUnsignedLong:(unsigned long)value;
@end

@interface NSArray : NSObject <NSFastEnumeration>
+ (instancetype)arrayWithObjects:(const id[])objects count:(NSUInteger)cnt;
@end

@interface NSMutableArray : NSArray
+ (instancetype)array;
- (void)addObject:(id)anObject;
@end

@interface NSDictionary : NSObject <NSFastEnumeration>
+ (instancetype)dictionaryWithObjects:(const id[])objects
                              forKeys:(const id[])keys
                                count:(NSUInteger)cnt;
- (id)objectForKey:(id)aKey;
@end

@interface NSMutableDictionary : NSDictionary
+ (instancetype)dictionary;
- (void)setObject:(id)anObject forKey:(id)aKey;
@end

@interface NSError : NSObject
- (NSString*)domain;
- (NSInteger)code;
- (NSString*)localizedDescription;
@end

@interface NSException : NSObject
- (NSString*)name;
- (NSString*)reason;
@end

@interface NSFileManager : NSObject
+ (NSFileManager*)defaultManager;
- (BOOL)createDirectoryAtPath:(NSString*)path
    withIntermediateDirectories:(BOOL)createIntermediates
                     attributes:(NSDictionary*)attributes
                          error:(NSError**)error;
- (BOOL)removeItemAtPath:(NSString*)path error:(NSError**)error;
@end

@interface NSProcessInfo : NSObject
+ (NSProcessInfo*)processInfo;
- (NSString*)operatingSystemVersionString;
@end

extern "C" NSString* NSTemporaryDirectory(void);
extern "C" Class NSClassFromString(NSString* aClassName);

// The private framework's selectors are sent through casted objc_msgSend only; these informal
// declarations let clang know the selectors exist (the SDK has no header for them).
@interface NSObject (AneerdPrivateSelectors)
- (id)hexStringIdentifier;
+ (id)aneSubType;
@end
