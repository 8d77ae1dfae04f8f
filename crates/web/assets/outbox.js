// Messages not yet confirmed by the server, kept in localStorage so a reload or a crash does not
// lose them. Each keeps its txn_id for good: every retry sends the same one, and the server
// answers a repeat with the message it already posted, so a message is posted exactly once.

export class Outbox {
  constructor(userId) {
    this.key = `msa.outbox.${userId}`;
    try {
      this.items = JSON.parse(localStorage.getItem(this.key) || '[]');
    } catch {
      this.items = [];
    }
  }

  save() {
    try {
      if (this.items.length) localStorage.setItem(this.key, JSON.stringify(this.items));
      else localStorage.removeItem(this.key);
    } catch {
      // Storage full or denied: the queue still lives in memory.
    }
  }

  add(item) {
    this.items.push(item);
    this.save();
  }

  get(txnId) {
    return this.items.find((item) => item.txn_id === txnId);
  }

  update(txnId, change) {
    const item = this.get(txnId);
    if (item) {
      Object.assign(item, change);
      this.save();
    }
    return item;
  }

  remove(txnId) {
    this.items = this.items.filter((item) => item.txn_id !== txnId);
    this.save();
  }

  inRoom(roomId) {
    return this.items.filter((item) => item.room_id === roomId);
  }

  /** Entries still to be sent (not refused for good). */
  waiting() {
    return this.items.filter((item) => item.state === 'pending');
  }
}
