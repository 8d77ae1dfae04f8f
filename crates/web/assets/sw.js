// The service worker: keeps the page's shell (the page, its scripts, styles and icons) so the
// app opens offline, and nothing else. The API (/v1), the stream and the docs always go to the
// network. Each version of the shell has its own cache; older ones are dropped on activation.

const VERSION = '__VERSION__';
const SHELL = `msa-shell-${VERSION}`;
const ASSETS = __ASSETS__;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(SHELL)
      .then((cache) => cache.addAll(['/', '/manifest.webmanifest', ...ASSETS]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key.startsWith('msa-shell-') && key !== SHELL).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  // Kept answers are matched by URL alone: the server's answers vary by Origin (CORS) and
  // encoding, and a module script's request carries an Origin that the worker's own request
  // (when it kept the file) did not, so a match by Vary found nothing offline.
  const kept = (key) => caches.match(key, { ignoreVary: true });
  if (url.pathname.startsWith('/assets/')) {
    // Versioned: a cached copy is the right one.
    event.respondWith(kept(request).then((hit) => hit || fetch(request)));
  } else if (request.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/index.html')) {
    // The page: the network's when it answers (a new version shows at once), else the kept one.
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok) {
            const copy = response.clone();
            caches.open(SHELL).then((cache) => cache.put('/', copy));
          }
          return response;
        })
        .catch(() => kept('/')),
    );
  } else if (url.pathname === '/manifest.webmanifest') {
    event.respondWith(fetch(request).catch(() => kept('/manifest.webmanifest')));
  }
  // Everything else (the API, /v1/stream, /docs) is not touched.
});
