// Fuzzes the safetensors header parser (server/training/safetensors.h ParseSafetensorsImage) on
// arbitrary file bytes: every accepted tensor must lie inside the data section, hold exactly
// shape × dtype bytes and not overlap another.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/training/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto header = anerd::training::ParseSafetensorsImage(bytes, "fuzz");
  if (!header.ok()) return 0;
  const int64_t data_bytes = static_cast<int64_t>(size) - header->data_start;
  for (const auto& [name, t] : header->tensors) {
    if (t.begin < 0 || t.end > data_bytes || t.begin > t.end) std::abort();
    if (t.end - t.begin != t.elements() * anerd::training::StDtypeSize(t.dtype)) std::abort();
  }
  return 0;
}
