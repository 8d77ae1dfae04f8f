// Message credits: the wallet in the header and buying a pack.
//
// Buying: POST /v1/payments (a new Idempotency-Key per attempt) names the order; the provider's
// checkout then hands back a payment key, which POST /v1/payments/{id}/confirm presents with the
// amount. Credits arrive when the payment context's wallet process has applied the approval, so
// the wallet is polled.
// - The sandbox provider needs no window: a key starting with "approve" approves.
// - Toss: the page loads Toss's SDK (only then, and only from js.tosspayments.com, which the
//   page's CSP admits only when Toss is configured) and goes to Toss's payment window, which
//   sends the browser back to this page: `?toss=success&payment=<id>&paymentKey=…&orderId=…&amount=…`
//   or `?toss=fail&payment=<id>&code=…&message=…`. `tossReturn` handles that return: the order
//   and amount must be this payment's (a changed URL confirms nothing), then confirm; a failure
//   cancels the payment, so it does not hold one of the person's open payments.

import { call, uuid } from './api.js';
import { $, el, openDialog, status } from './dom.js';
import { money, t } from './i18n.js';

/** Toss's SDK for the payment window (v2, standard payment window). */
const TOSS_SDK = 'https://js.tosspayments.com/v2/standard';

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
    if (payment.provider === 'toss') {
      await openTossWindow(payment, product);
      return;
    }
    if (payment.provider !== 'sandbox') {
      $('provider-note').textContent = t('providerUnsupported');
      await call('POST', `/v1/payments/${payment.id}/cancel`).catch(() => {});
      return;
    }
    $('provider-note').textContent = t('sandboxNote');
    const outcome = await confirm(payment, `approve-${uuid()}`, before, product.credits);
    if (outcome === 'pending') {
      dialog.close();
      status(t('paymentPending'));
    } else if (outcome !== 'approved') {
      error.textContent = t('paymentFailed', { reason: outcome });
    } else {
      dialog.close();
      status(t('paid', { credits: product.credits }));
      if (onPaid) onPaid();
    }
  } catch (failure) {
    error.textContent = t('error', { detail: failure.message });
  } finally {
    button.disabled = false;
  }
}

/**
 * Confirms `payment` with the provider's `key`, then waits for the credits: 'approved',
 * 'pending' (the outcome is being looked up), or why it was not approved.
 */
async function confirm(payment, key, before, credits) {
  let decided = await call('POST', `/v1/payments/${payment.id}/confirm`, { payment_key: key, amount: payment.amount });
  for (let i = 0; decided.status === 'unknown' && i < 20; i++) {
    await sleep(500);
    decided = await call('GET', `/v1/payments/${payment.id}`);
  }
  if (decided.status === 'unknown') return 'pending';
  if (decided.status !== 'approved') return decided.failure || decided.status;
  // The approval reaches the wallet through the payment context's own events.
  for (let i = 0; i < 40; i++) {
    const now = await loadWallet();
    if (now.balance >= before + credits) break;
    await sleep(250);
  }
  return 'approved';
}

/** The Toss client key the server put in the page (none: Toss is not configured for it). */
function tossClientKey() {
  return document.querySelector('meta[name="msa-toss-client-key"]')?.content || '';
}

/** Loads Toss's SDK once (a classic script from Toss's host; the CSP admits it under Toss). */
function tossSdk() {
  if (window.TossPayments) return Promise.resolve(window.TossPayments);
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = TOSS_SDK;
    script.onload = () => (window.TossPayments ? resolve(window.TossPayments) : reject(new Error('no TossPayments')));
    script.onerror = () => reject(new Error(t('tossUnreachable')));
    document.head.append(script);
  });
}

/** Where Toss sends the browser back to: this page, naming the payment. */
function returnUrl(outcome, payment) {
  const url = new URL('/', location.origin);
  url.searchParams.set('toss', outcome);
  url.searchParams.set('payment', payment.id);
  return url.href;
}

/** Goes to Toss's payment window for `payment` (the page is left; Toss sends the browser back). */
async function openTossWindow(payment, product) {
  const key = tossClientKey();
  if (!key) {
    $('provider-note').textContent = t('tossUnsupported');
    await call('POST', `/v1/payments/${payment.id}/cancel`).catch(() => {});
    return;
  }
  $('provider-note').textContent = t('tossOpening');
  try {
    const TossPayments = await tossSdk();
    const toss = TossPayments(key).payment({ customerKey: TossPayments.ANONYMOUS });
    await toss.requestPayment({
      method: 'CARD',
      amount: { currency: payment.currency, value: payment.amount },
      orderId: payment.order_id,
      orderName: t('product', { credits: product.credits, price: money(product.amount, product.currency) }),
      successUrl: returnUrl('success', payment),
      failUrl: returnUrl('fail', payment),
      // The whole page goes to the window and comes back (no frame from another host).
      windowTarget: 'self',
    });
  } catch (failure) {
    // The window never opened, or the person closed it: the payment is given up.
    await call('POST', `/v1/payments/${payment.id}/cancel`).catch(() => {});
    $('buy-error').textContent = t('paymentFailed', { reason: failure.message || String(failure) });
  }
}

/**
 * The page was opened by Toss's return URL: returns whether it was (the query is taken off the
 * address at once, so a reload does not repeat it), and settles the payment it names. Runs once
 * signed in; `onPaid()` after credits arrived.
 */
export async function tossReturn(onPaid) {
  const query = new URLSearchParams(location.search);
  const outcome = query.get('toss');
  const id = query.get('payment');
  if (!outcome || !id) return false;
  history.replaceState(history.state, '', location.pathname + location.hash);
  try {
    const payment = await call('GET', `/v1/payments/${encodeURIComponent(id)}`);
    if (outcome === 'fail') {
      if (payment.status === 'requested') await call('POST', `/v1/payments/${payment.id}/cancel`).catch(() => {});
      const reason = query.get('message') || query.get('code') || t('canceled');
      status(t('paymentFailed', { reason }), 0);
      return true;
    }
    const amount = Number(query.get('amount'));
    if (outcome !== 'success' || query.get('orderId') !== payment.order_id || amount !== payment.amount || !query.get('paymentKey')) {
      // Not what this payment asked for: nothing is confirmed.
      status(t('paymentFailed', { reason: t('returnMismatch') }), 0);
      return true;
    }
    status(t('paymentChecking'), 0);
    const before = (await loadWallet()).balance;
    const decided = await confirm(payment, query.get('paymentKey'), before, payment.credits);
    if (decided === 'approved') {
      status(t('paid', { credits: payment.credits }));
      if (onPaid) onPaid();
    } else if (decided === 'pending') {
      status(t('paymentPending'), 0);
    } else {
      status(t('paymentFailed', { reason: decided }), 0);
    }
  } catch (failure) {
    status(t('error', { detail: failure.message }), 0);
  }
  return true;
}
