// RFC 3339 parsing: a table of valid timestamps with their epoch microseconds (computed
// independently with Python's datetime), and a table of invalid ones with the message expected.
#include "schema/validate.h"
#include "tests/testing/testing.h"

namespace rosetta {
namespace {

struct Valid {
  const char* text;
  int64_t micros;
};

TEST(ParseTimestampMicrosTest, ValidTable) {
  const Valid cases[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:00.000001Z", 1},
      {"1970-01-01T00:00:01Z", 1000000},
      {"1969-12-31T23:59:59Z", -1000000},
      {"1969-12-31T23:59:59.5Z", -500000},
      {"2025-08-09T10:00:00Z", 1754733600000000},
      {"2025-08-09t10:00:00z", 1754733600000000},  // lower-case T and Z are allowed.
      {"2025-08-09T10:00:00.5Z", 1754733600500000},
      {"2025-08-09T12:00:00.5+02:00", 1754733600500000},
      {"2025-08-09T10:00:00+00:00", 1754733600000000},
      {"2025-08-09T10:00:00-00:00", 1754733600000000},
      {"2025-08-09T10:00:00-05:30", 1754753400000000},
      {"2025-08-09T00:30:00+01:00", 1754695800000000},  // crosses midnight backwards.
      {"2025-08-09T10:00:00.123456Z", 1754733600123456},
      {"2025-08-09T10:00:00.123456789Z", 1754733600123456},  // truncated past microseconds.
      {"2000-02-29T00:00:00Z", 951782400000000},             // divisible by 400: leap.
      {"2024-02-29T23:59:59Z", 1709251199000000},
      {"2016-12-31T23:59:60Z", 1483228800000000},  // leap second = next minute's :00.
      {"9999-12-31T23:59:59.999999Z", 253402300799999999},
      {"0001-01-01T00:00:00Z", -62135596800000000},
      {"0000-01-01T00:00:00Z", -62167219200000000},     // year 0 is a leap year (366 days).
      {"2025-12-31T23:59:59+23:59", 1767139259000000},  // = 2025-12-31T00:00:59Z.
  };
  for (const Valid& c : cases) {
    SCOPED_TRACE(c.text);
    ASSERT_OK_AND_ASSIGN(int64_t got, ParseTimestampMicros(c.text));
    EXPECT_EQ(got, c.micros);
  }
}

TEST(ParseTimestampMicrosTest, OrderingMatchesTime) {
  // Comparing parsed values is how filters compare collected_at: equal instants written with
  // different offsets compare equal, and a later instant is larger.
  ASSERT_OK_AND_ASSIGN(int64_t a, ParseTimestampMicros("2025-01-01T00:00:00Z"));
  ASSERT_OK_AND_ASSIGN(int64_t b, ParseTimestampMicros("2025-01-01T01:00:00+01:00"));
  ASSERT_OK_AND_ASSIGN(int64_t c, ParseTimestampMicros("2024-12-31T23:59:59.999999Z"));
  EXPECT_EQ(a, b);
  EXPECT_LT(c, a);
}

struct Invalid {
  const char* text;
  const char* message;
};

TEST(ParseTimestampMicrosTest, InvalidTable) {
  const Invalid cases[] = {
      {"", "\"\" is not an RFC 3339 timestamp: expected YYYY-MM-DDThh:mm:ss"},
      {"garbage", "\"garbage\" is not an RFC 3339 timestamp: expected YYYY-MM-DDThh:mm:ss"},
      {"2025-08-09", "expected YYYY-MM-DDThh:mm:ss"},
      {"2025-8-09T10:00:00Z", "expected YYYY-MM-DDThh:mm:ss"},
      {"2025-08-09 10:00:00Z", "expected YYYY-MM-DDThh:mm:ss"},
      {"25-08-09T10:00:00Z", "expected YYYY-MM-DDThh:mm:ss"},
      {"2025-08-09T10:00Z", "expected YYYY-MM-DDThh:mm:ss"},
      {"2025-08-09T10:00:00", "missing time zone"},
      {"2025-08-09T10:00:00 Z", "missing time zone"},
      {"2025-08-09T10:00:00.Z", "expected digits after the decimal point"},
      {"2025-08-09T10:00:00ZZ", "unexpected characters after the time zone"},
      {"2025-08-09T10:00:00+02:00x", "unexpected characters after the time zone"},
      {"2025-08-09T10:00:00+0200", "malformed time zone offset"},
      {"2025-08-09T10:00:00+2:00", "malformed time zone offset"},
      {"2025-08-09T10:00:00+24:00", "offset hour 24 is out of range 00..23"},
      {"2025-08-09T10:00:00+05:60", "offset minute 60 is out of range 00..59"},
      {"2025-00-09T10:00:00Z", "month 00 is out of range 01..12"},
      {"2025-13-09T10:00:00Z", "month 13 is out of range 01..12"},
      {"2025-08-00T10:00:00Z", "day 00 is out of range for 2025-08"},
      {"2025-08-32T10:00:00Z", "day 32 is out of range for 2025-08"},
      {"2025-04-31T10:00:00Z", "day 31 is out of range for 2025-04"},
      {"2025-02-29T00:00:00Z",
       "\"2025-02-29T00:00:00Z\" is not an RFC 3339 timestamp: day 29 is out "
       "of range for 2025-02"},
      {"1900-02-29T00:00:00Z", "day 29 is out of range for 1900-02"},  // century, not /400.
      {"2024-02-30T00:00:00Z", "day 30 is out of range for 2024-02"},
      {"2025-08-09T24:00:00Z", "hour 24 is out of range 00..23"},
      {"2025-08-09T10:60:00Z", "minute 60 is out of range 00..59"},
      {"2025-08-09T10:00:61Z", "second 61 is out of range 00..60"},
      {"\xEF\xBC\x92\xEF\xBC\x90\xEF\xBC\x92\xEF\xBC\x95-08-09T10:00:00Z",  // full-width digits
       "expected YYYY-MM-DDThh:mm:ss"},
      {"2025-08-09T10:00:00.0000000000000000000000000000000000000000000000000001Z",
       "longer than 64 bytes"},
      {"-2025-08-09T10:00:00Z", "expected YYYY-MM-DDThh:mm:ss"},
  };
  for (const Invalid& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_STATUS(ParseTimestampMicros(c.text), absl::StatusCode::kInvalidArgument, c.message);
  }
}

TEST(ParseTimestampMicrosTest, MessageQuotesHostileInput) {
  // Control characters in the value are escaped in the message, never copied raw.
  absl::StatusOr<int64_t> r = ParseTimestampMicros("2025\n\x1b[31m");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::HasSubstr("\"2025\\u000A\\u001B[31m\""));
}

}  // namespace
}  // namespace rosetta
