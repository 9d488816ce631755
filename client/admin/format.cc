#include "client/admin/format.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace wxp::admin {

size_t DisplayWidth(absl::string_view text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = DisplayWidth(header[c]);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], DisplayWidth(row[c]));
    }
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      absl::StrAppend(&line, cell);
      if (c + 1 < width.size()) line.append(width[c] - DisplayWidth(cell) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  };
  emit(header);
  for (const auto& row : rows) emit(row);
  return out;
}

std::string Sparkline(const std::vector<double>& values, size_t max_width) {
  static const char* const kBlocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  if (values.empty() || max_width == 0) return "";
  std::vector<double> v = values;
  if (v.size() > max_width) {
    std::vector<double> r(max_width);
    for (size_t i = 0; i < max_width; ++i) {
      const size_t j =
          max_width == 1
              ? v.size() - 1
              : static_cast<size_t>(std::llround(static_cast<double>(i) * (v.size() - 1) /
                                                 static_cast<double>(max_width - 1)));
      r[i] = v[j];
    }
    v = std::move(r);
  }
  double lo = INFINITY, hi = -INFINITY;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  std::string out;
  for (double x : v) {
    if (!std::isfinite(x)) {
      out += " ";
    } else if (hi <= lo) {
      out += kBlocks[0];
    } else {
      const int level = static_cast<int>(std::floor((x - lo) / (hi - lo) * 7.0 + 0.5));
      out += kBlocks[std::clamp(level, 0, 7)];
    }
  }
  return out;
}

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "-";
  return absl::StrFormat("%.6g", value);
}

std::string FormatCoefficients(const std::vector<float>& values, size_t max_shown) {
  std::string out = "[";
  for (size_t i = 0; i < values.size() && i < max_shown; ++i) {
    const double v = values[i];
    absl::StrAppend(&out, i ? ", " : "",
                    std::abs(v) < 5e-5 ? std::string("0") : absl::StrFormat("%.4g", v));
  }
  if (values.size() > max_shown) {
    absl::StrAppend(&out, max_shown ? ", " : "", "… (", values.size(), " values)");
  }
  return out + "]";
}

std::string FormatAge(absl::Duration age) {
  if (age == absl::InfiniteDuration() || age == -absl::InfiniteDuration()) return "-";
  const int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(age));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string FormatUtcTime(absl::Time t) {
  if (t == absl::InfinitePast()) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string CsvField(absl::string_view field) {
  if (field.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(field);
  return absl::StrCat("\"", absl::StrReplaceAll(field, {{"\"", "\"\""}}), "\"");
}

namespace {

std::string XmlEscape(absl::string_view s) {
  return absl::StrReplaceAll(
      s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}, {"'", "&apos;"}});
}

// Tick positions covering [lo, hi] at a 1-2-5 step of at least `min_step`, about `target`
// of them.
std::vector<double> NiceTicks(double lo, double hi, int target, double min_step = 0) {
  const double raw = std::max((hi - lo) / std::max(1, target), min_step);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

// Widens a degenerate or empty range so that scales never divide by zero.
void Pad(double* lo, double* hi) {
  if (!std::isfinite(*lo) || !std::isfinite(*hi)) {
    *lo = 0;
    *hi = 1;
  } else if (*hi - *lo < 1e-12) {
    const double d = std::max(std::abs(*lo) * 0.05, 0.5);
    *lo -= d;
    *hi += d;
  }
}

}  // namespace

std::string RenderSvgLineChart(const std::string& title, const std::string& x_label,
                               const std::string& y_label, const std::vector<ChartSeries>& series,
                               const std::vector<ChartMarker>& markers) {
  constexpr double kW = 720, kH = 420, kLeft = 80, kRight = 170, kTop = 40, kBottom = 60;
  const double plot_w = kW - kLeft - kRight, plot_h = kH - kTop - kBottom;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const ChartSeries& s : series) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  }
  for (const ChartMarker& m : markers) {
    if (!std::isfinite(m.x)) continue;
    x_lo = std::min(x_lo, m.x);
    x_hi = std::max(x_hi, m.x);
  }
  Pad(&x_lo, &x_hi);
  Pad(&y_lo, &y_hi);
  const double y_margin = (y_hi - y_lo) * 0.05;
  y_lo -= y_margin;
  y_hi += y_margin;
  auto sx = [&](double x) { return kLeft + (x - x_lo) / (x_hi - x_lo) * plot_w; };
  auto sy = [&](double y) { return kTop + (y_hi - y) / (y_hi - y_lo) * plot_h; };

  std::string svg = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">%s</text>\n",
      kW, kH, kW, kH, kLeft + plot_w / 2, XmlEscape(title));
  // Grid and ticks first, so the curves are drawn over them.
  for (double t : NiceTicks(y_lo, y_hi, 6)) {
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"#e0e0e0\"/>\n"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                          kLeft, sy(t), kLeft + plot_w, sy(t), kLeft - 6, sy(t) + 4,
                          XmlEscape(absl::StrFormat("%.4g", t)));
  }
  // Iterations are whole numbers: no "2.5" tick between them.
  bool integral_x = true;
  for (const ChartSeries& s : series) {
    for (const auto& [x, y] : s.points) integral_x = integral_x && x == std::floor(x);
  }
  std::vector<double> x_ticks = NiceTicks(x_lo, x_hi, 8, integral_x ? 1.0 : 0.0);
  for (double t : x_ticks) {
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"black\"/>\n"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                          sx(t), kTop + plot_h, sx(t), kTop + plot_h + 5, sx(t), kTop + plot_h + 18,
                          XmlEscape(absl::StrFormat("%.4g", t)));
  }
  absl::StrAppendFormat(
      &svg,
      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n"
      "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.1f)\">"
      "%s</text>\n",
      kLeft, kTop, kLeft, kTop + plot_h, kLeft, kTop + plot_h, kLeft + plot_w, kTop + plot_h,
      kLeft + plot_w / 2, kH - 16, XmlEscape(x_label), kTop + plot_h / 2, kTop + plot_h / 2,
      XmlEscape(y_label));
  for (const ChartMarker& m : markers) {
    if (!std::isfinite(m.x)) continue;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"#555555\" stroke-dasharray=\"2,3\"/>\n"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                          "font-size=\"11\">%s</text>\n",
                          sx(m.x), kTop, sx(m.x), kTop + plot_h, sx(m.x), kTop - 4,
                          XmlEscape(m.label));
  }
  for (size_t i = 0; i < series.size(); ++i) {
    const ChartSeries& s = series[i];
    const std::string dash = s.dashed ? " stroke-dasharray=\"6,4\"" : "";
    std::string points;
    int n = 0;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      absl::StrAppendFormat(&points, "%s%.1f,%.1f", n++ ? " " : "", sx(x), sy(y));
    }
    if (n == 1) {
      absl::StrAppendFormat(&svg, "<circle cx=\"%s\" r=\"3\" fill=\"%s\"/>\n",
                            absl::StrReplaceAll(points, {{",", "\" cy=\""}}), XmlEscape(s.color));
    } else if (n > 1) {
      absl::StrAppendFormat(&svg,
                            "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s "
                            "points=\"%s\"/>\n",
                            XmlEscape(s.color), dash, points);
    }
    const double ly = kTop + 10 + 20 * i;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                          "stroke-width=\"2\"%s/>\n"
                          "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                          kLeft + plot_w + 16, ly, kLeft + plot_w + 40, ly, XmlEscape(s.color),
                          dash, kLeft + plot_w + 46, ly + 4, XmlEscape(s.name));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace wxp::admin
