// A room's messages: what the page knows of each room (a timeline, kept while the page lives),
// and the open room's list on screen. Messages are keyed by their server id; the ones this
// browser sends are also keyed by txn_id from the moment they are typed, so the echo, the
// server's answer, the live event and history all land on one element.
//
// The screen holds a window of the timeline, never all of it: at most WINDOW messages are in
// the DOM (what the box shows plus a margin above and below), so a room that received 10,000
// messages costs what one with a hundred does. Scrolling within MARGIN pixels of the window's
// top or bottom moves it by STEP messages, the message at the top of the box staying where it
// is; above the oldest message in memory an earlier page is fetched. A timeline keeps at most
// KEEP messages in memory; older ones are dropped and fetched again if the reader goes back to
// them. Changes are drawn once per animation frame, however many events came in it.

import { call } from './api.js';
import { $, el } from './dom.js';
import { t, when } from './i18n.js';

const PAGE = 50;
/** Messages in the DOM at most. */
export const WINDOW = 90;
/** Messages the window moves by when the reader nears one of its edges. */
const STEP = 30;
/** How near (px) an edge of the window the reader comes before it moves. */
const MARGIN = 600;
/** Messages a timeline keeps in memory (the window never reaches past them). */
const KEEP = 1000;
/** How near (px) the bottom counts as reading the newest messages. */
const AT_END = 80;

/** The index of the first record in `sorted` (by seq) whose seq is not below `seq`. */
function lowerBound(sorted, seq) {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (sorted[middle].seq < seq) low = middle + 1;
    else high = middle;
  }
  return low;
}

class Timeline {
  constructor(roomId) {
    this.roomId = roomId;
    this.byId = new Map();
    this.byTxn = new Map();
    /** This user's messages seen in history or live while sends were in flight (see defer). */
    this.unclaimed = new Map();
    /** Posted messages, oldest first (by seq). */
    this.sent = [];
    /** Echoes the server has not confirmed yet, in the order they were typed. */
    this.waiting = [];
    this.oldestSeq = null;
    this.newestSeq = 0;
    this.reachedStart = false;
    this.loaded = false;
    this.loading = null;
    /** Live events that came while the first page was on its way; applied after it. */
    this.backlog = [];
  }

  /** How many records: the posted ones, then the waiting ones. */
  get length() {
    return this.sent.length + this.waiting.length;
  }

  at(index) {
    return index < this.sent.length ? this.sent[index] : this.waiting[index - this.sent.length];
  }

  /** Where `record` is (-1: not here, e.g. forgotten). */
  indexOf(record) {
    if (record.id && this.byId.get(record.id) === record) {
      const index = lowerBound(this.sent, record.seq);
      if (this.sent[index] === record) return index;
      return this.sent.indexOf(record);
    }
    const waiting = this.waiting.indexOf(record);
    return waiting < 0 ? -1 : this.sent.length + waiting;
  }

  /** Adds a posted record in seq order (a live one is usually the newest: no search). */
  add(record) {
    this.byId.set(record.id, record);
    const last = this.sent[this.sent.length - 1];
    if (!last || last.seq < record.seq) this.sent.push(record);
    else this.sent.splice(lowerBound(this.sent, record.seq), 0, record);
    this.noteSeq(record.seq);
  }

  addWaiting(record) {
    this.waiting.push(record);
    this.waiting.sort((a, b) => a.typed - b.typed);
  }

  dropWaiting(record) {
    const index = this.waiting.indexOf(record);
    if (index >= 0) this.waiting.splice(index, 1);
  }

  noteSeq(seq) {
    if (seq > this.newestSeq) this.newestSeq = seq;
    if (this.oldestSeq === null || seq < this.oldestSeq) this.oldestSeq = seq;
  }

  /** Forgets the `count` oldest posted records; scrolling back fetches them again. */
  forget(count) {
    if (count <= 0) return;
    for (const record of this.sent.splice(0, count)) {
      this.byId.delete(record.id);
      if (record.txn_id && this.byTxn.get(record.txn_id) === record) this.byTxn.delete(record.txn_id);
      record.el = null;
    }
    this.reachedStart = false;
    this.oldestSeq = this.sent.length ? this.sent[0].seq : null;
  }

  /** Forgets every posted record (a fresh start after a gap); echoes stay. */
  reset() {
    this.forget(this.sent.length);
    this.oldestSeq = null;
    this.loaded = false;
  }
}

/** The record of a message from history or a live frame. */
function fromServer(m) {
  return {
    id: m.id,
    seq: m.seq,
    sender_id: m.sender_id,
    body: m.body,
    reply_to: m.reply_to || null,
    created_at: m.created_at,
    edited_at: m.edited_at || null,
    redacted: Boolean(m.redacted),
    reactions: m.reactions || [],
    state: 'sent',
  };
}

/** Adds `delta` to the count of `emoji` on `record`. */
function react(record, emoji, delta) {
  const reactions = (record.reactions || []).map((r) => ({ ...r }));
  const known = reactions.find((r) => r.emoji === emoji);
  if (known) known.count += delta;
  else if (delta > 0) reactions.push({ emoji, count: delta });
  record.reactions = reactions.filter((r) => r.count > 0);
}

export class Rooms {
  /**
   * `me()` the signed-in user's id; `names(roomId)` a Map of user id → nickname;
   * `inFlight(roomId)` how many of this browser's sends to the room are unanswered;
   * `onRetry(txnId)` when the person asks to send a failed message again;
   * `onActions(record)` when they open a message's actions; `onSeen(roomId, seq)` when the
   * newest message on screen may have changed (the read marker follows it).
   */
  constructor({ me, names, inFlight, onRetry, onActions, onSeen }) {
    this.me = me;
    this.onActions = onActions;
    this.onSeen = onSeen || (() => {});
    this.names = names;
    this.inFlight = inFlight;
    this.onRetry = onRetry;
    this.timelines = new Map();
    this.openId = null;
    /** The window: the newest messages while `following`, else WINDOW from `top` on. */
    this.following = true;
    this.top = null;
    /** The records on screen now, in order. */
    this.shown = [];
    /** Draw with the newest message in view, wherever the reader was (they just sent one). */
    this.jump = false;
    this.frame = 0;
    this.fallback = 0;
    this.scrollFrame = 0;
    /** The scrolling box (role log) and the list inside it. */
    this.box = $('messages');
    this.list = $('message-list');
    this.box.addEventListener('scroll', () => this.scrolledSoon(), { passive: true });
  }

  timeline(roomId) {
    let timeline = this.timelines.get(roomId);
    if (!timeline) {
      timeline = new Timeline(roomId);
      this.timelines.set(roomId, timeline);
    }
    return timeline;
  }

  clear() {
    this.timelines.clear();
    this.close();
  }

  /** Shows `roomId`'s messages: the newest page first, earlier ones as the person scrolls up. */
  async open(roomId) {
    this.openId = roomId;
    this.following = true;
    this.top = null;
    this.jump = true;
    const timeline = this.timeline(roomId);
    this.render();
    if (!timeline.loaded) await this.loadPage(timeline);
    if (this.openId === roomId) this.fillScreen();
  }

  close() {
    this.openId = null;
    this.forgetShown([]);
    this.list.replaceChildren();
  }

  isOpen(roomId) {
    return this.openId === roomId;
  }

  /** Loads the page before the oldest message known (the newest page at first). */
  loadPage(timeline) {
    if (timeline.loading) return timeline.loading;
    if (timeline.loaded && timeline.reachedStart) return Promise.resolve();
    const before = timeline.loaded && timeline.oldestSeq !== null ? `&before=${timeline.oldestSeq}` : '';
    timeline.loading = call('GET', `/v1/rooms/${timeline.roomId}/messages?limit=${PAGE}${before}`)
      .then((page) => {
        const items = page.items || [];
        for (const item of items) this.place(timeline, fromServer(item));
        timeline.loaded = true;
        if (items.length < PAGE) timeline.reachedStart = true;
        for (const frame of timeline.backlog.splice(0)) this.event(frame, { quiet: true });
        // An earlier page goes above what is on screen, which stays still (draw keeps it).
        if (this.openId === timeline.roomId) this.render();
      })
      .finally(() => {
        timeline.loading = null;
        if (this.openId === timeline.roomId) this.render();
      });
    return timeline.loading;
  }

  /** Loads earlier pages while the list does not fill its box (nothing to scroll yet). */
  async fillScreen() {
    const timeline = this.openId && this.timeline(this.openId);
    while (
      timeline &&
      this.openId === timeline.roomId &&
      !timeline.reachedStart &&
      this.range(timeline)[0] === 0 &&
      this.box.scrollHeight <= this.box.clientHeight + 40
    ) {
      await this.loadPage(timeline);
    }
  }

  /** The part of the open timeline on screen: `[start, end)`. */
  range(timeline) {
    const length = timeline.length;
    if (this.following || !this.top) return [Math.max(0, length - WINDOW), length];
    const start = Math.max(0, timeline.indexOf(this.top));
    return [start, Math.min(length, start + WINDOW)];
  }

  scrolledSoon() {
    if (this.scrollFrame) return;
    this.scrollFrame = requestAnimationFrame(() => {
      this.scrollFrame = 0;
      this.scrolled();
    });
  }

  /**
   * The reader scrolled: near the window's top it moves up (or an earlier page is fetched),
   * near its bottom it moves down; at the very end it follows new messages again.
   */
  scrolled() {
    if (!this.openId) return;
    const timeline = this.timeline(this.openId);
    if (!timeline.loaded) return;
    const box = this.box;
    const [start, end] = this.range(timeline);
    const below = box.scrollHeight - box.scrollTop - box.clientHeight;
    if (box.scrollTop < MARGIN && start > 0) {
      this.following = false;
      this.top = timeline.at(Math.max(0, start - STEP));
      this.draw();
      this.scrolledSoon();
      return;
    }
    if (box.scrollTop < MARGIN && !timeline.reachedStart) {
      if (!timeline.loading) this.loadPage(timeline).then(() => this.scrolledSoon(), () => {});
      return;
    }
    if (below < MARGIN && end < timeline.length) {
      this.following = false;
      this.top = timeline.at(Math.min(start + STEP, Math.max(0, timeline.length - WINDOW)));
      this.draw();
      this.scrolledSoon();
      return;
    }
    // At the bottom the reader keeps following, even if messages came after this window was
    // drawn (they are drawn in the next frame); one who was not, follows once the window
    // reaches the newest message.
    const following = below < AT_END && (this.following || end === timeline.length);
    if (following !== this.following) {
      this.following = following;
      this.top = following ? null : timeline.at(start);
    }
    this.seen();
  }

  /** The first message on screen and its offset, to keep it still while the list changes. */
  anchor() {
    const top = this.box.scrollTop;
    for (const record of this.shown) {
      const item = record.el;
      if (item && item.offsetTop + item.offsetHeight > top) return { item, offset: item.offsetTop - top };
    }
    return null;
  }

  restore({ item, offset }) {
    if (item.isConnected) this.box.scrollTop = item.offsetTop - offset;
  }

  atEnd() {
    return this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < AT_END;
  }

  scrollToEnd() {
    this.box.scrollTop = this.box.scrollHeight;
  }

  /** Tells the page the newest message the reader can see now (the read marker follows it). */
  seen() {
    if (!this.openId) return;
    const bottom = this.box.scrollTop + this.box.clientHeight;
    for (let i = this.shown.length - 1; i >= 0; i--) {
      const record = this.shown[i];
      if (!record.id || !Number.isFinite(record.seq) || !record.el) continue;
      if (record.el.offsetTop < bottom) {
        this.onSeen(this.openId, record.seq);
        return;
      }
    }
  }

  /**
   * Puts a server message in its timeline. A message of this user's that the page cannot yet
   * tell from one it is sending (same room, send unanswered) waits until the sends are answered,
   * so it never shows twice; the answer names it (`confirmed`), or it is shown then.
   */
  place(timeline, record) {
    timeline.noteSeq(record.seq);
    const known = timeline.byId.get(record.id);
    if (known) {
      Object.assign(known, { ...record, txn_id: known.txn_id });
      return known;
    }
    if (record.sender_id === this.me() && this.inFlight(timeline.roomId) > 0) {
      timeline.unclaimed.set(record.id, record);
      return null;
    }
    timeline.add(record);
    return record;
  }

  /** A live room event. Returns the message record when it is a new message. */
  event(frame, { quiet = false } = {}) {
    const timeline = this.timelines.get(frame.room_id);
    const data = frame.data || {};
    if (!timeline) return null;
    if (!timeline.loaded) {
      if (timeline.loading) timeline.backlog.push(frame);
      return null;
    }
    let added = null;
    switch (frame.type) {
      case 'MessagePosted': {
        if (timeline.byId.has(data.message_id)) return null;
        const record = fromServer({
          id: data.message_id,
          seq: frame.seq,
          sender_id: data.sender_id,
          body: data.body,
          reply_to: data.reply_to,
          created_at: frame.occurred_at,
          redacted: data.redacted,
        });
        added = this.place(timeline, record);
        if (this.openId !== frame.room_id) this.trim(timeline, KEEP + STEP);
        break;
      }
      case 'MessageEdited': {
        const record = timeline.byId.get(data.message_id);
        if (record) Object.assign(record, { body: data.body, edited_at: frame.occurred_at });
        break;
      }
      case 'MessageRedacted': {
        const record = timeline.byId.get(data.message_id);
        if (record) Object.assign(record, { body: '', redacted: true });
        break;
      }
      case 'ReactionAdded':
      case 'ReactionRemoved': {
        const record = timeline.byId.get(data.message_id);
        if (!record) break;
        const added = frame.type === 'ReactionAdded';
        react(record, data.emoji, added ? 1 : -1);
        if (data.user_id === this.me()) {
          record.mine = new Set(record.mine || []);
          if (added) record.mine.add(data.emoji);
          else record.mine.delete(data.emoji);
        }
        break;
      }
      default:
        timeline.noteSeq(frame.seq);
        return null;
    }
    if (this.openId === frame.room_id && !quiet) this.renderSoon();
    return added;
  }

  /**
   * Keeps at most `limit` posted records of `timeline` in memory, never dropping what is on
   * screen or within a window above it (the reader may be going there).
   */
  trim(timeline, limit = KEEP) {
    const excess = timeline.sent.length - limit;
    if (excess <= 0) return;
    let spare = excess;
    if (this.openId === timeline.roomId) spare = Math.min(excess, this.range(timeline)[0] - WINDOW);
    timeline.forget(spare);
  }

  /** The echo of a message this browser is sending. */
  echo(item) {
    const timeline = this.timeline(item.room_id);
    const record = {
      id: null,
      txn_id: item.txn_id,
      seq: Infinity,
      typed: item.typed,
      sender_id: this.me(),
      body: item.body,
      reply_to: item.reply_to || null,
      created_at: new Date(item.typed).toISOString(),
      state: item.state,
      reason: item.reason,
    };
    timeline.byTxn.set(item.txn_id, record);
    timeline.addWaiting(record);
    if (this.openId === item.room_id) {
      // The sender goes to the newest messages, where theirs is.
      this.following = true;
      this.top = null;
      this.jump = true;
      this.renderSoon();
    }
  }

  /** The server's answer to a send: the echo becomes the posted message (one element, always). */
  confirmed(roomId, txnId, posted) {
    const timeline = this.timeline(roomId);
    const echo = timeline.byTxn.get(txnId);
    timeline.unclaimed.delete(posted.id);
    const known = timeline.byId.get(posted.id);
    if (known) {
      known.txn_id = txnId;
      known.state = 'sent';
      if (echo && echo !== known) {
        timeline.dropWaiting(echo);
        timeline.byTxn.delete(txnId);
      }
      timeline.byTxn.set(txnId, known);
    } else if (echo) {
      timeline.dropWaiting(echo);
      Object.assign(echo, fromServer(posted), { txn_id: txnId });
      timeline.add(echo);
    } else {
      const record = fromServer(posted);
      record.txn_id = txnId;
      timeline.add(record);
      timeline.byTxn.set(txnId, record);
    }
    timeline.noteSeq(posted.seq);
    this.settle(timeline);
    if (this.openId === roomId) this.renderSoon();
  }

  /** A send that goes again under a new txn_id: its echo follows it (one element still). */
  rekeyed(roomId, oldTxn, newTxn) {
    const timeline = this.timeline(roomId);
    const record = timeline.byTxn.get(oldTxn);
    if (!record) return;
    timeline.byTxn.delete(oldTxn);
    record.txn_id = newTxn;
    timeline.byTxn.set(newTxn, record);
    if (this.openId === roomId) this.renderSoon();
  }

  /** A send's new state (pending again, or failed with a reason). */
  marked(roomId, txnId, state, reason) {
    const timeline = this.timeline(roomId);
    const record = timeline.byTxn.get(txnId);
    if (record && !record.id) {
      record.state = state;
      record.reason = reason;
    }
    this.settle(timeline);
    if (this.openId === roomId) this.renderSoon();
  }

  /** Once no send to the room is unanswered, the held-back messages of this user are shown. */
  settle(timeline) {
    if (this.inFlight(timeline.roomId) > 0 || timeline.unclaimed.size === 0) return;
    for (const [id, record] of timeline.unclaimed) {
      if (!timeline.byId.has(id)) timeline.add(record);
    }
    timeline.unclaimed.clear();
  }

  settleAll() {
    for (const timeline of this.timelines.values()) this.settle(timeline);
    if (this.openId) this.renderSoon();
  }

  /** The newest seq of a room (for the read marker). */
  newestSeq(roomId) {
    return this.timelines.get(roomId)?.newestSeq || 0;
  }

  /**
   * Draws once in the next animation frame for everything that changed before it (a burst of
   * live events is one draw). A hidden page gets no animation frames: a timer draws it then.
   */
  renderSoon() {
    if (this.frame) return;
    const run = () => {
      cancelAnimationFrame(this.frame);
      clearTimeout(this.fallback);
      this.frame = 0;
      this.fallback = 0;
      this.render();
    };
    this.frame = requestAnimationFrame(run);
    this.fallback = setTimeout(run, 250);
  }

  /** Draws the open room now (drops what is kept beyond KEEP first). */
  render() {
    if (!this.openId) return;
    this.trim(this.timeline(this.openId));
    this.draw();
  }

  /**
   * Brings the list in line with the window, reusing elements: the reader who was at the end
   * stays at the end (following new messages), anyone else keeps the message at the top of the
   * box where it was.
   */
  draw() {
    if (!this.openId) return;
    const timeline = this.timeline(this.openId);
    const names = this.names(this.openId);
    const jump = this.jump;
    this.jump = false;
    const stay = this.following && (jump || this.atEnd());
    const keep = stay ? null : this.anchor();
    const [start, end] = this.range(timeline);
    const records = [];
    for (let i = start; i < end; i++) records.push(timeline.at(i));
    const wanted = [];
    if (timeline.loaded && start === 0) {
      if (timeline.reachedStart) wanted.push(this.marker('history-start', t('historyStart')));
      else if (timeline.loading) wanted.push(this.marker('history-loading', t('loadingEarlier')));
    }
    for (const record of records) wanted.push(this.element(record, names));
    if (!timeline.loaded) wanted.push(this.marker('history-loading', t('loading')));
    // Move or insert only what differs, so focus and scrolling survive.
    let cursor = this.list.firstChild;
    for (const node of wanted) {
      if (node === cursor) {
        cursor = cursor.nextSibling;
      } else {
        this.list.insertBefore(node, cursor);
      }
    }
    while (cursor) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
    this.forgetShown(records);
    if (stay) this.scrollToEnd();
    else if (keep) this.restore(keep);
    this.seen();
  }

  /** Records that left the screen let go of their elements (no detached DOM kept alive). */
  forgetShown(records) {
    const now = new Set(records);
    for (const record of this.shown) if (!now.has(record)) record.el = null;
    this.shown = records;
  }

  /** A line of the list that is not a message (the start of the room, loading). */
  marker(id, text) {
    let item = $(id);
    if (!item) item = el('li', { id, className: 'history-start' });
    if (item.textContent !== text) item.textContent = text;
    return item;
  }

  /** A message of the open room by id (for replies and actions). */
  message(id) {
    return this.openId ? this.timeline(this.openId).byId.get(id) : undefined;
  }

  element(record, names) {
    const mine = record.sender_id === this.me();
    const parent = record.reply_to ? this.message(record.reply_to) : null;
    const reactions = (record.reactions || []).map((r) => `${r.emoji}${r.count}`).join(',');
    const key = `${record.id}|${record.txn_id}|${record.state}|${record.reason}|${record.body}|${record.redacted}|${record.edited_at}|${names.get(record.sender_id) || ''}|${reactions}|${parent ? parent.body : ''}`;
    if (record.el && record.el.dataset.key === key) return record.el;
    const item = el('li', { className: mine ? 'message mine' : 'message' });
    item.dataset.key = key;
    item.dataset.state = record.state;
    item.dataset.senderId = record.sender_id;
    if (record.id) item.dataset.messageId = record.id;
    if (record.txn_id) item.dataset.txnId = record.txn_id;
    if (Number.isFinite(record.seq)) item.dataset.seq = String(record.seq);
    if (record.reason) item.dataset.reason = record.reason;
    const sender = mine ? t('you') : names.get(record.sender_id) || t('unknownUser');
    const meta = el(
      'p',
      { className: 'meta' },
      el('span', { className: 'sender' }, sender),
      ' ',
      el('time', { dateTime: record.created_at }, when(record.created_at)),
      record.edited_at && !record.redacted ? el('span', { className: 'edited' }, ` · ${t('edited')}`) : null,
    );
    const body = record.redacted
      ? el('p', { className: 'body deleted' }, t('deleted'))
      : el('p', { className: 'body' }, record.body);
    if (record.reply_to) {
      const who = parent ? (parent.sender_id === this.me() ? t('you') : names.get(parent.sender_id) || t('unknownUser')) : '';
      const text = parent ? (parent.redacted ? t('deleted') : parent.body.slice(0, 80)) : t('earlierMessage');
      item.append(el('p', { className: 'quote' }, `↪ ${who ? `${who}: ` : ''}${text}`));
    }
    item.append(meta, body);
    if (record.reactions?.length && !record.redacted) {
      item.append(
        el(
          'p',
          { className: 'reactions' },
          ...record.reactions.map((r) => el('span', { className: 'reaction' }, `${r.emoji} ${r.count}`)),
        ),
      );
    }
    if (record.id && !record.redacted) {
      const actions = el('button', { type: 'button', className: 'quiet actions-button', attrs: { 'aria-haspopup': 'dialog' } }, '⋯');
      actions.setAttribute('aria-label', t('messageActions', { who: mine ? t('you') : names.get(record.sender_id) || t('unknownUser') }));
      actions.addEventListener('click', () => this.onActions(record));
      meta.append(' ', actions);
    }
    if (record.state === 'pending') {
      item.append(el('p', { className: 'state' }, t('pending')));
    } else if (record.state === 'failed') {
      const note = el('p', { className: 'state failed' }, t('failed'));
      if (record.reason !== 'out-of-credits') {
        const retry = el('button', { type: 'button', className: 'quiet retry' }, t('retry'));
        retry.addEventListener('click', () => this.onRetry(record.txn_id));
        note.append(' ', retry);
      }
      item.append(note);
    }
    if (record.el) record.el.replaceWith(item);
    record.el = item;
    return item;
  }
}
