#include "schema/text.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace rosetta {
namespace {

constexpr size_t kQuoteMaxBytes = 64;
constexpr size_t kNameMaxBytes = 128;  // == kMaxNameBytes in validate.h (text.h stays leaf-level).

// Decodes one UTF-8 sequence at s[pos]. Returns its length (1..4) and sets *cp, or 0 if the bytes
// there are not a well-formed sequence. Written out by hand (rather than a table) so that each
// RFC 3629 rule is visible: overlong forms, surrogates and values above U+10FFFF are rejected.
size_t DecodeUtf8(std::string_view s, size_t pos, uint32_t* cp) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  uint32_t value;
  uint32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, value = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, value = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, value = b0 & 0x07, min = 0x10000;
  } else {
    return 0;  // a continuation byte or 0xF8..0xFF cannot start a sequence.
  }
  if (pos + len > s.size()) return 0;
  for (size_t i = 1; i < len; ++i) {
    const uint8_t b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  if (value < min) return 0;                         // overlong.
  if (value >= 0xD800 && value <= 0xDFFF) return 0;  // UTF-16 surrogate.
  if (value > 0x10FFFF) return 0;
  *cp = value;
  return len;
}

bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

}  // namespace

std::string Quote(std::string_view s) {
  std::string out = "\"";
  size_t pos = 0;
  while (pos < s.size()) {
    if (pos >= kQuoteMaxBytes) {
      absl::StrAppendFormat(&out, "\"... (%d bytes)", s.size());
      return out;
    }
    uint32_t cp = 0;
    const size_t len = DecodeUtf8(s, pos, &cp);
    if (len == 0) {
      absl::StrAppendFormat(&out, "\\x%02X", static_cast<uint8_t>(s[pos]));
      ++pos;
      continue;
    }
    if (cp == '"' || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (IsControl(cp)) {
      absl::StrAppendFormat(&out, "\\u%04X", cp);
    } else {
      out.append(s.substr(pos, len));
    }
    pos += len;
  }
  out += '"';
  return out;
}

bool IsValidName(std::string_view s) {
  if (s.empty() || s.size() > kNameMaxBytes) return false;
  const auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!alpha(s[0]) && s[0] != '_') return false;
  for (char c : s.substr(1)) {
    if (!alpha(c) && !digit(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

std::optional<std::string> CheckText(std::string_view s, bool allow_control) {
  size_t pos = 0;
  while (pos < s.size()) {
    uint32_t cp = 0;
    const size_t len = DecodeUtf8(s, pos, &cp);
    if (len == 0) return absl::StrFormat("invalid UTF-8 at byte %d", pos);
    if (!allow_control && IsControl(cp)) {
      return absl::StrFormat("control character U+%04X at byte %d", cp, pos);
    }
    pos += len;
  }
  return std::nullopt;
}

}  // namespace rosetta
