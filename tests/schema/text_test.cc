#include "schema/text.h"

#include "schema/types.h"
#include "tests/testing/testing.h"

namespace rosetta {
namespace {

TEST(QuoteTest, EscapesAndTruncates) {
  EXPECT_EQ(Quote("p7"), "\"p7\"");
  EXPECT_EQ(Quote(""), "\"\"");
  EXPECT_EQ(Quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Quote("tab\there"), "\"tab\\u0009here\"");
  EXPECT_EQ(Quote("bad\xFF"), "\"bad\\xFF\"");
  EXPECT_EQ(Quote("caf\xC3\xA9"), "\"caf\xC3\xA9\"");  // valid UTF-8 is kept as is.
  EXPECT_EQ(Quote(std::string("nul\0x", 5)), "\"nul\\u0000x\"");
  const std::string long_id(100, 'x');
  EXPECT_EQ(Quote(long_id), "\"" + std::string(64, 'x') + "\"... (100 bytes)");
}

TEST(IsValidNameTest, Rule) {
  EXPECT_TRUE(IsValidName("a"));
  EXPECT_TRUE(IsValidName("_"));
  EXPECT_TRUE(IsValidName("image_v2.1-b"));
  EXPECT_TRUE(IsValidName(std::string(128, 'z')));
  EXPECT_FALSE(IsValidName(std::string(129, 'z')));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("1a"));
  EXPECT_FALSE(IsValidName("-a"));
  EXPECT_FALSE(IsValidName("a b"));
  EXPECT_FALSE(IsValidName("a\xC3\xA9"));
}

TEST(CheckTextTest, Utf8AndControls) {
  EXPECT_EQ(CheckText("plain", false), std::nullopt);
  EXPECT_EQ(CheckText("\xF0\x9F\x98\x80 emoji", false), std::nullopt);         // U+1F600.
  EXPECT_EQ(CheckText("\xF4\x8F\xBF\xBF", false), std::nullopt);               // U+10FFFF.
  EXPECT_EQ(CheckText("\xF4\x90\x80\x80", false), "invalid UTF-8 at byte 0");  // > U+10FFFF.
  EXPECT_EQ(CheckText("ab\xE2\x82", false), "invalid UTF-8 at byte 2");        // truncated.
  EXPECT_EQ(CheckText("\x80", false), "invalid UTF-8 at byte 0");              // lone continuation.
  EXPECT_EQ(CheckText("\xE0\x80\xAF", false), "invalid UTF-8 at byte 0");      // overlong.
  EXPECT_EQ(CheckText("a\nb", false), "control character U+000A at byte 1");
  EXPECT_EQ(CheckText("a\nb", true), std::nullopt);
  EXPECT_EQ(CheckText("x\x7F", false), "control character U+007F at byte 1");
}

TEST(TypesTest, NamesRoundTrip) {
  for (Metric m : {Metric::kCosine, Metric::kIp, Metric::kL2}) {
    EXPECT_EQ(MetricFromName(MetricName(m)), m);
  }
  for (AttributeType t : {AttributeType::kString, AttributeType::kInt, AttributeType::kFloat,
                          AttributeType::kBool, AttributeType::kStringList}) {
    EXPECT_EQ(AttributeTypeFromName(AttributeTypeName(t)), t);
  }
  for (Fusion f : {Fusion::kWeighted, Fusion::kRrf, Fusion::kMax}) {
    EXPECT_EQ(FusionFromName(FusionName(f)), f);
  }
  for (Normalize n :
       {Normalize::kNone, Normalize::kMinMax, Normalize::kZScore, Normalize::kCalibrated}) {
    EXPECT_EQ(NormalizeFromName(NormalizeName(n)), n);
  }
  for (Missing m : {Missing::kRenormalize, Missing::kZero, Missing::kRequire}) {
    EXPECT_EQ(MissingFromName(MissingName(m)), m);
  }
  for (FilterOp op : {FilterOp::kEq, FilterOp::kNe, FilterOp::kIn, FilterOp::kGt, FilterOp::kGte,
                      FilterOp::kLt, FilterOp::kLte}) {
    EXPECT_EQ(FilterOpFromName(FilterOpName(op)), op);
  }
  EXPECT_STREQ(MetricName(Metric::kL2), "l2");
  EXPECT_STREQ(AttributeTypeName(AttributeType::kStringList), "string[]");
  EXPECT_STREQ(NormalizeName(Normalize::kZScore), "zscore");
  EXPECT_STREQ(MetricName(static_cast<Metric>(99)), "unknown");
  EXPECT_EQ(MetricFromName("Cosine"), std::nullopt);  // case-sensitive.
  EXPECT_EQ(FusionFromName(""), std::nullopt);
}

}  // namespace
}  // namespace rosetta
