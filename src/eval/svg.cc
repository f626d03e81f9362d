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

// Tick values for [lo, hi]: 1-2-5 steps on a log axis, ~5 round steps on a linear one.
std::vector<double> Ticks(double lo, double hi, bool log) {
  std::vector<double> ticks;
  if (log) {
    for (double p = std::pow(10, std::floor(std::log10(lo))); p <= hi; p *= 10) {
      for (double m : {1.0, 2.0, 5.0}) {
        if (p * m >= lo && p * m <= hi) ticks.push_back(p * m);
      }
    }
    return ticks;
  }
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  }
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);  // no "-0" label
  }
  return ticks;
}

}  // namespace

std::string ScatterSvg(const std::vector<Series>& series, const ScatterOptions& options) {
  constexpr double kLeft = 80, kRight = 230, kTop = 50, kBottom = 60, kWidth = 900, kHeight = 560;
  static const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
                                   "#393b79", "#ad494a", "#637939", "#e7ba52", "#7b4173",
                                   "#3182bd", "#31a354", "#756bb1"};
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const Series& s : series) {
    for (const Point& p : s.points) {
      x_lo = std::min(x_lo, p.x);
      x_hi = std::max(x_hi, p.x);
      y_lo = std::min(y_lo, p.y);
      y_hi = std::max(y_hi, p.y);
    }
  }
  if (!(x_hi >= x_lo)) x_lo = 1, x_hi = 2, y_lo = 0, y_hi = 1;  // no points
  if (options.log_x) {
    x_lo = std::max(x_lo, 1e-9) / 1.3;
    x_hi = std::max(x_hi * 1.3, x_lo * 10);
  } else {
    const double m = std::max(x_hi - x_lo, 1e-9) * 0.05;
    x_lo -= m;
    x_hi += m;
  }
  const double ym = std::max(y_hi - y_lo, 0.02) * 0.08;
  y_lo -= ym;
  y_hi += ym;
  auto x_of = [&](double v) {
    const double f = options.log_x ? (std::log10(v) - std::log10(x_lo)) / (std::log10(x_hi) - std::log10(x_lo))
                                   : (v - x_lo) / (x_hi - x_lo);
    return kLeft + plot_w * std::clamp(f, 0.0, 1.0);
  };
  auto y_of = [&](double v) { return kTop + plot_h * (1 - std::clamp((v - y_lo) / (y_hi - y_lo), 0.0, 1.0)); };
  std::string svg;
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"12\" y=\"24\" font-size=\"16\" font-weight=\"bold\">%s</text>\n"
                "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"black\"/>\n",
                kWidth, kHeight, Escape(options.title).c_str(), kLeft, kTop, plot_w, plot_h);
  svg += buf;
  for (double t : Ticks(x_lo, x_hi, options.log_x)) {
    std::snprintf(buf, sizeof(buf),
                  "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n"
                  "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"11\">%g</text>\n",
                  x_of(t), kTop, x_of(t), kTop + plot_h, x_of(t), kTop + plot_h + 16, t);
    svg += buf;
  }
  for (double t : Ticks(y_lo, y_hi, false)) {
    std::snprintf(buf, sizeof(buf),
                  "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                  "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%g</text>\n",
                  kLeft, y_of(t), kLeft + plot_w, y_of(t), kLeft - 6, y_of(t) + 4, t);
    svg += buf;
  }
  std::snprintf(buf, sizeof(buf),
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n"
                "<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.0f)\">%s</text>\n",
                kLeft + plot_w / 2, kHeight - 18, Escape(options.x_label).c_str(), kTop + plot_h / 2,
                kTop + plot_h / 2, Escape(options.y_label).c_str());
  svg += buf;
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const char* colour = kColours[i % std::size(kColours)];
    if (s.line && s.points.size() > 1) {
      svg += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"1.5\" points=\"";
      for (const Point& p : s.points) {
        std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", x_of(p.x), y_of(p.y));
        svg += buf;
      }
      svg += "\"/>\n";
    }
    for (const Point& p : s.points) {
      std::snprintf(buf, sizeof(buf),
                    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n"
                    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\">%s</text>\n",
                    x_of(p.x), y_of(p.y), colour, x_of(p.x) + 6, y_of(p.y) - 5, colour,
                    Escape(p.label).c_str());
      svg += buf;
    }
    std::snprintf(buf, sizeof(buf),
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n"
                  "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                  kLeft + plot_w + 16, kTop + 18.0 * static_cast<double>(i), colour,
                  kLeft + plot_w + 34, kTop + 18.0 * static_cast<double>(i) + 10, Escape(s.name).c_str());
    svg += buf;
  }
  svg += "</svg>\n";
  return svg;
}

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
    ticks = Ticks(lo, hi, true);
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
