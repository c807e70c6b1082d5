// Fuzzes the checkpoint reader (server/training/model_io.h ReadCheckpoint) on arbitrary file
// bytes: errors are fine; crashes, sanitizer reports and allocations beyond a small multiple of the
// file size are not (every section length and the SPEC's model are checked against the file).
#include <cstdint>
#include <cstdlib>

#include "server/training/model_io.h"
#include "tests/fuzz/memfd_path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anerd::fuzz::MemFile file(data, size);
  auto ck = anerd::training::ReadCheckpoint(file.path());
  if (ck.ok() && (ck->params.size() * 4 > size || ck->adam_m.size() != ck->params.size())) {
    std::abort();
  }
  return 0;
}
