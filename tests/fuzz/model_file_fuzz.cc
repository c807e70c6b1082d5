// Fuzzes the model-file readers (server/training/model_io.h LoadModelFile: llama2.c files and the
// seed's v4 checkpoints) on arbitrary file bytes. A header claiming more parameters than the file
// holds (10^12, ...) must be refused before anything is allocated.
#include <cstdint>
#include <cstdlib>

#include "server/training/model_io.h"
#include "tests/fuzz/memfd_path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anerd::fuzz::MemFile file(data, size);
  auto model = anerd::training::LoadModelFile(file.path());
  if (model.ok() && model->params.size() * 4 > size) std::abort();
  return 0;
}
