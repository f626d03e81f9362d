// eval/svg.h
//
// Minimal SVG charts written by apxserve itself (no plotting service): a horizontal bar chart
// with labelled reference lines, enough to show speedups and meet rates at a glance.
//
// Thread safety: pure functions.
#ifndef APX_EVAL_SVG_H_
#define APX_EVAL_SVG_H_

#include <string>
#include <vector>

namespace apx::eval {

struct Bar {
  std::string label;
  double value = 0;
  std::string note;  // printed after the bar, e.g. "4.4x"
};

struct ReferenceLine {
  double value = 0;
  std::string label;  // e.g. "published max 16.6x"
};

struct BarChartOptions {
  std::string title;
  std::string axis_label;
  double min_value = 0;    // left edge of the axis
  double max_value = -1;   // right edge; < 0: from the data and reference lines
  bool log_scale = false;  // log10 axis (REQUIRES: positive values and min_value > 0)
};

// Returns a complete SVG document.
std::string BarChartSvg(const std::vector<Bar>& bars, const std::vector<ReferenceLine>& lines,
                        const BarChartOptions& options);

// A series of (x, y) points drawn as markers joined by a line, each point optionally labelled.
struct Point {
  double x = 0, y = 0;
  std::string label;
};
struct Series {
  std::string name;  // legend entry
  std::vector<Point> points;
  bool line = true;  // join the points in order
};

struct ScatterOptions {
  std::string title;
  std::string x_label, y_label;
  bool log_x = false;  // log10 x axis (REQUIRES: positive x values)
};

// Returns a complete SVG document: one colour per series, a legend, ticked axes. Axis ranges
// come from the data (with a margin).
std::string ScatterSvg(const std::vector<Series>& series, const ScatterOptions& options);

}  // namespace apx::eval

#endif  // APX_EVAL_SVG_H_
