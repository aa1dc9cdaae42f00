// plot: self-contained SVG line plots for learning curves (loss, return, reward, KL, …).
//
//   plot::write_line_plot("runs/x/loss.svg", "arith SFT", "step", "loss",
//                         {{"train", steps, train_loss}, {"validation", val_steps, val_loss}});
//
// Axes with "nice" ticks (1, 2, 5 × 10^k), one coloured polyline per named series, a legend
// and a title; no fonts or scripts beyond plain SVG text, so the file opens in any browser.
// Points that cannot be drawn — NaN, ±inf, or beyond ±kMaxPlotAbs (where the axis range itself
// would overflow to inf) — break a line rather than corrupt the plot, and the plot says how many
// were left out. The file is written atomically (engine/fs.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlft::plot {

struct Series {
  std::string name;       // legend entry
  std::vector<double> x;  // same length as y
  std::vector<double> y;
};

// Coordinates beyond this magnitude are not drawn: the axis span (hi − lo, plus padding) of
// values up to it stays a finite double.
inline constexpr double kMaxPlotAbs = 1e300;

struct PlotOptions {
  int width = 720, height = 420;  // pixels
  bool log_y = false;             // logarithmic y axis (non-positive values are dropped)
};

// The SVG document as text.
std::string line_plot_svg(const std::string& title, const std::string& x_label,
                          const std::string& y_label, const std::vector<Series>& series,
                          const PlotOptions& options = {});

// Writes line_plot_svg(...) to `path` atomically. Mismatched x/y lengths are an rlft::Error
// naming the series.
void write_line_plot(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<Series>& series,
                     const PlotOptions& options = {});

// The points of `series` that line_plot_svg leaves out (non-finite or beyond ±kMaxPlotAbs;
// with log_y also y <= 0).
int64_t count_unplottable(const std::vector<Series>& series, const PlotOptions& options = {});

// Tick positions covering [lo, hi] at a 1/2/5 × 10^k step, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace rlft::plot
