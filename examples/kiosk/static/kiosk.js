// The kiosk page: browse, tap, see why. All state lives in the kiosk process's memory.
"use strict";

const $ = (selector) => document.querySelector(selector);
let idleTimer = null;

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function tile(text, detail, onTap, id) {
  const li = document.createElement("li");
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = text;
  li.append(title);
  if (detail) {
    const why = document.createElement("span");
    why.className = "why";
    why.textContent = detail;
    li.append(why);
  }
  li.dataset.id = id;
  li.addEventListener("click", onTap);
  return li;
}

function cards(list, element, emptyText) {
  element.replaceChildren();
  if (list.length === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = emptyText;
    element.append(li);
    return;
  }
  for (const item of list) {
    const li = tile(item.title, item.why, () => tap(item.id), item.id);
    li.classList.add("card");
    li.title = item.reasons.join("; ");
    element.append(li);
  }
}

function render(state) {
  document.body.dataset.session = String(state.session);
  document.body.dataset.taps = String(state.taps);
  $("#status").textContent = state.taps ? `${state.taps} tap(s) this visit` : "New visit";
  const inView = state.in_view;
  $("#in-view").textContent = inView ? `You are looking at ${inView.title}` : "";
  $("#also-title").textContent = inView
    ? `People who bought ${inView.title} also bought`
    : "People who bought this also bought";
  cards(state.also_bought, $("#also-bought"), inView
    ? "Nothing we know of is bought with this item."
    : "Tap an item to see what other shoppers bought with it.");
  $("#for-you-title").textContent = state.taps ? "For you, this visit" : "Popular now";
  cards(state.for_you, $("#for-you"), "Nothing to suggest right now.");
  restartIdle(state.idle_timeout);
}

function restartIdle(seconds) {
  if (idleTimer !== null) clearTimeout(idleTimer);
  if (!seconds) return;
  // The kiosk wipes an idle session by itself; this only refreshes what the screen shows.
  idleTimer = setTimeout(() => api("/api/state").then(render), (seconds + 1) * 1000);
}

async function tap(id) {
  render(await api("/api/tap", { item_id: id }));
}

async function browse(category) {
  const query = category ? `?category=${encodeURIComponent(category)}` : "";
  const data = await api(`/api/catalog${query}`);
  const chips = $("#categories");
  chips.replaceChildren();
  for (const name of ["", ...data.categories]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name || "All";
    if (name === (category || "")) button.classList.add("active");
    button.addEventListener("click", () => browse(name));
    chips.append(button);
  }
  const grid = $("#catalog");
  grid.replaceChildren();
  for (const item of data.items) {
    const li = tile(item.title, item.category, () => tap(item.id), item.id);
    li.classList.add("item");
    grid.append(li);
  }
}

$("#end-session").addEventListener("click", async () => render(await api("/api/end", {})));
browse("").then(() => api("/api/state")).then(render);
