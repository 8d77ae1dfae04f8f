// The page: signing in and out, the room list, the open room, sending through the outbox.

import { account } from './account.js';
import { messageActions } from './actions.js';
import * as api from './api.js';
import { composer } from './composer.js';
import { buyCredits, loadWallet, tossReturn, walletSoon } from './credits.js';
import { $, el, focus, openDialog, status } from './dom.js';
import { Groups } from './groups.js';
import { problemText, t, translate } from './i18n.js';
import { News } from './news.js';
import { Outbox } from './outbox.js';
import { Rooms } from './room.js';
import { Stream } from './stream.js';

translate();
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch(() => {});
}

/** Everything known while signed in; replaced at each sign-in. */
let session = null;

function newSession(me) {
  return {
    me,
    rooms: new Map(),
    order: [],
    members: new Map(),
    openId: null,
    outbox: new Outbox(me.id),
    sending: false,
    retryTimer: 0,
    backoff: 500,
    marked: new Map(),
    /** The newest seq the reader has had on screen, per room (the read marker follows it). */
    seen: new Map(),
    news: new News(),
    typingSent: 0,
    stream: null,
    timelines: null,
    groups: null,
  };
}

// ---- signing in and out -------------------------------------------------------------------

function show(view) {
  $('loading').hidden = true;
  $('auth').hidden = view !== 'auth';
  $('chat').hidden = view !== 'chat';
  $('top').hidden = view !== 'chat';
}

function showAuth(message = '') {
  show('auth');
  $('auth-error').textContent = message;
  $('password').value = '';
}

function authBusy(busy) {
  $('log-in').disabled = busy;
  $('sign-up').disabled = busy;
}

async function authenticate(signUp) {
  const email = $('email').value.trim();
  const password = $('password').value;
  const nickname = $('nickname').value.trim();
  const error = $('auth-error');
  error.textContent = '';
  if (!email || !password) {
    error.textContent = t('needFields');
    return;
  }
  if (signUp && !nickname) {
    error.textContent = t('needNickname');
    $('nickname').focus();
    return;
  }
  authBusy(true);
  try {
    if (signUp) await api.signUp(email, password, nickname);
    else await api.logIn(email, password);
    await enter();
  } catch (failure) {
    error.textContent = failure.status === 401 && !signUp ? t('badLogin') : problemText(failure);
  } finally {
    authBusy(false);
  }
}

$('auth-form').addEventListener('submit', (event) => {
  event.preventDefault();
  authenticate(false);
});
$('sign-up').addEventListener('click', () => authenticate(true));

$('log-out').addEventListener('click', async () => {
  const ending = session;
  leave();
  if (ending) ending.outbox.items = [];
  ending?.outbox.save();
  try {
    await api.logOut();
  } catch {
    // The cookie stays if the server could not be told; the access token is gone already.
  }
  showAuth();
  status(t('signedOut'));
  $('email').focus();
});

api.onSignedOut(() => {
  leave();
  showAuth(t('signedOut'));
});

function leave() {
  if (!session) return;
  session.stream.stop();
  session.news.clear();
  clearTimeout(session.retryTimer);
  session.timelines.clear();
  session = null;
  $('room-list').replaceChildren();
  $('room').hidden = true;
  $('chat').classList.remove('room-open');
}

/** Signed in: the room list, the stream, the wallet, then whatever the outbox still holds. */
async function enter() {
  const me = await api.call('GET', '/v1/users/me');
  leave();
  session = newSession(me);
  const current = session;
  $('me').textContent = me.nickname;
  $('password').value = '';
  session.timelines = new Rooms({
    me: () => me.id,
    names: namesOf,
    inFlight: (roomId) => current.outbox.inRoom(roomId).filter((i) => i.state === 'pending').length,
    onRetry: retry,
    onActions: (record) =>
      messageActions({ me: () => me.id, roomId: () => current.openId, reply: (target) => replyTo(target) }, record),
    onSeen: (roomId, seq) => {
      if (seq > (current.seen.get(roomId) || 0)) current.seen.set(roomId, seq);
      markReadSoon();
    },
  });
  session.groups = new Groups({
    me: () => me,
    inboxSoon: () => inboxSoon(),
    opened: (room, name) => {
      addPlaceholder({ id: room.id, kind: 'group', name, peer: null });
      openRoom(room.id);
    },
    left: (roomId) => {
      if (current !== session) return;
      if (session.openId === roomId) closeRoom();
      session.rooms.delete(roomId);
      session.order = session.order.filter((id) => id !== roomId);
      renderList();
      $('new-direct').focus();
    },
  });
  show('chat');
  for (const item of session.outbox.items) session.timelines.echo(item);
  let firstReady;
  const ready = new Promise((resolve) => {
    firstReady = resolve;
  });
  session.stream = new Stream({
    onFrame: (frame) => current === session && onFrame(frame),
    onReady: (resumed) => {
      if (current !== session) return;
      document.body.dataset.stream = 'open';
      firstReady();
      if (!resumed) refreshAll();
      else loadInbox().catch(() => {});
      pump();
    },
    onDown: () => {
      if (current === session) document.body.dataset.stream = 'closed';
    },
  });
  session.stream.start();
  loadWallet().catch(() => {});
  // The stream's start position first, so nothing posted meanwhile falls between the two.
  await Promise.race([ready, new Promise((resolve) => setTimeout(resolve, 3000))]);
  if (current !== session) return;
  await loadInbox().catch((error) => status(t('error', { detail: problemText(error) })));
  session.groups.load();
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && session.rooms.has(wanted)) openRoom(wanted, { push: false });
  else $('new-direct').focus();
  pump();
  // Back from Toss's payment window: confirm (or give up) the payment it names.
  tossReturn(afterPayment);
}

/** After a fresh (not resumed) stream start: reload what may have been missed. */
async function refreshAll() {
  await loadInbox().catch(() => {});
  if (!session) return;
  const open = session.openId;
  // What was missed may be more than a page: the open room starts again from its newest page.
  for (const [roomId, timeline] of session.timelines.timelines) {
    if (roomId !== open) session.timelines.timelines.delete(roomId);
    else timeline.reset();
  }
  if (open) session.timelines.open(open).catch(() => {});
}

// ---- the room list --------------------------------------------------------------------------

async function loadInbox() {
  const current = session;
  // The inbox comes a page at a time; the list holds up to 1,000 rooms (ten pages).
  const items = [];
  let cursor = null;
  for (let page = 0; page < 10; page += 1) {
    const query = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : '?limit=100';
    const inbox = await api.call('GET', `/v1/inbox${query}`);
    if (current !== session) return;
    items.push(...inbox.items);
    cursor = inbox.next_cursor;
    if (!cursor) break;
  }
  const rooms = new Map(items.map((room) => [room.id, room]));
  const order = items.map((room) => room.id);
  // A room opened here that the inbox (a projection) does not show yet stays.
  for (const [id, room] of session.rooms) {
    if (room.placeholder && !rooms.has(id)) {
      rooms.set(id, room);
      order.unshift(id);
    }
  }
  session.rooms = rooms;
  session.order = order;
  if (session.openId) {
    const open = session.rooms.get(session.openId);
    if (open) open.unread = 0;
  }
  renderList();
  if (session.openId) $('room-title').textContent = displayName(session.rooms.get(session.openId));
}

let listFrame = 0;
let listTimer = 0;
/** Draws the room list once in the next animation frame (a burst of messages is one draw). */
function renderListSoon() {
  if (listFrame) return;
  const run = () => {
    cancelAnimationFrame(listFrame);
    clearTimeout(listTimer);
    listFrame = 0;
    if (session) renderList();
  };
  listFrame = requestAnimationFrame(run);
  // A hidden page gets no animation frames.
  listTimer = setTimeout(run, 250);
}

let inboxTimer = 0;
/** A room appeared or changed membership: the inbox (a projection) is read again, a few times. */
function inboxSoon(tries = 6) {
  clearTimeout(inboxTimer);
  inboxTimer = setTimeout(async () => {
    if (!session) return;
    const before = session.rooms.size;
    await loadInbox().catch(() => {});
    const waiting = session && [...session.rooms.values()].some((room) => room.placeholder);
    if (session && tries > 1 && (session.rooms.size === before || waiting)) inboxSoon(tries - 1);
  }, 300);
}

function displayName(room) {
  if (!room) return '';
  // A direct room is bound to the peer's id: once they erased their account it says so, whoever
  // has their nickname now.
  if (room.kind === 'direct') return room.peer ? room.peer.nickname || t('deletedAccount') : t('unknownUser');
  return room.name || t('unnamed');
}

function namesOf(roomId) {
  const names = new Map(session.members.get(roomId) || []);
  const room = session.rooms.get(roomId);
  if (room?.peer) names.set(room.peer.user_id, room.peer.nickname || t('deletedAccount'));
  names.set(session.me.id, session.me.nickname);
  return names;
}

function preview(room) {
  const last = room.last_message;
  if (!last) return t('noMessagesYet');
  if (last.redacted) return t('deleted');
  const who = last.sender_id === session.me.id ? `${t('you')}: ` : '';
  return who + last.body.replace(/\s+/g, ' ').slice(0, 80);
}

function renderList() {
  const list = $('room-list');
  const focused = document.activeElement?.dataset?.roomId;
  const items = session.order
    .map((id) => session.rooms.get(id))
    .filter(Boolean)
    .map((room) => {
      const nameId = `room-name-${room.id}`;
      const infoId = `room-info-${room.id}`;
      const unread = room.unread > 0 ? el('span', { className: 'unread' }, t('unread', { n: room.unread })) : null;
      const button = el(
        'button',
        { type: 'button', className: 'room', attrs: { 'aria-labelledby': nameId, 'aria-describedby': infoId } },
        el('span', { className: 'name', id: nameId }, displayName(room)),
        el('span', { className: 'info', id: infoId }, el('span', { className: 'preview' }, preview(room)), unread ? ' ' : null, unread),
      );
      button.dataset.roomId = room.id;
      button.dataset.unread = String(room.unread || 0);
      if (room.id === session.openId) button.setAttribute('aria-current', 'true');
      button.addEventListener('click', () => openRoom(room.id));
      return el('li', {}, button);
    });
  list.replaceChildren(...items);
  $('no-rooms').hidden = items.length > 0;
  if (focused) list.querySelector(`[data-room-id="${CSS.escape(focused)}"]`)?.focus();
}

/** A room opened here that the inbox (a projection) may not show yet: listed until it does. */
function addPlaceholder(room) {
  if (session.rooms.has(room.id)) return;
  session.rooms.set(room.id, { ...room, last_message: null, unread: 0, placeholder: true });
  bump(room.id);
  inboxSoon();
}

function bump(roomId) {
  session.order = [roomId, ...session.order.filter((id) => id !== roomId)];
}

// ---- a room ---------------------------------------------------------------------------------

function openRoom(roomId, { push = true, focus = true } = {}) {
  const room = session.rooms.get(roomId);
  if (!room) return;
  session.openId = roomId;
  room.unread = 0;
  if (push && location.hash.slice(1) !== roomId) history.pushState({ room: roomId }, '', `#${roomId}`);
  $('room-title').textContent = displayName(room);
  $('room').hidden = false;
  $('no-room').hidden = true;
  $('chat').classList.add('room-open');
  $('typing').textContent = '';
  session.news.clear();
  if (session.replyTo && session.replyTo.room_id !== roomId) replyTo(null);
  $('members-button').hidden = room.kind === 'direct';
  renderList();
  updateCreditAlert();
  session.timelines
    .open(roomId)
    .catch((error) => status(t('error', { detail: problemText(error) })));
  if (room.kind !== 'direct') loadMembers(roomId);
  if (focus) $('message-input').focus();
}

function closeRoom({ push = true } = {}) {
  if (!session?.openId) return;
  const roomId = session.openId;
  session.openId = null;
  session.news.clear();
  session.timelines.close();
  $('room').hidden = true;
  $('no-room').hidden = false;
  $('chat').classList.remove('room-open');
  if (push && location.hash) history.pushState({}, '', location.pathname);
  renderList();
  $('room-list').querySelector(`[data-room-id="${CSS.escape(roomId)}"]`)?.focus();
}

async function loadMembers(roomId) {
  try {
    const page = await api.call('GET', `/v1/rooms/${roomId}/members`);
    if (!session) return;
    session.members.set(roomId, new Map(page.items.map((m) => [m.user_id, m.nickname || t('deletedAccount')])));
    if (session.openId === roomId) session.timelines.render();
  } catch {
    // Names show as "Someone" until the next try.
  }
}

$('back').addEventListener('click', () => closeRoom());
$('search').addEventListener('click', () => {
  $('search-status').textContent = '';
  openDialog($('search-dialog'), $('search-query'));
});
$('search-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const words = $('search-query').value.trim();
  if (!words || !session) return;
  try {
    const page = await api.call('GET', `/v1/search/messages?q=${encodeURIComponent(words)}&limit=30`);
    $('search-status').textContent = t('results', { n: page.items.length });
    $('search-results').replaceChildren(
      ...page.items.map((hit) => {
        const room = session.rooms.get(hit.room_id);
        const who = hit.sender_id === session.me.id ? t('you') : namesOf(hit.room_id).get(hit.sender_id) || t('unknownUser');
        const button = el('button', { type: 'button' }, `${displayName(room) || t('unnamed')} — ${who}: ${hit.body.slice(0, 120)}`);
        button.addEventListener('click', () => {
          $('search-dialog').close();
          if (session.rooms.has(hit.room_id)) openRoom(hit.room_id);
        });
        return el('li', {}, button);
      }),
    );
  } catch (error) {
    $('search-status').textContent = problemText(error);
  }
});
$('new-group').addEventListener('click', () => session?.groups.newGroup());
$('members-button').addEventListener('click', () => session?.openId && session.groups.showMembers(session.openId));
window.addEventListener('popstate', () => {
  if (!session) return;
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && session.rooms.has(wanted)) openRoom(wanted, { push: false });
  else closeRoom({ push: false });
});
$('room').addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && !event.defaultPrevented && matchMedia('(max-width: 47.99rem)').matches) closeRoom();
});

let readTimer = 0;
/**
 * Moves the open room's read marker to the newest message the reader has had on screen (not
 * the newest there is: someone reading earlier messages has not read the ones below), at most
 * once per 400 ms however many messages come. A hidden page reads nothing.
 */
function markReadSoon() {
  if (readTimer) return;
  readTimer = setTimeout(async () => {
    readTimer = 0;
    if (!session?.openId || document.visibilityState !== 'visible') return;
    const roomId = session.openId;
    const seq = session.seen.get(roomId) || 0;
    if (!seq || (session.marked.get(roomId) || 0) >= seq) return;
    session.marked.set(roomId, seq);
    await api.call('POST', `/v1/rooms/${roomId}/read`, { seq }).catch(() => session?.marked.delete(roomId));
  }, 400);
}
document.addEventListener('visibilitychange', () => {
  const room = session?.openId && session.rooms.get(session.openId);
  if (room && document.visibilityState === 'visible' && room.unread) {
    room.unread = 0;
    renderList();
  }
  if (document.visibilityState === 'visible') session?.timelines.seen();
  markReadSoon();
});

// ---- live events ----------------------------------------------------------------------------

const MEMBERSHIP = ['MemberInvited', 'MemberJoined', 'MemberLeft', 'MemberKicked', 'MemberBanned'];

function onFrame(frame) {
  if (frame.type === 'typing') {
    if (frame.room_id === session.openId) showTyping(frame.user_id);
    return;
  }
  const data = frame.data || {};
  const room = session.rooms.get(frame.room_id);
  if (frame.type === 'RoomCreated' || !room) {
    inboxSoon();
  }
  if (frame.type === 'MemberInvited' && data.user_id === session.me.id) {
    session.groups.invited(frame.room_id, data.by);
  } else if (room && MEMBERSHIP.includes(frame.type)) {
    if (data.user_id === session.me.id) {
      session.groups.settled(frame.room_id);
      inboxSoon();
      if (['MemberLeft', 'MemberKicked', 'MemberBanned'].includes(frame.type) && session.openId === frame.room_id) {
        closeRoom();
      }
    }
    session.members.delete(frame.room_id);
    if (session.openId === frame.room_id) loadMembers(frame.room_id);
  }
  const added = session.timelines.event(frame);
  if (!room) return;
  const open = session.openId === frame.room_id && document.visibilityState === 'visible';
  if (frame.type === 'MessagePosted') {
    room.last_message = {
      id: data.message_id,
      sender_id: data.sender_id,
      body: data.body,
      created_at: frame.occurred_at,
      seq: frame.seq,
      redacted: Boolean(data.redacted),
    };
    room.last_seq = frame.seq;
    const mine = data.sender_id === session.me.id;
    if (!mine && !open) room.unread = (room.unread || 0) + 1;
    bump(frame.room_id);
    renderListSoon();
    if (!mine && added && session.openId === frame.room_id) {
      const who = namesOf(frame.room_id).get(data.sender_id) || t('unknownUser');
      session.news.add(who, data.body);
    }
    if (session.openId === frame.room_id) $('typing').textContent = '';
  } else if ((frame.type === 'MessageRedacted' || frame.type === 'MessageEdited') && room.last_message?.id === data.message_id) {
    if (frame.type === 'MessageRedacted') room.last_message.redacted = true;
    else room.last_message.body = data.body;
    renderListSoon();
  }
}

let typingTimer = 0;
function showTyping(userId) {
  const who = namesOf(session.openId).get(userId) || t('unknownUser');
  $('typing').textContent = t('typing', { who });
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => {
    $('typing').textContent = '';
  }, 4000);
}

// ---- sending --------------------------------------------------------------------------------

const box = composer($('message-input'), {
  onSend: (text) => send(text),
  onTyping: () => {
    if (!session?.openId || Date.now() - session.typingSent < 3000) return;
    session.typingSent = Date.now();
    session.stream.send({ type: 'typing', room_id: session.openId });
  },
});
$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  box.submit();
  $('message-input').focus();
});

/** The message the next one answers (shown above the box until sent or cancelled). */
function replyTo(record) {
  if (!session) return;
  session.replyTo = record ? { id: record.id, room_id: session.openId } : null;
  $('reply-bar').hidden = !record;
  if (record) {
    const who = record.sender_id === session.me.id ? t('you') : namesOf(session.openId).get(record.sender_id) || t('unknownUser');
    $('reply-text').textContent = t('replyingTo', { who, text: record.body.slice(0, 80) });
    focus($('message-input'));
  }
}
$('reply-cancel').addEventListener('click', () => {
  replyTo(null);
  $('message-input').focus();
});

function send(text) {
  if (!session?.openId) return;
  const reply = session.replyTo?.room_id === session.openId ? session.replyTo.id : null;
  replyTo(null);
  const item = {
    txn_id: api.uuid(),
    room_id: session.openId,
    body: text,
    reply_to: reply,
    typed: Date.now(),
    state: 'pending',
  };
  session.outbox.add(item);
  session.timelines.echo(item);
  pump();
}

function retry(txnId) {
  const item = session?.outbox.update(txnId, { state: 'pending', reason: null });
  if (!item) return;
  session.timelines.marked(item.room_id, txnId, 'pending', null);
  pump();
}

/**
 * Sends the outbox in order, one message at a time, each with its own txn_id. A message the
 * server could not take (down, unreachable, busy) stays and is tried again with the same
 * txn_id; one it refused is marked failed.
 */
async function pump() {
  const current = session;
  if (!current || current.sending) return;
  current.sending = true;
  clearTimeout(current.retryTimer);
  try {
    for (;;) {
      const item = current.outbox.waiting()[0];
      if (!item || current !== session) break;
      const outcome = await deliver(current, item);
      if (outcome === 'later') {
        current.retryTimer = setTimeout(pump, current.backoff);
        current.backoff = Math.min(current.backoff * 2, 5000);
        break;
      }
      current.backoff = 500;
    }
  } finally {
    current.sending = false;
    updateCreditAlert();
  }
}

async function deliver(current, item) {
  try {
    const message = { txn_id: item.txn_id, body: item.body };
    if (item.reply_to) message.reply_to = item.reply_to;
    const posted = await api.call('POST', `/v1/rooms/${item.room_id}/messages`, message);
    current.outbox.remove(item.txn_id);
    current.timelines.confirmed(item.room_id, item.txn_id, posted);
    walletSoon();
    return 'sent';
  } catch (error) {
    if (error.status === 0 || error.status === 401 || error.status === 408 || error.status === 429 || error.status >= 500) {
      return 'later';
    }
    if (error.status === 409 && error.problem?.type?.endsWith('spend-refunded')) {
      // While this page could not reach the server, the server gave this send up (nothing was
      // posted, the credit came back): it goes again as a new send, under a new txn_id.
      const txnId = api.uuid();
      current.outbox.update(item.txn_id, { txn_id: txnId });
      current.timelines.rekeyed(item.room_id, item.txn_id, txnId);
      return 'again';
    }
    const reason = error.status === 402 ? 'out-of-credits' : error.problem?.type || `http-${error.status}`;
    current.outbox.update(item.txn_id, { state: 'failed', reason });
    current.timelines.marked(item.room_id, item.txn_id, 'failed', reason);
    if (error.status === 402) walletSoon();
    return 'failed';
  }
}

function refusedForCredits() {
  return session ? session.outbox.items.filter((i) => i.state === 'failed' && i.reason === 'out-of-credits') : [];
}

function updateCreditAlert() {
  const refused = session?.openId ? refusedForCredits().filter((i) => i.room_id === session.openId) : [];
  const alert = $('room-alert');
  const show = refused.length > 0;
  if (show && alert.hidden) $('room-alert-text').textContent = t('outOfCredits');
  alert.hidden = !show;
}

/** After a payment: the messages refused for lack of credits go out again (same txn_id). */
function afterPayment() {
  for (const item of refusedForCredits()) retry(item.txn_id);
  updateCreditAlert();
}

$('buy-credits').addEventListener('click', () => buyCredits(afterPayment));
$('account').addEventListener('click', () => {
  if (!session) return;
  const current = session;
  account({
    me: () => current.me,
    renamed: (profile) => {
      current.me = { ...current.me, ...profile };
      $('me').textContent = current.me.nickname;
      if (current.openId) current.timelines.render();
    },
    deleted: () => {
      current.outbox.items = [];
      current.outbox.save();
      leave();
      api.logOut().catch(() => {});
      showAuth(t('accountDeleted'));
    },
    walletChanged: () => walletSoon(),
  });
});
$('room-buy').addEventListener('click', () => buyCredits(afterPayment));

window.addEventListener('online', () => {
  if (!session) return;
  session.stream.nudge();
  session.backoff = 500;
  pump();
});
window.addEventListener('offline', () => status(t('offline')));

// ---- a new direct chat ----------------------------------------------------------------------

$('new-direct').addEventListener('click', () => {
  $('direct-error').textContent = '';
  $('direct-nickname').value = '';
  openDialog($('direct-dialog'), $('direct-nickname'));
});

$('direct-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const nickname = $('direct-nickname').value.trim();
  const error = $('direct-error');
  if (!nickname) return;
  error.textContent = '';
  try {
    const room = await api.call('POST', '/v1/direct-chats', { nickname });
    addPlaceholder({
      id: room.id,
      kind: 'direct',
      name: null,
      peer: { user_id: room.members.find((m) => m.user_id !== session.me.id)?.user_id, nickname },
    });
    $('direct-dialog').close();
    openRoom(room.id);
  } catch (failure) {
    error.textContent = failure.status === 404 ? t('noSuchNickname') : problemText(failure);
  }
});

// ---- start ----------------------------------------------------------------------------------

async function boot() {
  for (let attempt = 0; !session; attempt++) {
    try {
      if (await api.refresh()) await enter();
      else showAuth();
      return;
    } catch (error) {
      if (error.status && !error.network) {
        showAuth(problemText(error));
        return;
      }
      // The server is not there (yet): say so, and keep trying.
      if (!session) showAuth(t('tryLater'));
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** attempt, 10000)));
    }
  }
}

boot();
