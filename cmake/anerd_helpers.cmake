# Small helpers shared by every folder.

set(ANERD_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND ANERD_WARNINGS -Wthread-safety)
endif()

# anerd_library(NAME SRCS ... DEPS ...): a static library rooted at the project top for includes.
function(anerd_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${name} PRIVATE ${ANERD_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# anerd_protobuf_first(TARGET): call before any other target_link_libraries of an executable
# that links libprotobuf and (through common/tokenizer) libsentencepiece. libsentencepiece carries
# and exports its own copy of protobuf's internals (3.14 on Debian 12); whichever library the
# linker meets first provides those symbols, and libprotobuf's static initialisers crash at
# start-up on sentencepiece's copy. So libprotobuf goes first, without --as-needed. (Such a
# process must never call into libsentencepiece either: its generated code then aborts on the
# version check, so the daemon refuses SentencePiece models.)
function(anerd_protobuf_first target)
  if(NOT APPLE)
    target_link_options(${target} PRIVATE "LINKER:--no-as-needed")
  endif()
  target_link_libraries(${target} PRIVATE protobuf::libprotobuf)
endfunction()

# anerd_test(NAME SRCS ... DEPS ... [SENTENCEPIECE]): a GoogleTest binary registered with ctest.
# SENTENCEPIECE: the test runs libsentencepiece, so libprotobuf is not loaded first (see
# anerd_protobuf_first; such tests must not use protobuf).
function(anerd_test name)
  cmake_parse_arguments(ARG "SENTENCEPIECE" "" "SRCS;DEPS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  if(NOT ARG_SENTENCEPIECE)
    anerd_protobuf_first(${name})
  endif()
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${name} PRIVATE ${ANERD_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    ANERD_SOURCE_DIR="${PROJECT_SOURCE_DIR}" ANERD_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${ARG_PROPERTIES})
endfunction()
