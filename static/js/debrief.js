// The class-session debrief page (templates/classroom/debrief.html).
//
// The charts are <img> elements of the server's SVG endpoints (their "Download SVG" links are
// plain links with download=1). "Download PNG" draws the chart's SVG on a canvas at twice its
// size and saves it, as the replay page does: each button carries the chart's URL in
// data-png-chart and the file name in data-png-filename; its status line is the
// [data-png-status] beside it.

import { h, setText } from "./dom.js";

/** PNG pixels per SVG pixel. */
const SCALE = 2;

async function savePng(button) {
  const status = button.parentElement.querySelector("[data-png-status]");
  if (status) setText(status, "Drawing…");
  button.disabled = true;
  try {
    const image = new Image();
    image.src = button.dataset.pngChart;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth * SCALE;
    canvas.height = image.naturalHeight * SCALE;
    const context = canvas.getContext("2d");
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("The browser could not make a PNG."))), "image/png"),
    );
    const link = h("a", { href: URL.createObjectURL(blob), download: button.dataset.pngFilename || "chart.png" });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
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
