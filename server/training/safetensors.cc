#include "server/training/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fp16.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace anerd::training {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMaxNameBytes = 4096;
constexpr int64_t kMaxOffset = int64_t{1} << 62;
constexpr int64_t kMaxIndexBytes = int64_t{16} << 20;
constexpr int64_t kChunkElements = int64_t{1} << 20;

absl::Status Bad(absl::string_view file, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors ", file, ": ", why));
}

absl::Status BadTensor(absl::string_view file, absl::string_view name, absl::string_view field,
                       absl::string_view why) {
  return Bad(file, absl::StrCat("tensor '", name, "': ", field, ": ", why));
}

bool ParseDtype(const std::string& s, StDtype* out) {
  if (s == "F32")
    *out = StDtype::kF32;
  else if (s == "F16")
    *out = StDtype::kF16;
  else if (s == "BF16")
    *out = StDtype::kBF16;
  else
    return false;
  return true;
}

// A non-negative JSON integer no larger than `max`, or -1.
int64_t SmallUnsigned(const Json& v, int64_t max) {
  if (!v.is_number_unsigned()) return -1;
  const uint64_t u = v.get<uint64_t>();
  return u > static_cast<uint64_t>(max) ? -1 : static_cast<int64_t>(u);
}

absl::StatusOr<StTensorInfo> ParseEntry(const std::string& name, const Json& e, int64_t data_bytes,
                                        absl::string_view file) {
  if (name.empty() || static_cast<int64_t>(name.size()) > kMaxNameBytes) {
    return Bad(file, absl::StrCat("a tensor name is empty or longer than ", kMaxNameBytes));
  }
  if (!e.is_object()) return BadTensor(file, name, "entry", "not a JSON object");
  for (const auto& [key, value] : e.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return BadTensor(file, name, key, "unknown field");
    }
  }
  StTensorInfo t;
  const auto dtype = e.find("dtype");
  if (dtype == e.end() || !dtype->is_string()) {
    return BadTensor(file, name, "dtype", "missing or not a string");
  }
  if (!ParseDtype(dtype->get<std::string>(), &t.dtype)) {
    return BadTensor(
        file, name, "dtype",
        absl::StrCat("'", dtype->get<std::string>(), "' is not supported (F32, F16 and BF16 are)"));
  }
  const auto shape = e.find("shape");
  if (shape == e.end() || !shape->is_array()) {
    return BadTensor(file, name, "shape", "missing or not an array");
  }
  if (shape->size() > kMaxSafetensorsRank) {
    return BadTensor(file, name, "shape",
                     absl::StrCat(shape->size(), " dims (at most ", kMaxSafetensorsRank, ")"));
  }
  int64_t elements = 1;
  for (const Json& d : *shape) {
    const int64_t v = SmallUnsigned(d, kMaxSafetensorsElements);
    if (v < 0) return BadTensor(file, name, "shape", "a dim is not an integer in [0, 2^40]");
    t.shape.push_back(v);
    if (v != 0 && elements > kMaxSafetensorsElements / v) {
      return BadTensor(file, name, "shape", "more than 2^40 elements");
    }
    elements *= v;
  }
  const auto offsets = e.find("data_offsets");
  if (offsets == e.end() || !offsets->is_array() || offsets->size() != 2) {
    return BadTensor(file, name, "data_offsets", "missing or not a [begin, end] pair");
  }
  t.begin = SmallUnsigned((*offsets)[0], kMaxOffset);
  t.end = SmallUnsigned((*offsets)[1], kMaxOffset);
  if (t.begin < 0 || t.end < 0 || t.begin > t.end) {
    return BadTensor(file, name, "data_offsets", "not non-negative integers with begin <= end");
  }
  if (t.end > data_bytes) {
    return BadTensor(file, name, "data_offsets",
                     absl::StrCat("end ", t.end, " is past the end of the data section (",
                                  data_bytes, " bytes)"));
  }
  const int64_t want = elements * StDtypeSize(t.dtype);
  if (t.end - t.begin != want) {
    return BadTensor(file, name, "data_offsets",
                     absl::StrCat(t.end - t.begin, " bytes, but shape × ", StDtypeName(t.dtype),
                                  " needs ", want));
  }
  return t;
}

absl::Status ParseMetadata(const Json& m, absl::string_view file, StHeader* h) {
  if (!m.is_object()) return Bad(file, "__metadata__: not a JSON object");
  for (const auto& [key, value] : m.items()) {
    if (!value.is_string()) {
      return Bad(file, absl::StrCat("__metadata__: value of '", key, "' is not a string"));
    }
    h->metadata[key] = value.get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status CheckNoOverlap(const StHeader& h, absl::string_view file) {
  std::vector<std::pair<const std::string*, const StTensorInfo*>> order;
  for (const auto& [name, t] : h.tensors) {
    if (t.end > t.begin) order.push_back({&name, &t});
  }
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i].second->begin < order[i - 1].second->end) {
      return BadTensor(file, *order[i].first, "data_offsets",
                       absl::StrCat("overlaps tensor '", *order[i - 1].first, "'"));
    }
  }
  return absl::OkStatus();
}

// Converts `n` stored elements at `src` to fp32.
void ToF32(StDtype dtype, const char* src, int64_t n, float* dst) {
  if (dtype == StDtype::kF32) {
    std::memcpy(dst, src, n * 4);
  } else if (dtype == StDtype::kF16) {
    std::vector<uint16_t> h(n);
    std::memcpy(h.data(), src, n * 2);
    HalfToFloatArray(h.data(), dst, n);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, src + 2 * i, 2);
      dst[i] = Bf16ToFloat(b);
    }
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool PlainFileName(const std::string& s) {
  return !s.empty() && s.size() <= 255 && s[0] != '.' && s.find('/') == std::string::npos &&
         s.find('\0') == std::string::npos;
}

}  // namespace

absl::string_view StDtypeName(StDtype dtype) {
  switch (dtype) {
    case StDtype::kF32:
      return "F32";
    case StDtype::kF16:
      return "F16";
    case StDtype::kBF16:
      return "BF16";
  }
  return "?";
}

int64_t StDtypeSize(StDtype dtype) { return dtype == StDtype::kF32 ? 4 : 2; }

int64_t StTensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet
  u += 0x7FFFu + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

float Bf16ToFloat(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

absl::StatusOr<StHeader> ParseSafetensorsHeader(absl::string_view json, int64_t data_bytes,
                                                absl::string_view file) {
  if (json.empty() || json[0] != '{') return Bad(file, "header: does not start with '{'");
  std::set<std::string> seen;
  std::string duplicate;
  Json::parser_callback_t on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key && duplicate.empty() &&
        !seen.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  const Json root = Json::parse(json.begin(), json.end(), on_event, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return Bad(file, "header: not a valid JSON object");
  }
  if (!duplicate.empty()) return BadTensor(file, duplicate, "name", "appears twice");
  if (static_cast<int64_t>(root.size()) > kMaxSafetensorsTensors + 1) {
    return Bad(file, absl::StrCat("header: more than ", kMaxSafetensorsTensors, " tensors"));
  }
  StHeader h;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      ANERD_RETURN_IF_ERROR(ParseMetadata(entry, file, &h));
      continue;
    }
    ANERD_ASSIGN_OR_RETURN(h.tensors[name], ParseEntry(name, entry, data_bytes, file));
  }
  ANERD_RETURN_IF_ERROR(CheckNoOverlap(h, file));
  return h;
}

absl::StatusOr<StHeader> ParseSafetensorsImage(absl::string_view bytes, absl::string_view file) {
  if (bytes.size() < 8) return Bad(file, "shorter than the 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > static_cast<uint64_t>(kMaxSafetensorsHeaderBytes)) {
    return Bad(file, absl::StrCat("header length ", n, " exceeds the limit of ",
                                  kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (n > bytes.size() - 8) {
    return Bad(file, absl::StrCat("header length ", n, " runs past the end of the file (",
                                  bytes.size(), " bytes)"));
  }
  const int64_t len = static_cast<int64_t>(n);
  ANERD_ASSIGN_OR_RETURN(
      StHeader h, ParseSafetensorsHeader(bytes.substr(8, len),
                                         static_cast<int64_t>(bytes.size()) - 8 - len, file));
  h.data_start = 8 + len;
  return h;
}

absl::StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::Open(
    const std::string& path) {
  auto r = std::unique_ptr<SafetensorsReader>(new SafetensorsReader());
  ANERD_RETURN_IF_ERROR(r->file_.Open(path, "safetensors file"));
  const int64_t size = r->file_.size();
  if (size < 8) return Bad(path, "shorter than the 8-byte header length");
  uint64_t n = 0;
  ANERD_RETURN_IF_ERROR(r->file_.Read(0, &n, 8));
  if (n > static_cast<uint64_t>(kMaxSafetensorsHeaderBytes)) {
    return Bad(path, absl::StrCat("header length ", n, " exceeds the limit of ",
                                  kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (static_cast<int64_t>(n) > size - 8) {
    return Bad(path, absl::StrCat("header length ", n, " runs past the end of the file (", size,
                                  " bytes)"));
  }
  std::string json(n, '\0');
  ANERD_RETURN_IF_ERROR(r->file_.Read(8, json.data(), static_cast<int64_t>(n)));
  ANERD_ASSIGN_OR_RETURN(r->header_,
                         ParseSafetensorsHeader(json, size - 8 - static_cast<int64_t>(n), path));
  r->header_.data_start = 8 + static_cast<int64_t>(n);
  return r;
}

absl::Status SafetensorsReader::ReadF32(const std::string& name, const std::vector<int64_t>& shape,
                                        float* dst) const {
  const auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) {
    return absl::NotFoundError(absl::StrCat("safetensors ", path(), ": no tensor '", name, "'"));
  }
  const StTensorInfo& t = it->second;
  if (t.shape != shape) {
    return BadTensor(path(), name, "shape",
                     absl::StrCat(ShapeString(t.shape), ", expected ", ShapeString(shape)));
  }
  const int64_t size = StDtypeSize(t.dtype), total = t.elements();
  std::vector<char> buf;
  for (int64_t done = 0; done < total;) {
    const int64_t n = std::min(kChunkElements, total - done);
    const int64_t at = header_.data_start + t.begin + done * size;
    if (t.dtype == StDtype::kF32) {
      ANERD_RETURN_IF_ERROR(file_.Read(at, dst + done, n * 4));
    } else {
      buf.resize(n * size);
      ANERD_RETURN_IF_ERROR(file_.Read(at, buf.data(), n * size));
      ToF32(t.dtype, buf.data(), n, dst + done);
    }
    done += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<SafetensorsSet> SafetensorsSet::Open(const std::string& dir) {
  SafetensorsSet set;
  const std::string index_path = dir + "/model.safetensors.index.json";
  InFile index;
  absl::Status opened = index.Open(index_path, "safetensors index");
  if (absl::IsNotFound(opened)) {
    ANERD_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsReader> r,
                           SafetensorsReader::Open(dir + "/model.safetensors"));
    set.shards_.push_back(std::move(r));
    for (const auto& [name, t] : set.shards_[0]->header().tensors) {
      set.where_[name] = set.shards_[0].get();
    }
    return set;
  }
  ANERD_RETURN_IF_ERROR(opened);
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors index ", index_path, ": ", why));
  };
  if (index.size() > kMaxIndexBytes) return bad("larger than 16 MiB");
  std::string text(index.size(), '\0');
  ANERD_RETURN_IF_ERROR(index.Read(0, text.data(), index.size()));
  const Json root = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return bad("not a valid JSON object");
  const auto map = root.find("weight_map");
  if (map == root.end() || !map->is_object()) return bad("weight_map: missing or not an object");
  std::map<std::string, std::shared_ptr<SafetensorsReader>> by_file;
  for (const auto& [name, file] : map->items()) {
    if (!file.is_string() || !PlainFileName(file.get<std::string>())) {
      return bad(absl::StrCat("weight_map: '", name, "': not a plain file name in the directory"));
    }
    const std::string shard = file.get<std::string>();
    auto& reader = by_file[shard];
    if (reader == nullptr) {
      if (static_cast<int64_t>(by_file.size()) > kMaxSafetensorsShards) {
        return bad(absl::StrCat("weight_map: more than ", kMaxSafetensorsShards, " shards"));
      }
      ANERD_ASSIGN_OR_RETURN(reader, SafetensorsReader::Open(dir + "/" + shard));
      set.shards_.push_back(reader);
    }
    if (reader->header().tensors.count(name) == 0) {
      return bad(absl::StrCat("weight_map: tensor '", name, "' is not in ", shard));
    }
    set.where_[name] = reader.get();
  }
  return set;
}

const StTensorInfo* SafetensorsSet::Find(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) return nullptr;
  return &it->second->header().tensors.at(name);
}

absl::Status SafetensorsSet::ReadF32(const std::string& name, const std::vector<int64_t>& shape,
                                     float* dst) const {
  const auto it = where_.find(name);
  if (it == where_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: the checkpoint has no tensor '", name, "'"));
  }
  return it->second->ReadF32(name, shape, dst);
}

std::vector<std::string> SafetensorsSet::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, reader] : where_) names.push_back(name);
  return names;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (const StWriteTensor& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || header.contains(t.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "WriteSafetensors ", path, ": empty or duplicate tensor name '", t.name, "'"));
    }
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    const int64_t bytes = n * StDtypeSize(t.dtype);
    header[t.name] = {{"dtype", StDtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  const uint64_t n = json.size();
  AtomicOutFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path));
  ANERD_RETURN_IF_ERROR(f.Write(&n, 8));
  ANERD_RETURN_IF_ERROR(f.Write(json.data(), static_cast<int64_t>(json.size())));
  std::vector<uint16_t> half;
  for (const StWriteTensor& t : tensors) {
    int64_t count = 1;
    for (int64_t d : t.shape) count *= d;
    for (int64_t done = 0; done < count; done += kChunkElements) {
      const int64_t m = std::min(kChunkElements, count - done);
      const float* src = t.data + done;
      if (t.dtype == StDtype::kF32) {
        ANERD_RETURN_IF_ERROR(f.Write(src, m * 4));
        continue;
      }
      half.resize(m);
      if (t.dtype == StDtype::kF16) {
        FloatToHalfArray(src, half.data(), m);
      } else {
        for (int64_t i = 0; i < m; ++i) half[i] = FloatToBf16(src[i]);
      }
      ANERD_RETURN_IF_ERROR(f.Write(half.data(), m * 2));
    }
  }
  return f.Commit();
}

}  // namespace anerd::training
