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

# anerd_test(NAME SRCS ... DEPS ...): a GoogleTest binary registered with ctest.
function(anerd_test name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${name} PRIVATE ${ANERD_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    ANERD_SOURCE_DIR="${PROJECT_SOURCE_DIR}" ANERD_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${ARG_PROPERTIES})
endfunction()
