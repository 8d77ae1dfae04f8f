// The account dialog: nickname, password, payment history with refunds, export, deletion.

import * as api from './api.js';
import { $, el, openDialog } from './dom.js';
import { money, problemText, t, when } from './i18n.js';

/**
 * `ctx`: `me()` the profile (with email), `renamed(profile)`, `deleted()`, `walletChanged()`.
 */
export function account(ctx) {
  const dialog = $('account-dialog');
  const say = (text) => {
    $('account-status').textContent = text;
  };
  const wire = () => {
    $('profile-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const nickname = $('profile-nickname').value.trim();
      const avatar = $('profile-avatar').value.trim();
      const change = {};
      if (nickname && nickname !== ctx.me().nickname) change.nickname = nickname;
      if (avatar && avatar !== (ctx.me().avatar_url || '')) change.avatar_url = avatar;
      if (!Object.keys(change).length) return;
      try {
        ctx.renamed(await api.call('PATCH', '/v1/users/me', change));
        say(t('saved'));
      } catch (failure) {
        say(problemText(failure));
      }
    });
    $('password-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const current = $('current-password').value;
      const next = $('new-password').value;
      if (!current || !next) return;
      try {
        await api.call('PUT', '/v1/users/me/password', { current_password: current, new_password: next });
        // Every session ended with the change, this one too: sign in again with the new one.
        await api.logIn(ctx.me().email, next);
        $('current-password').value = '';
        $('new-password').value = '';
        say(t('passwordChanged'));
      } catch (failure) {
        say(problemText(failure));
      }
    });
    $('export-data').addEventListener('click', async () => {
      try {
        const data = await api.call('GET', '/v1/users/me/export');
        const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
        const link = el('a', { href: url, download: 'msa-export.json' });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
        say(t('exported'));
      } catch (failure) {
        say(failure.message);
      }
    });
    $('confirm-delete').addEventListener('change', () => {
      $('delete-account').disabled = !$('confirm-delete').checked;
    });
    $('delete-account').addEventListener('click', async () => {
      if (!$('confirm-delete').checked) return;
      try {
        // The password confirms it (an account made with Kakao has none: it is left out).
        const password = $('delete-password').value;
        await api.call('DELETE', '/v1/users/me', password ? { password } : {});
        $('delete-password').value = '';
        dialog.close();
        ctx.deleted();
      } catch (failure) {
        say(problemText(failure));
      }
    });
  };
  if (!dialog.dataset.ready) {
    dialog.dataset.ready = '1';
    wire();
  }
  $('profile-nickname').value = ctx.me().nickname;
  $('profile-avatar').value = ctx.me().avatar_url || '';
  $('account-email').textContent = ctx.me().email || '';
  $('confirm-delete').checked = false;
  $('delete-account').disabled = true;
  say('');
  openDialog(dialog, $('profile-nickname'));
  payments(ctx, say);
}

async function payments(ctx, say) {
  const list = $('payment-list');
  list.replaceChildren(el('li', { className: 'hint' }, t('loading')));
  try {
    const page = await api.call('GET', '/v1/payments?limit=20');
    if (!page.items.length) {
      list.replaceChildren(el('li', { className: 'hint' }, t('noPayments')));
      return;
    }
    list.replaceChildren(
      ...page.items.map((payment) => {
        const item = el(
          'li',
          { dataset: { paymentId: payment.id, status: payment.status } },
          el('span', {}, t('product', { credits: payment.credits, price: money(payment.amount, payment.currency) })),
          ' · ',
          el('span', { className: 'status' }, t(`payment_${payment.status}`)),
          payment.refunded_amount > 0 ? ` · ${t('refunded', { amount: money(payment.refunded_amount, payment.currency) })}` : '',
          ' · ',
          el('time', { dateTime: payment.requested_at }, when(payment.requested_at)),
        );
        if (payment.refundable_amount > 0) {
          const refund = el('button', { type: 'button', className: 'secondary' }, t('refund'));
          refund.addEventListener('click', async () => {
            refund.disabled = true;
            try {
              await api.call('POST', `/v1/payments/${payment.id}/refunds`, {
                amount: payment.refundable_amount,
                reason: 'asked for in the web client',
              });
              say(t('refundRequested'));
              ctx.walletChanged();
              payments(ctx, say);
            } catch (failure) {
              refund.disabled = false;
              say(failure.message);
            }
          });
          item.append(' ', refund);
        }
        return item;
      }),
    );
  } catch (failure) {
    list.replaceChildren(el('li', { className: 'error' }, failure.message));
  }
}
