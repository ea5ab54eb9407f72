#include "daemon/names.h"

#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::HasSubstr;

const Limits kLimits;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(ValidateTagTest, AcceptsOrdinaryTags) {
  for (const char* tag : {"loss", "loss/train", "a", "Accuracy (top-1) %", "損失/学習",
                          "emoji 🚀", "_hparams_/experiment", "x.y-z_w"}) {
    EXPECT_TRUE(ValidateTag(tag, kLimits).ok()) << tag;
  }
  EXPECT_TRUE(ValidateTag(std::string(kLimits.max_tag_bytes, 't'), kLimits).ok());
}

TEST(ValidateTagTest, RejectsEmpty) {
  const absl::Status s = ValidateTag("", kLimits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("empty"));
}

TEST(ValidateTagTest, RejectsOverlong) {
  const absl::Status s = ValidateTag(std::string(kLimits.max_tag_bytes + 1, 't'), kLimits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("257 bytes"));
  EXPECT_THAT(Message(s), HasSubstr("256"));
  // The message does not repeat the whole tag.
  EXPECT_LT(Message(s).size(), 200u);
}

TEST(ValidateTagTest, RejectsNulWithOffset) {
  const absl::Status s = ValidateTag(std::string("los\0s", 5), kLimits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("U+0000 at byte 3"));
  EXPECT_THAT(Message(s), HasSubstr("\"los\\x00s\""));
}

TEST(ValidateTagTest, RejectsControlCharacters) {
  for (const std::string& tag : {std::string("a\nb"), std::string("a\tb"), std::string("a\x7f"),
                                 std::string("a\x1b[31m"), std::string("a\xc2\x85")}) {
    const absl::Status s = ValidateTag(tag, kLimits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << tag;
    EXPECT_THAT(Message(s), HasSubstr("control character")) << tag;
    EXPECT_THAT(Message(s), HasSubstr("at byte 1")) << tag;
  }
}

TEST(ValidateTagTest, RejectsInvalidUtf8) {
  const std::string bad[] = {
      "ab\xff",              // never valid
      "ab\x80",              // stray continuation
      "ab\xc3",              // truncated
      "ab\xc0\xaf",          // overlong '/'
      "ab\xed\xa0\x80",      // surrogate
      "ab\xf4\x90\x80\x80",  // above U+10FFFF
  };
  for (const std::string& tag : bad) {
    const absl::Status s = ValidateTag(tag, kLimits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s), HasSubstr("invalid UTF-8 at byte 2"));
  }
}

TEST(ValidatePathComponentTest, AcceptsOrdinaryNames) {
  for (const char* name : {"train", "validation", "lr=0.1,bs=32", "-2", ".v2", "run 1",
                           "résumé", "a..b", "..."}) {
    EXPECT_TRUE(ValidatePathComponent(name, "run name", kLimits).ok()) << name;
  }
}

TEST(ValidatePathComponentTest, RejectsDotsSeparatorsAndEmpty) {
  struct Case {
    std::string name;
    const char* reason;
  };
  const Case cases[] = {
      {"", "empty"},
      {".", "not allowed"},
      {"..", "not allowed"},
      {"a/b", "path separator '/' at byte 1"},
      {"/etc", "path separator '/' at byte 0"},
      {"..\\x", "path separator '\\' at byte 2"},
      {std::string("a\0b", 3), "control character U+0000 at byte 1"},
      {"a\x01", "control character U+0001"},
      {"bad\xfe", "invalid UTF-8 at byte 3"},
      {std::string(256, 'n'), "256 bytes, more than the limit of 255"},
  };
  for (const Case& c : cases) {
    const absl::Status s = ValidatePathComponent(c.name, "sub-run", kLimits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(Message(s), HasSubstr("sub-run")) << c.name;
    EXPECT_THAT(Message(s), HasSubstr(c.reason)) << c.name;
  }
}

TEST(ValidateRelativePathTest, AcceptsNestedPaths) {
  for (const char* path : {"a", "a/b/c", "mnist/20261122-131700-baseline", "eval/top1"}) {
    EXPECT_TRUE(ValidateRelativePath(path, "run_path", kLimits).ok()) << path;
  }
}

TEST(ValidateRelativePathTest, NeverEscapes) {
  struct Case {
    std::string path;
    const char* reason;
  };
  const Case cases[] = {
      {"", "empty"},
      {"/abs/path", "absolute"},
      {"/", "absolute"},
      {"..", "not allowed"},
      {"../x", "not allowed"},
      {"a/../../x", "not allowed"},
      {"a/./b", "not allowed"},
      {"a/..", "not allowed"},
      {"a//b", "empty component at byte 2"},
      {"a/b/", "empty component at byte 4"},
      {"a\\..\\b", "path separator"},
      {std::string("a/b\0c", 5), "control character"},
      {"a/\xff", "invalid UTF-8"},
      {"a/" + std::string(256, 'x'), "more than the limit of 255"},
  };
  for (const Case& c : cases) {
    const absl::Status s = ValidateRelativePath(c.path, "run_path", kLimits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.path;
    EXPECT_THAT(Message(s), HasSubstr("run_path")) << c.path;
    EXPECT_THAT(Message(s), HasSubstr(c.reason)) << c.path;
  }
}

TEST(ValidateRelativePathTest, RejectsOverlongPath) {
  std::string path;
  while (path.size() <= kLimits.max_path_bytes) path += "abcdefgh/";
  path += "x";
  const absl::Status s = ValidateRelativePath(path, "run_path", kLimits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("more than the limit of 1024"));
}

TEST(ValidateRelativePathTest, HonoursCustomLimits) {
  Limits small;
  small.max_path_bytes = 5;
  small.max_name_bytes = 2;
  EXPECT_TRUE(ValidateRelativePath("ab/cd", "p", small).ok());
  EXPECT_FALSE(ValidateRelativePath("abc", "p", small).ok());
  EXPECT_FALSE(ValidateRelativePath("ab/cd/e", "p", small).ok());
}

TEST(ValidateLabelTest, AllowsEmptyAndRefusesControlsAndOverlong) {
  EXPECT_TRUE(ValidateLabel("", "display_name", 8).ok());
  EXPECT_TRUE(ValidateLabel("Loss (train)", "display_name", 64).ok());
  const absl::Status control = ValidateLabel("a\nb", "display_name", 64);
  EXPECT_EQ(control.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(control), HasSubstr("display_name"));
  EXPECT_THAT(Message(control), HasSubstr("control character U+000A at byte 1"));
  EXPECT_THAT(Message(ValidateLabel("123456789", "title", 8)), HasSubstr("9 bytes"));
}

TEST(ValidateFreeTextTest, AllowsNewlinesButNotInvalidUtf8) {
  EXPECT_TRUE(ValidateFreeText("# Title\n\n| a | b |\n\ttab", "markdown", 1024).ok());
  const absl::Status bad = ValidateFreeText("ok\xe2\x82", "markdown", 1024);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(bad), HasSubstr("markdown: invalid UTF-8 at byte 2"));
  EXPECT_THAT(Message(ValidateFreeText("abcd", "description", 3)),
              HasSubstr("description is 4 bytes, more than the limit of 3"));
}

TEST(TimestampedRunNameTest, FormatsInUtc) {
  const absl::Time t = absl::FromUnixSeconds(1795871820);  // 2026-11-28 13:17:00 UTC
  EXPECT_EQ(TimestampedRunName(t, ""), "20261128-131700");
  EXPECT_EQ(TimestampedRunName(t, "baseline"), "20261128-131700-baseline");
  EXPECT_EQ(TimestampedRunName(absl::FromUnixSeconds(0) + absl::Milliseconds(999), "x"),
            "19700101-000000-x");
}

TEST(EscapeForMessageTest, EscapesAndQuotes) {
  EXPECT_EQ(EscapeForMessage("loss"), "\"loss\"");
  EXPECT_EQ(EscapeForMessage("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(EscapeForMessage(std::string("\0\n\t\x7f", 4)), "\"\\x00\\n\\t\\x7f\"");
  EXPECT_EQ(EscapeForMessage("\xff" "a"), "\"\\xffa\"");
  EXPECT_EQ(EscapeForMessage("学"), "\"学\"");
  EXPECT_EQ(EscapeForMessage("\xc2\x85"), "\"\\u0085\"");
}

TEST(EscapeForMessageTest, CutsLongInputAtCharacterBoundary) {
  EXPECT_EQ(EscapeForMessage(std::string(10, 'a'), 4), "\"aaaa\"...(10 bytes)");
  // "é" is two bytes: cutting at 3 bytes keeps "aé" whole, not half of the next one.
  EXPECT_EQ(EscapeForMessage("aéé", 4), "\"aé\"...(5 bytes)");
}

TEST(ReservedNamesTest, DaemonDirectoryAndProjectorConfigAreReserved) {
  for (const char* name : {".tblogd", ".TBLOGD", ".tblogd-2", ".tblogd.daemon1",
                           "projector_config.pbtxt"}) {
    EXPECT_TRUE(IsReservedName(name)) << name;
  }
  for (const char* name : {"tblogd", "x.tblogd", ".tblog", "", ".", "projector_config.pbtxt.bak",
                           "events.out.tfevents.1.host"}) {
    EXPECT_FALSE(IsReservedName(name)) << name;
  }
}

TEST(ReservedNamesTest, CheckNotReservedNamesThePathAndTheComponent) {
  EXPECT_TRUE(CheckNotReserved("runs/a/train", "run_path").ok());
  for (const char* path : {".tblogd", "run/.tblogd", "run/.tblogd/checkpoint", "a/.TBlogd/b",
                           "a/projector_config.pbtxt"}) {
    const absl::Status s = CheckNotReserved(path, "run_path");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_THAT(Message(s), HasSubstr("run_path \"")) << path;
    EXPECT_THAT(Message(s), HasSubstr("keeps for its own files")) << path;
  }
  EXPECT_THAT(Message(CheckNotReserved("run/.tblogd/checkpoint", "sub-run")),
              HasSubstr("sub-run \"run/.tblogd/checkpoint\": component \".tblogd\""));
}

TEST(ReservedNamesTest, TagsMayNotNameTheDaemonDirectory) {
  for (const char* tag : {".tblogd", "a/.tblogd", ".tblogd/checkpoint", ".TBLOGD-x/y"}) {
    const absl::Status s = ValidateTag(tag, kLimits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << tag;
    EXPECT_THAT(Message(s), HasSubstr("keeps for its own files")) << tag;
  }
  // Only the daemon's directory: a tag is not a file name otherwise.
  for (const char* tag : {"projector_config.pbtxt", "a.tblogd", "tblogd/loss", "x/.y"}) {
    EXPECT_TRUE(ValidateTag(tag, kLimits).ok()) << tag;
  }
}

}  // namespace
}  // namespace tblog::daemon
