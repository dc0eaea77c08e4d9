/** The usage chart as inline SVG (allowed by the CSP), from the layout in chart-data.ts. */
import { chartLayout } from "./chart-data.js";
import { svg } from "./dom.js";
import type { Usage } from "./types.js";

export function chart(
  data: Pick<Usage, "points" | "granularity">,
  captionId: string,
  width: number,
): SVGSVGElement {
  const layout = chartLayout(data, width);
  const root = svg("svg", {
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    role: "img",
    "aria-labelledby": captionId,
    focusable: "false",
  });
  for (const line of layout.gridLines) {
    root.appendChild(svg("line", { x1: line.x1, x2: line.x2, y1: line.y, y2: line.y, class: "chart-axis" }));
    root.appendChild(
      svg("text", { x: line.x1 - 6, y: line.y + 4, "text-anchor": "end", class: "chart-label" }, [
        line.label,
      ]),
    );
  }
  for (const bar of layout.bars) {
    // A <title> is the bar's tooltip, and what a screen reader reads for it.
    const attrs = { x: bar.x, y: bar.y, width: bar.width, height: bar.height, class: bar.kind };
    root.appendChild(svg("rect", attrs, [svg("title", {}, [bar.label])]));
  }
  for (const label of layout.timeLabels) {
    const attrs = { x: label.x, y: label.y, "text-anchor": label.anchor, class: "chart-label" };
    root.appendChild(svg("text", attrs, [label.text]));
  }
  return root;
}
