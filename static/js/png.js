// Save a server-made SVG chart as PNG: draw it on a canvas at twice its size, on white, and
// download the result. Used by the replay page and the session debrief.

import { h } from "./dom.js";

/** PNG pixels per SVG pixel. */
const SCALE = 2;

/** Draw the SVG at `url` and save it as `filename`; rejects with an Error the page can show. */
export async function saveChartPng(url, filename) {
  const image = new Image();
  image.src = url;
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
  const link = h("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
