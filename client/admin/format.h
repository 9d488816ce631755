// Presentation helpers of wxpctl's read commands, free of any RPC so they can be tested on
// their own: aligned tables, unicode sparklines, durations, CSV and a self-contained SVG
// line chart.
#ifndef WXP_CLIENT_ADMIN_FORMAT_H_
#define WXP_CLIENT_ADMIN_FORMAT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace wxp::admin {

// Columns of text separated by two spaces, each as wide as its widest cell (in terminal
// columns, so sparklines and other UTF-8 text line up), no trailing blanks, one row per
// line. Rows shorter than the header are padded with empty cells.
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// Terminal columns of UTF-8 text: one per code point (wxpctl prints no wide characters).
size_t DisplayWidth(absl::string_view text);

// The values as block characters "▁▂▃▄▅▆▇█", lowest to highest of the series; a flat
// series is all "▁", a non-finite value a blank. Longer series are resampled evenly to
// `max_width` characters, keeping the first and the last value.
std::string Sparkline(const std::vector<double>& values, size_t max_width = 48);

// A utility for people: 6 significant digits, "-" for NaN.
std::string FormatNumber(double value);

// A coefficient vector for people: "[0.5, -0.125, 1]", each entry to 4 significant digits
// ("0" for anything under 5e-5 in magnitude, so rounding noise does not read as a value).
// More than `max_shown` entries show the first `max_shown` and then ", … (N values)]".
std::string FormatCoefficients(const std::vector<float>& values, size_t max_shown = 8);

// "42s", "3m07s", "5h02m", "2d03h"; "-" for an infinite duration. Negative durations
// (clock skew) print as "0s".
std::string FormatAge(absl::Duration age);

// RFC 3339 in UTC to the second, "-" for absl::InfinitePast() (an unset timestamp).
std::string FormatUtcTime(absl::Time t);

// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
std::string CsvField(absl::string_view field);

struct ChartSeries {
  std::string name;
  std::string color;                              // any SVG colour, e.g. "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite points are skipped
  bool dashed = false;
};

// A vertical line across the plot at x (an event, e.g. a weight change), labelled at its top.
struct ChartMarker {
  double x = 0;
  std::string label;
};

// A standalone SVG document (no scripts, fonts or external references): a line chart of
// the series with a title, labelled axes with ticks, a legend, and the markers (the x axis
// covers them).
std::string RenderSvgLineChart(const std::string& title, const std::string& x_label,
                               const std::string& y_label, const std::vector<ChartSeries>& series,
                               const std::vector<ChartMarker>& markers = {});

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_FORMAT_H_
