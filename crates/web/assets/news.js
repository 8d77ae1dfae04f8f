// New messages in the open room, said to screen readers through the polite live region: one
// message as its sender and text, a burst as a count ("12 new messages from Ada"). At most one
// announcement every SPACING ms, so a reader hears a summary of a burst, not every line of it.

import { announce } from './dom.js';
import { t } from './i18n.js';

/** The least time between two announcements. */
const SPACING = 1500;
/** How long the first message after a quiet spell waits for others of the same burst. */
const GATHER = 150;

export class News {
  constructor() {
    this.waiting = [];
    this.timer = 0;
    this.last = 0;
  }

  /** A message from `who` saying `text` arrived in the open room. */
  add(who, text) {
    this.waiting.push({ who, text });
    if (this.timer) return;
    const wait = Math.max(GATHER, this.last + SPACING - Date.now());
    this.timer = setTimeout(() => this.say(), wait);
  }

  /** Forgets what was not said yet (the room was left). */
  clear() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.waiting = [];
  }

  say() {
    this.timer = 0;
    const news = this.waiting.splice(0);
    if (news.length === 0) return;
    this.last = Date.now();
    if (news.length === 1) {
      const [{ who, text }] = news;
      announce(t('newMessageFrom', { who, text: text.length > 200 ? `${text.slice(0, 200)}…` : text }));
      return;
    }
    const senders = new Set(news.map((n) => n.who));
    const n = news.length;
    announce(senders.size === 1 ? t('newMessagesFrom', { n, who: news[0].who }) : t('newMessages', { n }));
  }
}
