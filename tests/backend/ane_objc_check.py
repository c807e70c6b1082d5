#!/usr/bin/env python3
"""Checks of the Objective-C++ files server/backend/ane/*.mm that run without a Mac (issue 18,
item 8). Every check covers every file given with --source (repeat the flag: ane_device_apple.mm,
ane_requests_apple.mm) and the project headers they include from server/backend/ane/.

  allowlist  every private framework path, class and selector the files name is a row of
             server/backend/ane/private_api.txt, with the same objc_msgSend cast; every row is used
             by some file
  compile    each .mm compiled to an object by clang against GNUstep's real Foundation headers,
             with only the Apple-only pieces (IOSurface, sysctlbyname, objc_msgSend's prototype)
             taken from tests/backend/ane_objc_stubs/; -Wall -Wextra -Werror
  analyze    clang's static analyzer (retain counts, NSError, CF, nil arguments, core, C++, unix)
             over the same compile of each .mm reports nothing
  mutants    each of the three checks fails on planted mutants, planted in every .mm (--check
             picks which check's)

Exit status: 0 pass, 1 fail, 77 skipped (a tool is missing; the reason is printed). Under CI
(environment variable CI set), where scripts/install-deps.sh installs every tool, a missing tool
fails instead of skipping.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

PASS, FAIL, SKIP = 0, 1, 77

# ---------------------------------------------------------------------------------------------
# Names used by the .mm


def strip_comments(text):
    """Blanks // and /* */ comments (keeping newlines, so line numbers stay), not string contents."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def squash(s):
    return re.sub(r"\s+", "", s)


def normalize_signature(ret, params):
    """'BOOL', 'id, SEL, unsigned  int' -> 'BOOL (id, SEL, unsigned int)'."""
    def one(p):
        p = re.sub(r"\s+", " ", p.strip())
        return re.sub(r"\s*\*", "*", p)
    plist = [one(p) for p in params.split(",")] if params.strip() else []
    return "%s (%s)" % (one(ret), ", ".join(plist))


def parse_signature_text(sig):
    m = re.fullmatch(r"\s*(.+?)\s*\((.*)\)\s*", sig)
    return normalize_signature(m.group(1), m.group(2)) if m else None


# Ways to name a class or selector from a string, which would hide the name from this check.
HIDING = r"\b(NSSelectorFromString|sel_registerName|sel_getUid|objc_getClass|objc_lookUpClass|" \
         r"objc_getMetaClass|performSelector\w*)\b"
CAST = re.compile(
    r"\(\s*\(\s*(?P<type>\w+|[^()]*\(\s*\*\s*\)\s*\([^()]*\))\s*\)\s*objc_msgSend\s*\)\s*"
    r"\(\s*(?P<recv>[^,]+?)\s*,\s*@selector\s*\((?P<sel>[^)]*)\)")


class Used:
    """The private names found in the sources, each with its first place ("file:line")."""

    def __init__(self):
        self.frameworks = {}  # path -> place
        self.classes = {}     # name -> place
        self.selectors = {}   # (marker, class or None, selector) -> {signature: place}
        self.problems = []


LOCAL_INCLUDE = re.compile(r'^\s*#\s*(?:include|import)\s+"(server/backend/ane/[^"]+\.h)"', re.M)


def scanned_files(sources, include_dirs):
    """The sources plus the server/backend/ane/ headers they include (found under include_dirs),
    each once, in order: a private name in a shared header is checked like one in a .mm."""
    out = []
    for src in sources:
        if src not in out:
            out.append(src)
        for rel in LOCAL_INCLUDE.findall(open(src, encoding="utf-8").read()):
            for d in include_dirs:
                path = os.path.join(d, rel)
                if os.path.isfile(path) and path not in out:
                    out.append(path)
                    break
    return out


def class_slots(texts):
    """Slot of the class table -> class name, over all files: {"_ANERequest", &c.request}."""
    slots = {}
    for text in texts:
        for m in re.finditer(r"\{\s*\"([^\"]*)\"\s*,\s*&\s*\w+\s*\.\s*(\w+)\s*\}", text):
            slots[m.group(2)] = m.group(1)
    return slots


def extract(paths):
    texts = {p: strip_comments(open(p, encoding="utf-8").read()) for p in paths}
    slots = class_slots(texts.values())
    used = Used()
    for path, text in texts.items():
        extract_one(os.path.basename(path), text, slots, used)
    return used


def extract_one(name, text, slots, used):
    place = lambda pos: "%s:%d" % (name, text.count("\n", 0, pos) + 1)

    aliases = {}
    for m in re.finditer(r"\busing\s+(\w+)\s*=\s*([^;=]+?)\(\s*\*\s*\)\s*\(([^;]*?)\)\s*;", text):
        aliases[m.group(1)] = normalize_signature(m.group(2), m.group(3))

    for m in re.finditer(r"@?\"((?:[^\"\\\n]|\\.)*)\"", text):
        value = m.group(1)
        if re.fullmatch(r"_[A-Za-z]\w*", value):
            used.classes.setdefault(value, place(m.start()))
        elif "PrivateFrameworks/" in value:
            used.frameworks.setdefault(value, place(m.start()))

    covered = set()
    for m in CAST.finditer(text):
        sel = squash(m.group("sel"))
        covered.add(m.start("sel"))
        ftype = m.group("type")
        if re.fullmatch(r"\w+", ftype):
            sig = aliases.get(ftype)
            if sig is None:
                used.problems.append("%s: objc_msgSend is cast to %s, whose `using` this check "
                                     "cannot read" % (place(m.start()), ftype))
                continue
        else:
            fm = re.fullmatch(r"\s*(.+?)\(\s*\*\s*\)\s*\((.*)\)\s*", ftype, re.S)
            sig = normalize_signature(fm.group(1), fm.group(2))
        first = sig[sig.index("(") + 1:].split(",")[0].strip(" )")
        marker = "+" if first == "Class" else "-"
        cls = None
        if marker == "+":
            slot = re.fullmatch(r"\w+\s*\.\s*(\w+)", m.group("recv"))
            lit = re.fullmatch(r"NSClassFromString\s*\(\s*@\"(\w+)\"\s*\)", m.group("recv"))
            cls = slots.get(slot.group(1)) if slot else (lit.group(1) if lit else None)
            if cls is None:
                used.problems.append("%s: cannot tell which class receives +%s (receiver `%s`)"
                                     % (place(m.start()), sel, m.group("recv")))
                continue
        used.selectors.setdefault((marker, cls, sel), {}).setdefault(sig, place(m.start()))

    for m in re.finditer(r"@selector\s*\(([^)]*)\)", text):
        if m.start(1) not in covered:
            used.problems.append("%s: @selector(%s) is not the selector of an objc_msgSend cast "
                                 "to an exact function type (docs/ANE_NOTES.md \u00a71.1)"
                                 % (place(m.start()), squash(m.group(1))))
    for m in re.finditer(HIDING, text):
        used.problems.append("%s: %s names a class or selector from a string, hiding it from this "
                             "check; use NSClassFromString on a listed name or a cast objc_msgSend"
                             % (place(m.start()), m.group(1)))


# ---------------------------------------------------------------------------------------------
# The allow-list


class Row:
    def __init__(self, lineno, kind, name, signature, source):
        self.lineno, self.kind, self.name, self.signature, self.source = \
            lineno, kind, name, signature, source
        self.marker = self.cls = self.selector = None


def read_allowlist(path):
    rows, problems = [], []
    name = os.path.basename(path)
    for lineno, raw in enumerate(open(path, encoding="utf-8"), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in raw.split("|")]
        where = "%s:%d" % (name, lineno)
        if len(fields) != 4 or not all(fields):
            problems.append("%s: want `kind | name | cast | source`, got %r" % (where, raw.strip()))
            continue
        row = Row(lineno, *fields)
        if not re.fullmatch(r"[\w./-]+\.(m|h|mm|md):\d+", row.source):
            problems.append("%s: source %r is not `path/in/seed.ext:line`" % (where, row.source))
        if row.kind == "selector":
            m = re.fullmatch(r"([+-])\[(\w+) ([\w:]+)\]", row.name)
            sig = parse_signature_text(row.signature)
            if not m or sig is None:
                problems.append("%s: want `+[Class sel:]` or `-[Class sel:]` and `ret (args)`" % where)
                continue
            row.marker, row.cls, row.selector, row.signature = m.group(1), m.group(2), m.group(3), sig
        elif row.kind not in ("class", "framework"):
            problems.append("%s: unknown kind %r" % (where, row.kind))
            continue
        rows.append(row)
    return rows, problems


def source_names(args):
    return ", ".join(os.path.basename(s) for s in args.source)


def check_allowlist(args, out):
    files = scanned_files(args.source, args.include)
    used = extract(files)
    rows, problems = read_allowlist(args.allowlist)
    problems += used.problems
    mm, lst = source_names(args), os.path.basename(args.allowlist)

    seen = set()
    for r in rows:
        key = (r.kind, r.name)
        if key in seen:
            problems.append("%s:%d: %s %s is listed twice" % (lst, r.lineno, r.kind, r.name))
        seen.add(key)

    for kind, found in (("framework", used.frameworks), ("class", used.classes)):
        listed = {r.name: r for r in rows if r.kind == kind}
        for n, where in sorted(found.items()):
            if n not in listed:
                problems.append("%s: uses %s %s, which is not in %s" % (where, kind, n, lst))
        for n, r in sorted(listed.items()):
            if n not in found:
                problems.append("%s:%d: lists %s %s, which none of %s uses"
                                % (lst, r.lineno, kind, n, mm))

    classes = {r.name for r in rows if r.kind == "class"}
    sel_rows = [r for r in rows if r.kind == "selector"]
    matched = set()
    for (marker, cls, sel), sigs in sorted(used.selectors.items(), key=str):
        cands = [r for r in sel_rows if r.marker == marker and r.selector == sel
                 and (cls is None or r.cls == cls)]
        shown = "%s[%s %s]" % (marker, cls or "id", sel)
        if not cands:
            problems.append("%s: sends %s, which is not in %s"
                            % (sorted(sigs.values())[0], shown, lst))
            continue
        row = cands[0]
        matched.add(row.lineno)
        for sig, where in sorted(sigs.items()):
            if sig != row.signature:
                problems.append("%s: %s is cast to `%s`, but %s:%d says `%s`"
                                % (where, row.name, sig, lst, row.lineno, row.signature))
    for r in sel_rows:
        if r.lineno not in matched:
            problems.append("%s:%d: lists selector %s, which none of %s sends"
                            % (lst, r.lineno, r.name, mm))
        if r.cls not in classes:
            problems.append("%s:%d: %s names class %s, which has no `class` row"
                            % (lst, r.lineno, r.name, r.cls))

    for p in problems:
        print("FAIL: " + p, file=out)
    if problems:
        return FAIL
    print("allowlist: %d framework path(s), %d classes, %d selectors in %s match %s"
          % (len(used.frameworks), len(used.classes), len(sel_rows),
             ", ".join(os.path.basename(f) for f in files), lst), file=out)
    return PASS


# ---------------------------------------------------------------------------------------------
# Compiling against GNUstep


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def skip(reason, out):
    """Skips (77) with the reason; under CI (CI set), where install-deps provides every tool, fails."""
    if os.environ.get("CI"):
        print("FAIL: CI must run this check, but " + reason, file=out)
        return FAIL
    print("SKIPPED: " + reason, file=out)
    return SKIP


def gnustep_flags(args):
    """Returns (flags, None) or (None, reason to skip)."""
    if not args.clang or shutil.which(args.clang) is None:
        return None, "clang++ not found (install the Debian package clang)"
    config = shutil.which("gnustep-config")
    if config is None:
        return None, ("gnustep-config not found: install libgnustep-base-dev "
                      "(scripts/install-deps.sh does)")
    rc, objc_flags = run([config, "--objc-flags"])
    rc2, headers = run([config, "--variable=GNUSTEP_SYSTEM_HEADERS"])
    if rc != 0 or rc2 != 0:
        return None, "gnustep-config failed: " + objc_flags + headers
    # Keep the GNUstep defines and header dirs; drop its build flags (-MMD, -g, -O2, -I., ...).
    defines = [f for f in objc_flags.split()
               if f.startswith("-D") or f.startswith("-fconstant-string-class=")]
    dirs = [headers.strip()] + [f[2:] for f in objc_flags.split()
                                if f.startswith("-I") and os.path.isdir(f[2:]) and f != "-I."]
    dirs = list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))
    if not any(os.path.isfile(os.path.join(d, "Foundation", "Foundation.h")) for d in dirs):
        return None, "GNUstep's Foundation/Foundation.h not found under %s" % dirs
    # The Objective-C runtime headers: libobjc2's in a normal include dir, or GCC's libobjc's
    # (Debian's GNUstep uses the latter; they sit in GCC's private include dir, so they go after
    # clang's own headers with -idirafter).
    runtime = []
    candidates = dirs + ["/usr/include", "/usr/local/include"]
    if not any(os.path.isfile(os.path.join(d, "objc", "runtime.h")) for d in candidates):
        gcc = shutil.which("gcc")
        found = run([gcc, "-print-file-name=include"])[1].strip() if gcc else ""
        if not os.path.isfile(os.path.join(found, "objc", "runtime.h")):
            return None, "no Objective-C runtime headers (objc/runtime.h; Debian: gobjc)"
        runtime = ["-idirafter", found]
    flags = ["-x", "objective-c++", "-std=c++17", "-fobjc-runtime=gnustep-2.0",
             "-fobjc-exceptions", "-fexceptions", "-fno-objc-arc"] + defines
    flags += ["-I" + args.stubs] + ["-I" + d for d in dirs] + runtime
    flags += ["-I" + d for d in args.include]
    return flags, None


def drop_diagnostics(output, needle):
    """Removes the diagnostics (header line plus its source snippet) whose header has `needle`."""
    kept, dropping = [], False
    for l in output.splitlines():
        if re.match(r"\S.*:\d+:\d+: (warning|error|note|fatal error): ", l):
            dropping = needle in l
        elif re.fullmatch(r"\d+ (warning|error)s? generated\.", l):
            dropping = False
            continue  # clang's count includes the dropped ones
        if not dropping:
            kept.append(l)
    return "\n".join(kept)


def listed_selectors(path):
    rows, _ = read_allowlist(path)
    return {r.selector for r in rows if r.kind == "selector"}


def check_compile(args, out):
    flags, reason = gnustep_flags(args)
    if flags is None:
        return skip(reason, out)
    status = PASS
    for source in args.source:
        if compile_one(args, flags, source, out) != PASS:
            status = FAIL
    return status


def compile_one(args, flags, source, out):
    with tempfile.TemporaryDirectory() as tmp:
        obj = os.path.join(tmp, os.path.basename(source) + ".o")
        cmd = [args.clang] + flags + ["-Wall", "-Wextra", "-Werror", "-Wundeclared-selector",
                                      "-Wno-error=undeclared-selector", "-c", "-o", obj, source]
        rc, output = run(cmd)
        ok = rc == 0 and os.path.isfile(obj) and os.path.getsize(obj) > 0
    # Selectors Foundation does not declare are private: each must be a listed one (a cross-check
    # of the allow-list's extraction by the compiler itself).
    listed = listed_selectors(args.allowlist)
    stray = [s for s in re.findall(r"warning: undeclared selector '([^']+)'", output)
             if s not in listed]
    output = drop_diagnostics(output, "undeclared selector")
    if output.strip():
        print(output, file=out)
    for s in stray:
        print("FAIL: selector %s in %s is declared neither by Foundation nor in %s"
              % (s, os.path.basename(source), os.path.basename(args.allowlist)), file=out)
    if not ok or stray:
        print("FAIL: %s does not compile against GNUstep's Foundation (%s)"
              % (os.path.basename(source), " ".join(cmd)), file=out)
        return FAIL
    print("compile: %s builds to an object against GNUstep's Foundation headers"
          % os.path.basename(source), file=out)
    return PASS


# The analyzer's checkers. On Linux the osx.* packages are off by default; enabled, they all work
# with GNUstep's headers (RetainCount, NSError, NilArg, ClassRelease, VariadicMethodTypes, AtSync,
# CFRetainRelease fire on their textbook bugs). CF objects (IOSurfaceCreate) are tracked because
# the stub header is CF-audited like the SDK's (CF_IMPLICIT_BRIDGING_ENABLED).
CHECKERS = "core,cplusplus,unix,deadcode,nullability,osx.API,osx.NumberObjectConversion," \
           "osx.cocoa,osx.coreFoundation"
# Two passes: ipa=none analyses every function on its own (inlining abandons some paths: a leak
# before `return NilResult(...)` goes unseen with inlining on); the default inlining pass follows
# ownership across helpers. Not inlining the C++ standard library halves the time.
PASSES = (["-analyzer-config", "ipa=none"], ["-analyzer-config", "c++-stdlib-inlining=false"])


def check_analyze(args, out):
    flags, reason = gnustep_flags(args)
    if flags is None:
        return skip(reason, out)
    status = PASS
    for source in args.source:
        for extra in PASSES:
            analyzer = ["-analyzer-checker=" + CHECKERS, "-analyzer-output=text",
                        "-analyzer-werror"] + extra
            cmd = [args.clang] + flags + ["--analyze", "-o", os.devnull]
            for a in analyzer:
                cmd += ["-Xanalyzer", a]
            rc, output = run(cmd + [source])
            if rc != 0 or re.search(r"\b(warning|error):", output):
                print(output, file=out)
                print("FAIL: the static analyzer reports the above in %s (%s)"
                      % (os.path.basename(source), " ".join(extra)), file=out)
                status = FAIL
                break
    if status == PASS:
        print("analyze: no findings in %s from %s (passes: %s)"
              % (source_names(args), CHECKERS, "; ".join(" ".join(p) for p in PASSES)), file=out)
    return status


# ---------------------------------------------------------------------------------------------
# Mutants: each must make its check fail with the expected message.

LEAK_GUARD = ("      return absl::ResourceExhaustedError(absl::StrCat(\"IOSurfaceCreate(\", bytes, "
              "\") failed\"));\n    }\n")

# (check, name, file edited: a --source's base name or "list", [(old, new)], regex the failing
# check's output must match). Each check has mutants in every .mm.
DEVICE, REQUESTS = "ane_device_apple.mm", "ane_requests_apple.mm"
MUTANTS = [
    ("allowlist", "misspelt selector compileWithQoS: -> compileWithQOS:", DEVICE,
     [("@selector(compileWithQoS:options:error:)", "@selector(compileWithQOS:options:error:)")],
     r"sends -\[id compileWithQOS:options:error:\], which is not in"),
    ("allowlist", "misspelt selector objectWithIOSurface: -> objectWithIOSurfac:", DEVICE,
     [("@selector(objectWithIOSurface:)", "@selector(objectWithIOSurfac:)")],
     r"sends \+\[_ANEIOSurfaceObject objectWithIOSurfac:\], which is not in"),
    ("allowlist", "misspelt class _ANERequest -> _ANERequst", DEVICE,
     [("{\"_ANERequest\", &c.request}", "{\"_ANERequst\", &c.request}")],
     r"uses class _ANERequst, which is not in"),
    ("allowlist", "wrong cast: QoS as NSUInteger in unloadWithQoS:error:", DEVICE,
     [("using UnloadFn = BOOL (*)(id, SEL, unsigned int, NSError**);",
       "using UnloadFn = BOOL (*)(id, SEL, NSUInteger, NSError**);")],
     r"unloadWithQoS:error:\] is cast to `BOOL \(id, SEL, NSUInteger, NSError\*\*\)`"),
    ("allowlist", "private selector sent without a cast", DEVICE,
     [("((IdGetterFn)objc_msgSend)(model, @selector(hexStringIdentifier))",
       "[model performSelector:@selector(hexStringIdentifier)]")],
     r"@selector\(hexStringIdentifier\) is not the selector of an objc_msgSend cast"),
    ("allowlist", "misspelt selector hwExecutionTime -> hwExecutionTme", REQUESTS,
     [("@selector(hwExecutionTime)", "@selector(hwExecutionTme)")],
     r"ane_requests_apple\.mm:\d+: sends -\[id hwExecutionTme\], which is not in"),
    ("allowlist", "a private class not in the list", REQUESTS,
     [("classes.perf_stats, @selector(driverMaskForANEFMask:)",
       "NSClassFromString(@\"_ANEPerfStats\"), @selector(driverMaskForANEFMask:)")],
     r"ane_requests_apple\.mm:\d+: uses class _ANEPerfStats, which is not in"),
    ("allowlist", "wrong cast: hwExecutionTime as double", REQUESTS,
     [("using HwTimeFn = unsigned long long (*)(id, SEL);", "using HwTimeFn = double (*)(id, SEL);")],
     r"hwExecutionTime\] is cast to `double \(id, SEL\)`"),
    ("allowlist", "a selector hidden behind NSSelectorFromString", REQUESTS,
     [("@selector(setPerfStatsMask:)", "NSSelectorFromString(@\"setPerfStatsMask:\")")],
     r"ane_requests_apple\.mm:\d+: NSSelectorFromString names a class or selector from a string"),
    ("allowlist", "stale row: a selector no .mm sends", "list",
     [("selector    | +[_ANEDeviceInfo aneSubType]",
       "selector    | -[_ANEInMemoryModel state] | NSUInteger (id, SEL) | inmem_basic.m:1\n"
       "selector    | +[_ANEDeviceInfo aneSubType]")],
     r"lists selector -\[_ANEInMemoryModel state\], which none of ane_device_apple\.mm, "
     r"ane_requests_apple\.mm sends"),
    ("compile", "a method Foundation does not have: hasPrefx:", DEVICE,
     [("[key hasPrefix:@\"@model_path/\"]", "[key hasPrefx:@\"@model_path/\"]")],
     r"error: .*hasPrefx"),
    ("compile", "a wrong argument type: std::string for NSString*", DEVICE,
     [("return [data writeToFile:path atomically:YES];",
       "return [data writeToFile:ToStd(path) atomically:YES];")],
     r"error: no viable conversion from 'std::string' .* to 'NSString \*'"),
    ("compile", "a private selector sent as a plain message", DEVICE,
     [("((IdGetterFn)objc_msgSend)(model, @selector(hexStringIdentifier))",
       "[model hexStringIdentifier]")],
     r"error: instance method '-hexStringIdentifier' not found"),
    ("compile", "a method Foundation does not have: numberWithBoolean:", REQUESTS,
     [("[NSNumber numberWithBool:YES]", "[NSNumber numberWithBoolean:YES]")],
     r"error: .*numberWithBoolean"),
    ("compile", "a private selector sent as a plain message in the requests file", REQUESTS,
     [("((HwTimeFn)objc_msgSend)(stats, @selector(hwExecutionTime))", "[stats hwExecutionTime]")],
     r"error: instance method '-hwExecutionTime' not found"),
    ("analyze", "leaked object: [[NSMutableArray alloc] init] never released", REQUESTS,
     [("NSMutableArray* in = [NSMutableArray array];",
       "NSMutableArray* in = [[NSMutableArray alloc] init];")],
     r"Potential leak of an object stored into 'in' \[osx\.cocoa\.RetainCount\]"),
    ("analyze", "leaked +1 IOSurface: an early return after IOSurfaceCreate", DEVICE,
     [(LEAK_GUARD, LEAK_GUARD + "    if (classes_.surface == nil) return NilResult(\"no class\");\n")],
     r"Potential leak of an object stored into 'surface' \[osx\.cocoa\.RetainCount\]"),
    ("analyze", "over-release of an autoreleased string", DEVICE,
     [("ok = ok && WriteFile([dir stringByAppendingPathComponent:@\"model.mil\"], mil);",
       "ok = ok && WriteFile([dir stringByAppendingPathComponent:@\"model.mil\"], mil);\n"
       "    [wdir release];")],
     r"Incorrect decrement of the reference count of an object that is not owned"),
    ("analyze", "over-release of an autoreleased dictionary in the requests file", REQUESTS,
     [("  if (!on_) return @{};\n", "  if (!on_) {\n    NSDictionary* none = @{};\n"
       "    [none release];\n    return none;\n  }\n")],
     r"Incorrect decrement of the reference count of an object that is not owned"),
]

CHECKS = {"allowlist": check_allowlist, "compile": check_compile, "analyze": check_analyze}


def check_mutants(args, out):
    failed, skipped = 0, 0
    todo = [m for m in MUTANTS if args.check in (None, m[0])]
    with tempfile.TemporaryDirectory() as tmp:
        for check, name, target, edits, expect in todo:
            sources = {os.path.basename(src): src for src in args.source}
            path = args.allowlist if target == "list" else sources.get(target)
            if path is None:
                print("FAIL: mutant '%s' edits %s, which is not a --source (%s)"
                      % (name, target, source_names(args)), file=out)
                failed += 1
                continue
            text = open(path, encoding="utf-8").read()
            for old, new in edits:
                if text.count(old) != 1:
                    print("FAIL: mutant '%s' no longer applies: %s must contain %r exactly once; "
                          "update the mutant" % (name, os.path.basename(path), old), file=out)
                    failed += 1
                    break
                text = text.replace(old, new)
            else:
                mutant = os.path.join(tmp, os.path.basename(path))
                open(mutant, "w", encoding="utf-8").write(text)
                margs = argparse.Namespace(**vars(args))
                if target == "list":
                    margs.allowlist = mutant
                elif check == "allowlist":  # names are matched across all the files
                    margs.source = [mutant if src == path else src for src in args.source]
                else:  # compile and analyze see one file at a time: only the mutated one
                    margs.source = [mutant]

                class Capture:
                    text = ""

                    def write(self, s):
                        self.text += s
                cap = Capture()
                status = CHECKS[check](margs, cap)
                os.remove(mutant)
                if status == SKIP:
                    print("SKIPPED: mutant '%s': %s" % (name, cap.text.strip()), file=out)
                    skipped += 1
                elif status == FAIL and re.search(expect, cap.text):
                    hit = next(l for l in cap.text.splitlines() if re.search(expect, l))
                    print("caught: %s check fails on mutant '%s':\n    %s"
                          % (check, name, hit.strip()), file=out)
                else:
                    print("FAIL: %s check %s on mutant '%s' (wanted output matching %r):\n%s"
                          % (check, "passes" if status == PASS else "fails differently", name,
                             expect, cap.text), file=out)
                    failed += 1
    if failed:
        return FAIL
    return SKIP if skipped else PASS


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["allowlist", "compile", "analyze", "mutants"])
    p.add_argument("--check", choices=sorted(CHECKS), help="mutants: only this check's")
    p.add_argument("--source", action="append", required=True,
                   help="an Objective-C++ file (repeat for each: ane_device_apple.mm, "
                        "ane_requests_apple.mm)")
    p.add_argument("--allowlist", required=True, help="private_api.txt")
    p.add_argument("--clang", default="clang++")
    p.add_argument("--stubs", default=os.path.join(os.path.dirname(__file__), "ane_objc_stubs"))
    p.add_argument("--include", action="append", default=[], help="extra -I dirs")
    args = p.parse_args()
    if args.command == "mutants":
        status = check_mutants(args, sys.stdout)
    else:
        status = CHECKS[args.command](args, sys.stdout)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
