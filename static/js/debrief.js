// The class-session debrief page (templates/classroom/debrief.html).
//
// The charts are <img> elements of the server's SVG endpoints (their "Download SVG" links are
// plain links with download=1). "Download PNG" draws the chart's SVG on a canvas at twice its
// size and saves it, as the replay page does: each button carries the chart's URL in
// data-png-chart and the file name in data-png-filename; its status line is the
// [data-png-status] beside it.

import { setText } from "./dom.js";
import { saveChartPng } from "./png.js";

async function savePng(button) {
  const status = button.parentElement.querySelector("[data-png-status]");
  if (status) setText(status, "Drawing…");
  button.disabled = true;
  try {
    await saveChartPng(button.dataset.pngChart, button.dataset.pngFilename || "chart.png");
    if (status) setText(status, "");
  } catch (error) {
    if (status) setText(status, (error && error.message) || "Could not make the PNG.");
  } finally {
    button.disabled = false;
  }
}

function main() {
  const root = document.getElementById("debrief");
  if (!root) return;
  for (const button of root.querySelectorAll("button[data-png-chart]")) {
    button.addEventListener("click", () => savePng(button));
  }
  root.dataset.ready = "true";
}

main();
