// Loads the SentencePiece module once and forwards SpModel's calls to it (spm_shim.h).
#include "common/tokenizer/spm_shim.h"

#include <dlfcn.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/paths.h"
#include "common/tokenizer/spm_module/spm_module.h"

namespace anerd::tokenizer::spm {

struct SpModel::Module {
  std::string error;  // why the module is unavailable; "" when loaded
  decltype(&anerd_spm_load) load = nullptr;
  decltype(&anerd_spm_free) free = nullptr;
  decltype(&anerd_spm_size) size = nullptr;
  decltype(&anerd_spm_special_id) special_id = nullptr;
  decltype(&anerd_spm_piece_flags) piece_flags = nullptr;
  decltype(&anerd_spm_piece) piece = nullptr;
  decltype(&anerd_spm_encode) encode = nullptr;
  decltype(&anerd_spm_decode) decode = nullptr;
};

#if defined(__SANITIZE_ADDRESS__)
#define ANERD_SPM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ANERD_SPM_SANITIZED 1
#endif
#endif

namespace {

// RTLD_LOCAL keeps libsentencepiece's symbols out of the global scope; RTLD_DEEPBIND (glibc)
// binds its own references to its own protobuf copy before the global libprotobuf's. Sanitizer
// runtimes refuse RTLD_DEEPBIND, so sanitized builds go without (the fuzzers never load
// libprotobuf and a SentencePiece model together). macOS has no RTLD_DEEPBIND and needs none: its
// two-level namespace already binds each reference to the library it was linked against.
int OpenFlags() {
  int flags = RTLD_NOW | RTLD_LOCAL;
#if defined(RTLD_DEEPBIND) && !defined(ANERD_SPM_SANITIZED)
  flags |= RTLD_DEEPBIND;
#endif
  return flags;
}

std::vector<std::string> Candidates() {
  std::vector<std::string> paths;
  const std::string exe = SelfExecutablePath();
  const size_t slash = exe.rfind('/');
  if (slash != std::string::npos) {
    const std::string dir = exe.substr(0, slash);
    paths.push_back(absl::StrCat(dir, "/", ANERD_SPM_MODULE_NAME));
    paths.push_back(absl::StrCat(dir, "/../lib/anerd/", ANERD_SPM_MODULE_NAME));
  }
  paths.push_back(absl::StrCat(ANERD_SPM_MODULE_BUILD_DIR, "/", ANERD_SPM_MODULE_NAME));
  return paths;
}

template <typename F>
bool Bind(void* handle, const char* name, F* f, std::string* error) {
  *f = reinterpret_cast<F>(dlsym(handle, name));
  if (*f == nullptr) *error = absl::StrCat("the module has no ", name);
  return *f != nullptr;
}

void Open(SpModel::Module* m) {
  std::string tried;
  void* handle = nullptr;
  for (const std::string& path : Candidates()) {
    handle = dlopen(path.c_str(), OpenFlags());
    if (handle != nullptr) break;
    const char* why = dlerror();
    absl::StrAppend(&tried, tried.empty() ? "" : "; ", why != nullptr ? why : path);
  }
  if (handle == nullptr) {
    m->error = absl::StrCat("cannot load the SentencePiece module (", tried, ")");
    return;
  }
  auto* abi =
      reinterpret_cast<decltype(&anerd_spm_abi_version)>(dlsym(handle, "anerd_spm_abi_version"));
  if (abi == nullptr || abi() != ANERD_SPM_ABI_VERSION) {
    m->error = absl::StrCat("the SentencePiece module ", ANERD_SPM_MODULE_NAME,
                            " is of another version than this program; reinstall both");
    return;
  }
  std::string error;
  if (!Bind(handle, "anerd_spm_load", &m->load, &error) ||
      !Bind(handle, "anerd_spm_free", &m->free, &error) ||
      !Bind(handle, "anerd_spm_size", &m->size, &error) ||
      !Bind(handle, "anerd_spm_special_id", &m->special_id, &error) ||
      !Bind(handle, "anerd_spm_piece_flags", &m->piece_flags, &error) ||
      !Bind(handle, "anerd_spm_piece", &m->piece, &error) ||
      !Bind(handle, "anerd_spm_encode", &m->encode, &error) ||
      !Bind(handle, "anerd_spm_decode", &m->decode, &error)) {
    m->error = absl::StrCat("the SentencePiece module is incomplete: ", error);
  }
}

void AppendBytes(void* context, const char* data, size_t size) {
  static_cast<std::string*>(context)->append(data, size);
}

const SpModel::Module& LoadedModule() {
  static const SpModel::Module* const module = [] {
    auto* m = new SpModel::Module();  // never freed: the module is never unloaded
    Open(m);
    return m;
  }();
  return *module;
}

}  // namespace

std::unique_ptr<SpModel> SpModel::Load(const std::string& bytes, std::string* error,
                                       bool* unavailable) {
  const Module& m = LoadedModule();
  *unavailable = !m.error.empty();
  if (*unavailable) {
    *error = m.error;
    return nullptr;
  }
  void* model = m.load(bytes.data(), bytes.size(), &AppendBytes, error);
  if (model == nullptr) return nullptr;
  return std::unique_ptr<SpModel>(new SpModel(&m, model));
}

SpModel::~SpModel() { module_->free(model_); }

int SpModel::size() const { return module_->size(model_); }
int SpModel::bos_id() const { return module_->special_id(model_, 0); }
int SpModel::eos_id() const { return module_->special_id(model_, 1); }
int SpModel::unk_id() const { return module_->special_id(model_, 2); }
bool SpModel::IsControl(int id) const {
  const int f = module_->piece_flags(model_, id);
  return f > 0 && (f & ANERD_SPM_CONTROL) != 0;
}
bool SpModel::IsUnknown(int id) const {
  const int f = module_->piece_flags(model_, id);
  return f > 0 && (f & ANERD_SPM_UNKNOWN) != 0;
}
bool SpModel::IsByte(int id) const {
  const int f = module_->piece_flags(model_, id);
  return f > 0 && (f & ANERD_SPM_BYTE) != 0;
}

std::string SpModel::Piece(int id) const {
  std::string piece;
  module_->piece(model_, id, &AppendBytes, &piece);
  return piece;
}

bool SpModel::Encode(const std::string& text, std::vector<int>* ids, std::string* error) const {
  struct Out {
    std::vector<int>* ids;
    std::string* error;
  } out{ids, error};
  auto take_ids = [](void* context, const int32_t* data, size_t count) {
    static_cast<Out*>(context)->ids->assign(data, data + count);
  };
  auto take_error = [](void* context, const char* data, size_t size) {
    static_cast<Out*>(context)->error->append(data, size);
  };
  return module_->encode(model_, text.data(), text.size(), take_ids, take_error, &out) != 0;
}

std::string SpModel::Decode(const std::vector<int>& ids) const {
  std::vector<int32_t> in(ids.begin(), ids.end());
  std::string text;
  module_->decode(model_, in.data(), in.size(), &AppendBytes, &text);
  return text;
}

}  // namespace anerd::tokenizer::spm
