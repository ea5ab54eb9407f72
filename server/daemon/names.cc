#include "daemon/names.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "base/status_util.h"

namespace tblog::daemon {
namespace {

// One decoded UTF-8 character: its code point and byte length (0 = invalid).
struct Utf8Char {
  uint32_t code_point = 0;
  size_t length = 0;
};

// Decodes the character at s[i], refusing what RFC 3629 refuses: stray
// continuation bytes, truncated sequences, overlong forms, surrogates and
// code points above U+10FFFF.
Utf8Char DecodeUtf8(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return {b0, 1};
  size_t length;
  uint32_t cp;
  uint32_t min_cp;
  if ((b0 & 0xE0) == 0xC0) {
    length = 2, cp = b0 & 0x1F, min_cp = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    length = 3, cp = b0 & 0x0F, min_cp = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    length = 4, cp = b0 & 0x07, min_cp = 0x10000;
  } else {
    return {};
  }
  if (s.size() - i < length) return {};
  for (size_t k = 1; k < length; ++k) {
    const uint8_t b = byte(i + k);
    if ((b & 0xC0) != 0x80) return {};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {};
  return {cp, length};
}

// C0 controls (NUL included), DEL and the C1 controls U+0080..U+009F.
bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

// Checks that `s` is valid UTF-8, and without control characters unless
// allowed. On failure returns the reason, naming the byte offset; "" when `s`
// is fine.
std::string TextProblem(std::string_view s, bool allow_control = false) {
  for (size_t i = 0; i < s.size();) {
    const Utf8Char c = DecodeUtf8(s, i);
    if (c.length == 0) return absl::StrCat("invalid UTF-8 at byte ", i);
    if (!allow_control && IsControl(c.code_point)) {
      return absl::StrFormat("control character U+%04X at byte %d", c.code_point, i);
    }
    i += c.length;
  }
  return "";
}

absl::Status Invalid(std::string_view what, std::string_view value, std::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat(Sv(what), " ", EscapeForMessage(value), ": ", Sv(reason)));
}

// The length checks every name makes before its content is looked at: "<what>
// is empty" (unless `may_be_empty`) or "<what> <value>: is N bytes, more than
// the limit of M".
absl::Status CheckLength(std::string_view what, std::string_view value, size_t max_bytes,
                         bool may_be_empty = false) {
  if (value.empty() && !may_be_empty) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(what), " is empty"));
  }
  if (value.size() > max_bytes) {
    return Invalid(what, value,
                   absl::StrCat("is ", value.size(), " bytes, more than the limit of ", max_bytes));
  }
  return absl::OkStatus();
}

// ".tblogd" compared ASCII-case-insensitively with the start of `name`.
bool StartsWithDaemonPrefix(std::string_view name) {
  constexpr std::string_view kPrefix = ".tblogd";
  if (name.size() < kPrefix.size()) return false;
  for (size_t i = 0; i < kPrefix.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(name[i])) != kPrefix[i]) return false;
  }
  return true;
}

// The first reserved "/"-separated component of `path`, or "" when none is.
std::string_view FirstReservedComponent(std::string_view path, bool daemon_prefix_only) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view component = path.substr(start, end - start);
    if (daemon_prefix_only ? StartsWithDaemonPrefix(component) : IsReservedName(component)) {
      return component;
    }
    start = end + 1;
  }
  return {};
}

}  // namespace

bool IsReservedName(std::string_view component) {
  return StartsWithDaemonPrefix(component) || component == "projector_config.pbtxt";
}

absl::Status CheckNotReserved(std::string_view path, std::string_view what) {
  const std::string_view reserved = FirstReservedComponent(path, /*daemon_prefix_only=*/false);
  if (reserved.empty()) return absl::OkStatus();
  return Invalid(what, path,
                 absl::StrCat("component ", EscapeForMessage(reserved),
                              " is a name tblogd keeps for its own files (\".tblogd*\", "
                              "\"projector_config.pbtxt\")"));
}

absl::Status ValidateTag(std::string_view tag, const Limits& limits) {
  TBLOG_RETURN_IF_ERROR(CheckLength("tag", tag, limits.max_tag_bytes));
  if (std::string problem = TextProblem(tag); !problem.empty()) {
    return Invalid("tag", tag, problem);
  }
  // Most tags have no '.': skip the split on the per-record path.
  const std::string_view reserved = tag.find('.') == std::string_view::npos
                                        ? std::string_view()
                                        : FirstReservedComponent(tag, /*daemon_prefix_only=*/true);
  if (!reserved.empty()) {
    return Invalid("tag", tag,
                   absl::StrCat("part ", EscapeForMessage(reserved),
                                " is a name tblogd keeps for its own files (\".tblogd*\")"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePathComponent(std::string_view name, std::string_view what,
                                   const Limits& limits) {
  TBLOG_RETURN_IF_ERROR(CheckLength(what, name, limits.max_name_bytes));
  if (name == "." || name == "..") {
    return Invalid(what, name, "is not allowed (it would name another directory)");
  }
  if (const size_t slash = name.find_first_of("/\\"); slash != std::string_view::npos) {
    return Invalid(what, name,
                   absl::StrCat("contains a path separator '", Sv(name.substr(slash, 1)),
                                "' at byte ", slash));
  }
  if (std::string problem = TextProblem(name); !problem.empty()) {
    return Invalid(what, name, problem);
  }
  return absl::OkStatus();
}

absl::Status ValidateRelativePath(std::string_view path, std::string_view what,
                                  const Limits& limits) {
  TBLOG_RETURN_IF_ERROR(CheckLength(what, path, limits.max_path_bytes));
  if (path.front() == '/') return Invalid(what, path, "is absolute (starts with '/')");
  size_t start = 0;
  while (true) {
    const size_t end = path.find('/', start);
    const std::string_view component =
        path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (component.empty()) {
      return Invalid(what, path, absl::StrCat("has an empty component at byte ", start));
    }
    if (absl::Status s = ValidatePathComponent(component, "component", limits); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(Sv(what), " ", EscapeForMessage(path),
                                                     ": ", s.message()));
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return absl::OkStatus();
}

absl::Status ValidateLabel(std::string_view text, std::string_view what, size_t max_bytes) {
  TBLOG_RETURN_IF_ERROR(CheckLength(what, text, max_bytes, /*may_be_empty=*/true));
  if (std::string problem = TextProblem(text); !problem.empty()) {
    return Invalid(what, text, problem);
  }
  return absl::OkStatus();
}

absl::Status ValidateFreeText(std::string_view text, std::string_view what, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(what), " is ", text.size(), " bytes, more than the limit of ", max_bytes));
  }
  if (std::string problem = TextProblem(text, /*allow_control=*/true); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(what), ": ", problem));
  }
  return absl::OkStatus();
}

std::string TimestampedRunName(absl::Time t, std::string_view name) {
  std::string run = absl::FormatTime("%Y%m%d-%H%M%S", t, absl::UTCTimeZone());
  if (!name.empty()) absl::StrAppend(&run, "-", Sv(name));
  return run;
}

std::string EscapeForMessage(std::string_view s, size_t max_bytes) {
  std::string out = "\"";
  size_t i = 0;
  while (i < s.size() && i < max_bytes) {
    const Utf8Char c = DecodeUtf8(s, i);
    if (c.length == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<uint8_t>(s[i]));
      ++i;
      continue;
    }
    if (i + c.length > max_bytes) break;
    switch (c.code_point) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c.code_point < 0x80 && IsControl(c.code_point)) {
          absl::StrAppendFormat(&out, "\\x%02x", c.code_point);
        } else if (IsControl(c.code_point)) {
          absl::StrAppendFormat(&out, "\\u%04x", c.code_point);
        } else {
          out.append(s.substr(i, c.length));
        }
    }
    i += c.length;
  }
  out += '"';
  if (i < s.size()) absl::StrAppend(&out, "...(", s.size(), " bytes)");
  return out;
}

}  // namespace tblog::daemon
