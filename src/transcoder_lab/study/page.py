"""The rating app's single page (HTML, CSS and JavaScript, no external resources).

The page asks for a rater name (remembered in the browser's localStorage), loads that rater's
saved ratings from the server, opens the first unrated card and shows one card at a time.
Buttons and keys: y / m / n rate the card (saved at once, then the next card opens), c ticks
"context-free", the left and right arrows (or Back / Next) move between cards, Escape leaves
the note field. Changing the tick or the note of a rated card saves it again at once.
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Blind feature study</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px auto;max-width:1000px;color:#222;padding:0 12px}
header{display:flex;justify-content:space-between;align-items:baseline;gap:12px;flex-wrap:wrap}
#instructions{font-size:13px;color:#444;max-width:900px}
#controls{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:10px 0}
button{font-size:15px;padding:6px 14px;border:1px solid #888;border-radius:5px;background:#f4f4f4;
cursor:pointer}
button[aria-pressed="true"]{background:#333;color:#fff;border-color:#333}
#yes[aria-pressed="true"]{background:#1d7a1d}#maybe[aria-pressed="true"]{background:#a87a00}
#no[aria-pressed="true"]{background:#b22222}
#note{width:100%;max-width:900px;height:3em;font-size:13px}
#status{font-size:13px;color:#555;min-height:1.2em}
#status.error{color:#b22222;font-weight:bold}
.keys{font-size:12px;color:#666}
[hidden]{display:none !important}
</style></head>
<body>
<header><h2 id="title">Blind feature study</h2><span id="progress" aria-live="polite"></span></header>
<p id="instructions"></p>
<form id="rater-form">
  <label>Rater name <input id="rater-name" autocomplete="off" maxlength="40" required></label>
  <button id="start" type="submit">Start rating</button>
</form>
<div id="status" role="status"></div>
<main id="app" hidden>
  <div id="controls">
    <button id="prev" type="button">&larr; Back</button>
    <button id="yes" type="button" aria-pressed="false">Yes (y)</button>
    <button id="maybe" type="button" aria-pressed="false">Maybe (m)</button>
    <button id="no" type="button" aria-pressed="false">No (n)</button>
    <label><input id="context-free" type="checkbox"> context-free, single token (c)</label>
    <button id="next" type="button">Next &rarr;</button>
    <span class="keys">keys: y m n, c, &larr; &rarr;, Esc leaves the note</span>
  </div>
  <textarea id="note" placeholder="optional note" maxlength="2000"></textarea>
  <div id="card"></div>
  <p class="keys">Rater <b id="rater-label"></b> &middot; <a href="#" id="switch-rater">switch rater</a></p>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const state = {rater: null, n: 0, current: 1, ratings: {}};

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = {error: response.statusText}; }
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}
function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}
function ratedCount() { return Object.keys(state.ratings).length; }
function updateProgress() {
  $("progress").textContent =
    "Card " + state.current + " of " + state.n + " \u00b7 " + ratedCount() + " rated";
}
function showRating() {
  const saved = state.ratings[String(state.current)];
  for (const value of ["yes", "maybe", "no"]) {
    $(value).setAttribute("aria-pressed", saved && saved.rating === value ? "true" : "false");
  }
  $("context-free").checked = saved ? saved.context_free : false;
  $("note").value = saved ? saved.note : "";
}
async function show(card) {
  state.current = Math.min(Math.max(card, 1), state.n);
  localStorage.setItem("tl-card", String(state.current));
  const data = await api("/api/cards/" + state.current);
  $("card").innerHTML = data.html;
  showRating();
  updateProgress();
  $("prev").disabled = state.current === 1;
  $("next").disabled = state.current === state.n;
}
async function save(rating) {
  const card = state.current;
  const body = {card: card, rating: rating, context_free: $("context-free").checked, note: $("note").value};
  try {
    const result = await api("/api/ratings/" + encodeURIComponent(state.rater), {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    state.ratings[String(card)] = result.saved;
    setStatus("Saved card " + card + " (" + rating + ")");
    return true;
  } catch (error) {
    setStatus("Not saved: " + error.message, true);
    return false;
  }
}
async function rate(rating) {
  if (await save(rating)) {
    if (state.current < state.n) { await show(state.current + 1); } else { showRating(); updateProgress(); }
    if (ratedCount() === state.n) setStatus("All " + state.n + " cards rated. Thank you!");
  }
}
async function resave() {
  const saved = state.ratings[String(state.current)];
  if (saved) await save(saved.rating);
}
async function start(rater) {
  state.rater = rater;
  const data = await api("/api/ratings/" + encodeURIComponent(rater));
  state.ratings = data.ratings;
  localStorage.setItem("tl-rater", rater);
  $("rater-label").textContent = rater;
  $("rater-form").hidden = true;
  $("app").hidden = false;
  let first = 1;
  while (first <= state.n && state.ratings[String(first)]) first += 1;
  await show(first > state.n ? state.n : first);
}
async function main() {
  const packet = await api("/api/packet");
  state.n = packet.n_cards;
  $("title").textContent = packet.title;
  $("instructions").textContent = packet.instructions;
  $("rater-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try { await start($("rater-name").value.trim()); } catch (error) { setStatus(error.message, true); }
  });
  $("switch-rater").addEventListener("click", (event) => {
    event.preventDefault();
    localStorage.removeItem("tl-rater");
    location.reload();
  });
  for (const value of ["yes", "maybe", "no"]) $(value).addEventListener("click", () => rate(value));
  $("prev").addEventListener("click", () => show(state.current - 1));
  $("next").addEventListener("click", () => show(state.current + 1));
  $("context-free").addEventListener("change", resave);
  $("note").addEventListener("change", resave);
  document.addEventListener("keydown", (event) => {
    if (!state.rater || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing = target.tagName === "TEXTAREA" ||
      (target.tagName === "INPUT" && target.type !== "checkbox");
    if (typing) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const key = event.key.toLowerCase();
    if (key === "y") rate("yes");
    else if (key === "m") rate("maybe");
    else if (key === "n") rate("no");
    else if (key === "c") { $("context-free").checked = !$("context-free").checked; resave(); }
    else if (event.key === "ArrowLeft") show(state.current - 1);
    else if (event.key === "ArrowRight") show(state.current + 1);
    else return;
    event.preventDefault();
  });
  const remembered = localStorage.getItem("tl-rater");
  if (remembered) {
    try { await start(remembered); } catch (error) { setStatus(error.message, true); }
  }
}
main().catch((error) => setStatus("Could not load the packet: " + error.message, true));
</script>
</body></html>
"""
