// A room's messages: what the page knows of each room (a timeline, kept while the page lives),
// and the open room's list on screen. Messages are keyed by their server id; the ones this
// browser sends are also keyed by txn_id from the moment they are typed, so the echo, the
// server's answer, the live event and history all land on one element.

import { call } from './api.js';
import { $, el } from './dom.js';
import { t, when } from './i18n.js';

const PAGE = 50;

class Timeline {
  constructor(roomId) {
    this.roomId = roomId;
    this.byId = new Map();
    this.byTxn = new Map();
    /** This user's messages seen in history or live while sends were in flight (see defer). */
    this.unclaimed = new Map();
    this.oldestSeq = null;
    this.newestSeq = 0;
    this.reachedStart = false;
    this.loaded = false;
    this.loading = null;
    /** Live events that came while the first page was on its way; applied after it. */
    this.backlog = [];
  }

  /** Every record, oldest first; unconfirmed ones last, in the order they were typed. */
  records() {
    const confirmed = [...this.byId.values()].sort((a, b) => a.seq - b.seq);
    const waiting = [...this.byTxn.values()].filter((r) => !r.id).sort((a, b) => a.typed - b.typed);
    return confirmed.concat(waiting);
  }

  noteSeq(seq) {
    if (seq > this.newestSeq) this.newestSeq = seq;
    if (this.oldestSeq === null || seq < this.oldestSeq) this.oldestSeq = seq;
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
   * `onRetry(txnId)` when the person asks to send a failed message again.
   */
  constructor({ me, names, inFlight, onRetry, onActions }) {
    this.me = me;
    this.onActions = onActions;
    this.names = names;
    this.inFlight = inFlight;
    this.onRetry = onRetry;
    this.timelines = new Map();
    this.openId = null;
    /** The scrolling box (role log) and the list inside it. */
    this.box = $('messages');
    this.list = $('message-list');
    this.box.addEventListener('scroll', () => this.maybeLoadEarlier(), { passive: true });
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
    this.openId = null;
    this.list.replaceChildren();
  }

  /** Shows `roomId`'s messages: the newest page first, earlier ones as the person scrolls up. */
  async open(roomId) {
    this.openId = roomId;
    const timeline = this.timeline(roomId);
    this.render();
    this.scrollToEnd();
    if (!timeline.loaded) await this.loadPage(timeline);
    if (this.openId === roomId) this.fillScreen();
  }

  close() {
    this.openId = null;
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
        const open = this.openId === timeline.roomId;
        // An earlier page goes above what is on screen, which must not move; the first page
        // shows the newest messages.
        const keep = open && timeline.loaded ? this.anchor() : null;
        for (const item of items) this.place(timeline, fromServer(item), { live: false });
        timeline.loaded = true;
        if (items.length < PAGE) timeline.reachedStart = true;
        for (const frame of timeline.backlog.splice(0)) this.event(frame, { quiet: true });
        if (open) {
          this.render();
          if (keep) this.restore(keep);
          else this.scrollToEnd();
        }
      })
      .finally(() => {
        timeline.loading = null;
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
      this.box.scrollHeight <= this.box.clientHeight + 40
    ) {
      await this.loadPage(timeline);
    }
  }

  maybeLoadEarlier() {
    if (!this.openId || this.box.scrollTop > 300) return;
    const timeline = this.timeline(this.openId);
    if (!timeline.loaded || timeline.reachedStart || timeline.loading) return;
    this.loadPage(timeline).catch(() => {});
  }

  /** The first message on screen and its offset, to keep it still while a page goes above. */
  anchor() {
    const top = this.box.scrollTop;
    for (const item of this.list.children) {
      if (item.offsetTop + item.offsetHeight > top) return { item, offset: item.offsetTop - top };
    }
    return null;
  }

  restore({ item, offset }) {
    if (item.isConnected) this.box.scrollTop = item.offsetTop - offset;
  }

  nearEnd() {
    return this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 80;
  }

  scrollToEnd() {
    this.box.scrollTop = this.box.scrollHeight;
  }

  /**
   * Puts a server message in its timeline. A message of this user's that the page cannot yet
   * tell from one it is sending (same room, send unanswered) waits until the sends are answered,
   * so it never shows twice; the answer names it (`confirmed`), or it is shown then.
   */
  place(timeline, record, { live }) {
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
    timeline.byId.set(record.id, record);
    if (live) record.fresh = true;
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
    const open = this.openId === frame.room_id && !quiet;
    const follow = open && this.nearEnd();
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
        added = this.place(timeline, record, { live: true });
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
    if (open) this.renderSoon(follow);
    return added;
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
    if (this.openId === item.room_id) {
      this.render();
      this.scrollToEnd();
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
      if (echo && echo !== known) timeline.byTxn.delete(txnId);
      timeline.byTxn.set(txnId, known);
    } else if (echo) {
      Object.assign(echo, fromServer(posted), { txn_id: txnId });
      timeline.byId.set(posted.id, echo);
    } else {
      const record = fromServer(posted);
      record.txn_id = txnId;
      timeline.byId.set(posted.id, record);
      timeline.byTxn.set(txnId, record);
    }
    timeline.noteSeq(posted.seq);
    this.settle(timeline);
    if (this.openId === roomId) {
      const follow = this.nearEnd();
      this.render();
      if (follow) this.scrollToEnd();
    }
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
    if (this.openId === roomId) this.render();
  }

  /** Once no send to the room is unanswered, the held-back messages of this user are shown. */
  settle(timeline) {
    if (this.inFlight(timeline.roomId) > 0 || timeline.unclaimed.size === 0) return;
    for (const [id, record] of timeline.unclaimed) {
      if (!timeline.byId.has(id)) timeline.byId.set(id, record);
    }
    timeline.unclaimed.clear();
  }

  settleAll() {
    for (const timeline of this.timelines.values()) this.settle(timeline);
    if (this.openId) this.render();
  }

  /** The newest seq of the open room (for the read marker). */
  newestSeq(roomId) {
    return this.timelines.get(roomId)?.newestSeq || 0;
  }

  /** Renders once for a burst of live events (each WebSocket message is a task of its own). */
  renderSoon(follow) {
    this.follow = this.follow || follow;
    if (this.renderTimer) return;
    this.renderTimer = setTimeout(() => {
      this.renderTimer = 0;
      const follow = this.follow;
      this.follow = false;
      this.render();
      if (follow) this.scrollToEnd();
    }, 0);
  }

  /** Brings the open room's list in line with its timeline, reusing elements. */
  render() {
    if (!this.openId) return;
    const timeline = this.timeline(this.openId);
    const names = this.names(this.openId);
    const wanted = [];
    if (timeline.reachedStart) {
      let start = $('history-start');
      if (!start) start = el('li', { id: 'history-start', className: 'history-start' }, t('historyStart'));
      wanted.push(start);
    }
    for (const record of timeline.records()) {
      wanted.push(this.element(record, names));
    }
    if (!timeline.loaded) {
      wanted.push(el('li', { className: 'history-start' }, t('loading')));
    }
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
