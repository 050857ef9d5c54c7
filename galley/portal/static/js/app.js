// Boot, layout and the hash router. Pages register themselves (pages/index.js for the core
// pages, live/index.js for LIVE's); a route's render gets a fresh container each navigation, so
// a page that polls stops when `container.isConnected` turns false.
import { ensureSignedIn, signOut, onExpired } from "./auth.js";
import arm from "./arm.js";
import * as ui from "./ui.js";
import { matchRoute, navEntries } from "./registry.js";
import "./pages/index.js";
import "./live/index.js";

const { el, clear } = ui;
let ctx = null;

export function navigate(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function drawNav() {
  const nav = document.getElementById("nav");
  const current = window.location.hash || "#/";
  clear(nav, el("ul", {}, navEntries().map(({ label, hash }) => el("li", {},
    el("a", { href: hash, "aria-current": current === hash ? "page" : null }, label)))));
}

function drawAccount(user) {
  const account = document.getElementById("account");
  clear(account,
    el("span", { class: "user", title: user.objectId || "" }, user.name || "signed in"),
    ui.button("Sign out", () => signOut(), { kind: "link" }));
}

async function render() {
  const main = document.getElementById("main");
  const hash = window.location.hash && window.location.hash !== "#" ? window.location.hash : "#/";
  const found = matchRoute(hash);
  const container = el("div", { class: "page" });
  clear(main, container);
  drawNav();
  document.getElementById("nav").classList.remove("open");
  if (!found) {
    clear(container, ui.heading("Not found"), el("p", {}, `No page answers ${hash}.`), ui.link("Home", "#/"));
    return;
  }
  try {
    await found.render(container, ctx, found.params);
  } catch (error) {
    if (container.isConnected) container.append(ui.errorBox(error));
  }
}

function wireShell() {
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  const toggle = document.getElementById("nav-toggle");
  toggle.addEventListener("click", () => {
    const open = document.getElementById("nav").classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
}

async function boot() {
  wireShell();
  const user = await ensureSignedIn();
  ctx = { arm, ui, navigate, user };
  onExpired(() => ensureSignedIn());
  drawAccount(user);
  window.addEventListener("hashchange", render);
  await render();
}

boot();
