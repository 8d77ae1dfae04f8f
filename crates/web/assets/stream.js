// The live stream: one WebSocket at /v1/stream, authenticated by its first frame, resumed from
// the last cursor after any drop (the server then sends what was missed, without gaps).

import { token, refresh } from './api.js';

export class Stream {
  /**
   * `onFrame(frame)` gets every room event and typing notice; `onReady(resumed)` runs each
   * time the stream is (re)connected and caught up to its cursor; `onDown()` when it drops.
   */
  constructor({ onFrame, onReady, onDown }) {
    this.onFrame = onFrame;
    this.onReady = onReady;
    this.onDown = onDown;
    this.cursor = null;
    this.socket = null;
    this.stopped = true;
    this.delay = 500;
    this.timer = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, 'bye');
    this.socket = null;
    this.cursor = null;
  }

  get open() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.ready;
  }

  /** Sends a frame (typing notices) when connected; dropped otherwise. */
  send(frame) {
    if (this.open) this.socket.send(JSON.stringify(frame));
  }

  /** Reconnects now rather than after the back-off (the browser came online). */
  nudge() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.timer);
    this.delay = 500;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const since = this.cursor ? `?since=${encodeURIComponent(this.cursor)}` : '';
    const socket = new WebSocket(`${scheme}://${location.host}/v1/stream${since}`);
    this.socket = socket;
    this.ready = false;
    const resumed = this.cursor !== null;
    socket.onopen = () => socket.send(JSON.stringify({ type: 'auth', token: token() }));
    socket.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === 'ready') {
        if (!this.cursor) this.cursor = frame.cursor;
        this.ready = true;
        this.delay = 500;
        this.onReady(resumed);
        return;
      }
      if (frame.cursor) this.cursor = frame.cursor;
      this.onFrame(frame);
    };
    socket.onclose = async (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.ready = false;
      if (this.stopped) return;
      this.onDown();
      if (event.code === 4001) {
        // The token was refused (expired): a fresh one, then again.
        const signedIn = await refresh().catch(() => true);
        if (!signedIn) return;
      }
      const wait = this.delay + Math.random() * this.delay * 0.3;
      this.delay = Math.min(this.delay * 2, 5000);
      this.timer = setTimeout(() => this.connect(), wait);
    };
  }
}
