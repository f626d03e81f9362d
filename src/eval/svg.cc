#include "eval/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace apx::eval {
namespace {

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string BarChartSvg(const std::vector<Bar>& bars, const std::vector<ReferenceLine>& lines,
                        const BarChartOptions& options) {
  constexpr double kLeft = 170, kRight = 110, kTop = 66, kRow = 28, kBottom = 50, kWidth = 800;
  const double plot_w = kWidth - kLeft - kRight;
  const double height = kTop + kRow * static_cast<double>(bars.size()) + kBottom;
  double lo = options.min_value, hi = options.max_value;
  if (hi < 0) {
    hi = lo;
    for (const Bar& b : bars) hi = std::max(hi, b.value);
    for (const ReferenceLine& l : lines) hi = std::max(hi, l.value);
    hi *= options.log_scale ? 1.5 : 1.1;
  }
  if (!(hi > lo)) hi = lo + 1;
  auto x_of = [&](double v) {
    double f;
    if (options.log_scale) {
      f = (std::log10(std::max(v, lo)) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
    } else {
      f = (v - lo) / (hi - lo);
    }
    return kLeft + plot_w * std::clamp(f, 0.0, 1.0);
  };
  std::string svg;
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"13\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"%.0f\" y=\"24\" font-size=\"16\" font-weight=\"bold\">%s</text>\n",
                kWidth, height, 12.0, Escape(options.title).c_str());
  svg += buf;
  const double axis_y = kTop + kRow * static_cast<double>(bars.size()) + 6;
  for (size_t i = 0; i < bars.size(); ++i) {
    const double y = kTop + kRow * static_cast<double>(i);
    const double x1 = x_of(bars[i].value);
    std::snprintf(buf, sizeof(buf),
                  "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n"
                  "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"#3b75af\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                  kLeft - 8, y + kRow * 0.62, Escape(bars[i].label).c_str(), kLeft, y + 4,
                  std::max(1.0, x1 - kLeft), kRow - 8, x1 + 6, y + kRow * 0.62,
                  Escape(bars[i].note).c_str());
    svg += buf;
  }
  for (const ReferenceLine& l : lines) {
    const double x = x_of(l.value);
    std::snprintf(buf, sizeof(buf),
                  "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\" "
                  "stroke-dasharray=\"5,4\"/>\n"
                  "<text x=\"%.1f\" y=\"%.0f\" fill=\"#c0392b\" font-size=\"11\" "
                  "text-anchor=\"middle\">%s</text>\n",
                  x, kTop - 8, x, axis_y, x, kTop - 12, Escape(l.label).c_str());
    svg += buf;
  }
  std::snprintf(buf, sizeof(buf),
                "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"black\"/>\n"
                "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                kLeft, axis_y, kLeft + plot_w, axis_y, kLeft + plot_w / 2, axis_y + 36,
                Escape(options.axis_label).c_str());
  svg += buf;
  // Axis ticks: 5 evenly spaced (linear) or the powers of ten and their doubles (log).
  std::vector<double> ticks;
  if (options.log_scale) {
    for (double p = std::pow(10, std::floor(std::log10(lo))); p <= hi; p *= 10) {
      for (double m : {1.0, 2.0, 5.0}) {
        if (p * m >= lo && p * m <= hi) ticks.push_back(p * m);
      }
    }
  } else {
    for (int i = 0; i <= 5; ++i) ticks.push_back(lo + (hi - lo) * i / 5.0);
  }
  for (double t : ticks) {
    std::snprintf(buf, sizeof(buf),
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%g</text>\n",
                  x_of(t), axis_y, x_of(t), axis_y + 5, x_of(t), axis_y + 18, t);
    svg += buf;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace apx::eval
