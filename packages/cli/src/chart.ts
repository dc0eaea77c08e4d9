/** Small terminal charts for usage: an inline bar per row, and a sparkline of a whole series. */

const BLOCKS = "▁▂▃▄▅▆▇█";

/** A bar of `width` cells at most, proportional to `value / max` (eighths of a cell). */
export function bar(value: number, max: number, width = 20): string {
  if (max <= 0 || value <= 0) return "";
  const eighths = Math.max(1, Math.round((value / max) * width * 8));
  const full = Math.floor(eighths / 8);
  const rest = eighths % 8;
  return "█".repeat(full) + (rest > 0 ? "▏▎▍▌▋▊▉"[rest - 1] : "");
}

/**
 * One line of block characters, one per value; longer series are summed into `width` columns
 * (so every call is still counted).
 */
export function sparkline(values: readonly number[], width = 60): string {
  if (values.length === 0) return "";
  const columns = Math.max(1, Math.min(width, values.length));
  const sums = new Array<number>(columns).fill(0);
  values.forEach((value, index) => {
    sums[Math.floor((index * columns) / values.length)]! += value;
  });
  const max = Math.max(...sums);
  return sums
    .map((sum) => (max === 0 || sum === 0 ? " " : BLOCKS[Math.min(7, Math.floor((sum / max) * 7.999))]))
    .join("");
}
