#pragma once
// safetensors (huggingface) read/write: how weights and data cross the border with PyTorch.
//
// File layout:  [u64 N, little-endian] [N bytes of UTF-8 JSON header] [data section]
//   header = {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"key": "value", ...}}   (optional; string values only)
//   offsets are relative to the start of the data section; the header may be padded with spaces.
//
// Reading validates everything a hostile or broken file can get wrong and answers with a parse error
// naming the file and the tensor; it never crashes and never allocates more than the file holds.
// Like the reference implementation, the data section must be covered exactly: tensors sorted by
// offset are contiguous from 0 to the end of the file (no gaps, no overlaps, no trailing bytes);
// empty tensors ([k, k]) are fine. Duplicate names in the header are an error (JSON parsers would
// silently keep the last one).
//   F32 -> f32;  F16, BF16, F64 -> converted to f32;  I32 -> i32;  I64 -> i64;  U8 -> u8;
//   BOOL, I8, I16, U16, U32, U64, F8_* ... -> ErrorCode::unsupported.
//
// Writing produces the same bytes as python `safetensors` (0.4+) for the same tensors: tensors ordered
// by descending dtype alignment rank (I64, F64, F32, I32, BF16, F16) then by name, offsets contiguous,
// compact JSON with keys dtype/shape/data_offsets, header padded with spaces so data starts at a
// multiple of 8. "__metadata__" comes first and is omitted when empty (python writes multi-key
// metadata in hash order; ours is sorted). Saving is atomic (io/file.hpp): bytes go to a temporary
// "<path>.tmp.<pid>.<n>", renamed over <path> only once fully written (no fsync: this guards against
// failed writes, not power loss).
#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ferrite/core/dtype.hpp"
#include "ferrite/core/error.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/shape.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/io/file.hpp"
#include "ferrite/io/half.hpp"

namespace ferrite::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; ferrite copies it without byte swaps");

// Same limit as the reference implementation: a longer header means a corrupt or foreign file.
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
// Nesting allowed in a header's JSON (a valid one needs 3): deeper is rejected before parsing.
inline constexpr int kSafetensorsMaxDepth = 8;

using SafetensorsMetadata = std::map<std::string, std::string>;
// (name, tensor) pairs to save; the tensors are borrowed for the duration of the call.
using TensorRefs = std::vector<std::pair<std::string, const Tensor*>>;

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct SafetensorsFile {
  std::vector<NamedTensor> tensors;  // in file order (ascending data offset)
  SafetensorsMetadata metadata;      // "__metadata__", empty if absent

  const Tensor* find(std::string_view name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t.tensor;
    return nullptr;
  }
  Tensor* find(std::string_view name) {
    for (auto& t : tensors)
      if (t.name == name) return &t.tensor;
    return nullptr;
  }

  // Moves the tensor out and removes its entry (so pointers from find() are invalidated); the error
  // lists what the file does hold.
  Result<Tensor> take(std::string_view name) {
    for (auto it = tensors.begin(); it != tensors.end(); ++it) {
      if (it->name != name) continue;
      Tensor t = std::move(it->tensor);
      tensors.erase(it);
      return t;
    }
    std::string held;
    for (std::size_t i = 0; i < tensors.size() && i < 10; ++i) held += (i ? ", " : "") + tensors[i].name;
    if (tensors.size() > 10) held += ", ... (" + std::to_string(tensors.size()) + " in all)";
    return make_error(ErrorCode::invalid_argument, "safetensors::take",
                      "no tensor named '" + std::string(name) + "' (present: " +
                          (held.empty() ? std::string("none") : held) + ")");
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(tensors.size());
    for (const auto& t : tensors) out.push_back(t.name);
    return out;
  }

  // Borrowed (name, tensor) pairs, e.g. to save the file again.
  TensorRefs refs() const {
    TensorRefs out;
    out.reserve(tensors.size());
    for (const auto& t : tensors) out.emplace_back(t.name, &t.tensor);
    return out;
  }
};

namespace detail {

using json = nlohmann::json;

inline constexpr std::string_view kLoadOp = "safetensors::load";
inline constexpr std::string_view kSaveOp = "safetensors::save";

// The dtypes ferrite reads, with python safetensors' Dtype enum position (its writers order tensors
// by descending position, i.e. by descending alignment).
struct FileDType {
  std::string_view name;
  DType dtype;
  int python_order;
};
inline constexpr FileDType kFileDTypes[] = {
    {"U8", DType::u8, 1},   {"F16", DType::f16, 7}, {"BF16", DType::bf16, 8}, {"I32", DType::i32, 9},
    {"F32", DType::f32, 11}, {"F64", DType::f64, 12}, {"I64", DType::i64, 13},
};
// Valid safetensors dtypes that ferrite has no tensor type for.
inline constexpr std::string_view kUnsupportedFileDTypes[] = {
    "BOOL", "I8", "I16", "U16", "U32", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0",
    "F4", "F6_E2M3", "F6_E3M2", "C64",
};

inline const FileDType* find_file_dtype(std::string_view name) {
  for (const auto& d : kFileDTypes)
    if (d.name == name) return &d;
  return nullptr;
}
inline const FileDType& file_dtype_of(DType dtype) {
  for (const auto& d : kFileDTypes)
    if (d.dtype == dtype) return d;
  assert(false && "every DType has a safetensors name");
  return kFileDTypes[0];
}

// Reading widens floats to f32 (ferrite computes in f32) and keeps integer types.
inline DType loaded_dtype(DType file_dtype) {
  return file_dtype == DType::i32 || file_dtype == DType::i64 || file_dtype == DType::u8 ? file_dtype : DType::f32;
}

// A value as it appears in a message: at most ~60 characters, whatever its size. Rendered piece by
// piece with a budget, never dumped whole: a huge array or string in a hostile header costs no more
// than a short one (the header's nesting depth is bounded before parsing, see kSafetensorsMaxDepth).
inline void brief_into(const json& value, std::string& out, std::size_t budget) {
  if (out.size() >= budget) return;
  if (value.is_array() || value.is_object()) {
    out += value.is_array() ? '[' : '{';
    bool first = true;
    for (auto it = value.begin(); it != value.end() && out.size() < budget; ++it) {
      if (!first) out += ',';
      first = false;
      if (value.is_object()) out += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ':';
      brief_into(*it, out, budget);
    }
    out += value.is_array() ? ']' : '}';
    return;
  }
  if (value.is_string() && value.get_ref<const std::string&>().size() > budget)  // no copy of a huge string
    out += json(value.get_ref<const std::string&>().substr(0, budget)).dump(-1, ' ', false, json::error_handler_t::replace);
  else
    out += value.dump(-1, ' ', false, json::error_handler_t::replace);
}
inline std::string brief(const json& value) {
  std::string s;
  brief_into(value, s, 61);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// The deepest nesting of arrays and objects in JSON text (outside strings), stopping at `limit` + 1.
// A valid header nests three levels (header object, tensor entry, shape array); the check runs before
// nlohmann::json sees the text, so a file of a million '[' is a parse error, not a stack overflow.
inline int json_nesting_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == ']' || c == '}') --depth;
  }
  return deepest;
}

inline Error parse_error(const std::string& source, const std::string& message,
                         std::string shapes = {}) {
  return make_error(ErrorCode::parse, std::string(kLoadOp), source + ": " + message, std::move(shapes));
}

inline std::string offsets_text(std::uint64_t begin, std::uint64_t end) {
  std::string out = "[";  // (built by appending: g++ 12 warns falsely on `literal + std::string&&`, PR 105329)
  out += std::to_string(begin);
  out += ", ";
  out += std::to_string(end);
  out += ']';
  return out;
}

// One validated header entry.
struct HeaderEntry {
  std::string name;
  DType file_dtype = DType::f32;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

struct ParsedHeader {
  std::vector<HeaderEntry> entries;  // sorted by offset
  SafetensorsMetadata metadata;
};

// Validates the 8-byte length prefix against the file size; returns the header length N.
inline Result<std::uint64_t> check_header_length(std::uint64_t file_bytes, const std::byte* prefix,
                                                 const std::string& source) {
  if (file_bytes < 8)
    return parse_error(source, "file is " + std::to_string(file_bytes) +
                                   " bytes, too short for the 8-byte header length");
  std::uint64_t n = 0;
  std::memcpy(&n, prefix, 8);
  if (n > kSafetensorsMaxHeaderBytes)
    return parse_error(source, "header length " + std::to_string(n) + " exceeds the " +
                                   std::to_string(kSafetensorsMaxHeaderBytes) +
                                   "-byte limit (corrupt file, or not a safetensors file)");
  if (n > file_bytes - 8)
    return parse_error(source, "header length " + std::to_string(n) + " is larger than the " +
                                   std::to_string(file_bytes - 8) +
                                   " bytes that follow it (truncated file, or not a safetensors file)");
  return n;
}

// Parses the JSON text, rejecting duplicate keys, which nlohmann::json would silently overwrite.
inline Result<json> parse_json_without_duplicates(std::string_view text, const std::string& source) {
  std::vector<std::set<std::string>> open_objects;  // keys seen so far in each enclosing object
  std::string current_tensor;                       // the last top-level key, for messages
  std::optional<Error> duplicate;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      const bool top_level = open_objects.size() == 1;
      if (top_level) current_tensor = key;
      if (!open_objects.back().insert(key).second && !duplicate) {
        duplicate = parse_error(
            source, top_level ? "tensor name '" + key + "' appears more than once in the header"
                              : "in '" + current_tensor + "': key \"" + key +
                                    "\" appears more than once in one object");
      }
    }
    return true;
  };
  if (const int depth = json_nesting_depth(text, kSafetensorsMaxDepth); depth > kSafetensorsMaxDepth)
    return parse_error(source, "header nests arrays/objects more than " + std::to_string(kSafetensorsMaxDepth) +
                                   " levels deep (a safetensors header needs 3): corrupt or hostile file");
  json root;
  try {
    root = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    return parse_error(source, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (duplicate) return *std::move(duplicate);
  return root;
}

inline Status parse_metadata(const json& value, SafetensorsMetadata& out, const std::string& source) {
  if (!value.is_object())
    return parse_error(source, std::string("__metadata__ is a JSON ") + value.type_name() +
                                   ", expected an object of strings");
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      return parse_error(source, "__metadata__[\"" + key + "\"] is a JSON " + v.type_name() + " (" +
                                     brief(v) + "), expected a string");
    out.emplace(key, v.get<std::string>());
  }
  return ok_status();
}

inline Result<HeaderEntry> parse_entry(const std::string& name, const json& value,
                                       std::uint64_t data_bytes, const std::string& source) {
  const std::string where = "tensor '" + name + "': ";
  if (!value.is_object())
    return parse_error(source, where + "entry is a JSON " + value.type_name() +
                                   ", expected an object with dtype, shape and data_offsets");
  for (const auto& [key, v] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      return parse_error(source, where + "unexpected key \"" + key +
                                     "\" (expected only dtype, shape and data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!value.contains(key)) return parse_error(source, where + "missing key \"" + key + "\"");

  HeaderEntry entry;
  entry.name = name;

  // dtype
  const json& dtype = value["dtype"];
  if (!dtype.is_string())
    return parse_error(source, where + "dtype is a JSON " + dtype.type_name() + " (" + brief(dtype) +
                                   "), expected a string such as \"F32\"");
  const std::string& dtype_name = dtype.get_ref<const std::string&>();
  const FileDType* file_dtype = find_file_dtype(dtype_name);
  if (!file_dtype) {
    for (std::string_view unsupported : kUnsupportedFileDTypes)
      if (unsupported == dtype_name)
        return make_error(ErrorCode::unsupported, std::string(kLoadOp),
                          source + ": " + where + "dtype " + dtype_name +
                              " is not supported (ferrite reads F32, F16, BF16, F64, I32, I64)");
    return parse_error(source, where + "unknown dtype \"" + dtype_name + "\"");
  }
  entry.file_dtype = file_dtype->dtype;

  // shape: non-negative integers whose running product fits in int64 (Shape::numel multiplies in order)
  const json& shape = value["shape"];
  if (!shape.is_array())
    return parse_error(source, where + "shape is a JSON " + shape.type_name() + " (" + brief(shape) +
                                   "), expected an array of non-negative integers");
  if (shape.size() > static_cast<std::size_t>(Shape::kMaxDims))
    return parse_error(source, where + "shape " + brief(shape) + " has rank " +
                                   std::to_string(shape.size()) + ", more than the " +
                                   std::to_string(Shape::kMaxDims) + " dimensions ferrite supports");
  std::vector<std::int64_t> dims;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const json& d = shape[i];
    if (!d.is_number_unsigned() ||
        d.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return parse_error(source, where + "shape[" + std::to_string(i) + "] is " + brief(d) +
                                     ", expected a non-negative integer");
    dims.push_back(static_cast<std::int64_t>(d.get<std::uint64_t>()));
  }
  entry.shape = Shape(dims);
  // The same count as the tensor that will hold it (Shape::checked_numel: a zero dimension makes any
  // shape empty).
  const std::optional<std::int64_t> numel = entry.shape.checked_numel();
  if (!numel) return parse_error(source, where + "shape " + brief(shape) + " has more elements than fit in 64 bits");

  // data_offsets
  const json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    return parse_error(source, where + "data_offsets is " + brief(offsets) +
                                   ", expected [begin, end] with non-negative integers");
  entry.begin = offsets[0].get<std::uint64_t>();
  entry.end = offsets[1].get<std::uint64_t>();
  const std::string range = offsets_text(entry.begin, entry.end);
  if (entry.begin > entry.end)
    return parse_error(source, where + "data_offsets " + range + ": begin is after end");

  const std::string described = std::string(file_dtype->name) + entry.shape.to_string();
  std::uint64_t needed = 0;
  const bool needs_too_much = __builtin_mul_overflow(static_cast<std::uint64_t>(*numel),
                                                     static_cast<std::uint64_t>(dtype_size(entry.file_dtype)), &needed);
  if (needs_too_much || needed != entry.end - entry.begin)
    return parse_error(source,
                       where + "data_offsets " + range + " span " + std::to_string(entry.end - entry.begin) +
                           " bytes but " + described + " needs " +
                           (needs_too_much ? std::string("more than 2^64") : std::to_string(needed)));
  if (entry.end > data_bytes)
    return parse_error(source, where + "data_offsets " + range + " extend past the end of the " +
                                   std::to_string(data_bytes) + "-byte data section (truncated file?)");
  return entry;
}

// Parses and validates the whole header against a data section of `data_bytes` bytes.
inline Result<ParsedHeader> parse_header(std::string_view text, std::uint64_t data_bytes,
                                         const std::string& source) {
  FE_TRY_ASSIGN(json root, parse_json_without_duplicates(text, source));
  if (!root.is_object())
    return parse_error(source, std::string("header is a JSON ") + root.type_name() + ", expected an object");

  ParsedHeader header;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      FE_TRY(parse_metadata(value, header.metadata, source));
      continue;
    }
    FE_TRY_ASSIGN(HeaderEntry entry, parse_entry(name, value, data_bytes, source));
    header.entries.push_back(std::move(entry));
  }

  // The data section must be tiled exactly: sorted by offset, each tensor starts where the last ended.
  auto& entries = header.entries;
  std::sort(entries.begin(), entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  std::uint64_t covered = 0;
  const HeaderEntry* previous = nullptr;
  for (const auto& e : entries) {
    if (e.begin < covered)
      return parse_error(source, "tensor '" + e.name + "': data_offsets " + offsets_text(e.begin, e.end) +
                                     " overlap tensor '" + previous->name + "' " +
                                     offsets_text(previous->begin, previous->end));
    if (e.begin > covered)
      return parse_error(source, "gap of " + std::to_string(e.begin - covered) +
                                     " unused bytes in the data section before tensor '" + e.name +
                                     "' (data_offsets " + offsets_text(e.begin, e.end) +
                                     "); tensors must cover it contiguously from offset 0");
    covered = e.end;
    previous = &e;
  }
  if (covered != data_bytes)
    return parse_error(source, "data section is " + std::to_string(data_bytes) +
                                   " bytes but the tensors cover only " + std::to_string(covered) +
                                   " (trailing bytes after the last tensor)");
  return header;
}

// Widens `count` F16/BF16/F64 values (unaligned little-endian bytes) to f32.
inline void convert_to_f32(const std::byte* src, DType file_dtype, std::size_t count, float* dst) {
  switch (file_dtype) {
    case DType::f16:
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = half_to_float(h);
      }
      break;
    case DType::bf16:
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        dst[i] = bfloat16_to_float(b);
      }
      break;
    case DType::f64:
      for (std::size_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        dst[i] = static_cast<float>(d);  // IEEE: rounds to nearest, overflow -> inf
      }
      break;
    default: assert(false && "only F16/BF16/F64 are converted");
  }
}

// Data section in memory.
struct MemorySource {
  std::span<const std::byte> data;
  Status copy_to(std::uint64_t offset, std::size_t n, void* dst) const {
    if (n) std::memcpy(dst, data.data() + offset, n);
    return ok_status();
  }
  Result<const std::byte*> bytes_at(std::uint64_t offset, std::size_t, std::vector<std::byte>&) const {
    return data.data() + offset;
  }
};

// Data section in an open file, starting at byte `data_start`.
struct FileSource {
  std::ifstream& in;
  std::uint64_t data_start;
  const std::string& source;
  Status copy_to(std::uint64_t offset, std::size_t n, void* dst) const {
    if (!n) return ok_status();
    in.seekg(static_cast<std::streamoff>(data_start + offset));
    in.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in || static_cast<std::size_t>(in.gcount()) != n)
      return make_error(ErrorCode::io, std::string(kLoadOp),
                        source + ": could not read " + std::to_string(n) + " bytes at offset " +
                            std::to_string(data_start + offset) + " (file changed while reading?)");
    return ok_status();
  }
  Result<const std::byte*> bytes_at(std::uint64_t offset, std::size_t n,
                                    std::vector<std::byte>& scratch) const {
    scratch.resize(n);
    FE_TRY(copy_to(offset, n, scratch.data()));
    return static_cast<const std::byte*>(scratch.data());
  }
};

template <class Source>
Result<SafetensorsFile> materialize(ParsedHeader&& header, const Source& source) {
  SafetensorsFile file;
  file.metadata = std::move(header.metadata);
  file.tensors.reserve(header.entries.size());
  std::vector<std::byte> scratch;
  for (auto& e : header.entries) {
    FE_TRY_ASSIGN(Tensor t, Tensor::empty(e.shape, loaded_dtype(e.file_dtype)));
    const auto bytes = static_cast<std::size_t>(e.end - e.begin);
    if (t.dtype() == e.file_dtype) {
      FE_TRY(source.copy_to(e.begin, bytes, t.raw_data()));
    } else {
      // Convert in bounded chunks so a large F16 file needs no second full-size buffer.
      const std::size_t element = dtype_size(e.file_dtype);
      const std::size_t chunk = (std::size_t{1} << 20) / element * element;
      float* out = t.data<float>();
      for (std::size_t done = 0; done < bytes; done += chunk) {
        const std::size_t n = std::min(chunk, bytes - done);
        FE_TRY_ASSIGN(const std::byte* src, source.bytes_at(e.begin + done, n, scratch));
        convert_to_f32(src, e.file_dtype, n / element, out + done / element);
      }
    }
    file.tensors.push_back({std::move(e.name), std::move(t)});
  }
  return file;
}

inline Error out_of_memory(std::string_view op, const std::string& source) {
  return make_error(ErrorCode::out_of_memory, std::string(op), source + ": out of memory");
}

// ---- writing ----

struct ToWrite {
  const std::string* name;
  const Tensor* tensor;
};

inline Result<std::string> json_string(const std::string& text, const std::string& what) {
  try {
    return json(text).dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception&) {
    return make_error(ErrorCode::invalid_argument, std::string(kSaveOp), what + " is not valid UTF-8");
  }
}

// Checks the tensors, orders them like python safetensors and builds the padded header.
inline Result<std::string> build_header(const TensorRefs& refs, const SafetensorsMetadata& metadata,
                                        std::vector<ToWrite>& order) {
  order.clear();
  for (const auto& [name, tensor] : refs) {
    const std::string where = "tensor '" + name + "'";
    if (name == "__metadata__")
      return make_error(ErrorCode::invalid_argument, std::string(kSaveOp),
                        "the name __metadata__ is reserved for the metadata table");
    if (!tensor || (tensor->nbytes() && !tensor->raw_data()))
      return make_error(ErrorCode::invalid_argument, std::string(kSaveOp),
                        where + " is null or has no storage (moved-from or default-constructed)");
    if (!tensor->device().is_cpu())
      return make_error(ErrorCode::unsupported, std::string(kSaveOp),
                        where + " lives on " + tensor->device().to_string() + "; copy it to cpu first",
                        tensor->describe());
    order.push_back({&name, tensor});
  }
  std::sort(order.begin(), order.end(), [](const ToWrite& a, const ToWrite& b) {
    const int ra = file_dtype_of(a.tensor->dtype()).python_order;
    const int rb = file_dtype_of(b.tensor->dtype()).python_order;
    return ra != rb ? ra > rb : *a.name < *b.name;  // std::string compares bytes as unsigned, like Rust
  });
  std::set<std::string_view> seen;
  for (const auto& w : order)
    if (!seen.insert(*w.name).second)
      return make_error(ErrorCode::invalid_argument, std::string(kSaveOp),
                        "tensor name '" + *w.name + "' is given more than once");

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      FE_TRY_ASSIGN(std::string k, json_string(key, "metadata key '" + key + "'"));
      FE_TRY_ASSIGN(std::string v, json_string(value, "metadata value of '" + key + "'"));
      header += (first ? "" : ",") + k + ":" + v;
      first = false;
    }
    header += "}";
  }
  std::uint64_t offset = 0;
  for (const auto& w : order) {
    FE_TRY_ASSIGN(std::string name, json_string(*w.name, "tensor name '" + *w.name + "'"));
    std::string shape = "[";
    for (int d = 0; d < w.tensor->shape().rank(); ++d) {
      if (d) shape += ',';  // (appended apart: g++ 12 warns falsely on `literal + std::string&&`, PR 105329)
      shape += std::to_string(w.tensor->shape()[d]);
    }
    shape += "]";
    const std::uint64_t end = offset + w.tensor->nbytes();
    header += (header.size() > 1 ? "," : "") + name + ":{\"dtype\":\"" +
              std::string(file_dtype_of(w.tensor->dtype()).name) + "\",\"shape\":" + shape +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  if (header.size() > kSafetensorsMaxHeaderBytes)
    return make_error(ErrorCode::invalid_argument, std::string(kSaveOp),
                      "header would be " + std::to_string(header.size()) +
                          " bytes, over the limit readers accept");
  return header;
}

inline std::array<std::byte, 8> length_prefix(std::uint64_t n) {
  std::array<std::byte, 8> out{};
  std::memcpy(out.data(), &n, 8);
  return out;
}

inline Status save_impl(const std::filesystem::path& path, const TensorRefs& refs,
                        const SafetensorsMetadata& metadata) {
  std::vector<ToWrite> order;
  FE_TRY_ASSIGN(std::string header, build_header(refs, metadata, order));

  return write_file_atomic(
      path,
      [&](FileWriter& out) -> Status {
        const auto prefix = length_prefix(header.size());
        FE_TRY(out.write(prefix.data(), prefix.size()));
        FE_TRY(out.write(header.data(), header.size()));
        for (const auto& w : order) FE_TRY(out.write(w.tensor->raw_data(), w.tensor->nbytes()));
        return ok_status();
      },
      kSaveOp);
}

inline Result<SafetensorsFile> load_impl(const std::filesystem::path& path) {
  const std::string source = path.string();
  const auto io_error = [&](const std::string& message) {
    return make_error(ErrorCode::io, std::string(kLoadOp), source + ": " + message);
  };
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) return io_error("file does not exist");
  if (!std::filesystem::is_regular_file(status)) return io_error("not a regular file");
  const std::uint64_t file_bytes = std::filesystem::file_size(path, ec);
  if (ec) return io_error("cannot read its size: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot open for reading (permissions?)");

  std::array<std::byte, 8> prefix{};
  if (file_bytes >= 8 && !in.read(reinterpret_cast<char*>(prefix.data()), 8))
    return io_error("could not read the 8-byte header length");
  FE_TRY_ASSIGN(const std::uint64_t header_bytes, check_header_length(file_bytes, prefix.data(), source));
  std::string header_text(header_bytes, '\0');
  if (header_bytes && !in.read(header_text.data(), static_cast<std::streamsize>(header_bytes)))
    return io_error("could not read the " + std::to_string(header_bytes) + "-byte header");
  FE_TRY_ASSIGN(ParsedHeader header, parse_header(header_text, file_bytes - 8 - header_bytes, source));
  return materialize(std::move(header), FileSource{in, 8 + header_bytes, source});
}

inline Result<SafetensorsFile> parse_impl(std::span<const std::byte> bytes, const std::string& source) {
  FE_TRY_ASSIGN(const std::uint64_t header_bytes, check_header_length(bytes.size(), bytes.data(), source));
  const std::string_view header_text(reinterpret_cast<const char*>(bytes.data()) + 8, header_bytes);
  FE_TRY_ASSIGN(ParsedHeader header, parse_header(header_text, bytes.size() - 8 - header_bytes, source));
  return materialize(std::move(header), MemorySource{bytes.subspan(8 + header_bytes)});
}

}  // namespace detail

// Reads a whole .safetensors file. Errors: io (missing/unreadable file), parse (malformed, message
// names the file and the tensor), unsupported (dtype ferrite has no type for), out_of_memory.
inline Result<SafetensorsFile> load_safetensors(const std::filesystem::path& path) {
  try {
    return detail::load_impl(path);
  } catch (const std::bad_alloc&) {
    return detail::out_of_memory(detail::kLoadOp, path.string());
  }
}

// The same from bytes already in memory; `source_name` stands for the file in messages.
inline Result<SafetensorsFile> parse_safetensors(std::span<const std::byte> bytes,
                                                 std::string_view source_name = "<memory>") {
  const std::string source(source_name);
  try {
    return detail::parse_impl(bytes, source);
  } catch (const std::bad_alloc&) {
    return detail::out_of_memory(detail::kLoadOp, source);
  }
}

// The file's bytes, exactly as save_safetensors would write them.
inline Result<std::vector<std::byte>> serialize_safetensors(const TensorRefs& tensors,
                                                            const SafetensorsMetadata& metadata = {}) {
  try {
    std::vector<detail::ToWrite> order;
    FE_TRY_ASSIGN(std::string header, detail::build_header(tensors, metadata, order));
    std::vector<std::byte> out;
    const auto prefix = detail::length_prefix(header.size());
    out.insert(out.end(), prefix.begin(), prefix.end());
    const auto* h = reinterpret_cast<const std::byte*>(header.data());
    out.insert(out.end(), h, h + header.size());
    for (const auto& w : order) {
      const auto* p = static_cast<const std::byte*>(w.tensor->raw_data());
      if (w.tensor->nbytes()) out.insert(out.end(), p, p + w.tensor->nbytes());
    }
    return out;
  } catch (const std::bad_alloc&) {
    return detail::out_of_memory(detail::kSaveOp, "<memory>");
  }
}

// Writes f32/i32/i64 (and f16/bf16/f64) tensors atomically; on error <path> is left as it was and no
// "<path>.tmp" remains. Errors: invalid_argument (duplicate/reserved names, null tensors, non-UTF-8
// names), io (cannot create, write or rename; the message names the path).
inline Status save_safetensors(const std::filesystem::path& path, const TensorRefs& tensors,
                               const SafetensorsMetadata& metadata = {}) {
  try {
    return detail::save_impl(path, tensors, metadata);
  } catch (const std::bad_alloc&) {
    return detail::out_of_memory(detail::kSaveOp, path.string());
  }
}

inline Status save_safetensors(const std::filesystem::path& path, const SafetensorsFile& file) {
  return save_safetensors(path, file.refs(), file.metadata);
}

}  // namespace ferrite::io
