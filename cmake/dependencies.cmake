# Every third-party dependency is found here, once. Versions are Debian 12's (and Homebrew's on macOS).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
# protobuf 3.21 on Debian ships no CMake package: FindProtobuf (module mode) locates protoc and libprotobuf.
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
# The opt-in Prometheus endpoint (--metrics_listen): prometheus-cpp's core (registry, metric
# types, text format); the HTTP side is server/metrics/http_endpoint (see there for why not the
# civetweb exposer). Debian: prometheus-cpp-dev; Homebrew: prometheus-cpp.
find_package(prometheus-cpp CONFIG REQUIRED)
# Tokenizers (common/tokenizer/): SentencePiece .model files and the PCRE2 regexes of Hugging Face
# pre-tokenizers (Unicode property classes std::regex lacks). Found with pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE IMPORTED_TARGET sentencepiece)
if(NOT SENTENCEPIECE_FOUND)
  message(FATAL_ERROR "libsentencepiece not found (pkg-config module 'sentencepiece'): install "
                      "Debian libsentencepiece-dev or Homebrew sentencepiece (scripts/install-deps.sh)")
endif()
pkg_check_modules(PCRE2 IMPORTED_TARGET libpcre2-8)
if(NOT PCRE2_FOUND)
  message(FATAL_ERROR "PCRE2 not found (pkg-config module 'libpcre2-8'): install Debian "
                      "libpcre2-dev or Homebrew pcre2 (scripts/install-deps.sh)")
endif()
# The NFC normalizer of Hugging Face tokenizer.json files (common/tokenizer/unicode_nfc.h): ICU's
# Normalizer2. Debian: libicu-dev; Homebrew: icu4c, which is keg-only, so its prefix is asked for.
if(APPLE AND NOT ICU_ROOT)
  execute_process(COMMAND brew --prefix icu4c OUTPUT_VARIABLE ANERD_BREW_ICU
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(ANERD_BREW_ICU)
    set(ICU_ROOT ${ANERD_BREW_ICU})
  endif()
endif()
find_package(ICU COMPONENTS uc data)
if(NOT ICU_FOUND)
  message(FATAL_ERROR "ICU not found: install Debian libicu-dev or Homebrew icu4c "
                      "(scripts/install-deps.sh)")
endif()
# The dashboard (--ui-listen, server/ui/): cpp-httplib. Debian's libcpp-httplib-dev splits it into
# a header and libcpp-httplib.so built with OpenSSL/zlib/brotli (pkg-config cpp-httplib carries the
# matching CPPHTTPLIB_* definitions, which change the classes' layout); Homebrew's cpp-httplib is the
# header alone, compiled into anerd with OpenSSL for the TLS listener.
find_path(HTTPLIB_INCLUDE_DIR NAMES httplib.h)
if(NOT HTTPLIB_INCLUDE_DIR)
  message(FATAL_ERROR "cpp-httplib not found (httplib.h): install Debian libcpp-httplib-dev or "
                      "Homebrew cpp-httplib (scripts/install-deps.sh)")
endif()
find_package(OpenSSL REQUIRED COMPONENTS SSL Crypto)
pkg_check_modules(CPP_HTTPLIB IMPORTED_TARGET cpp-httplib)
add_library(anerd_httplib INTERFACE)
if(CPP_HTTPLIB_FOUND)
  target_link_libraries(anerd_httplib INTERFACE PkgConfig::CPP_HTTPLIB)
else()
  target_include_directories(anerd_httplib INTERFACE ${HTTPLIB_INCLUDE_DIR})
  target_compile_definitions(anerd_httplib INTERFACE CPPHTTPLIB_OPENSSL_SUPPORT)
  target_link_libraries(anerd_httplib INTERFACE OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
endif()
# libcrypto for SHA-256 (content addressing); gRPC already links it.
find_package(OpenSSL REQUIRED COMPONENTS Crypto)

if(APPLE)
  find_library(ACCELERATE_FRAMEWORK Accelerate REQUIRED)
  add_library(anerd_blas INTERFACE)
  target_link_libraries(anerd_blas INTERFACE ${ACCELERATE_FRAMEWORK})
  target_compile_definitions(anerd_blas INTERFACE ANERD_BLAS_ACCELERATE=1 ACCELERATE_NEW_LAPACK=1)
else()
  find_package(OpenBLAS CONFIG QUIET)
  add_library(anerd_blas INTERFACE)
  find_library(OPENBLAS_LIB NAMES openblas REQUIRED)
  find_path(OPENBLAS_INCLUDE NAMES cblas.h PATH_SUFFIXES openblas REQUIRED)
  target_link_libraries(anerd_blas INTERFACE ${OPENBLAS_LIB})
  target_include_directories(anerd_blas INTERFACE ${OPENBLAS_INCLUDE})
endif()

if(ANERD_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(ANERD_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
# Open MPI (issue 24, data-parallel training): optional. Only anerd-rank links it
# (server/distributed/); without it anerd builds and refuses `--ranks` > 1. ANERD_MPIRUN is the
# launcher the daemon and the tests use.
find_package(MPI COMPONENTS C)
if(MPI_C_FOUND)
  find_program(ANERD_MPIRUN NAMES mpirun mpiexec HINTS ${MPI_HOME} PATH_SUFFIXES bin)
endif()
