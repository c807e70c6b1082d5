// Hugging Face tokenizer.json, byte-level BPE (GPT-2, Llama 3, Qwen2/3). What is read:
//   model: type "BPE" (or absent), vocab {token: id}, merges ["a b", ...] or [["a", "b"], ...]
//          (rank = index; a repeated pair keeps its last rank, as the tokenizers library does),
//          ignore_merges (a pre-token found whole in the vocabulary is one id), unk_token;
//          continuing_subword_prefix / end_of_word_suffix must be absent or empty.
//   added_tokens: [{id, content, special}] matched in the text before pre-tokenization, the
//          leftmost occurrence first and the longest at one position (lstrip/rstrip/
//          single_word/normalized are not applied); special ones are skipped by Decode.
//   normalizer: null, NFC, or a Sequence of NFC steps — NFC is applied (unicode_nfc.h) to the
//          text between added tokens before pre-tokenization, as the tokenizers library does;
//          any other normalizer (NFKC, Lowercase, Replace, ...) is INVALID_ARGUMENT naming it.
//   pre_tokenizer: ByteLevel, Split, or a Sequence of them (hf_pretokenizer.h); a ByteLevel
//          step is required (this is a byte-level BPE reader).
//   post_processor: TemplateProcessing's leading special token is bos (the tokenizers library
//          adds it when add_special_tokens; here EncodeOptions::add_bos does). eos is the first
//          added token named <|end_of_text|>, <|endoftext|>, <|im_end|>, <|eot_id|> or </s>.
// Anything else present and unsupported is INVALID_ARGUMENT naming the field.
#include <algorithm>
#include <array>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/tokenizer/bpe_merge.h"
#include "common/tokenizer/hf_pretokenizer.h"
#include "common/tokenizer/kinds.h"
#include "common/tokenizer/unicode_nfc.h"
#include "nlohmann/json.hpp"

namespace anerd::tokenizer {
namespace {

using json = nlohmann::json;
constexpr int kMaxJsonDepth = 64;

// GPT-2's byte -> code point map: printable Latin-1 bytes map to themselves, the rest to 256+.
std::array<std::string, 256> ByteToUnicode() {
  std::array<std::string, 256> table;
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const int cp = printable ? b : 256 + extra++;
    std::string utf8;
    if (cp < 0x80) {
      utf8.push_back(static_cast<char>(cp));
    } else {
      utf8.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    table[b] = utf8;
  }
  return table;
}

class HfTokenizer : public Tokenizer {
 public:
  absl::string_view kind() const override { return "hf"; }
  int32_t vocab_size() const override { return static_cast<int32_t>(bytes_.size()); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  bool IsSpecial(int32_t id) const override { return special_[id]; }

  void AppendTokenBytes(int32_t id, DecodeContext* context, std::string* out) const override {
    context->prev = id;
    if (special_[id]) return;
    out->append(bytes_[id]);
    context->emitted = context->emitted || !bytes_[id].empty();
  }

 protected:
  absl::Status EncodeText(absl::string_view text, std::vector<int32_t>* ids) const override;

 private:
  friend class HfLoader;
  absl::Status EncodeSegment(absl::string_view text, int64_t offset,
                             std::vector<int32_t>* ids) const;
  absl::Status EncodePiece(absl::string_view piece, int64_t offset,
                           std::vector<int32_t>* ids) const;

  std::vector<std::string> bytes_;  // the bytes each id decodes to
  std::vector<bool> special_;       // skipped by Decode
  std::vector<bool> defined_;       // ids named by the file (others decode to nothing)
  std::unordered_map<std::string, int32_t> vocab_;  // byte-level token string -> id
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // pair -> (rank, id)
  std::array<int32_t, 256> byte_ids_{};  // id of each byte's single-character token, or -1
  std::array<std::string, 256> byte_chars_;
  std::vector<std::pair<std::string, int32_t>> added_;    // content, id; longest first
  std::array<std::vector<int32_t>, 256> added_by_first_;  // indices into added_ by first byte
  std::vector<PreTokenizerStep> steps_;
  bool ignore_merges_ = false;
  bool nfc_ = false;  // normalizer: NFC
  int32_t unk_ = -1;
  int32_t bos_ = -1;
  int32_t eos_ = -1;
};

absl::Status HfTokenizer::EncodeText(absl::string_view text, std::vector<int32_t>* ids) const {
  size_t last = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t matched = -1;
    size_t matched_len = 0;
    for (const int32_t k : added_by_first_[static_cast<unsigned char>(text[i])]) {
      const auto& [content, id] = added_[k];  // longest first
      if (text.compare(i, content.size(), content) == 0) {
        matched = id;
        matched_len = content.size();
        break;
      }
    }
    if (matched < 0) {
      ++i;
      continue;
    }
    if (absl::Status s = EncodeSegment(text.substr(last, i - last), last, ids); !s.ok()) return s;
    ids->push_back(matched);
    i += matched_len;
    last = i;
  }
  return EncodeSegment(text.substr(last), last, ids);
}

absl::Status HfTokenizer::EncodeSegment(absl::string_view text, int64_t offset,
                                        std::vector<int32_t>* ids) const {
  if (text.empty()) return absl::OkStatus();
  std::string normalized;
  if (nfc_) {
    absl::StatusOr<std::string> n = ToNfc(text);
    if (!n.ok()) return n.status();
    normalized = *std::move(n);
    text = normalized;
  }
  std::vector<std::string> pieces;
  if (absl::Status s = PreTokenize(steps_, text, offset, &pieces); !s.ok()) return s;
  for (const std::string& piece : pieces) {
    if (absl::Status s = EncodePiece(piece, offset, ids); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status HfTokenizer::EncodePiece(absl::string_view piece, int64_t offset,
                                      std::vector<int32_t>* ids) const {
  if (ignore_merges_) {
    std::string mapped;
    for (char c : piece) mapped += byte_chars_[static_cast<unsigned char>(c)];
    const auto it = vocab_.find(mapped);
    if (it != vocab_.end()) {
      ids->push_back(it->second);
      return absl::OkStatus();
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(piece.size());
  for (char c : piece) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      symbols.push_back(id);
    } else if (unk_ >= 0) {
      symbols.push_back(unk_);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "text near byte offset ", offset, ": byte 0x", absl::Hex(static_cast<unsigned char>(c)),
          " has no token in model.vocab and there is no unk_token"));
    }
  }
  MergePairs(&symbols, [&](int32_t a, int32_t b, double* priority, int32_t* merged) {
    const auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    if (it == merges_.end()) return false;
    *priority = it->second.first;
    *merged = it->second.second;
    return true;
  });
  ids->insert(ids->end(), symbols.begin(), symbols.end());
  return absl::OkStatus();
}

// Whether `bytes` nests arrays/objects deeper than kMaxJsonDepth (checked before parsing).
bool TooDeep(absl::string_view bytes) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

class HfLoader {
 public:
  explicit HfLoader(absl::string_view source) : source_(source) {}

  absl::StatusOr<std::unique_ptr<Tokenizer>> Load(absl::string_view bytes) {
    if (TooDeep(bytes))
      return Error("(document)", absl::StrCat("nests deeper than ", kMaxJsonDepth));
    const json doc = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return Error("(document)", "is not valid JSON");
    if (!doc.is_object()) return Error("(document)", "is not a JSON object");
    t_ = std::make_unique<HfTokenizer>();
    t_->byte_chars_ = ByteToUnicode();
    if (absl::Status s = ReadModel(doc); !s.ok()) return s;
    if (absl::Status s = ReadAddedTokens(doc); !s.ok()) return s;
    if (absl::Status s = ReadNormalizer(doc); !s.ok()) return s;
    if (absl::Status s = ReadPreTokenizer(doc); !s.ok()) return s;
    if (absl::Status s = ReadSpecialIds(doc); !s.ok()) return s;
    return std::unique_ptr<Tokenizer>(std::move(t_));
  }

 private:
  absl::Status Error(absl::string_view field, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json ", source_, ": ", field, " ", what));
  }

  // Reserves id `id` (bounded) for `field`.
  absl::Status Define(int64_t id, const std::string& field) {
    if (id < 0 || id >= kMaxVocab) {
      return Error(field, absl::StrCat("has id ", id, " outside 0 .. ", kMaxVocab - 1));
    }
    if (id >= static_cast<int64_t>(t_->bytes_.size())) {
      t_->bytes_.resize(id + 1);
      t_->special_.resize(id + 1, false);
      t_->defined_.resize(id + 1, false);
    }
    return absl::OkStatus();
  }

  absl::Status ReadModel(const json& doc) {
    const auto model = doc.find("model");
    if (model == doc.end() || !model->is_object()) return Error("model", "is missing");
    const auto type = model->find("type");
    if (type != model->end() && !(type->is_string() && *type == "BPE")) {
      return Error("model.type", "is not \"BPE\" (only byte-level BPE is supported)");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const auto it = model->find(key);
      if (it != model->end() && !it->is_null() &&
          !(it->is_string() && it->get_ref<const std::string&>().empty())) {
        return Error(absl::StrCat("model.", key), "is not supported by byte-level BPE");
      }
    }
    const auto ignore = model->find("ignore_merges");
    t_->ignore_merges_ = ignore != model->end() && ignore->is_boolean() && ignore->get<bool>();
    const auto vocab = model->find("vocab");
    if (vocab == model->end() || !vocab->is_object()) return Error("model.vocab", "is missing");
    if (vocab->size() > static_cast<size_t>(kMaxVocab)) {
      return Error("model.vocab", absl::StrCat("has more than ", kMaxVocab, " tokens"));
    }
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
      const std::string field = absl::StrCat("model.vocab[\"", it.key(), "\"]");
      if (!it->is_number_integer()) return Error(field, "is not an integer id");
      if (it.key().size() > static_cast<size_t>(kMaxTokenBytes)) {
        return Error(field, absl::StrCat("is longer than ", kMaxTokenBytes, " bytes"));
      }
      const int64_t id = it->get<int64_t>();
      if (absl::Status s = Define(id, field); !s.ok()) return s;
      if (t_->defined_[id]) return Error(field, absl::StrCat("reuses id ", id));
      t_->defined_[id] = true;
      t_->vocab_.emplace(it.key(), static_cast<int32_t>(id));
      t_->bytes_[id] = DecodeByteLevel(it.key());
    }
    for (int b = 0; b < 256; ++b) {
      const auto it = t_->vocab_.find(t_->byte_chars_[b]);
      t_->byte_ids_[b] = it == t_->vocab_.end() ? -1 : it->second;
    }
    const auto unk = model->find("unk_token");
    if (unk != model->end() && unk->is_string()) {
      const auto it = t_->vocab_.find(unk->get<std::string>());
      if (it == t_->vocab_.end()) return Error("model.unk_token", "is not in model.vocab");
      t_->unk_ = it->second;
    }
    return ReadMerges(*model);
  }

  // The bytes a byte-level token string stands for; a string with characters outside the
  // byte map (not byte-level) stands for its own UTF-8.
  std::string DecodeByteLevel(const std::string& token) {
    if (char_to_byte_.empty()) {
      for (int b = 0; b < 256; ++b) char_to_byte_.emplace(t_->byte_chars_[b], b);
    }
    std::string out;
    for (size_t i = 0; i < token.size();) {
      const size_t len = (static_cast<unsigned char>(token[i]) < 0x80) ? 1 : 2;
      const auto it = char_to_byte_.find(token.substr(i, len));
      if (i + len > token.size() || it == char_to_byte_.end()) return token;
      out.push_back(static_cast<char>(it->second));
      i += len;
    }
    return out;
  }

  absl::Status ReadMerges(const json& model) {
    const auto merges = model.find("merges");
    if (merges == model.end() || merges->is_null()) return absl::OkStatus();
    if (!merges->is_array()) return Error("model.merges", "is not an array");
    if (merges->size() > static_cast<size_t>(kMaxMerges)) {
      return Error("model.merges", absl::StrCat("has more than ", kMaxMerges, " entries"));
    }
    for (size_t rank = 0; rank < merges->size(); ++rank) {
      const json& m = (*merges)[rank];
      const std::string field = absl::StrCat("model.merges[", rank, "]");
      std::string a, b;
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        std::vector<std::string> parts = absl::StrSplit(s, ' ');
        if (parts.size() != 2) return Error(field, "is not two tokens separated by one space");
        a = std::move(parts[0]);
        b = std::move(parts[1]);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        return Error(field, "is neither \"a b\" nor [\"a\", \"b\"]");
      }
      const auto ia = t_->vocab_.find(a), ib = t_->vocab_.find(b), im = t_->vocab_.find(a + b);
      if (ia == t_->vocab_.end() || ib == t_->vocab_.end() || im == t_->vocab_.end()) {
        return Error(field, absl::StrCat("names a token not in model.vocab (\"", a, "\", \"", b,
                                         "\" or their concatenation)"));
      }
      t_->merges_[(static_cast<uint64_t>(ia->second) << 32) | static_cast<uint32_t>(ib->second)] = {
          static_cast<int32_t>(rank), im->second};
    }
    return absl::OkStatus();
  }

  absl::Status ReadAddedTokens(const json& doc) {
    const auto added = doc.find("added_tokens");
    if (added == doc.end() || added->is_null()) return absl::OkStatus();
    if (!added->is_array()) return Error("added_tokens", "is not an array");
    if (added->size() > static_cast<size_t>(kMaxVocab)) {
      return Error("added_tokens", absl::StrCat("has more than ", kMaxVocab, " entries"));
    }
    for (size_t i = 0; i < added->size(); ++i) {
      const json& a = (*added)[i];
      const std::string field = absl::StrCat("added_tokens[", i, "]");
      if (!a.is_object()) return Error(field, "is not an object");
      const auto id = a.find("id");
      const auto content = a.find("content");
      if (id == a.end() || !id->is_number_integer()) return Error(field + ".id", "is missing");
      if (content == a.end() || !content->is_string() || content->empty()) {
        return Error(field + ".content", "is missing or empty");
      }
      const std::string& text = content->get_ref<const std::string&>();
      if (text.size() > static_cast<size_t>(kMaxTokenBytes)) {
        return Error(field + ".content", absl::StrCat("is longer than ", kMaxTokenBytes, " bytes"));
      }
      const int64_t value = id->get<int64_t>();
      if (absl::Status s = Define(value, field + ".id"); !s.ok()) return s;
      const auto special = a.find("special");
      t_->special_[value] = special != a.end() && special->is_boolean() && special->get<bool>();
      t_->defined_[value] = true;
      t_->bytes_[value] = text;
      t_->added_.emplace_back(text, static_cast<int32_t>(value));
      added_by_content_[text] = static_cast<int32_t>(value);
    }
    std::stable_sort(t_->added_.begin(), t_->added_.end(),
                     [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
    for (size_t k = 0; k < t_->added_.size(); ++k) {
      const auto first = static_cast<unsigned char>(t_->added_[k].first[0]);
      t_->added_by_first_[first].push_back(static_cast<int32_t>(k));
    }
    return absl::OkStatus();
  }

  absl::Status ReadNormalizer(const json& doc) {
    const auto n = doc.find("normalizer");
    if (n == doc.end() || n->is_null()) return absl::OkStatus();
    if (IsType(*n, "Sequence")) {
      const auto list = n->find("normalizers");
      if (list == n->end() || !list->is_array()) {
        return Error("normalizer.normalizers", "is missing (a Sequence needs a list)");
      }
      for (size_t i = 0; i < list->size(); ++i) {
        const std::string field = absl::StrCat("normalizer.normalizers[", i, "]");
        if (absl::Status s = ReadNormalizerStep((*list)[i], field); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    return ReadNormalizerStep(*n, "normalizer");
  }

  absl::Status ReadNormalizerStep(const json& step, const std::string& field) {
    if (IsType(step, "NFC")) {
      t_->nfc_ = true;
      return absl::OkStatus();
    }
    const auto type = step.is_object() ? step.find("type") : step.end();
    const std::string name = type != step.end() && type->is_string()
                                 ? absl::StrCat("\"", type->get<std::string>(), "\"")
                                 : std::string("without a type");
    return Error(field, absl::StrCat(name,
                                     " is not implemented by anerd (only NFC, alone or in a "
                                     "Sequence, is); the tokenizer cannot be used"));
  }

  static bool IsType(const json& node, const char* type) {
    if (!node.is_object()) return false;
    const auto t = node.find("type");
    return t != node.end() && t->is_string() && t->get_ref<const std::string&>() == type;
  }

  absl::Status ReadPreTokenizer(const json& doc) {
    const auto p = doc.find("pre_tokenizer");
    if (p == doc.end() || p->is_null())
      return Error("pre_tokenizer", "is missing (ByteLevel needed)");
    bool byte_level = false;
    if (absl::Status s = ReadStep(*p, "pre_tokenizer", &byte_level); !s.ok()) return s;
    if (!byte_level) return Error("pre_tokenizer", "has no ByteLevel step (not byte-level BPE)");
    return absl::OkStatus();
  }

  absl::Status ReadStep(const json& p, const std::string& field, bool* byte_level) {
    if (!p.is_object()) return Error(field, "is not an object");
    const auto type = p.find("type");
    if (type == p.end() || !type->is_string()) return Error(field + ".type", "is missing");
    const std::string& kind = type->get_ref<const std::string&>();
    if (kind == "Sequence") {
      const auto list = p.find("pretokenizers");
      if (list == p.end() || !list->is_array())
        return Error(field + ".pretokenizers", "is missing");
      for (size_t i = 0; i < list->size(); ++i) {
        const std::string sub = absl::StrCat(field, ".pretokenizers[", i, "]");
        if (absl::Status s = ReadStep((*list)[i], sub, byte_level); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    PreTokenizerStep step;
    if (kind == "ByteLevel") {
      *byte_level = true;
      step.kind = PreTokenizerStep::Kind::kByteLevel;
      const auto prefix = p.find("add_prefix_space");
      step.add_prefix_space = prefix != p.end() && prefix->is_boolean() && prefix->get<bool>();
      const auto use_regex = p.find("use_regex");
      if (use_regex == p.end() || !use_regex->is_boolean() || use_regex->get<bool>()) {
        absl::StatusOr<std::unique_ptr<Pcre2Pattern>> re =
            Pcre2Pattern::Compile(kGpt2Pattern, false, field);
        if (!re.ok()) return re.status();
        step.pattern = std::move(*re);
      }
    } else if (kind == "Split") {
      const auto behavior = p.find("behavior");
      if (behavior == p.end() || !(behavior->is_string() && *behavior == "Isolated")) {
        return Error(field + ".behavior", "is not \"Isolated\" (the only one supported)");
      }
      const auto invert = p.find("invert");
      if (invert != p.end() && !(invert->is_boolean() && !invert->get<bool>())) {
        return Error(field + ".invert", "is not false (the only one supported)");
      }
      const auto pattern = p.find("pattern");
      if (pattern == p.end() || !pattern->is_object())
        return Error(field + ".pattern", "is missing");
      const auto regex = pattern->find("Regex");
      const auto literal = pattern->find("String");
      const bool is_regex = regex != pattern->end() && regex->is_string();
      const bool is_literal = literal != pattern->end() && literal->is_string();
      if (!is_regex && !is_literal) return Error(field + ".pattern", "has no Regex or String");
      const std::string& text = (is_regex ? regex : literal)->get_ref<const std::string&>();
      absl::StatusOr<std::unique_ptr<Pcre2Pattern>> re =
          Pcre2Pattern::Compile(text, !is_regex, field + ".pattern");
      if (!re.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.json ", source_, ": ", re.status().message()));
      }
      step.pattern = std::move(*re);
    } else {
      return Error(field + ".type", absl::StrCat("\"", kind, "\" is not supported"));
    }
    t_->steps_.push_back(std::move(step));
    return absl::OkStatus();
  }

  absl::Status ReadSpecialIds(const json& doc) {
    const auto post = doc.find("post_processor");
    if (post != doc.end() && post->is_object()) FindBos(*post);
    for (const char* name :
         {"<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "</s>"}) {
      const auto it = added_by_content_.find(name);
      if (it != added_by_content_.end()) {
        t_->eos_ = it->second;
        break;
      }
    }
    return absl::OkStatus();
  }

  // bos = the first SpecialToken of a TemplateProcessing's `single` template, if it is a token.
  void FindBos(const json& post) {
    const auto type = post.find("type");
    if (type == post.end() || !type->is_string()) return;
    if (*type == "Sequence") {
      const auto list = post.find("processors");
      if (list == post.end() || !list->is_array()) return;
      for (const json& p : *list) {
        if (p.is_object()) FindBos(p);
      }
      return;
    }
    if (*type != "TemplateProcessing") return;
    const auto single = post.find("single");
    if (single == post.end() || !single->is_array() || single->empty()) return;
    const json& first = (*single)[0];
    if (!first.is_object()) return;
    const auto special = first.find("SpecialToken");
    if (special == first.end() || !special->is_object()) return;
    const auto id = special->find("id");
    if (id == special->end() || !id->is_string()) return;
    const auto it = added_by_content_.find(id->get<std::string>());
    if (it != added_by_content_.end()) t_->bos_ = it->second;
  }

  std::string source_;
  std::unique_ptr<HfTokenizer> t_;
  std::unordered_map<std::string, int> char_to_byte_;
  std::unordered_map<std::string, int32_t> added_by_content_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(absl::string_view bytes,
                                                           absl::string_view source) {
  return HfLoader(source).Load(bytes);
}

}  // namespace anerd::tokenizer
