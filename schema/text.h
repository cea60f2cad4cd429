// Small text helpers shared by validation, the JSON forms and the other modules' error messages.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace rosetta {

// Quotes `s` for an error message: "p7" -> `"p7"`. Backslash and double quote are escaped,
// control characters are written as \u00XX, bytes that are not valid UTF-8 as \xHH, and strings
// longer than 64 bytes are cut (at a character boundary) and end in `..." (N bytes)`, so that
// a hostile value can neither garble a message nor make it huge.
std::string Quote(std::string_view s);

// True for a valid schema name: [A-Za-z_][A-Za-z0-9_.-]*, 1 .. 128 bytes (kMaxNameBytes).
bool IsValidName(std::string_view s);

// Checks that `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF) and, unless `allow_control`, contains no control characters (U+0000..U+001F,
// U+007F..U+009F). Returns std::nullopt when it is fine, else a description of the first problem,
// e.g. "invalid UTF-8 at byte 3" or "control character U+0007 at byte 5".
std::optional<std::string> CheckText(std::string_view s, bool allow_control);

}  // namespace rosetta
