// Signing in to the portal: OAuth 2.0 authorization code with PKCE against Galley's own authority
// (galley/identity/sign_in.py). The portal is a public client: it holds no secret; the code it
// gets back is worth nothing without the verifier that only this tab knows.
//
// sessionStorage (this tab only, gone when it closes) holds:
//   "galley.portal.token"   {"accessToken": "...", "expiresOn": <unix seconds>}
//   "galley.portal.sign-in" the pending request: {state, verifier, returnTo} until the answer comes
// No refresh token is kept in the page: while the authority's session (its HttpOnly cookie) lasts,
// a new sign-in round trip answers at once without asking for the password again.

export const CLIENT_ID = "a3c0b2c4-9d2e-4c1b-8f3a-6a7e0d5b1c01";
const TOKEN_KEY = "galley.portal.token";
const PENDING_KEY = "galley.portal.sign-in";
// The user's tenant is found from the name they type; the portal needs to know none.
const AUTHORITY = `${window.location.origin}/organizations/oauth2/v2.0`;
const REDIRECT_URI = `${window.location.origin}/`;
const SCOPE = `${window.location.origin}/.default openid profile`;

const callbacks = [];

function read(key) {
  try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch { return null; }
}

function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function challengeOf(verifier) {
  return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch { return {}; }
}

/** The current access token, or null when there is none or it has expired. */
export function accessToken() {
  const record = read(TOKEN_KEY);
  if (!record || !record.accessToken) return null;
  if (record.expiresOn && record.expiresOn * 1000 <= Date.now()) return null;
  return record.accessToken;
}

// A page that says why signing in stopped, with a way to start again (never a silent loop).
function stopWith(message) {
  const main = document.createElement("main");
  main.className = "sign-in-problem";
  const heading = document.createElement("h1");
  heading.textContent = "Signing in did not work";
  const text = document.createElement("p");
  text.setAttribute("role", "alert");
  text.textContent = message;
  const again = document.createElement("a");
  again.href = "/";
  again.textContent = "Sign in again";
  main.append(heading, text, again);
  document.body.replaceChildren(main);
  return new Promise(() => {});
}

async function goToSignIn() {
  if (!window.crypto || !crypto.subtle) {
    return stopWith("This page needs a secure connection (HTTPS, or localhost) to sign in.");
  }
  const verifier = randomText(32);
  const state = randomText(16);
  const returnTo = window.location.hash || "";
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ state, verifier, returnTo }));
  const query = new URLSearchParams({
    client_id: CLIENT_ID, response_type: "code", redirect_uri: REDIRECT_URI, scope: SCOPE, state,
    code_challenge: await challengeOf(verifier), code_challenge_method: "S256",
  });
  window.location.assign(`${AUTHORITY}/authorize?${query}`);
  return new Promise(() => {});  // the page is leaving
}

async function completeSignIn(params) {
  const pending = read(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  // The answer's parameters leave the address bar (and the history) whatever happens next.
  window.history.replaceState(null, "", `/${pending && pending.returnTo ? pending.returnTo : ""}`);
  if (!pending || params.get("state") !== pending.state) {
    return stopWith("The sign-in answer does not belong to a sign-in started in this tab.");
  }
  if (params.get("error")) {
    return stopWith(params.get("error_description") || params.get("error"));
  }
  const response = await fetch(`${AUTHORITY}/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", client_id: CLIENT_ID, code: params.get("code"),
      redirect_uri: REDIRECT_URI, code_verifier: pending.verifier, scope: SCOPE,
    }),
    credentials: "omit",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) {
    return stopWith(body.error_description || `The token request failed (${response.status}).`);
  }
  // Counted on this machine's clock from the lifetime the authority gave (not the token's `exp`,
  // on the server's clock: a browser clock running ahead would see every new token expired).
  const lifetime = Number(body.expires_in) > 0 ? Number(body.expires_in) : 3600;
  const expiresOn = Math.floor(Date.now() / 1000) + lifetime;
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ accessToken: body.access_token, expiresOn }));
  return null;
}

/**
 * Resolves to {name, objectId, tenantId} of the signed-in user. Completes a sign-in answer in
 * the address bar first; with no valid token, goes to the sign-in page (and never resolves).
 */
export async function ensureSignedIn() {
  const params = new URLSearchParams(window.location.search);
  if ((params.has("code") || params.has("error")) && params.has("state")) {
    await completeSignIn(params);
  }
  const token = accessToken();
  if (!token) return goToSignIn();
  const c = claims(token);
  return {
    name: c.name || c.preferred_username || c.appid || c.oid || "",
    objectId: c.oid || "",
    tenantId: c.tid || "",
  };
}

/** Forgets the token and ends the authority's session (which revokes the tokens issued in it). */
export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const query = new URLSearchParams({ post_logout_redirect_uri: REDIRECT_URI });
  window.location.assign(`${AUTHORITY}/logout?${query}`);
}

/** `callback` runs when the token stops working (arm.js saw a 401); the portal signs in again. */
export function onExpired(callback) { callbacks.push(callback); }

/** arm.js calls this on a 401: the token expired or was revoked. */
export function expired() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (callbacks.length === 0) {
    goToSignIn();
    return;
  }
  callbacks.forEach((callback) => callback());
}
