# Fails when a platform conditional (__APPLE__) appears in server/ or client/ outside the places
# docs/ARCHITECTURE.md allows: server/backend/registry.cc and server/backend/ane/ (and CMake
# files). Platform differences elsewhere go behind small functions in common/.
# Run as: cmake -DSOURCE_DIR=<repo> -P platform_conditionals_check.cmake
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "pass -DSOURCE_DIR=<repository root>")
endif()
file(GLOB_RECURSE candidates
     ${SOURCE_DIR}/server/*.h ${SOURCE_DIR}/server/*.cc ${SOURCE_DIR}/server/*.mm
     ${SOURCE_DIR}/server/*.hpp ${SOURCE_DIR}/server/*.cpp ${SOURCE_DIR}/server/*.c
     ${SOURCE_DIR}/client/*.h ${SOURCE_DIR}/client/*.cc ${SOURCE_DIR}/client/*.mm
     ${SOURCE_DIR}/client/*.hpp ${SOURCE_DIR}/client/*.cpp ${SOURCE_DIR}/client/*.c
     ${SOURCE_DIR}/client/*.py)
list(LENGTH candidates count)
if(count EQUAL 0)
  message(FATAL_ERROR "no source files found under ${SOURCE_DIR}/server or client")
endif()
set(offenders "")
foreach(file IN LISTS candidates)
  file(RELATIVE_PATH rel ${SOURCE_DIR} ${file})
  if(rel STREQUAL "server/backend/registry.cc" OR rel MATCHES "^server/backend/ane/")
    continue()
  endif()
  file(STRINGS ${file} hits REGEX "__APPLE__")
  if(hits)
    list(APPEND offenders ${rel})
  endif()
endforeach()
if(offenders)
  string(REPLACE ";" "\n  " listed "${offenders}")
  message(FATAL_ERROR "__APPLE__ outside CMake, server/backend/registry.cc and "
                      "server/backend/ane/:\n  ${listed}\nmove the platform difference behind a "
                      "function in common/ (see common/platform_io.h)")
endif()
message(STATUS "checked ${count} files: no stray __APPLE__")
