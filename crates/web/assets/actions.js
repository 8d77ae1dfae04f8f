// What can be done with a message: reply, react, and for one's own, edit and delete. One shared
// dialog, opened by the message's "⋯" button (one tab stop per message).

import { call } from './api.js';
import { $, closeDialog, openDialog } from './dom.js';
import { t } from './i18n.js';

const LIKE = '👍';

/** `ctx`: `me()` id, `roomId()`, `reply(record)`. */
export function messageActions(ctx, record) {
  const dialog = $('message-dialog');
  const mine = record.sender_id === ctx.me();
  const liked = record.mine?.has(LIKE);
  $('message-error').textContent = '';
  $('edit-form').hidden = true;
  $('action-buttons').hidden = false;
  $('action-edit').hidden = !mine;
  $('action-delete').hidden = !mine;
  $('action-react').textContent = liked ? t('unreact', { emoji: LIKE }) : t('react', { emoji: LIKE });
  $('message-preview').textContent = record.body.slice(0, 200);
  const path = `/v1/rooms/${ctx.roomId()}/messages/${record.id}`;
  const attempt = async (work) => {
    try {
      await work();
      dialog.close();
    } catch (failure) {
      $('message-error').textContent = failure.message;
    }
  };
  $('action-reply').onclick = () => {
    closeDialog(dialog);
    setTimeout(() => ctx.reply(record), 0);
  };
  $('action-react').onclick = () =>
    attempt(() => call(liked ? 'DELETE' : 'PUT', `${path}/reactions/${encodeURIComponent(LIKE)}`));
  $('action-delete').onclick = () => attempt(() => call('DELETE', path));
  $('action-edit').onclick = () => {
    $('action-buttons').hidden = true;
    $('edit-form').hidden = false;
    $('edit-body').value = record.body;
    $('edit-body').focus();
  };
  $('edit-form').onsubmit = (event) => {
    event.preventDefault();
    const body = $('edit-body').value;
    if (!body.trim() || body === record.body) return;
    attempt(() => call('PATCH', path, { body }));
  };
  openDialog(dialog, $('action-reply'));
}
