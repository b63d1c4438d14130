// The waiting room of a class session: asks every few seconds whether the student has a seat,
// and goes to the table as soon as they do. Plain HTTP polling survives flaky wifi and sleep.

const root = document.getElementById("waiting");
const statusLine = root.querySelector("[data-testid=waiting-status]");
const url = root.dataset.statusUrl;
const EVERY_MS = 2500;

async function check() {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (response.ok) {
      const status = await response.json();
      if (status.seated && status.play_url) {
        statusLine.textContent = "You have a seat. Taking you to the table…";
        window.location.assign(status.play_url);
        return;
      }
      statusLine.textContent = "Waiting for your instructor to give you a seat…";
    } else {
      statusLine.textContent = "Your place in this session was not found. Join again from the front page.";
    }
  } catch {
    statusLine.textContent = "Connection lost; trying again…";
  }
  setTimeout(check, EVERY_MS);
}

check();
