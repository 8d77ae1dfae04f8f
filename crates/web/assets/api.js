// The HTTP API as the page calls it. The access token lives in this module's memory only; the
// refresh token is an HttpOnly cookie the server sets (cookie mode: the X-Requested-With header),
// which no script here can read.

const WEB = { 'X-Requested-With': 'msa-web' };

let accessToken = null;
let expiresAt = 0;
let refreshing = null;
let refreshTimer = 0;
const signedOutListeners = [];

/** A refused or failed call: `status` 0 when the server could not be reached. */
export class ApiError extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || problem.title || (status ? `HTTP ${status}` : 'network error'));
    this.status = status;
    this.problem = problem;
  }
  get network() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

/** Called when the session ends without the person asking (refresh refused). */
export function onSignedOut(listener) {
  signedOutListeners.push(listener);
}

export function token() {
  return accessToken;
}

/** The signed-in user's id, from the access token. */
export function userId() {
  if (!accessToken) return null;
  try {
    const payload = accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).sub;
  } catch {
    return null;
  }
}

// Whether this browser may hold a session cookie (the cookie itself is out of reach): a page
// that never signed in does not ask the server, so a first visit makes no refused request.
const MARK = 'msa.session';
function mark(signedIn) {
  try {
    if (signedIn) localStorage.setItem(MARK, '1');
    else localStorage.removeItem(MARK);
  } catch {
    // No storage: ask the server every time.
  }
}
function marked() {
  try {
    return localStorage.getItem(MARK) !== null;
  } catch {
    return true;
  }
}

function remember(answer) {
  mark(true);
  accessToken = answer.access_token;
  const lifetime = Math.max(30, Number(answer.expires_in) || 900);
  expiresAt = Date.now() + lifetime * 1000;
  clearTimeout(refreshTimer);
  // Renew a minute before it expires, so a live page always holds a valid token.
  refreshTimer = setTimeout(() => refresh().catch(() => {}), (lifetime - 60) * 1000);
}

function forget() {
  mark(false);
  accessToken = null;
  expiresAt = 0;
  clearTimeout(refreshTimer);
}

async function send(method, path, { body, headers = {}, auth = true } = {}) {
  const init = { method, headers: { ...headers }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (auth && accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) throw new ApiError(response.status, json || {});
  return json;
}

/**
 * Gets a new access token with the session cookie. Resolves true when signed in, false when
 * the server refused the session; throws an ApiError when it could not be asked.
 */
export function refresh() {
  if (!accessToken && !marked()) return Promise.resolve(false);
  if (!refreshing) {
    refreshing = send('POST', '/v1/auth/refresh', { body: {}, headers: WEB, auth: false })
      .then((answer) => {
        remember(answer);
        return true;
      })
      .catch((error) => {
        if (error.status === 401 || error.status === 403) {
          const wasSignedIn = accessToken !== null;
          forget();
          if (wasSignedIn) signedOutListeners.forEach((listener) => listener());
          return false;
        }
        throw error;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

export async function logIn(email, password) {
  remember(await send('POST', '/v1/auth/token', { body: { email, password }, headers: WEB, auth: false }));
}

export async function signUp(email, password, nickname) {
  await send('POST', '/v1/users', { body: { email, password, nickname }, auth: false });
  await logIn(email, password);
}

export async function logOut() {
  try {
    await send('POST', '/v1/auth/logout', { body: {}, headers: WEB, auth: false });
  } finally {
    forget();
  }
}

/** A call with the access token; renewed first when about to expire, once more after a 401. */
export async function call(method, path, body, headers = {}) {
  if (accessToken && Date.now() > expiresAt - 30_000) {
    await refresh().catch(() => {});
  }
  try {
    return await send(method, path, { body, headers });
  } catch (error) {
    if (error.status !== 401) throw error;
    const renewed = await refresh();
    if (!renewed) throw error;
    return send(method, path, { body, headers });
  }
}

/** A random UUID (v4), also where crypto.randomUUID is missing (plain http). */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
