// Message credits: the wallet in the header and buying a pack.
//
// Buying: POST /v1/payments (a new Idempotency-Key per attempt) names the order; the provider's
// checkout then hands back a payment key, which POST /v1/payments/{id}/confirm presents with the
// amount. The sandbox provider needs no window: a key starting with "approve" approves. (Toss
// would open its payment window here, which returns to the page with paymentKey, orderId and
// amount in the URL; this page does not do that yet and says so.) Credits arrive when the
// payment context's wallet process has applied the approval, so the wallet is polled.

import { call, uuid } from './api.js';
import { $, el, openDialog, status } from './dom.js';
import { money, t } from './i18n.js';

let wallet = null;
let products = null;

export function currentWallet() {
  return wallet;
}

export async function loadWallet() {
  wallet = await call('GET', '/v1/wallet');
  $('balance').textContent = String(wallet.balance);
  $('free-left').textContent = String(wallet.free_left_today);
  return wallet;
}

let walletTimer = 0;
/** Reloads the wallet soon (after sends; many sends make one call). */
export function walletSoon() {
  clearTimeout(walletTimer);
  walletTimer = setTimeout(() => loadWallet().catch(() => {}), 400);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens the buy dialog; `onPaid()` runs after credits arrived. */
export async function buyCredits(onPaid) {
  const dialog = $('buy-dialog');
  const list = $('products');
  $('buy-error').textContent = '';
  $('provider-note').textContent = '';
  $('pay').disabled = false;
  if (!dialog.dataset.ready) {
    dialog.dataset.ready = '1';
    $('buy-form').addEventListener('submit', (event) => {
      event.preventDefault();
      pay(dialog.onPaid);
    });
  }
  dialog.onPaid = onPaid;
  openDialog(dialog);
  try {
    if (!products) products = (await call('GET', '/v1/products')).items || [];
    list.replaceChildren(
      ...products.map((product, index) => {
        const id = `product-${product.id}`;
        const input = el('input', { type: 'radio', name: 'product', id, value: product.id, checked: index === 0 });
        const label = el(
          'label',
          { htmlFor: id },
          t('product', { credits: product.credits, price: money(product.amount, product.currency) }),
        );
        return el('div', { className: 'choice' }, input, label);
      }),
    );
    list.querySelector('input')?.focus();
  } catch (error) {
    $('buy-error').textContent = t('error', { detail: error.message });
  }
}

async function pay(onPaid) {
  const dialog = $('buy-dialog');
  const chosen = dialog.querySelector('input[name=product]:checked');
  const product = products?.find((p) => p.id === chosen?.value);
  if (!product) return;
  const button = $('pay');
  const error = $('buy-error');
  button.disabled = true;
  error.textContent = '';
  try {
    const before = wallet ? wallet.balance : 0;
    const payment = await call('POST', '/v1/payments', { product_id: product.id }, { 'Idempotency-Key': uuid() });
    if (payment.provider !== 'sandbox') {
      $('provider-note').textContent = t('tossUnsupported');
      await call('POST', `/v1/payments/${payment.id}/cancel`).catch(() => {});
      return;
    }
    $('provider-note').textContent = t('sandboxNote');
    let decided = await call('POST', `/v1/payments/${payment.id}/confirm`, {
      payment_key: `approve-${uuid()}`,
      amount: payment.amount,
    });
    for (let i = 0; decided.status === 'unknown' && i < 20; i++) {
      await sleep(500);
      decided = await call('GET', `/v1/payments/${payment.id}`);
    }
    if (decided.status === 'unknown') {
      dialog.close();
      status(t('paymentPending'));
      return;
    }
    if (decided.status !== 'approved') {
      error.textContent = t('paymentFailed', { reason: decided.failure || decided.status });
      return;
    }
    // The approval reaches the wallet through the payment context's own events.
    for (let i = 0; i < 40; i++) {
      const now = await loadWallet();
      if (now.balance >= before + product.credits) break;
      await sleep(250);
    }
    dialog.close();
    status(t('paid', { credits: product.credits }));
    if (onPaid) onPaid();
  } catch (failure) {
    error.textContent = t('error', { detail: failure.message });
  } finally {
    button.disabled = false;
  }
}
